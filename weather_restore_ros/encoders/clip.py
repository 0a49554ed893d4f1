"""CLIP image tower as a weather prior: device-side preprocessing, embedding + patch tokens,
zero-shot weather classification (Tan et al., arXiv 2306.09008).

Everything in the hot path runs on the input tensor's device: no PIL, no host round trip.
``open_clip`` is imported lazily (importing it costs seconds), so importing this module is cheap.
Configs and prompts are in :mod:`.clip_configs`, the weight lookup in :mod:`.clip_weights`.
Over 450 lines on purpose: what is left is the one class, whose loaders, text embeddings,
preprocessing and zero-shot head share its towers, buffers and open_clip key layout.
"""
from __future__ import annotations

import copy
import functools
import json
import math
import os
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .. import DEFAULT_WEATHER_CLASSES
from .clip_configs import (DEFAULT_PROMPTS, DEFAULT_TEMPLATES, TINY_CLIP_CONFIG,
                           _jsonable, _split_config, build_open_clip_from_config)
from .clip_weights import (_HOW_TO_PROVIDE, MissingWeightsError, _find_weights_in_dir,
                           _hf_cache_root, _hf_cached, _resolve_weights, hf_hub_offline)
from .features import EncoderFeatures

ClipFeatures = EncoderFeatures  # the name this module's callers know


