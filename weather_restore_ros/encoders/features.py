"""What every prior encoder returns (CLIP, a pretrained CNN, the tiny test tower)."""
from __future__ import annotations

from typing import NamedTuple

import torch


class EncoderFeatures(NamedTuple):
    embedding: torch.Tensor               # [B, D] float32, L2-normalised
    tokens: torch.Tensor | None           # [B, N, Ct] float32 (N = h*w, row-major), or None
    grid: tuple[int, int] | None          # (h, w) of the tokens; None: no tokens
