"""Snow.

Physical model: snowflakes are small, nearly opaque white scatterers that fall slowly, so a flake
is imaged as a blob (a short capsule when wind moves it during the exposure) that *covers* the
background (alpha blend towards the flake's radiance, the ambient light it reflects). Flakes are
layered by distance: far ones are tiny, dense and sharp; near ones are large, sparse, fast-moving
and strongly defocused (soft bokeh discs). Falling snow also scatters light out of the line of
sight, adding a bright veil: ``O = t * B + (1 - t) * A`` with a near-white airlight ``A``.
"""
from __future__ import annotations

import cv2
import numpy as np

from ._common import (REF_AREA, ambient_light, blur, draw_segments, lerp, mix, screen,
                      size_scales, splat)

# name, flakes per 640x480 frame (severity 0 -> 1), radius px range at 480 lines,
# motion length px per unit wind at 480 lines, defocus sigma as a fraction of the radius (+ px),
# opacity (severity 0 -> 1)
_LAYERS = (
    ('far', (400, 3500), (0.5, 1.3), 3.0, (0.0, 0.5), (0.55, 0.75)),
    ('mid', (80, 900), (1.3, 2.8), 7.0, (0.25, 0.5), (0.70, 0.90)),
    ('near', (6, 60), (4.0, 10.0), 18.0, (0.45, 0.0), (0.55, 0.80)),
)

_SPLAT_STEPS = 4


def snow_map(h: int, w: int, rng: np.random.Generator, severity: float,
             wind_deg: float, wind_speed: float, layer_table=_LAYERS,
             scales: tuple[float, float] | None = None) -> tuple[np.ndarray, dict]:
    """Flake opacity map (float32 HxW in [0, 1]) of all layers, screen-combined.

    ``layer_table`` rows are like ``_LAYERS`` ('far' layers are splatted, the others drawn,
    'near' ones get a soft bokeh core); ``scales`` = (length scale, area scale) relative to a
    640x480 frame, default :func:`size_scales` of the image."""
    ls, area = size_scales(h, w) if scales is None else scales
    total = np.zeros((h, w), np.float32)
    layers = []
    for name, n_rng, r_rng, motion, (sig_frac, sig_px), op_rng in layer_table:
        n_max = int(np.ceil(n_rng[1] * area))
        n = int(round(lerp(*n_rng, severity) * area))
        layer_angle = wind_deg + rng.normal(0.0, 4.0)
        r = rng.uniform(*r_rng, n_max)[:n] * ls
        pad = r_rng[1] * ls + motion * ls * 2
        x0 = rng.uniform(-pad, w + pad, n_max)[:n]
        y0 = rng.uniform(-pad, h + pad, n_max)[:n]
        ang = np.deg2rad(layer_angle + rng.normal(0.0, 12.0, n_max)[:n])
        move = motion * ls * wind_speed * rng.uniform(0.3, 1.2, n_max)[:n]
        val = rng.uniform(0.6, 1.0, n_max)[:n]
        dx, dy = np.sin(ang) * move, np.cos(ang) * move
        sigma = sig_frac * float(np.mean(r_rng)) * ls + sig_px * ls
        if name == 'far':
            # Thousands of sub-pixel flakes: splat a few points along each flake's motion path
            # (weight = its disc area, so the peak after the blur tracks its size).
            steps = (np.arange(_SPLAT_STEPS) + 0.5) / _SPLAT_STEPS
            px = x0[:, None] + dx[:, None] * steps
            py = y0[:, None] + dy[:, None] * steps
            wt = (val * np.pi * r * r / _SPLAT_STEPS)[:, None]
            sigma = max(sigma, 0.6 * ls, 0.6)
            cover = np.minimum(blur(splat(h, w, px, py, wt), sigma), 1.0)
        else:
            # Drawn flakes are at least one pixel wide: thinner ones are dimmer instead.
            val = val * np.minimum(1.0, 2.0 * r)
            cover = blur(draw_segments(h, w, x0, y0, x0 + dx, y0 + dy, val, 2.0 * r), sigma)
        if name == 'near':
            # Defocused flakes spread their light: a disc blurred to bokeh keeps a soft core.
            cover = np.clip(cover * 1.3, 0.0, 1.0)
        opacity = lerp(*op_rng, severity)
        total = screen(total, cover * np.float32(opacity))
        layers.append({'name': name, 'count': n, 'angle_deg': round(float(layer_angle), 2),
                       'blur_sigma_px': round(sigma, 2), 'opacity': round(opacity, 3)})
    return total, {'layers': layers}


