"""Shared helpers for the weather effects: input normalisation, colour space, noise, drawing.

Effects work on float32 RGB in a "linear-ish" space (sRGB decoded with a plain gamma of 2, so the
way back is one fast square root), where light adds up physically; conversion happens once per
:func:`synthesize` call, not per effect.
"""
from __future__ import annotations

import numbers

import cv2
import numpy as np

GAMMA = 2.0  # close enough to sRGB's ~2.2 for blending, and cv2.sqrt is cheap
_TO_LINEAR = ((np.arange(256, dtype=np.float64) / 255.0) ** GAMMA).astype(np.float32)

# Reference frame the effect parameters are tuned for; other sizes scale lengths and counts.
REF_HEIGHT = 480
REF_AREA = 640 * 480


def as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Any HxW, HxWx1, HxWx3 or HxWx4 image -> HxWx3 uint8 RGB (the input itself if it is one).

    uint16 is scaled down by 257; floats are taken as [0, 1] and clipped; alpha is dropped.
    """
    img = np.asarray(image)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[2] not in (1, 3, 4) or img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError('expected an HxW, HxWx1, HxWx3 or HxWx4 image, '
                         f'got shape {np.shape(image)}')
    if img.dtype == np.uint8:
        pass
    elif img.dtype == np.uint16:
        img = (img // 257).astype(np.uint8)
    elif img.dtype == np.bool_:
        img = img.astype(np.uint8) * 255
    elif np.issubdtype(img.dtype, np.floating):
        img = np.clip(np.nan_to_num(img) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    elif np.issubdtype(img.dtype, np.integer):
        img = np.clip(img, 0, 255).astype(np.uint8)
    else:
        raise TypeError(f'unsupported image dtype {img.dtype}')
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    elif img.shape[2] == 4:
        img = img[:, :, :3]
    return np.ascontiguousarray(img)


def make_rng(rng) -> tuple[np.random.Generator, int | None]:
    """(generator, seed): an int seeds a fresh generator; a Generator is used (and advanced)."""
    if isinstance(rng, np.random.Generator):
        return rng, None
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng)), int(rng)
    if rng is None:
        raise TypeError('rng must be a numpy Generator or an int seed '
                        '(None would not be reproducible)')
    raise TypeError(f'rng must be a numpy Generator or an int seed, got {type(rng).__name__}')


def check_severity(severity) -> float:
    s = float(severity)
    if not np.isfinite(s):
        raise ValueError(f'severity must be finite, got {severity!r}')
    return float(min(max(s, 0.0), 1.0))


def to_linear(rgb_uint8: np.ndarray) -> np.ndarray:
    """uint8 sRGB-ish -> float32 linear-ish in [0, 1]."""
    return cv2.LUT(rgb_uint8, _TO_LINEAR)


def to_srgb_uint8(lin: np.ndarray) -> np.ndarray:
    """float32 linear-ish -> uint8 (clipped, rounded)."""
    x = cv2.max(lin.astype(np.float32, copy=False), 0.0)  # convertScaleAbs saturates above 1
    return cv2.convertScaleAbs(cv2.sqrt(x), alpha=255.0)


def expand3(x: np.ndarray) -> np.ndarray:
    """HxW -> contiguous HxWx3 (much faster for later arithmetic than numpy broadcasting)."""
    x = x.astype(np.float32, copy=False)
    return cv2.merge([x, x, x])


def mix(lin: np.ndarray, other: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """lin * keep + other * (1 - keep) with a per-pixel HxW ``keep`` in [0, 1]; ``other`` may be
    HxWx3 or a grey HxW map. One fused OpenCV pass (cv2.blendLinear)."""
    keep = keep.astype(np.float32, copy=False)
    if other.ndim == 2:
        other = expand3(other)
    return cv2.blendLinear(lin, other.astype(np.float32, copy=False), keep, 1.0 - keep)


def scale_add(lin: np.ndarray, a: np.ndarray, b) -> np.ndarray:
    """lin * a + b with a per-pixel HxW gain ``a`` and an HxW, HxWx3 or scalar offset ``b``."""
    out = cv2.multiply(lin, expand3(a))
    if isinstance(b, np.ndarray):
        b = expand3(b) if b.ndim == 2 else b.astype(np.float32, copy=False)
        return cv2.add(out, b)
    return out + np.float32(b)


def luminance(lin: np.ndarray) -> np.ndarray:
    return cv2.transform(lin, np.array([[0.2126, 0.7152, 0.0722]], np.float32))


def ambient_light(lin: np.ndarray, sigma_frac: float = 0.1) -> tuple[float, np.ndarray]:
    """(mean luminance, HxW local luminance blurred over ``sigma_frac`` of the longer side).

    Computed on a 1/8 copy: it only has to describe the lighting, not the detail."""
    h, w = lin.shape[:2]
    sw, sh = max(1, w // 8), max(1, h // 8)
    small = luminance(cv2.resize(lin, (sw, sh), interpolation=cv2.INTER_AREA))
    mean = float(small.mean())
    small = cv2.GaussianBlur(small, (0, 0), max(0.5, sigma_frac * max(sw, sh)),
                             borderType=cv2.BORDER_REFLECT)
    return mean, cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def lerp(a: float, b: float, s: float) -> float:
    return float(a + (b - a) * s)


def size_scales(h: int, w: int) -> tuple[float, float]:
    """(length scale, area scale) relative to a 640x480 frame."""
    return min(h, w * 0.75) / REF_HEIGHT, (h * w) / REF_AREA


def blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur whose cost does not grow with sigma (large sigmas run on a smaller copy)."""
    if sigma < 0.3:
        return img
    h, w = img.shape[:2]
    limit = 2.5 if img.ndim == 3 else 4.0  # beyond this, downscaling is the cheaper blur
    if sigma <= limit or min(h, w) < 16:
        return cv2.GaussianBlur(img, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    f = min(sigma / 2.0, min(h, w) / 8.0)
    sw, sh = max(2, int(round(w / f))), max(2, int(round(h / f)))
    small = cv2.resize(img, (sw, sh), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma * sw / w, borderType=cv2.BORDER_REFLECT)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def smooth_noise(h: int, w: int, rng: np.random.Generator, cells: float = 4.0,
                 octaves: int = 3, persistence: float = 0.5) -> np.ndarray:
    """Low-frequency fractal noise, float32 HxW, roughly zero-mean with unit-ish range.

    ``cells`` is the number of noise cells across the shorter side at the coarsest octave.
    """
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    short = max(1, min(h, w))
    for o in range(octaves):
        c = cells * (2 ** o)
        gh = max(2, int(np.ceil(c * h / short)) + 1)
        gw = max(2, int(np.ceil(c * w / short)) + 1)
        grid = rng.uniform(-1.0, 1.0, (gh, gw)).astype(np.float32)
        out += amp * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= persistence
    return out / total


def draw_segments(h: int, w: int, x0, y0, x1, y1, value, thickness, levels: int = 8) -> np.ndarray:
    """Antialiased line segments (round caps when thick) -> float32 HxW coverage map in [0, 1].

    ``value`` (0..1) and ``thickness`` (pixels) are per segment; they are quantised into a few
    groups so the drawing is a handful of vectorised OpenCV calls, brightest drawn last.
    """
    canvas = np.zeros((h, w), np.uint8)
    n = len(x0)
    if n == 0:
        return canvas.astype(np.float32)
    value = np.broadcast_to(np.asarray(value, np.float64), (n,))
    thickness = np.broadcast_to(np.asarray(thickness, np.float64), (n,))
    q = np.clip(np.round(value * levels), 0, levels).astype(np.int64)
    th = np.clip(np.round(thickness), 1, 255).astype(np.int64)
    keep = q > 0
    pts = np.stack([np.stack([x0, y0], -1), np.stack([x1, y1], -1)], 1)  # (n, 2, 2)
    pts = np.clip(np.round(pts * 16.0), -2 ** 26, 2 ** 26).astype(np.int32)
    keys = q * 1024 + th
    for key in np.unique(keys[keep]):
        sel = keys == key
        qi, ti = int(key // 1024), int(key % 1024)
        color = int(round(255 * qi / levels))
        cv2.polylines(canvas, pts[sel], False, color, ti, cv2.LINE_AA, shift=4)
    return canvas.astype(np.float32) * np.float32(1.0 / 255.0)


def splat(h: int, w: int, x: np.ndarray, y: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Accumulate point weights at their nearest pixels -> float32 HxW (points may lie outside).

    Much cheaper than drawing for thousands of tiny features; blur the result afterwards."""
    x, y, weight = np.broadcast_arrays(np.asarray(x, np.float64), np.asarray(y, np.float64),
                                       np.asarray(weight, np.float64))
    xi = np.floor(x.ravel() + 0.5).astype(np.int64)
    yi = np.floor(y.ravel() + 0.5).astype(np.int64)
    ok = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
    acc = np.bincount((yi * w + xi)[ok], weight.ravel()[ok], minlength=h * w)
    return acc.astype(np.float32).reshape(h, w)


def screen(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Screen blend of two [0, 1] maps: 1 - (1-a)(1-b)."""
    return a + b - a * b
