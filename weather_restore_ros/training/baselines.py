"""Classical (non-learned) restoration references for the evaluation tables. numpy + cv2 only.

* :func:`guided_filter` -- He, Sun & Tang, "Guided Image Filtering", ECCV 2010 (box-filter
  O(N) algorithm; grey or colour guide).
* :func:`dark_channel_dehaze` -- He, Sun & Tang, "Single Image Haze Removal Using Dark Channel
  Prior", CVPR 2009, with the transmission refined by the guided filter (as in the 2010 paper)
  instead of soft matting.
* :func:`median_derain` -- a simple rain-streak remover: median filter plus guided-filter
  restoration of the input's detail except where it is a bright thin outlier (rain streaks).

``BASELINES`` maps a name to a function ``HxWx3 uint8 RGB -> HxWx3 uint8 RGB``.
"""
from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

__all__ = ['guided_filter', 'dark_channel', 'estimate_atmospheric_light', 'dark_channel_dehaze',
           'median_derain', 'identity', 'BASELINES']


def _box(x: np.ndarray, r: int) -> np.ndarray:
    """Mean over the (2r+1)^2 window (borders by reflection), float64."""
    return cv2.boxFilter(x, cv2.CV_64F, (2 * r + 1, 2 * r + 1), normalize=True,
                         borderType=cv2.BORDER_REFLECT)


def guided_filter(I: np.ndarray, p: np.ndarray, r: int, eps: float) -> np.ndarray:
    """Guided filter (He et al. 2010): edge-preserving smoothing of ``p`` guided by ``I``.

    ``I``: HxW (grey guide) or HxWx3 (colour guide, Eq. 19-21 of the paper), float (any range;
    ``eps`` is relative to it, e.g. [0,1] with eps 1e-3). ``p``: HxW or HxWxC, filtered channel by
    channel. ``r``: window radius. Returns float64 with ``p``'s shape.
    """
    I = np.asarray(I, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    if p.ndim == 3:
        return np.stack([guided_filter(I, p[:, :, c], r, eps) for c in range(p.shape[2])], axis=2)
    if I.ndim == 3 and I.shape[2] == 1:
        I = I[:, :, 0]
    if I.shape[:2] != p.shape[:2]:
        raise ValueError(f'guide {I.shape} and input {p.shape} sizes differ')
    r = int(r)
    if I.ndim == 2:
        mean_I, mean_p = _box(I, r), _box(p, r)
        cov_Ip = _box(I * p, r) - mean_I * mean_p
        var_I = _box(I * I, r) - mean_I * mean_I
        a = cov_Ip / (var_I + eps)
        b = mean_p - a * mean_I
        return _box(a, r) * I + _box(b, r)
    if I.ndim != 3 or I.shape[2] != 3:
        raise ValueError(f'guide must be HxW or HxWx3, got {I.shape}')
    mean_I = _box(I, r)                                   # HxWx3
    mean_p = _box(p, r)
    cov_Ip = _box(I * p[:, :, None], r) - mean_I * mean_p[:, :, None]
    # Per-pixel 3x3 covariance of I, plus eps * identity; solved for a = Sigma^-1 cov_Ip.
    sigma = np.empty(I.shape[:2] + (3, 3))
    for i in range(3):
        for j in range(i, 3):
            v = _box(I[:, :, i] * I[:, :, j], r) - mean_I[:, :, i] * mean_I[:, :, j]
            sigma[:, :, i, j] = sigma[:, :, j, i] = v
    sigma += eps * np.eye(3)
    a = np.linalg.solve(sigma, cov_Ip[..., None])[..., 0]  # HxWx3
    b = mean_p - np.einsum('hwc,hwc->hw', a, mean_I)
    return np.einsum('hwc,hwc->hw', _box(a, r), I) + _box(b, r)


def dark_channel(rgb01: np.ndarray, patch: int = 15) -> np.ndarray:
    """min over channels, then min over a patch x patch window (grey erosion)."""
    m = np.asarray(rgb01).min(axis=2)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (patch, patch))
    return cv2.erode(m, kernel, borderType=cv2.BORDER_REFLECT)


