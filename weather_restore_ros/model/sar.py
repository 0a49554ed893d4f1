"""Selective Adaptive Residual (SAR) encoder.

Adverse weather is *local and sparse* for most weather types (rain streaks, snow flakes,
raindrops cover a fraction of the pixels; only haze is global), so a restorer should modify
degraded regions and leave clean ones alone. At every encoder scale the SAR unit therefore
predicts

* a spatial **gate** ``g = sigmoid(head(f))`` in ``[0, 1]`` (one channel): where the features
  look degraded, and
* a **residual** ``r(f)`` (a depthwise-separable branch),

and updates ``f <- f + g * r(f)``: the correction is injected only where the gate is open. The
gated residuals ``g * r(f)`` are what the encoder "removes/adds" because of the weather; during
training they are the student of the CLIP soft residual distillation (SRD, ``losses.py``), which
pushes them to mimic the difference between CLIP's patch tokens of the degraded and the clean
image. The finest gate, upsampled to the input size, is the degradation mask published by the
node.

With ``use_sar_gating=False`` (ablation) no gate head is built and the residual is added
everywhere (the returned gates are ones).
"""
from __future__ import annotations

import torch
from torch import nn

from .blocks import Downsample, DWBranch, LayerNorm2d, make_stage
from .config import ModelConfig


class SARUnit(nn.Module):
    """``f + g * r(f)``; returns the new features, the gate ``[B,1,h,w]`` and ``g * r(f)``.

    The gate head and the residual branch share the depthwise ``k x k`` conv (spatial context):
    ``d = dw(f)``; ``r = 1x1 -> SimpleGate -> 1x1 (d)``; ``g = sigmoid(1x1 -> ReLU -> 1x1 (d))``
    (``gate_hidden`` channels). Sharing saves one full-resolution pass per scale; the gate
    bias starts at 0 (g = 0.5 everywhere) so early training sees both branches.
    """

    def __init__(self, channels: int, gate_hidden: int, expansion: int, kernel: int,
                 gating: bool = True, channel_attention: bool = False, norm: bool = False,
                 gate_bound: float = 0.0):
        super().__init__()
        self.norm = LayerNorm2d(channels) if norm else nn.Identity()
        branch = DWBranch(channels, expansion, kernel, channel_attention=channel_attention,
                          gate_bound=gate_bound)
        self.dw = branch[0]
        self.residual = nn.Sequential(*list(branch)[1:])
        if gating:
            self.gate = nn.Sequential(nn.Conv2d(channels, gate_hidden, 1), nn.ReLU(),
                                      nn.Conv2d(gate_hidden, 1, 1), nn.Sigmoid())
        else:
            self.gate = None

    def forward(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        d = self.dw(self.norm(f))
        r = self.residual(d)
        if self.gate is None:
            g = torch.ones_like(f[:, :1])
            gr = r
        else:
            g = self.gate(d)
            gr = g * r
        return f + gr, g, gr


class SAREncoder(nn.Module):
    """Multi-scale encoder: ``stage_i -> SAR_i`` per scale, stride-2 downsampling in between.

    Input: stem features at scale 0. Returns ``(features, gates, residuals)``, lists finest first;
    ``features[-1]`` is the bottleneck, ``features[:-1]`` are the decoder's skips.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        w = cfg.widths
        n = cfg.num_scales
        self.stages = nn.ModuleList(
            make_stage(w[i], cfg.enc_blocks[i], cfg.expansion, cfg.dw_kernel,
                       cfg.channel_attention, cfg.block_norm, cfg.gate_bound) for i in range(n))
        self.sar = nn.ModuleList(
            SARUnit(w[i], cfg.gate_hidden, cfg.expansion, cfg.dw_kernel, cfg.use_sar_gating,
                    cfg.channel_attention, cfg.block_norm, cfg.gate_bound)
            for i in range(n))
        self.down = nn.ModuleList(Downsample(w[i], w[i + 1]) for i in range(cfg.num_scales - 1))

    def forward(self, x: torch.Tensor
                ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        feats: list[torch.Tensor] = []
        gates: list[torch.Tensor] = []
        residuals: list[torch.Tensor] = []
        n = len(self.stages)
        for i, (stage, sar) in enumerate(zip(self.stages, self.sar)):
            x = stage(x)
            x, g, gr = sar(x)
            feats.append(x)
            gates.append(g)
            residuals.append(gr)
            if i < n - 1:
                x = self.down[i](x)
        return feats, gates, residuals
