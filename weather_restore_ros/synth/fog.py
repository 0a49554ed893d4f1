"""Haze and fog.

Physical model: the atmospheric scattering (Koschmieder) model ``I = J * t + A * (1 - t)`` with
transmission ``t = exp(-beta * d)``: light from the scene is attenuated along the line of sight and
replaced by ambient light scattered towards the camera (the airlight ``A``, near grey-white).
Without a depth map, ``d`` is a proxy: a ground-plane perspective law in the image row (the
horizon and sky are far, the bottom rows near), a brightness / smoothness prior (bright, flat,
low-texture regions such as sky tend to be far) and low-frequency noise for patchy fog. Forward
scattering also softens distant detail, so ``J`` is blurred slightly where ``t`` is small.
"""
from __future__ import annotations

import cv2
import numpy as np

from ._common import blur, luminance, mix, smooth_noise


_WORK_SHORT_SIDE = 160  # depth and forward scattering are smooth: work on a smaller copy
_GLOW_FRACTION = 12.0  # glow radius (sigma) as a fraction of the short side
_GLOW_GAIN = 0.6
_MAX_WORK_FACTOR = 4  # ... but not so small that the forward-scattering blur gets too wide


def _work_copy(lin: np.ndarray) -> np.ndarray:
    """The image shrunk by an integer factor (fast INTER_AREA) to ~160 px on its short side."""
    h, w = lin.shape[:2]
    k = int(min(_MAX_WORK_FACTOR, max(1, min(h, w) // _WORK_SHORT_SIDE)))
    if k == 1:
        return lin
    size = (max(2, -(-w // k)), max(2, -(-h // k)))
    return cv2.resize(lin, size, interpolation=cv2.INTER_AREA)


def _depth(small: np.ndarray, rng: np.random.Generator,
           horizon: float | None) -> tuple[np.ndarray, dict]:
    h, w = small.shape[:2]
    short = min(h, w)
    if horizon is None:
        horizon = float(rng.uniform(0.3, 0.55))
    near = float(rng.uniform(0.12, 0.25))
    # Ground plane: depth ~ 1 / (row - horizon row); everything above the horizon is far.
    v = (np.arange(h, dtype=np.float32) + 0.5) / h
    below = np.maximum(v - horizon, 0.0)
    d_row = near / (below + near)
    d_rows = np.broadcast_to(d_row[:, None], (h, w))

    # Brightness and flatness prior on a smoothed copy (keeps coarse structure only).
    g = cv2.sqrt(np.clip(luminance(small), 0, 1))  # back to display values
    # Bright and colourless (high "dark channel", He et al. 2009) reads as far / already hazy;
    # dark or saturated surfaces read as near.
    dark = cv2.sqrt(np.clip(small.min(axis=2), 0, 1))
    lo, hi = np.percentile(dark, (2, 98))
    bright = np.clip((blur(dark, short / 40.0) - lo) / max(hi - lo, 1e-3), 0.0, 1.0)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
    texture = blur(np.abs(gx) + np.abs(gy), short / 30.0)
    texture = texture / max(float(np.percentile(texture, 95)), 1e-4)
    flat = 1.0 - np.clip(texture, 0.0, 1.0)

    noise = smooth_noise(h, w, rng, cells=float(rng.uniform(1.5, 3.0)), octaves=3)
    w_row, w_bright, w_flat, w_noise = 0.45, 0.3, 0.25, float(rng.uniform(0.10, 0.25))
    d = w_row * d_rows + w_bright * bright + w_flat * flat + w_noise * noise
    d = blur(d.astype(np.float32), short / 60.0)
    lo, hi = np.percentile(d, (1, 99.5))
    d = np.clip((d - lo) / max(hi - lo, 1e-3), 0.0, 1.0)
    # The nearest rows are still a few metres away: keep a floor of haze everywhere.
    d = (0.12 + 0.88 * d).astype(np.float32)
    return d, {'horizon': round(horizon, 3), 'noise_weight': round(w_noise, 3)}


def depth_proxy(lin: np.ndarray, rng: np.random.Generator,
                horizon: float | None = None) -> tuple[np.ndarray, dict]:
    """Relative depth in [0.12, 1] (1 = far) from image cues alone; float32 HxW.

    ``horizon`` is the horizon row as a fraction of the height (random when None)."""
    h, w = lin.shape[:2]
    d, params = _depth(_work_copy(lin), rng, horizon)
    if d.shape != (h, w):
        d = cv2.resize(d, (w, h), interpolation=cv2.INTER_LINEAR)
    return d, params


def apply(lin: np.ndarray, rng: np.random.Generator, severity: float) -> tuple[np.ndarray, dict]:
    """Fog on a float32 linear-light RGB image; returns (image, params)."""
    # Optical thickness at the far end: severity 0 keeps ~70 % of the far scene (light haze),
    # 0.3 about half, 1 about 10 % (dense fog; the nearest rows keep ~75 %).
    beta = (0.35 + 1.9 * severity ** 1.5) * float(rng.uniform(0.85, 1.15))
    grey = float(rng.uniform(0.72, 0.95))
    tint = rng.normal(0.0, 0.006, 3)
    tint[2] += float(rng.uniform(0.0, 0.02))  # neutral to slightly blue-ish
    h, w = lin.shape[:2]
    small = _work_copy(lin)  # also the forward-scattering blur of the scene
    # The airlight is ambient light: a night scene gets a darker, grey fog.
    brightness = float(cv2.sqrt(np.clip(luminance(small), 0, 1)).mean())
    light = float(np.clip(0.45 + 1.6 * brightness, 0.5, 1.0))
    airlight_srgb = np.clip(grey + tint, 0.55, 1.0) * light
    airlight = (airlight_srgb ** 2).astype(np.float32)  # linear-ish (gamma 2, see _common)
    d, dp = _depth(small, rng, None)
    t = np.exp(-beta * d).astype(np.float32)
    # Forward scattering softens what is seen through the fog: mix in the blurred scene with
    # weight k = 0.8 (1 - t). out = (lin (1 - k) + soft k) t + airlight (1 - t)
    #                              = lin * keep + scattered * (1 - keep), keep = (1 - k) t,
    # where ``scattered`` (soft and airlight only) is smooth and built at low resolution.
    kt = 0.8 * (1.0 - t) * t
    one_t = 1.0 - t
    # In-scattered light: the ambient airlight plus light scattered from nearby bright parts of
    # the scene (lamps and bright sky glow into the fog around them).
    glow = blur(small, min(small.shape[:2]) / _GLOW_FRACTION)
    inscatter = np.minimum(airlight + _GLOW_GAIN * glow, 1.0)
    scattered = (small * kt[:, :, None] + inscatter * one_t[:, :, None]) \
        / np.maximum(kt + one_t, 1e-6)[:, :, None]
    params = {'beta': round(beta, 4), 'airlight': [round(float(a), 4) for a in airlight_srgb],
              't_min': round(float(t.min()), 4), 't_mean': round(float(t.mean()), 4)}
    if (small.shape[1], small.shape[0]) != (w, h):
        scattered = cv2.resize(scattered, (w, h), interpolation=cv2.INTER_LINEAR)
        t = cv2.resize(t, (w, h), interpolation=cv2.INTER_LINEAR)
    keep = (1.0 - 0.8 * (1.0 - t)) * t
    out = mix(lin, scattered.astype(np.float32), keep)
    params.update(dp)
    return out, params
