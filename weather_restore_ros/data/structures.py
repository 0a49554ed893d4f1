"""Thin man-made structures drawn into a *clean* training crop: wires, poles and facade grids.

They belong to the scene, so they are in the target as well as in the input, and the network
learns that a thin line along the rain's direction is not necessarily rain. Without them, a
network trained on landscapes and close-ups took every thin near-vertical line for a streak:
on Rain100L its worst frames lost 1-3.4 dB where the rain fell parallel to window mullions, a
rope and the lines of a map, painted darker than the truth along each line. On a vehicle these
are power lines, poles, fences, railings and facades.

What tells them apart from streaks, and is kept that way here: a structure is long (it crosses
half the crop or more) or periodic (a grid of mullions), and it may be darker than its
background; a streak is shorter (Rain100L-style: 12-48 px on average in a ~480x320 frame, see
``synth.rain.RAIN100L``), tapered, brighter and scattered. The angles follow the rain's
(``synth.rain``: from vertical, sd 12 degrees), so the two are often parallel, the hard case.
"""
from __future__ import annotations

import numpy as np

from ..synth._common import draw_segments


def _structure_angle(rng: np.random.Generator) -> float:
    """An angle from vertical, degrees: as the rain's (``synth.rain``) or, for a third of
    them, near horizontal (wires, window sills)."""
    if rng.random() < 2 / 3:
        return float(np.clip(rng.normal(0.0, 12.0), -35.0, 35.0))
    return float(90.0 + rng.normal(0.0, 8.0))


def _shade(rgb: np.ndarray, cover: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blend a structure of one colour into ``rgb`` (float32 0..1) with coverage ``cover``:
    dark (a cable, a pole against the sky), light (a painted mullion, a lit rope) or coloured."""
    kind = rng.random()
    if kind < 0.45:
        colour = rng.uniform(0.0, 0.25, 3) * float(rng.uniform(0.6, 1.0))
    elif kind < 0.85:
        colour = np.full(3, rng.uniform(0.6, 1.0)) * rng.uniform(0.9, 1.0, 3)
    else:
        colour = rng.uniform(0.0, 1.0, 3)
    alpha = cover[..., None] * np.float32(rng.uniform(0.5, 1.0))
    return rgb * (1.0 - alpha) + colour.astype(np.float32) * alpha


def _lines(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """1-6 long parallel-ish lines (wires, poles, ropes) crossing at least half the crop."""
    n = int(rng.integers(1, 7))
    angle = np.deg2rad(_structure_angle(rng) + rng.normal(0.0, 3.0, n))
    length = rng.uniform(0.5, 1.5, n) * max(h, w)
    cx, cy = rng.uniform(0, w, n), rng.uniform(0, h, n)
    dx, dy = np.sin(angle) * length / 2, np.cos(angle) * length / 2
    thick = rng.uniform(1.0, 3.0, n)
    return draw_segments(h, w, cx - dx, cy - dy, cx + dx, cy + dy, np.ones(n), thick)


def _parallel_lines(centre, span: float, spacing: float, angle: float, rng: np.random.Generator):
    """Segments (x0, y0, x1, y1, thickness) of evenly spaced lines at ``angle`` (radians from
    vertical), ``span`` long and covering a ``span`` wide square around ``centre``."""
    off = np.arange(-span / 2, span / 2, spacing)
    cx = centre[0] + off * np.cos(angle)
    cy = centre[1] - off * np.sin(angle)
    dx, dy = np.sin(angle) * span / 2, np.cos(angle) * span / 2
    return cx - dx, cy - dy, cx + dx, cy + dy, np.full(len(off), rng.uniform(1.0, 2.0))


def _grid(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A facade: a box of evenly spaced mullions (3-12 px apart) along one angle and, for
    most, sills across them; coverage is zero outside the box."""
    bh, bw = int(rng.integers(h // 3, h + 1)), int(rng.integers(w // 3, w + 1))
    y0, x0 = int(rng.integers(0, h - bh + 1)), int(rng.integers(0, w - bw + 1))
    angle = np.deg2rad(float(np.clip(rng.normal(0.0, 6.0), -20, 20)))
    span = 2 * max(bh, bw)
    centre = (x0 + bw / 2, y0 + bh / 2)
    mullions, sills = rng.uniform(3.0, 12.0), rng.uniform(5.0, 20.0)    # spacings, px
    segs = [_parallel_lines(centre, span, mullions, angle, rng)]
    if rng.random() >= 0.3:
        segs.append(_parallel_lines(centre, span, sills, angle + np.pi / 2, rng))
    x0s, y0s, x1s, y1s, th = (np.concatenate(c) for c in zip(*segs))
    cover = draw_segments(h, w, x0s, y0s, x1s, y1s, np.ones(len(th)), th)
    box = np.zeros((h, w), np.float32)
    box[y0:y0 + bh, x0:x0 + bw] = 1.0
    return cover * box


def thin_structures(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """HxWx3 uint8 RGB -> the same scene with 1-3 thin structures (long lines or a facade grid)
    drawn in, uint8."""
    h, w = rgb.shape[:2]
    out = rgb.astype(np.float32) / 255.0
    for _ in range(int(rng.integers(1, 4))):
        cover = _grid(h, w, rng) if rng.random() < 0.4 else _lines(h, w, rng)
        out = _shade(out, cover, rng)
    return (np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
