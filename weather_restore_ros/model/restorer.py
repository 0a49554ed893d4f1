"""``WeatherRestorer``: SAR encoder + CWP-conditioned U-Net decoder + weather classifier.

Data flow (``s = cfg.stem_factor``, scale ``i`` at ``1/(s * 2**i)`` resolution)::

    x [B,3,H,W] in [0,1] --pad to stride (reflect)--> stem (pixel-unshuffle(s) + 3x3 conv)
      -> SAR encoder: per scale  blocks -> f + g*r(f)  -> 2x2/2 conv  ...  -> bottleneck
      -> CWP cross-attention at the bottleneck          (prior tokens from the CLIP embedding)
      -> decoder: per scale  1x1 conv + pixel-shuffle up, + skip, [CWP cross-attention], blocks
      -> head: 3x3 conv (depthwise-separable) -> pixel-shuffle(s) -> residual
         [+ (gain - 1) * detail of x, gain a smooth map in [0.95, 8] from the last decoder
          features, with ``detail_gain``]
         [x mask: sigmoid(3x3 conv of the last decoder features), with ``mask_head``];
         image = clamp(x + residual, 0, 1), cropped
    weather logits = MLP(concat(CLIP embedding, global-avg-pooled bottleneck))
    mask = the mask head's output, or without one the finest SAR gate, upsampled to input size

Design choices:

* **residual output**: the network predicts the correction, so an untrained or uncertain network
  degrades gracefully towards the identity, and clean regions stay bit-close to the input.
* **additive skips** (not concat): halve the decoder's 1x1 cost; the SAR features are already
  the "cleaned" encoder features.
* **pixel-unshuffle stem** (``small``): all convolutions run at <= 1/2 resolution -- on a CPU the
  full-resolution tensors cost more in memory traffic than in FLOPs -- while the head's
  pixel-shuffle still predicts an independent residual for every input pixel. ``base`` keeps a
  full-resolution first scale (``stem_factor=1``) for the finest detail.
* **any input size**: padded to ``stride`` inside ``forward`` (reflect, replicate for tiny inputs)
  and cropped back; gates/residuals are cropped to the valid region of their scale.
* grey (1-channel) and RGBA (4-channel) inputs are converted with :func:`to_rgb3`.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional

import torch
from torch import nn
from torch.nn import functional as F

from .blocks import Upsample, make_stage, pad_to_multiple
from .config import ModelConfig, get_config
from .cwp import CrossAttention, CWPPrior
from .sar import SAREncoder


def _conv3x3(cin: int, cout: int) -> nn.Module:
    """Stem/head conv: a dense 3x3 from/to few channels (<= 4 in, e.g. RGB at full resolution),
    otherwise depthwise 3x3 + 1x1 (3x cheaper on the pixel-unshuffled 12 channels, measured
    ~6 ms -> 2 ms for the 16 -> 12 head at 320x240 on 2 CPU cores)."""
    if cin <= 4:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1))
    return nn.Sequential(nn.Conv2d(cin, cin, 3, padding=1, groups=cin), nn.Conv2d(cin, cout, 1))


class DetailGain(nn.Module):
    """A smooth per-pixel gain (~1 to 8) on the input's detail: ``(gain - 1) * (x - lowpass(x))``,
    added to the residual.

    Fog leaves ``t`` of the scene's contrast (``I = t J + (1 - t) A``, ``t`` smooth), so its
    detail comes back as the input's detail times ``1/t``; a purely additive residual has to
    repaint that detail from half-resolution features and, in dense fog, paints a smooth dark
    estimate instead. The gain is the ``1/t`` map and is built to be one:

    * **smooth**: predicted from the last decoder features, averaged over 4x4 cells of the stem
      resolution (8 px at the ``small`` stem's factor 2) and upsampled bilinearly -- a
      transmission map, not a per-pixel filter (a per-pixel multiplicative map is how a network
      sprays speckle);
    * **0.95 to 8**: ``log gain = L tanh((softplus(z - 3) - softplus(-3)) / L)``, ``L = ln 8``
      (the dark-channel baseline's transmission floor 0.1 allows 10): it amplifies, it does not
      attenuate (by at most 5 %, the price of a gradient at ``z = 0``). A first version that
      allowed down to 1/8 learnt to wash out three quarters of every rain frame's detail, the
      streaks with the texture (Rain100L's building facade lost 4.9 dB); removing streaks
      stays the residual's job;
    * **1 at initialisation** (``z = 0``), so the network starts as without it.

    The low-pass is a fixed separable Gaussian (sigma 2 px): the gain touches the detail and not
    the frame's tone, which the residual keeps.
    """

    LOG_MAX = math.log(8.0)
    SIGMA = 2.0
    CELL = 4          # at the stem resolution
    _SHIFT = 3.0
    _FLOOR = math.log1p(math.exp(-_SHIFT))     # softplus(-shift): the lift at z = 0

    def __init__(self, channels: int):
        super().__init__()
        self.head = nn.Conv2d(channels, 1, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        r = int(math.ceil(3 * self.SIGMA))
        k = torch.exp(-torch.arange(-r, r + 1, dtype=torch.float32) ** 2 / (2 * self.SIGMA ** 2))
        self.register_buffer('taps', (k / k.sum()).repeat(3, 1, 1, 1), persistent=False)

    def lowpass(self, x: torch.Tensor) -> torch.Tensor:
        """The Gaussian low-pass of ``[B, 3, H, W]`` images, renormalised at the borders (a
        zero-padded convolution divided by the kernel mass inside the frame: 3x faster on a
        CPU than padding by replication, which leaves channels-last memory)."""
        r = self.taps.shape[-1] // 2
        taps = self.taps.to(x.dtype)
        x = F.conv2d(x, taps, padding=(0, r), groups=3)
        x = F.conv2d(x, taps.transpose(-1, -2), padding=(r, 0), groups=3)
        one = taps[:1]
        mass_w = F.conv1d(x.new_ones(1, 1, x.shape[-1]), one[0], padding=r)     # [1, 1, W]
        mass_h = F.conv1d(x.new_ones(1, 1, x.shape[-2]), one[0], padding=r)     # [1, 1, H]
        return x / (mass_h.view(1, 1, -1, 1) * mass_w.view(1, 1, 1, -1))

    def gain(self, features: torch.Tensor, size) -> torch.Tensor:
        """The gain map ``[B, 1, *size]``, in [0.95, 8]: computed per 8 px cell, then
        interpolated (bilinear interpolation stays within the cells' range)."""
        z = F.avg_pool2d(self.head(features), self.CELL, ceil_mode=True)
        lift = F.softplus(z - self._SHIFT) - self._FLOOR
        gain = torch.exp(self.LOG_MAX * torch.tanh(lift / self.LOG_MAX))
        return F.interpolate(gain, size=tuple(size), mode='bilinear', align_corners=False)

    def forward(self, features: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        return (self.gain(features, x.shape[-2:]) - 1.0) * (x - self.lowpass(x))


class RestorerOutput(NamedTuple):
    image: torch.Tensor            # [B, 3, H, W] in [0, 1]
    mask: torch.Tensor             # [B, 1, H, W] in [0, 1]: mask head or finest SAR gate
    gates: list[torch.Tensor]      # per scale [B, 1, h_i, w_i] in [0, 1], finest first
    residuals: list[torch.Tensor]  # per scale gated residuals [B, C_i, h_i, w_i], finest first
    logits: torch.Tensor           # [B, num_classes] weather logits


def to_rgb3(x: torch.Tensor) -> torch.Tensor:
    """``[B, C, H, W]`` (or ``[C, H, W]``) with C = 1 (grey), 3 (RGB) or 4 (RGBA) -> 3 channels.

    Grey is repeated to three channels; alpha is dropped (camera frames carry no meaningful
    transparency; compositing onto a background would invent colour). Other channel counts raise.
    """
    cdim = x.dim() - 3
    if cdim < 0:
        raise ValueError(f'expected [B, C, H, W] or [C, H, W], got shape {tuple(x.shape)}')
    c = x.shape[cdim]
    if c == 3:
        return x
    if c == 1:
        return x.expand(*x.shape[:cdim], 3, *x.shape[cdim + 1:])
    if c == 4:
        return x.narrow(cdim, 0, 3)
    raise ValueError(f'cannot convert a {c}-channel image to RGB (expected 1, 3 or 4 channels)')


class WeatherRestorer(nn.Module):
    """All-weather restorer (Tan et al., TIP 2024): SAR encoder, CWP prior, residual U-Net decoder.

    ``forward(x, clip_embedding)``: ``x`` ``[B, C, H, W]`` float in ``[0, 1]``, any ``H, W``
    (C = 1/3/4 when ``cfg.in_channels == 3``); ``clip_embedding`` ``[B, clip_dim]`` (or
    ``[1, clip_dim]`` shared by the batch); may be ``None`` when ``cfg.needs_clip`` is False.
    """

    def __init__(self, cfg: ModelConfig | str):
        super().__init__()
        if isinstance(cfg, str):
            cfg = get_config(cfg)
        self.cfg = cfg
        self.stride = cfg.stride
        w = cfg.widths
        n = cfg.num_scales
        s = cfg.stem_factor
        cin = cfg.in_channels

        self.stem = nn.Sequential(nn.PixelUnshuffle(s), _conv3x3(cin * s * s, w[0]))
        self.encoder = SAREncoder(cfg)

        # CWP: token generator + one cross-attention per listed scale (key = scale index as str).
        self.prior = CWPPrior(cfg) if cfg.use_cwp else None
        self.cwp = nn.ModuleDict()
        if cfg.use_cwp:
            for i in cfg.cwp_scales:
                self.cwp[str(i)] = CrossAttention(w[i], cfg.token_dim, cfg.attn_heads)

        # Decoder, coarse to fine: up[j] brings scale j+1 to scale j.
        self.up = nn.ModuleList(Upsample(w[j + 1], w[j], cfg.upsample) for j in range(n - 1))
        self.dec = nn.ModuleList(make_stage(w[j], cfg.dec_blocks[j], cfg.expansion, cfg.dw_kernel,
                                            cfg.channel_attention, cfg.block_norm,
                                            cfg.gate_bound)
                                 for j in range(n - 1))
        self.head = _conv3x3(w[0], cin * s * s)   # followed by pixel-shuffle(s) in forward
        self.mask_head = nn.Conv2d(w[0], 1, 3, padding=1) if cfg.mask_head else None
        self.detail_gain = DetailGain(w[0]) if cfg.detail_gain else None

        cls_in = w[-1] + (cfg.clip_dim if cfg.use_clip_prior else 0)
        self.classifier = nn.Sequential(nn.Linear(cls_in, cfg.cls_hidden), nn.GELU(),
                                        nn.Linear(cfg.cls_hidden, cfg.num_classes))

        # SRD student head: pooled per-scale residuals (concatenated) -> 1x1 conv -> token width.
        self.srd_head = nn.Conv2d(sum(w), cfg.srd_dim, 1) if cfg.has_srd_head else None
        # Runtime choice, not architecture: activations run channels_last (NHWC). On CPU (oneDNN)
        # depthwise and 1x1 convs are ~2-4x faster in NHWC than NCHW, and cuDNN prefers NHWC for
        # fp16/bf16. Set to torch.contiguous_format to run NCHW.
        self.memory_format = torch.channels_last
        self._init_weights()

    def _init_weights(self):
        # Convs keep their own init (PyTorch's Kaiming-uniform; channel attention's zero weight,
        # so it starts as the identity); linears ViT-style; all biases zero.
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
            if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
                nn.init.zeros_(m.bias)
        # Small output head: the untrained network starts close to the identity.
        nn.init.normal_(self.head[-1].weight, std=1e-3)
        if self.mask_head is not None:   # starts open (0.95): the network as without it
            nn.init.zeros_(self.mask_head.weight)
            nn.init.constant_(self.mask_head.bias, 3.0)

    # ------------------------------------------------------------------ inference helpers
    @property
    def needs_clip(self) -> bool:
        return self.cfg.needs_clip

    def prior_tokens(self, clip_embedding: Optional[torch.Tensor],
                     batch: int = 1) -> Optional[torch.Tensor]:
        """The CWP tokens ``[B, T, token_dim]`` for an embedding (None without a CWP)."""
        return None if self.prior is None else self.prior(clip_embedding, batch)

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor,
                clip_embedding: Optional[torch.Tensor] = None) -> RestorerOutput:
        cfg = self.cfg
        if cfg.needs_clip and clip_embedding is None:
            raise ValueError('this model uses the CLIP prior: pass clip_embedding [B, clip_dim]')
        if cfg.in_channels == 3:
            x = to_rgb3(x)
        b = x.shape[0]
        xp, h, w = pad_to_multiple(x, self.stride)
        xp = xp.contiguous(memory_format=self.memory_format)   # the stem's and the gain's

        stem = self.stem(xp)
        feats, gates, residuals = self.encoder(stem)
        tokens = self.prior_tokens(clip_embedding, b)

        n = len(feats)
        y = feats[-1]
        if str(n - 1) in self.cwp:
            y = self.cwp[str(n - 1)](y, tokens)
        bottleneck = y
        for j in range(n - 2, -1, -1):
            y = self.up[j](y) + feats[j]
            if str(j) in self.cwp:
                y = self.cwp[str(j)](y, tokens)
            y = self.dec[j](y)
        s = cfg.stem_factor
        res = self.head(y)
        if s > 1:  # pixel-shuffle is ~1.5x faster from NCHW; the output image is NCHW either way
            res = F.pixel_shuffle(res.contiguous(), s)
        if self.detail_gain is not None:
            res = res + self.detail_gain(y, xp)
        mask = None
        if self.mask_head is not None:
            logit = self.mask_head(y)
            if s > 1:   # logits, not probabilities, are interpolated: sharper mask edges
                logit = F.interpolate(logit, scale_factor=float(s), mode='bilinear',
                                      align_corners=False)
            mask = torch.sigmoid(logit)
            res = res * mask
            mask = mask[..., :h, :w]
        out = (xp + res)[..., :h, :w].clamp(0.0, 1.0)

        # Gates/residuals cropped to the part of each scale that covers the image.
        for i in range(n):
            f = s * 2 ** i
            hi, wi = -(-h // f), -(-w // f)
            gates[i] = gates[i][..., :hi, :wi]
            residuals[i] = residuals[i][..., :hi, :wi]
        if mask is None:
            mask = gates[0]
            if s > 1:
                mask = F.interpolate(mask, scale_factor=float(s), mode='bilinear',
                                     align_corners=False)
            mask = mask[..., :h, :w]

        pooled = bottleneck.mean(dim=(2, 3))
        if cfg.use_clip_prior and clip_embedding is not None:
            e = clip_embedding.to(pooled.dtype)
            pooled = torch.cat([e.expand(b, -1), pooled], dim=1)
        logits = self.classifier(pooled)
        return RestorerOutput(out, mask, gates, residuals, logits)

    def srd_student(self, residuals: list[torch.Tensor], grid: tuple[int, int]) -> torch.Tensor:
        """SRD student tokens ``[B, gh*gw, srd_dim]`` from the SAR gated residuals.

        Every scale's residual is average-pooled to the CLIP patch grid ``(gh, gw)``; the pooled
        maps are concatenated and projected by one 1x1 conv (= a per-scale linear map, summed), so
        the distillation reaches the SAR units of all scales. Token order is row-major, matching
        ViT patch tokens.
        """
        if self.srd_head is None:
            raise RuntimeError('no SRD head: build with use_srd=True and srd_dim > 0')
        gh, gw = int(grid[0]), int(grid[1])
        pooled = torch.cat([F.adaptive_avg_pool2d(r, (gh, gw)) for r in residuals], dim=1)
        return self.srd_head(pooled).flatten(2).transpose(1, 2)


def build_model(cfg: ModelConfig | str, **overrides) -> WeatherRestorer:
    """``WeatherRestorer`` from a config or a preset name (with field overrides)."""
    if isinstance(cfg, str):
        cfg = get_config(cfg, **overrides)
    elif overrides:
        cfg = cfg.replace(**overrides)
    return WeatherRestorer(cfg)
