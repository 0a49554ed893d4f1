"""CLIP-Weather Prior (CWP): condition the restorer on what CLIP sees in the frame.

Two kinds of prior tokens (``[B, T, token_dim]``):

* **sample-specific** (``K = num_prior_tokens``): an MLP maps the frame's CLIP image embedding
  to ``K`` tokens (``LayerNorm -> Linear -> GELU -> Linear(K * token_dim)``). CLIP embeddings
  separate weather types and intensities well (the zero-shot classifier reads the same vector),
  so these tokens tell the restorer *which* degradation to remove in *this* frame. The input
  LayerNorm matters: ``ClipEncoder`` returns L2-normalised embeddings whose entries are ~1/sqrt(D).
* **distribution-specific** (``M = num_learned_tokens``): free ``nn.Parameter`` tokens learned
  over the whole training set (a dictionary of weather "modes" shared by all samples).

Image features attend to the concatenated tokens with multi-head cross-attention at the
bottleneck and at one or more decoder scales (``cfg.cwp_scales``): queries are the pixels
(``[B, HW, C]`` after a per-pixel channel LayerNorm), keys/values the tokens; the output is
added back (pre-norm residual, output projection initialised small). With ``T`` tokens the cost is
``O(HW * T * C)``: linear in the image size, unlike self-attention, so it can run at 1/4
resolution. ``F.scaled_dot_product_attention`` picks the fused kernel on every backend.

Ablation ``use_clip_prior=False``: only the ``M`` learned tokens; the embedding is ignored.
Because the tokens depend on the frame only through the embedding, they can be computed once
per prior refresh (``CWPPrior``) and reused for every frame of a stream.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn
from torch.nn import functional as F

from .blocks import LayerNorm2d
from .config import ModelConfig


class CWPPrior(nn.Module):
    """CLIP embedding ``[B, clip_dim]`` -> prior tokens ``[B, K + M, token_dim]`` (normalised)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.k = cfg.num_prior_tokens if cfg.use_clip_prior else 0
        self.token_dim = cfg.token_dim
        if self.k > 0:
            self.mlp = nn.Sequential(
                nn.LayerNorm(cfg.clip_dim),
                nn.Linear(cfg.clip_dim, cfg.prior_hidden),
                nn.GELU(),
                nn.Linear(cfg.prior_hidden, self.k * cfg.token_dim),
            )
        else:
            self.mlp = None
        m = cfg.num_learned_tokens
        self.learned = nn.Parameter(torch.randn(m, cfg.token_dim) * 0.02) if m > 0 else None
        self.norm = nn.LayerNorm(cfg.token_dim)

    def forward(self, clip_embedding: Optional[torch.Tensor], batch: int) -> torch.Tensor:
        parts: list[torch.Tensor] = []
        if self.mlp is not None:
            if clip_embedding is None:
                raise ValueError('this model uses the CLIP prior: '
                                 'pass clip_embedding [B, clip_dim]')
            e = clip_embedding.to(self.mlp[1].weight.dtype)
            if e.shape[0] != batch:
                e = e.expand(batch, -1)  # one prior shared by a batch of frames of one stream
            parts.append(self.mlp(e).view(batch, self.k, self.token_dim))
        if self.learned is not None:
            parts.append(self.learned.unsqueeze(0).expand(batch, -1, -1))
        return self.norm(torch.cat(parts, dim=1))


class CrossAttention(nn.Module):
    """Pixels ``[B, C, H, W]`` (queries) attend to tokens ``[B, T, token_dim]`` (keys/values)."""

    def __init__(self, channels: int, token_dim: int, heads: int, out_scale: float = 0.1):
        super().__init__()
        self.heads = heads
        self.head_dim = channels // heads
        self.norm = LayerNorm2d(channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.kv = nn.Linear(token_dim, 2 * channels)
        self.proj = nn.Conv2d(channels, channels, 1)
        with torch.no_grad():  # small initial contribution (LayerScale-like)
            self.proj.weight.mul_(out_scale)

    def forward(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        # [B, HW, heads, d] -> [B, heads, HW, d]; the last dim stays contiguous so SDPA takes its
        # fused (flash) CPU/GPU kernel (a view in channels_last, one copy in NCHW).
        q = self.q(self.norm(x)).permute(0, 2, 3, 1)
        q = q.reshape(b, h * w, self.heads, self.head_dim).transpose(1, 2)
        kv = self.kv(tokens.to(x.dtype)).reshape(b, -1, 2, self.heads, self.head_dim)
        k, v = kv.permute(2, 0, 3, 1, 4)                                   # 2 x [B, heads, T, d]
        out = F.scaled_dot_product_attention(q, k, v)                      # [B, heads, HW, d]
        out = out.transpose(1, 2).reshape(b, h, w, c).permute(0, 3, 1, 2)  # channels_last view
        return x + self.proj(out)