def make_tiny_clip(class_names: Sequence[str] = DEFAULT_WEATHER_CLASSES, seed: int = 0,
                   prompts: Mapping[str, Sequence[str]] | None = None,
                   device: str | torch.device = 'cpu') -> 'ClipEncoder':
    """A :class:`ClipEncoder` on :data:`TINY_CLIP_CONFIG` with random weights fixed by ``seed``
    (the global RNG state is left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_open_clip_from_config(TINY_CLIP_CONFIG)
    encoder = ClipEncoder.from_open_clip_model(model, class_names=class_names, prompts=prompts,
                                               model_name='tiny', model_cfg=TINY_CLIP_CONFIG)
    return encoder.to(device)


def _text_only_view(model: nn.Module) -> nn.Module:
    """A shallow copy of an open_clip model without its ``visual`` submodule.

    It shares every text parameter with ``model`` (no copy of weights) and still has
    ``encode_text``; the image tower lives once, as ``ClipEncoder.visual``, so the prior's
    ``state_dict`` has each tensor exactly once.
    """
    view = copy.copy(model)
    view._modules = {k: v for k, v in model._modules.items() if k != 'visual'}
    view._parameters = dict(model._parameters)
    view._buffers = dict(model._buffers)
    view._non_persistent_buffers_set = set(model._non_persistent_buffers_set)
    return view


# ------------------------------------------------------------------------- the encoder
class ClipEncoder(nn.Module):
    """A frozen (by default) open_clip model used as the prior encoder: its embedding is the
    weather prior (what the engine's ``PriorCache`` keeps per camera and the restorer's
    ``CWPPrior`` turns into tokens).

    Submodules: ``visual`` (the image tower) and ``text_model`` (the open_clip model without
    its image tower, sharing its text weights; None when there is no text tower). Buffers:
    ``text_embeddings`` [C, D] (the class prompts' mean text embedding, computed once) and
    ``logit_scale`` (log of the zero-shot temperature).

    Patch tokens: for a ViT image tower ``visual.output_tokens`` is set, so one forward returns
    the pooled feature and the patch tokens. The tokens are the *pre-projection* patch tokens
    (class token dropped) after ``ln_post`` — what the projection would see — of width
    ``token_dim`` (= the ViT width, e.g. 768 for ViT-B-32), laid out row-major on the
    ``grid`` = (image_size / patch_size) patch grid. ModifiedResNet/timm towers expose no
    tokens (``supports_tokens`` is False).
    """

    def __init__(self, visual: nn.Module, text_model: nn.Module | None = None,
                 tokenizer: Callable | None = None,
                 class_names: Sequence[str] = DEFAULT_WEATHER_CLASSES,
                 prompts: Mapping[str, Sequence[str]] | None = None,
                 model_name: str | None = None, pretrained: str | None = None,
                 model_cfg: Mapping | None = None, preprocess_cfg: Mapping | None = None,
                 logit_scale: float | torch.Tensor | None = None):
        super().__init__()
        from open_clip.transform import PreprocessCfg, merge_preprocess_dict
        from dataclasses import asdict

        self.visual = visual
        self.text_model = text_model
        self.tokenizer = tokenizer if text_model is not None else None
        self.model_name = model_name
        self.pretrained = pretrained
        self.model_cfg = copy.deepcopy(dict(model_cfg)) if model_cfg is not None else None

        pp = asdict(PreprocessCfg())
        if self.model_cfg is not None:
            pp = merge_preprocess_dict(pp, _split_config(self.model_cfg)[1])
        pp = merge_preprocess_dict(pp, dict(preprocess_cfg or getattr(visual, 'preprocess_cfg',
                                                                       None) or {}))
        size = getattr(visual, 'image_size', None) or pp['size']
        size = (int(size), int(size)) if isinstance(size, (int, float)) else tuple(
            int(s) for s in size)
        pp['size'] = size
        pp['mean'] = tuple(float(v) for v in pp['mean'])
        pp['std'] = tuple(float(v) for v in pp['std'])
        if pp['resize_mode'] not in ('shortest', 'longest', 'squash'):
            raise ValueError(f"unsupported resize_mode {pp['resize_mode']!r}")
        self.preprocess_cfg = pp
        self.input_size = size
        self.image_size = size[0] if size[0] == size[1] else size
        self.register_buffer('mean', torch.tensor(pp['mean'], dtype=torch.float32).view(
            1, 3, 1, 1), persistent=False)
        self.register_buffer('std', torch.tensor(pp['std'], dtype=torch.float32).view(
            1, 3, 1, 1), persistent=False)

        # Patch tokens: VisionTransformer with class-token or mean pooling and no attention
        # pooler returns (pooled, tokens) when output_tokens is set.
        self.supports_tokens = (
            type(visual).__name__ == 'VisionTransformer' and hasattr(visual, 'output_tokens')
            and getattr(visual, 'attn_pool', None) is None
            and getattr(visual, 'pool_type', 'tok') in ('tok', 'avg'))
        if self.supports_tokens:
            visual.output_tokens = True
            self.token_dim = int(visual.transformer.width)
            self.grid = tuple(int(g) for g in visual.grid_size)
        else:
            self.token_dim = 0
            self.grid = None

        embed_dim = getattr(visual, 'output_dim', None)
        if embed_dim is None:
            with torch.no_grad():
                out = visual(torch.zeros(1, 3, *size))
            embed_dim = (out[0] if isinstance(out, tuple) else out).shape[-1]
        self.embed_dim = int(embed_dim)

        if logit_scale is None:
            logit_scale = getattr(text_model, 'logit_scale', None)
        if logit_scale is None:
            logit_scale = math.log(100.0)
        self.register_buffer('logit_scale', torch.as_tensor(logit_scale, dtype=torch.float32)
                             .detach().clone().reshape(()))

        for p in self.parameters():
            p.requires_grad_(False)
        self.class_names: tuple[str, ...] = ()
        self.prompts: dict[str, tuple[str, ...]] = {}
        self.register_buffer('text_embeddings', None)
        self.set_classes(class_names, prompts)
        self.eval()

    # ----------------------------------------------------------------- constructors
    @classmethod
    def from_open_clip_model(cls, model: nn.Module, tokenizer: Callable | None = None,
                             class_names: Sequence[str] = DEFAULT_WEATHER_CLASSES,
                             model_name: str | None = None, model_cfg: Mapping | None = None,
                             *, prompts: Mapping[str, Sequence[str]] | None = None,
                             pretrained: str | None = None,
                             has_text_tower: bool | None = None) -> 'ClipEncoder':
        """Wrap an open_clip model (shares its weights; its ViT's ``output_tokens`` is set).

        ``model`` is a CLIP/CustomTextCLIP, or a bare image tower (then there is no text tower).
        ``has_text_tower=False`` drops the text tower even if the model has one (a checkpoint
        that stores only the image weights); None: keep it when present. ``tokenizer`` defaults
        to ``open_clip.get_tokenizer(model_name)`` for a known name, else open_clip's CLIP BPE
        tokenizer with the model's context length.
        """
        visual = getattr(model, 'visual', None)
        if visual is None:  # a bare image tower
            visual, text_model = model, None
        else:
            has_text = hasattr(model, 'encode_text') and (
                getattr(model, 'text', None) is not None
                or getattr(model, 'transformer', None) is not None)
            text_model = _text_only_view(model) if has_text else None
        if has_text_tower is False:
            text_model = None
        elif has_text_tower and text_model is None:
            raise ValueError('has_text_tower=True but the model has no text tower')
        if text_model is not None and tokenizer is None:
            tokenizer = _default_tokenizer(model, model_name)
        logit_scale = getattr(model, 'logit_scale', None) if visual is not model else None
        return cls(visual, text_model, tokenizer, class_names=class_names, prompts=prompts,
                   model_name=model_name, pretrained=pretrained, model_cfg=model_cfg,
                   logit_scale=logit_scale)

    @classmethod
    def from_pretrained(cls, model_name: str = 'ViT-B-32', pretrained: str | None = 'openai',
                        cache_dir: str | os.PathLike | None = None,
                        device: str | torch.device = 'cpu',
                        class_names: Sequence[str] = DEFAULT_WEATHER_CLASSES, *,
                        prompts: Mapping[str, Sequence[str]] | None = None,
                        allow_download: bool | None = None) -> 'ClipEncoder':
        """Load an open_clip model.

        * ``model_name`` an open_clip architecture (``'ViT-B-32'``) and ``pretrained`` one of its
          tags (``'openai'``): the weights come from the local cache (Hugging Face cache, or
          ``cache_dir``; ``~/.cache/clip`` for URL-only tags). Not cached: downloaded when
          allowed (``allow_download``; default: unless ``HF_HUB_OFFLINE`` is set), else
          :class:`MissingWeightsError` at once.
        * ``pretrained`` a local weights file (.bin/.pt/.pth/.safetensors): loaded into the
          architecture ``model_name``; ``model_name`` may also be a path to a JSON config
          (a bare model config or an ``open_clip_config.json``).
        * ``model_name='local-dir:/path'``: a folder with ``open_clip_config.json`` + weights;
          ``pretrained`` is ignored.
        * ``pretrained=None``: random weights (tests, smoke runs).
        """
        import open_clip

        if allow_download is None:
            allow_download = not hf_hub_offline()
        pretrained = pretrained or None
        device = torch.device(device)

        if model_name.startswith('local-dir:'):
            folder = Path(model_name[len('local-dir:'):]).expanduser()
            cfg_path = folder / 'open_clip_config.json'
            if not folder.is_dir():
                raise MissingWeightsError(
                    f'CLIP {model_name!r}: folder {folder} does not exist. ' + _HOW_TO_PROVIDE)
            if not cfg_path.is_file():
                raise MissingWeightsError(
                    f'CLIP {model_name!r}: {cfg_path} is missing (a local-dir: folder needs '
                    'open_clip_config.json with model_cfg and preprocess_cfg, plus weights)')
            if _find_weights_in_dir(folder) is None:
                raise MissingWeightsError(
                    f'CLIP {model_name!r}: no weights file (*.safetensors, *.bin, *.pth) in '
                    f'{folder}. Copy open_clip_model.safetensors or open_clip_pytorch_model.bin '
                    'there.')
            full_cfg = json.loads(cfg_path.read_text())
            model = open_clip.create_model(model_name, device='cpu')
            tokenizer = open_clip.get_tokenizer(model_name)
            return cls.from_open_clip_model(
                model, tokenizer, class_names, model_name=model_name, model_cfg=full_cfg,
                prompts=prompts, pretrained=None).to(device)

        if model_name.startswith('hf-hub:'):
            repo = model_name[len('hf-hub:'):]
            if not allow_download and not _hf_cached(repo, 'open_clip_config.json', cache_dir):
                raise MissingWeightsError(
                    f'CLIP {model_name!r}: open_clip_config.json of {repo} is not in the Hugging '
                    f'Face cache ({cache_dir or _hf_cache_root()}) and downloading is disabled '
                    '(HF_HUB_OFFLINE or allow_download=False). ' + _HOW_TO_PROVIDE)
            try:
                model = open_clip.create_model(model_name, cache_dir=cache_dir, device='cpu')
                tokenizer = open_clip.get_tokenizer(model_name, cache_dir=cache_dir)
            except Exception as exc:
                raise MissingWeightsError(f'CLIP {model_name!r} could not be loaded: {exc}. '
                                          + _HOW_TO_PROVIDE) from exc
            return cls.from_open_clip_model(
                model, tokenizer, class_names, model_name=model_name, prompts=prompts,
                pretrained=None).to(device)

        # A JSON config file as the architecture.
        if model_name.endswith('.json') and os.path.isfile(model_name):
            full_cfg = json.loads(Path(model_name).read_text())
            model = build_open_clip_from_config(full_cfg)
            if pretrained is not None:
                weights = Path(pretrained).expanduser()
                if not weights.is_file():
                    raise MissingWeightsError(
                        f'CLIP weights file {weights} (for config {model_name}) does not exist. '
                        + _HOW_TO_PROVIDE)
                open_clip.load_checkpoint(model, str(weights))
            return cls.from_open_clip_model(
                model, None, class_names, model_name=model_name, model_cfg=full_cfg,
                prompts=prompts, pretrained=pretrained).to(device)

        model_cfg = open_clip.get_model_config(model_name)
        if model_cfg is None:
            raise ValueError(f'unknown open_clip model {model_name!r}; known models include '
                             f'{", ".join(open_clip.list_models()[:12])}, ... (see '
                             'open_clip.list_models()), or use local-dir:/path')
        checkpoint, kwargs = _resolve_weights(model_name, pretrained, cache_dir, allow_download)
        model = open_clip.create_model(model_name, pretrained=checkpoint, device='cpu',
                                       cache_dir=str(cache_dir) if cache_dir else None, **kwargs)
        if kwargs.get('force_quick_gelu'):
            model_cfg['quick_gelu'] = True
        tokenizer = open_clip.get_tokenizer(model_name)
        return cls.from_open_clip_model(
            model, tokenizer, class_names, model_name=model_name, model_cfg=model_cfg,
            prompts=prompts, pretrained=pretrained).to(device)

    # ----------------------------------------------------------------- properties
    @property
    def has_text_tower(self) -> bool:
        return self.text_model is not None

    @property
    def device(self) -> torch.device:
        return self.logit_scale.device

    def open_clip_config(self) -> dict:
        """``{'model_cfg', 'preprocess_cfg'}``, JSON-serialisable: enough, with the image
        tower's ``state_dict``, to rebuild this tower with :func:`build_open_clip_from_config`."""
        model_cfg = _split_config(self.model_cfg)[0] if self.model_cfg is not None else None
        return _jsonable({'model_cfg': model_cfg, 'preprocess_cfg': self.preprocess_cfg})

    def _apply(self, fn, recurse=True):
        # .half()/.to(float16) convert the towers; the tiny buffers that set normalisation and
        # the zero-shot temperature stay float32 (fp16 would cost precision, not speed).
        super()._apply(fn, recurse)
        for name in ('mean', 'std', 'logit_scale', 'text_embeddings'):
            buf = self._buffers.get(name)
            if buf is not None and buf.is_floating_point() and buf.dtype != torch.float32:
                self._buffers[name] = buf.float()
        return self

    def extra_repr(self) -> str:
        return (f'model_name={self.model_name!r}, pretrained={self.pretrained!r}, '
                f'embed_dim={self.embed_dim}, token_dim={self.token_dim}, '
                f'image_size={self.image_size}, classes={self.class_names}, '
                f'trainable={self.trainable}')

    # ----------------------------------------------------------------- training mode
    @property
    def trainable(self) -> bool:
        """Whether the image tower is being fine-tuned: any of its parameters requires grad.

        Derived from ``requires_grad`` (not a separate flag), so code that unfreezes the
        parameters directly gets gradients through :meth:`encode` and ``train()`` too.
        """
        return any(p.requires_grad for p in self.visual.parameters())

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self.set_trainable(value)

    def set_trainable(self, trainable: bool = True) -> 'ClipEncoder':
        """Unfreeze (or freeze) the image tower: ``requires_grad``, gradients through
        ``encode``, follows ``train()``. The text tower is never trained: the class text
        embeddings are computed once."""
        for p in self.visual.parameters():
            p.requires_grad_(bool(trainable))
        return self.train(self.training)

    def train(self, mode: bool = True) -> 'ClipEncoder':
        """A frozen prior stays in eval mode even when a parent module calls ``train()``
        (patch dropout and the like must not act on a frozen tower)."""
        super().train(mode and self.trainable)
        self.training = mode
        if self.text_model is not None:
            self.text_model.eval()
        return self

    @property
    def open_clip_model(self) -> nn.Module:
        """A view in open_clip's layout (``visual.*`` + the text tower's keys, if any) sharing
        this prior's tensors: ``state_dict()``/``load_state_dict()`` with open_clip key names."""
        if self.text_model is None:
            view = nn.Module()
            view.visual = self.visual
            return view
        view = copy.copy(self.text_model)
        view._modules = {'visual': self.visual, **self.text_model._modules}
        view._parameters = dict(self.text_model._parameters)
        view._buffers = dict(self.text_model._buffers)
        view._non_persistent_buffers_set = set(self.text_model._non_persistent_buffers_set)
        return view

    # ----------------------------------------------------------------- classes
    def set_classes(self, class_names: Sequence[str],
                    prompts: Mapping[str, Sequence[str]] | None = None) -> None:
        """Set the class list and (re)compute the class text embeddings, once, on the model's
        device. ``prompts`` maps class -> prompt list; classes it lacks use
        :data:`DEFAULT_PROMPTS`, then :data:`DEFAULT_TEMPLATES`."""
        class_names = tuple(class_names)
        if not class_names or len(set(class_names)) != len(class_names):
            raise ValueError(f'class_names must be non-empty and unique, got {class_names}')
        table = {}
        for name in class_names:
            given = (prompts or {}).get(name)
            if given is None:
                given = DEFAULT_PROMPTS.get(name) or tuple(t.format(name)
                                                           for t in DEFAULT_TEMPLATES)
            if isinstance(given, str):
                given = (given,)
            if not given:
                raise ValueError(f'no prompts for class {name!r}')
            table[name] = tuple(given)
        self.class_names = class_names
        self.prompts = table
        if self.text_model is None:
            self.text_embeddings = None
            return
        self.text_embeddings = self._encode_prompts(table)

    @torch.no_grad()
    def _encode_prompts(self, table: Mapping[str, Sequence[str]]) -> torch.Tensor:
        texts = [p for name in self.class_names for p in table[name]]
        counts = [len(table[name]) for name in self.class_names]
        ref = next(self.text_model.parameters(), None)
        device = ref.device if ref is not None else self.logit_scale.device
        tokens = self.tokenizer(texts).to(device)
        feats = self.text_model.encode_text(tokens)
        feats = F.normalize(feats.float(), dim=-1)
        per_class = [F.normalize(chunk.mean(0), dim=-1)
                     for chunk in torch.split(feats, counts)]
        return torch.stack(per_class).to(self.logit_scale.device)

    def drop_text_tower(self) -> 'ClipEncoder':
        """Free the text tower; the cached class embeddings (and zero_shot) stay."""
        self.text_model = None
        self.tokenizer = None
        return self

    # ----------------------------------------------------------------- hot path
    def preprocess(self, images01: torch.Tensor) -> torch.Tensor:
        """``[B,3,H,W]`` (or ``[3,H,W]``) float in [0,1] (uint8 accepted) -> ``[B,3,S,S]``
        normalised CLIP input, float32, on the input's device.

        Same geometry as open_clip's eval transform: 'shortest' resizes the shorter side to S
        (the longer to ``int(S * long / short)``, as torchvision does) and center-crops;
        'squash' resizes to SxS; 'longest' fits the longer side and pads with ``fill_color``.
        Resizing is ``F.interpolate(..., antialias=True)``, which for bicubic/bilinear uses
        PIL's kernels; the result is clamped to [0, 1] as PIL's uint8 output is.
        """
        x = images01
        if x.dim() == 3:
            x = x.unsqueeze(0)
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f'preprocess expects [B,3,H,W] images, got {tuple(images01.shape)}')
        x = x.float() / 255.0 if not x.is_floating_point() else x.float()
        th, tw = self.input_size
        h, w = x.shape[-2:]
        mode = self.preprocess_cfg['resize_mode']
        if mode == 'squash':
            x = self._resize(x, (th, tw))
        elif mode == 'shortest':
            if th == tw:
                short, long = (h, w) if h <= w else (w, h)
                new_long = int(th * long / short)
                size = (th, new_long) if h <= w else (new_long, th)
            else:
                ratio = min(h / th, w / tw)
                size = (round(h / ratio), round(w / ratio))
            x = self._resize(x, size)
            x = _center_crop_or_pad(x, (th, tw), 0.0)
        else:  # longest
            ratio = max(h / th, w / tw)
            x = self._resize(x, (round(h / ratio), round(w / ratio)))
            x = _center_crop_or_pad(x, (th, tw), self.preprocess_cfg.get('fill_color', 0) / 255)
        return (x - self.mean.float()) / self.std.float()

    def _resize(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        if tuple(x.shape[-2:]) == tuple(size):
            return x
        mode = self.preprocess_cfg.get('interpolation', 'bicubic')
        if mode == 'bicubic':
            # PIL resamples horizontally, then vertically, clipping in between; bicubic
            # overshoot makes that clip matter at sharp edges (up to 13/255 off without it).
            # Two passes with a clamp each reproduce PIL within ~1/255.
            h, w = x.shape[-2:]
            if w != size[1]:
                x = F.interpolate(x, size=(h, size[1]), mode=mode, align_corners=False,
                                  antialias=True).clamp_(0.0, 1.0)
            if h != size[0]:
                x = F.interpolate(x, size=size, mode=mode, align_corners=False,
                                  antialias=True).clamp_(0.0, 1.0)
            return x
        if mode == 'bilinear':
            return F.interpolate(x, size=size, mode=mode, align_corners=False, antialias=True)
        if mode == 'nearest':
            return F.interpolate(x, size=size, mode='nearest-exact')
        raise ValueError(f'unsupported interpolation {mode!r}')

    def encode(self, images01: torch.Tensor, with_tokens: bool = False) -> ClipFeatures:
        """Images in [0,1] -> :class:`ClipFeatures` (embedding L2-normalised, float32).

        Runs under ``no_grad`` unless :meth:`set_trainable` was called.
        """
        if with_tokens and not self.supports_tokens:
            raise ValueError(
                f'patch tokens are not available from a {type(self.visual).__name__} image tower '
                f'({self.model_name}); use a ViT CLIP (e.g. ViT-B-32) or with_tokens=False')
        x = self.preprocess(images01)
        ref = next(self.visual.parameters(), None)
        if ref is not None:
            x = x.to(ref.dtype)
        with torch.set_grad_enabled(self.trainable and torch.is_grad_enabled()):
            out = self.visual(x)
        pooled, tokens = out if isinstance(out, tuple) else (out, None)
        embedding = F.normalize(pooled.float(), dim=-1)
        if not with_tokens:
            return ClipFeatures(embedding, None, self.grid)
        if getattr(self.visual, 'final_ln_after_pool', False):
            tokens = self.visual.ln_post(tokens)  # that layout applies ln_post after pooling
        tokens = tokens.float()
        h, w = self.grid
        if tokens.shape[1] != h * w:
            raise RuntimeError(f'got {tokens.shape[1]} patch tokens, expected {h}x{w} (patch '
                               'dropout active in training mode?)')
        return ClipFeatures(embedding, tokens, self.grid)

    def forward(self, images01: torch.Tensor, with_tokens: bool = False) -> ClipFeatures:
        return self.encode(images01, with_tokens=with_tokens)

    def zero_shot(self, embedding: torch.Tensor) -> torch.Tensor:
        """``[B, D]`` (or ``[D]``) image embedding -> class probabilities ``[B, C]`` (softmax
        of ``exp(logit_scale)`` x cosine similarity with each class's text embedding)."""
        if self.text_embeddings is None:
            raise RuntimeError(
                f'zero-shot classification needs class text embeddings, but this CLIP '
                f'({self.model_name}) has no text tower (has_text_tower=False: e.g. a checkpoint '
                'that stores only the image tower); use the restorer\'s classification head')
        squeeze = embedding.dim() == 1
        emb = F.normalize(embedding.float().reshape(-1, embedding.shape[-1]), dim=-1)
        text = self.text_embeddings.float().to(emb.device)
        scale = self.logit_scale.float().exp().clamp(max=100.0).to(emb.device)
        probs = (scale * emb @ text.t()).softmax(dim=-1)
        return probs[0] if squeeze else probs


# ------------------------------------------------------------------------- internals
def _center_crop_or_pad(x: torch.Tensor, size: tuple[int, int], fill: float) -> torch.Tensor:
    """torchvision ``center_crop`` semantics (pads when smaller, then crops)."""
    th, tw = size
    h, w = x.shape[-2:]
    if h < th or w < tw:
        pl, pt = max(tw - w, 0) // 2, max(th - h, 0) // 2
        pr, pb = (max(tw - w, 0) + 1) // 2, (max(th - h, 0) + 1) // 2
        x = F.pad(x, (pl, pr, pt, pb), value=fill)
        h, w = x.shape[-2:]
        if h == th and w == tw:
            return x
    top = int(round((h - th) / 2.0))
    left = int(round((w - tw) / 2.0))
    return x[..., top:top + th, left:left + tw]


def _default_tokenizer(model: nn.Module, model_name: str | None):
    import open_clip

    if model_name and (model_name.startswith('local-dir:')
                       or open_clip.get_model_config(model_name) is not None):
        return open_clip.get_tokenizer(model_name)
    return _simple_tokenizer(int(getattr(model, 'context_length', None) or 77))


@functools.lru_cache(maxsize=4)
def _simple_tokenizer(context_length: int):
    """open_clip's CLIP BPE tokenizer (its vocabulary ships with open_clip); building one
    reads the vocabulary file, so instances are shared."""
    import open_clip

    return open_clip.SimpleTokenizer(context_length=context_length)