def apply(lin: np.ndarray, rng: np.random.Generator, severity: float) -> tuple[np.ndarray, dict]:
    """Snow on a float32 linear-light RGB image; returns (image, params)."""
    h, w = lin.shape[:2]
    wind = float(np.clip(rng.normal(0.0, 20.0), -60.0, 60.0))
    wind_speed = float(rng.uniform(0.3, 1.0))
    ambient, local = ambient_light(lin)

    veil = lerp(0.05, 0.26, severity) * float(rng.uniform(0.8, 1.2))
    airlight = float(np.clip(0.55 + 0.6 * ambient, 0.5, 0.92))
    alpha, sp = snow_map(h, w, rng, severity, wind, wind_speed)
    radiance = np.clip(0.55 + 0.8 * local, 0.0, 1.0)
    # veiled = lin * (1 - veil) + airlight * veil, then
    # out = veiled * (1 - alpha) + radiance * alpha
    #     = lin * keep + (grey mix of airlight and flake radiance) * (1 - keep).
    keep = (1.0 - alpha) * np.float32(1.0 - veil)
    grey = ((1.0 - alpha) * np.float32(airlight * veil) + radiance * alpha) \
        / np.maximum(1.0 - keep, 1e-6)
    out = mix(lin, grey, keep)
    params = {'wind_deg': round(wind, 2), 'wind_speed': round(wind_speed, 3),
              'veil': round(veil, 4), 'airlight': round(airlight, 4)}
    params.update(sp)
    return out, params


# ------------------------------------------------------------------ benchmark-like styles
# Snow100K (Liu et al., DesnowNet, 2018): snow masks made in Photoshop, composited as
# ``x = a z + y (1 - z)`` (``z`` the snow mask, semi-transparent, ``a`` the snow's colour) on
# display values, with no veil. Its test splits S, M and L differ in particle size; a larger
# split keeps the smaller particles too. Sizes are in pixels of a 640x480 frame whatever the
# image's size (a training crop is part of a frame), scaled per image by 0.8-1.25.
_SMALL = ('far', (1500, 7000), (0.5, 1.2), 2.5, (0.0, 0.45), (0.55, 0.85))
_SNOW100K = {
    'small': (_SMALL, ('mid', (100, 900), (1.0, 1.8), 3.0, (0.3, 0.3), (0.5, 0.8))),
    'medium': (_SMALL, ('mid', (250, 2000), (1.3, 3.2), 6.0, (0.35, 0.4), (0.55, 0.85))),
    'large': (_SMALL, ('mid', (150, 1200), (1.3, 3.0), 6.0, (0.35, 0.4), (0.5, 0.8)),
              ('near', (25, 180), (3.5, 8.5), 12.0, (0.45, 0.4), (0.5, 0.85))),
}


def apply_snow100k(lin: np.ndarray, rng: np.random.Generator, severity: float,
                   size: str = 'medium') -> tuple[np.ndarray, dict]:
    """Snow100K-like snow of particle ``size`` (small | medium | large); returns (image, params).
    """
    h, w = lin.shape[:2]
    wind = float(np.clip(rng.normal(0.0, 20.0), -60.0, 60.0))
    wind_speed = float(rng.uniform(0.2, 1.0))
    scale = float(rng.uniform(0.8, 1.25))
    colour = np.clip(float(rng.uniform(0.88, 1.0)) + rng.normal(0.0, 0.015, 3), 0.0, 1.0)
    z, sp = snow_map(h, w, rng, severity, wind, wind_speed, _SNOW100K[size],
                     (scale, h * w / REF_AREA))
    d = mix(cv2.sqrt(lin), np.ones_like(lin) * colour.astype(np.float32), 1.0 - z)
    params = {'size': size, 'scale': round(scale, 4), 'wind_deg': round(wind, 2),
              'wind_speed': round(wind_speed, 3), 'colour': [round(float(c), 4) for c in colour]}
    params.update(sp)
    return cv2.multiply(d, d), params


def apply_small(lin, rng, severity):
    return apply_snow100k(lin, rng, severity, 'small')


def apply_medium(lin, rng, severity):
    return apply_snow100k(lin, rng, severity, 'medium')


def apply_large(lin, rng, severity):
    return apply_snow100k(lin, rng, severity, 'large')


#: '<style>' -> apply, selected as 'snow:<style>' (see ``compose``).
STYLES = {'small': apply_small, 'medium': apply_medium, 'large': apply_large}
