"""Cheap building blocks shared by the encoder (SAR) and the decoder.

Choices, all driven by batch-1 inference on a robot (CPU or small GPU):

* no BatchNorm (batch statistics are meaningless at batch 1 and fold badly with gating);
  a per-pixel channel LayerNorm sits in front of cross-attention and, with
  ``ModelConfig.block_norm``, in front of every block and SAR unit (NAFNet's layout). Without
  it SimpleGate can square the activations' scale block after block: small-model fine-tunes
  overflowed to NaN on flat colours (``weather_restore_ros.training.stress``);
* depthwise-separable convolutions (ConvNeXt/MobileNet style): a ``k x k`` depthwise conv for
  the spatial context, then a 1x1 inverted bottleneck. A plain 3x3 conv costs ``9 C^2`` MACs per
  pixel, this block ``k^2 C + 1.5 e C^2`` -- ~3x cheaper at e=2, with the same receptive field;
* NAFNet's SimpleGate (split the expanded channels in two halves, multiply) instead of GELU:
  the multiplicative gate is as expressive for restoration (Chen et al., ECCV 2022), halves the
  second 1x1 conv, and one multiply is ~2x cheaper than an erf-GELU over twice the channels
  (measured: the block runs ~1.5x faster on a 2-core CPU);
* residual branches start small (last 1x1 conv initialised at 0.1x its default scale, the
  effect of LayerScale without its extra per-pixel multiply), which keeps deep stacks trainable
  without BatchNorm;
* optional *simplified channel attention* (NAFNet's SCA: global average pool -> 1x1 -> scale the
  channels) after the gate: the only path by which a block sees image-wide statistics. Veiling
  light (haze, rain accumulation) is a per-image offset that local features cannot tell from a
  bright scene; without it the small network mis-estimated the veil by +-10-16 grey levels on
  unseen photos (measured on the shipped model's held-out set);
* only ops every exporter knows (conv, GELU, pixel (un)shuffle, interpolate, SDPA); no data-
  dependent Python control flow; everything works in ``channels_last`` memory format.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel dimension of a ``[B, C, H, W]`` tensor (per pixel)."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()  # statistics in fp32 (fp16/bf16 inference); used only at coarse scales
        mu = x.mean(1, keepdim=True)
        xc = x - mu
        var = xc.pow(2).mean(1, keepdim=True)
        x = xc * torch.rsqrt(var + self.eps)
        x = x * self.weight.view(1, -1, 1, 1).float() + self.bias.view(1, -1, 1, 1).float()
        return x.to(dtype)


class SimpleGate(nn.Module):
    """``a, b = x.chunk(2, dim=1); a * b`` (NAFNet), each factor clamped to ``[-bound, bound]``
    when ``bound > 0`` (``ModelConfig.gate_bound``): the product is what can square the scale
    of the activations block after block."""

    def __init__(self, bound: float = 0.0):
        super().__init__()
        self.bound = float(bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        if self.bound > 0:
            a, b = a.clamp(-self.bound, self.bound), b.clamp(-self.bound, self.bound)
        return a * b

    def extra_repr(self) -> str:
        return f'bound={self.bound:g}' if self.bound > 0 else ''


class ChannelAttention(nn.Module):
    """``x * 2 sigmoid(W mean_hw(x) + b)``: NAFNet's simplified channel attention, bounded.

    The scale is bounded to ``(0, 2)`` (squeeze-and-excitation style) because these blocks have
    no normalisation: NAFNet's unbounded ``W mean + b`` gave a multiplicative feedback loop (big
    features -> big mean -> bigger scale) that blew the small model up to NaN after ~1300 steps
    at lr 1e-3. Starts as the identity (``W = 0, b = 0``: scale 1), so adding it to a block
    changes nothing until training finds a use for the global statistics.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.proj = nn.Conv2d(channels, channels, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (2.0 * torch.sigmoid(self.proj(x.mean(dim=(2, 3), keepdim=True))))


class DWBranch(nn.Sequential):
    """``dw kxk -> 1x1 (C -> eC) -> SimpleGate [-> ChannelAttention] -> 1x1 (eC/2 -> C)``: the
    residual branch of every block and of the SAR units."""

    def __init__(self, channels: int, expansion: int = 2, kernel: int = 3, out_scale: float = 0.1,
                 channel_attention: bool = False, gate_bound: float = 0.0):
        hidden = max(1, channels * expansion // 2)
        layers = [nn.Conv2d(channels, channels, kernel, padding=kernel // 2, groups=channels),
                  nn.Conv2d(channels, 2 * hidden, 1),
                  SimpleGate(gate_bound)]
        if channel_attention:
            layers.append(ChannelAttention(hidden))
        layers.append(nn.Conv2d(hidden, channels, 1))
        super().__init__(*layers)
        with torch.no_grad():  # start near the identity (LayerScale-like, without the multiply)
            self[-1].weight.mul_(out_scale)


class ConvBlock(nn.Module):
    """``x + DWBranch(norm(x))``; ``norm``: a channel LayerNorm, or nothing (see module doc)."""

    def __init__(self, channels: int, expansion: int = 2, kernel: int = 3,
                 channel_attention: bool = False, norm: bool = False, gate_bound: float = 0.0):
        super().__init__()
        self.norm = LayerNorm2d(channels) if norm else nn.Identity()  # Identity: no weights
        self.branch = DWBranch(channels, expansion, kernel, channel_attention=channel_attention,
                               gate_bound=gate_bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(self.norm(x))


def make_stage(channels: int, blocks: int, expansion: int, kernel: int,
               channel_attention: bool = False, norm: bool = False,
               gate_bound: float = 0.0) -> nn.Sequential:
    return nn.Sequential(*[ConvBlock(channels, expansion, kernel, channel_attention, norm,
                                     gate_bound) for _ in range(blocks)])


class Downsample(nn.Conv2d):
    """Stride-2 2x2 conv (``C_in -> C_out``): a learned pixel-unshuffle + 1x1, the cheapest
    resolution halving that still mixes all four pixels."""

    def __init__(self, cin: int, cout: int):
        super().__init__(cin, cout, kernel_size=2, stride=2)


class Upsample(nn.Sequential):
    """Resolution doubling ``C_in -> C_out`` (see ``ModelConfig.upsample``).

    ``'shuffle'``: 1x1 conv to ``4 * C_out`` then pixel shuffle (checkerboard-free, but each
    pixel of a 2x2 cell has its own weights, so cells show where the network changes a flat
    area a lot). ``'bilinear'``: 1x1 conv to ``C_out`` then bilinear x2, which commutes with the
    1x1 conv (a quarter of the FLOPs) and has no cell edges. Both export to ONNX."""

    def __init__(self, cin: int, cout: int, mode: str = 'shuffle'):
        if mode == 'shuffle':
            super().__init__(nn.Conv2d(cin, cout * 4, 1), nn.PixelShuffle(2))
        elif mode == 'bilinear':
            super().__init__(nn.Conv2d(cin, cout, 1),
                             nn.Upsample(scale_factor=2, mode='bilinear', align_corners=False))
        else:
            raise ValueError(f"Upsample mode must be 'shuffle' or 'bilinear', got {mode!r}")


def shuffle_to_bilinear(state: dict, prefix: str = 'up.') -> dict:
    """A state dict of ``'shuffle'`` upsamplers made to fit ``'bilinear'`` ones: each 1x1 conv
    to ``4 * C`` (one filter per position in the 2x2 cell, PixelShuffle's channel order
    ``c * 4 + position``) becomes the mean of its four filters, the cell's average response,
    which bilinear x2 then spreads smoothly. A fine-tune from such weights starts from the
    same function with the cell pattern averaged away, instead of a random upsampler.
    Entries not under ``prefix`` are returned as they are."""
    out = dict(state)
    for key, value in state.items():
        if key.startswith(prefix) and key.split('.')[-2:] in (['0', 'weight'], ['0', 'bias']):
            out[key] = value.unflatten(0, (-1, 4)).mean(1)
    return out


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, int, int]:
    """Pad bottom/right of ``x`` to a multiple of ``multiple`` (reflect, or replicate where the
    image is too small to reflect). Returns the padded tensor and the original ``H, W``."""
    h, w = x.shape[-2], x.shape[-1]
    ph = (multiple - h % multiple) % multiple
    pw = (multiple - w % multiple) % multiple
    if ph == 0 and pw == 0:
        return x, h, w
    mode = 'reflect' if (ph < h and pw < w) else 'replicate'
    return F.pad(x, (0, pw, 0, ph), mode=mode), h, w
