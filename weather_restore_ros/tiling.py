"""Frames larger than the engine's ``max_pixels``: overlapping tiles, or a downscaled pass.

``restore`` below is the backend's restorer call, ``(x [B,3,h,w], prior) -> (image, mask,
logits)``; these functions only decide which pixels go through it and how the pieces are put
back. Tiles are aligned to the network's stride and blended so that, where the network's
receptive field fits in a quarter of the overlap, the result equals the untiled one.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def layout(h: int, w: int, *, stride: int, tile_size: int, tile_overlap: int,
           max_pixels: int) -> tuple[int, int, list[tuple[int, int]], list[tuple[int, int]]]:
    """(tile size, overlap, row spans, column spans) for an ``h x w`` frame.

    The tile side is ``tile_size``, at most ``sqrt(max_pixels)``, rounded down to the
    network's stride; the overlap is rounded up to the stride (and shrunk if the tile is too
    small for it), so every tile starts on the stride grid of the whole frame.
    """
    s = stride
    t = max(s, min(tile_size, math.isqrt(max_pixels)) // s * s)
    ov = -(-tile_overlap // s) * s
    if 2 * ov >= t:
        ov = max(0, (t - 1) // 2) // s * s
    return t, ov, spans(h, t, ov), spans(w, t, ov)


def tiled(restore, x: torch.Tensor, emb: torch.Tensor, tiles) -> tuple:
    """Overlapping tiles (``tiles``: a :func:`layout`); in each overlap the outer quarter next
    to a tile's inner edge (where zero padding distorts the output) gets weight 0, the middle
    half a linear cross-fade. Weights of overlapping tiles sum to 1."""
    h, w = x.shape[-2:]
    _, ov, rows, cols = tiles
    image = torch.zeros_like(x)
    mask = torch.zeros_like(x[:, :1])
    logits = 0
    for y0, y1 in rows:
        wy = blend_weights(y1 - y0, ov, y0 > 0, y1 < h, x.device)
        for x0, x1 in cols:
            wx = blend_weights(x1 - x0, ov, x0 > 0, x1 < w, x.device)
            win = (wy[:, None] * wx[None, :]).to(x.dtype)
            t_image, t_mask, t_logits = restore(x[..., y0:y1, x0:x1], emb)
            image[..., y0:y1, x0:x1] += t_image * win
            mask[..., y0:y1, x0:x1] += t_mask * win
            logits = logits + t_logits.float()
    return image.clamp_(0, 1), mask.clamp_(0, 1), logits / (len(rows) * len(cols))


def downscaled(restore, x: torch.Tensor, emb: torch.Tensor, max_pixels: int) -> tuple:
    """Restore at <= max_pixels, then add the upsampled *correction* to the full-size input:
    full-resolution detail survives, the weather removal is kept (at lower resolution)."""
    h, w = x.shape[-2:]
    scale = math.sqrt(max_pixels / (h * w))
    size = (max(1, int(h * scale)), max(1, int(w * scale)))
    small = F.interpolate(x, size=size, mode='area')
    image, mask, logits = restore(small, emb)
    delta = F.interpolate(image - small, size=(h, w), mode='bilinear', align_corners=False)
    mask = F.interpolate(mask, size=(h, w), mode='bilinear', align_corners=False)
    return (x + delta).clamp_(0, 1), mask.clamp_(0, 1), logits


def spans(length: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """[start, end) spans of ``tile`` (the last one shorter) stepping by ``tile - overlap``.
    The last span is always longer than ``overlap``, so each overlap lies inside both tiles."""
    out, start = [], 0
    while True:
        end = min(start + tile, length)
        out.append((start, end))
        if end >= length:
            return out
        start += tile - overlap


def blend_weights(n: int, overlap: int, lead: bool, trail: bool, device) -> torch.Tensor:
    """Per-pixel weights of a tile along one axis; ``lead``/``trail``: that edge is inside the
    frame (another tile overlaps it). Over the ``overlap`` pixels at an inner edge: ``m =
    overlap // 4`` zeros, a linear ramp, ``m`` ones -- the mirror image of the neighbour's."""
    w = torch.ones(n, device=device)
    if overlap:
        m = overlap // 4
        span = overlap - 2 * m + 1
        ramp = (torch.arange(overlap, device=device, dtype=torch.float32) - m + 1
                ).clamp_(0, span) / span
        if lead:
            w[:overlap] = ramp
        if trail:
            w[n - overlap:] = w[n - overlap:] * ramp.flip(0)
    return w