def estimate_atmospheric_light(rgb01: np.ndarray, dark: np.ndarray,
                               top_fraction: float = 0.001) -> np.ndarray:
    """Atmospheric light A (3,): among the brightest ``top_fraction`` pixels of the dark channel,
    the mean colour of the 10% with the highest intensity (He et al. pick the single brightest;
    averaging a few is the common, noise-robust variant)."""
    flat_dark = dark.reshape(-1)
    flat = rgb01.reshape(-1, 3)
    n = max(1, int(round(flat_dark.size * top_fraction)))
    idx = np.argpartition(flat_dark, -n)[-n:]
    cand = flat[idx]
    k = max(1, n // 10)
    best = np.argsort(cand.sum(axis=1))[-k:]
    return cand[best].mean(axis=0)


def dark_channel_dehaze(rgb_uint8: np.ndarray, patch: int = 15, omega: float = 0.95,
                        t0: float = 0.1, radius: int | None = None, eps: float = 1e-3,
                        return_transmission: bool = False):
    """Dark channel prior dehazing (He et al. 2009) with guided-filter refinement (He 2010).

    Haze model ``I = J t + A (1 - t)``. Steps: dark channel of I (``patch`` window); A from the
    brightest 0.1% of it; coarse ``t = 1 - omega * dark(I / A)``; ``t`` refined by a guided
    filter with the grey image as guide (``radius`` default ``max(8, min(H, W) // 10)``: the
    transmission needs a large window, the guided-filter paper uses tens of pixels; ``eps`` on
    [0,1] intensities); ``J = (I - A) /
    max(t, t0) + A``, clipped to [0, 255].
    Returns uint8 RGB (and the refined transmission HxW if ``return_transmission``).
    """
    img = np.asarray(rgb_uint8)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f'expected HxWx3 RGB, got {img.shape}')
    I = img.astype(np.float64) / 255.0 if img.dtype == np.uint8 else img.astype(np.float64)
    dark = dark_channel(I, patch)
    A = np.maximum(estimate_atmospheric_light(I, dark), 1e-3)
    t = 1.0 - omega * dark_channel(I / A, patch)
    if radius is None:
        radius = max(8, min(I.shape[:2]) // 10)
    gray = cv2.cvtColor(I.astype(np.float32), cv2.COLOR_RGB2GRAY).astype(np.float64)
    t = np.clip(guided_filter(gray, t, radius, eps), 0.0, 1.0)
    J = (I - A) / np.maximum(t, t0)[:, :, None] + A
    out = np.clip(np.round(J * 255.0), 0, 255).astype(np.uint8)
    return (out, t) if return_transmission else out


def median_derain(rgb_uint8: np.ndarray, ksize: int = 5, threshold: float = 8.0,
                  radius: int = 2, eps: float = 1e-2) -> np.ndarray:
    """Remove thin bright rain streaks; keep the rest of the input's detail.

    1. ``M = medianBlur(I, ksize)``: streaks thinner than about ``ksize/2`` px vanish (but so does
       fine texture);
    2. ``D = I - M``, the detail the median removed; a pixel whose luma detail exceeds
       ``threshold`` (0-255 scale) is a bright outlier (a streak: rain is brighter than what
       it covers), fading in linearly from ``threshold/2``;
    3. the keep-weight ``w = 1 - outlier`` is smoothed by a guided filter guided by ``M``
       (``radius``, ``eps`` on [0,1]) so the mask follows the clean image's edges;
    4. ``out = M + w * D``: texture and dark detail come back, streaks do not.
    ``ksize`` must be odd (3, 5, 7, ...).
    """
    img = np.asarray(rgb_uint8)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f'expected HxWx3 uint8 RGB, got {img.dtype} {img.shape}')
    if ksize < 3 or ksize % 2 == 0:
        raise ValueError(f'ksize must be odd and >= 3, got {ksize}')
    M = cv2.medianBlur(img, ksize).astype(np.float64)
    I = img.astype(np.float64)
    D = I - M
    luma = D @ np.array([0.299, 0.587, 0.114])
    lo = threshold / 2.0
    outlier = np.clip((luma - lo) / max(threshold - lo, 1e-6), 0.0, 1.0)
    m_gray = (M @ np.array([0.299, 0.587, 0.114])) / 255.0
    w = np.clip(guided_filter(m_gray, 1.0 - outlier, radius, eps), 0.0, 1.0)
    # Never let the smoothing re-admit a pixel that is itself a clear outlier.
    w = np.minimum(w, 1.0 - outlier)
    out = M + w[:, :, None] * D
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def identity(rgb_uint8: np.ndarray) -> np.ndarray:
    """The degraded input itself (the "do nothing" row of a table)."""
    return np.array(rgb_uint8, copy=True)


BASELINES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    'input': identity,
    'dark_channel': dark_channel_dehaze,
    'median_guided': median_derain,
}
