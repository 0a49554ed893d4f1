"""Rain streaks.

Physical model: during one exposure a falling drop moves much farther than its own size, so the
camera integrates it into a thin, semi-transparent streak along the fall direction (gravity plus
wind). A drop refracts light from a wide cone of the scene, so it is brighter than the background
it hides: streaks are *added* (screen blend in linear light). Drops at different distances form
layers: far drops give short, thin, dim and dense streaks; near drops give long, wide, defocused
ones. The countless unresolved drops further away scatter light like fog ("rain accumulation",
Yang et al., CVPR 2017): ``O = t * (B + S) + (1 - t) * A`` with a uniform transmission ``t``.

The styles at the end (``STYLES``: 'rain:light', 'rain:heavy', 'rain:veil') imitate how the
public benchmark sets were made instead: Photoshop-style streaks on display values.
"""
from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

from . import fog
from ._common import ambient_light, blur, draw_segments, lerp, mix, screen, size_scales

# name, streaks per 640x480 frame (severity 0 -> 1), length px at 480 lines (severity 0 -> 1),
# thickness px, blur sigma px, opacity (severity 0 -> 1), angle jitter deg
_LAYERS = (
    ('far', (500, 3000), (8, 16), 1.0, 0.45, (0.30, 0.45), 2.5),
    ('mid', (120, 900), (18, 36), 1.0, 0.7, (0.40, 0.60), 3.0),
    ('near', (8, 70), (45, 110), 3.0, 1.8, (0.30, 0.45), 3.5),
)


def streak_segments(h: int, w: int, rng: np.random.Generator, n: int, n_max: int,
                    length: float, angle_deg: float, jitter_deg: float, thickness,
                    value_range=(0.45, 1.0), thickness_range=None, taper: bool = False):
    """``n`` motion-blurred drops as line segments: (x0, y0, x1, y1, value, thickness).

    Random numbers are drawn for ``n_max`` streaks and a prefix of ``n`` is kept, so that a
    higher severity with the same seed adds streaks to the same ones (monotonic, reproducible).
    Lengths vary 0.6-1.4x around ``length``, angles by ``jitter_deg`` around ``angle_deg`` (from
    vertical, positive = leaning right going down). ``thickness_range`` draws a line width per
    streak instead of ``thickness``; ``taper`` makes the middle half of each streak brighter than
    its ends (a drop blurred along its path by the exposure: the ends get less of it).
    """
    pad = length * 1.2
    x0 = rng.uniform(-pad, w + pad, n_max)[:n]
    y0 = rng.uniform(-pad, h + pad, n_max)[:n]
    ang = np.deg2rad(angle_deg + rng.normal(0.0, jitter_deg, n_max)[:n])
    lens = length * rng.uniform(0.6, 1.4, n_max)[:n]
    val = rng.uniform(*value_range, n_max)[:n]
    thickness = np.broadcast_to(np.asarray(thickness, np.float64), (n,)) \
        if thickness_range is None else rng.uniform(*thickness_range, n_max)[:n]
    dx, dy = np.sin(ang) * lens, np.cos(ang) * lens
    if taper:
        x0, y0 = np.concatenate([x0, x0 + 0.25 * dx]), np.concatenate([y0, y0 + 0.25 * dy])
        dx, dy = np.concatenate([dx, 0.5 * dx]), np.concatenate([dy, 0.5 * dy])
        val = np.concatenate([0.55 * val, val])
        thickness = np.concatenate([thickness, thickness])
    return x0, y0, x0 + dx, y0 + dy, val, thickness


def streaks(h: int, w: int, rng: np.random.Generator, n: int, n_max: int, length: float,
            angle_deg: float, jitter_deg: float, thickness: float, sigma: float) -> np.ndarray:
    """One layer of :func:`streak_segments`, drawn and blurred: float32 HxW coverage in [0, 1]."""
    segs = streak_segments(h, w, rng, n, n_max, length, angle_deg, jitter_deg, thickness)
    return blur(draw_segments(h, w, *segs), sigma)


def rain_streak_map(h: int, w: int, rng: np.random.Generator, severity: float,
                    wind_deg: float) -> tuple[np.ndarray, dict]:
    """Coverage map (float32 HxW in [0, 1]) of all streak layers, screen-combined."""
    ls, area = size_scales(h, w)
    total = np.zeros((h, w), np.float32)
    layers = []
    for name, n_rng, len_rng, thick, sigma, op_rng, jitter in _LAYERS:
        n_max = int(np.ceil(n_rng[1] * area))
        n = int(round(lerp(*n_rng, severity) * area))
        length = lerp(*len_rng, severity) * ls
        layer_angle = wind_deg + rng.normal(0.0, 2.0)
        cover = streaks(h, w, rng, n, n_max, length, layer_angle, jitter, max(1.0, thick * ls),
                        sigma * ls)
        opacity = lerp(*op_rng, severity)
        total = screen(total, cover * np.float32(opacity))
        layers.append({'name': name, 'count': n, 'length_px': round(length, 2),
                       'angle_deg': round(float(layer_angle), 2), 'opacity': round(opacity, 3)})
    return total, {'layers': layers}


def apply(lin: np.ndarray, rng: np.random.Generator, severity: float,
          accumulation: bool = True) -> tuple[np.ndarray, dict]:
    """Rain on a float32 linear-light RGB image; returns (image, params).

    ``wind_deg``: streak angle from vertical, positive = leaning right going down.
    ``accumulation``: False leaves out the veil of the unresolved far drops (``apply_streaks``).
    """
    h, w = lin.shape[:2]
    wind = float(np.clip(rng.normal(0.0, 14.0), -40.0, 40.0))
    ambient, local = ambient_light(lin)

    # Rain accumulation veil: light grey, scaled with the scene's own brightness.
    veil = lerp(0.04, 0.24, severity) * float(rng.uniform(0.8, 1.2))
    if not accumulation:     # drawn all the same: the streaks of a seed do not change
        veil = 0.0
    airlight = float(np.clip(0.30 + 0.9 * ambient, 0.25, 0.85))
    streaks, sp = rain_streak_map(h, w, rng, severity, wind)
    # Streak radiance: mostly the light the drop gathers from its surroundings, a bit brighter.
    s = streaks * np.clip(0.35 + 0.9 * local, 0.0, 1.0)
    # veiled = lin * (1 - veil) + airlight * veil, then screen: out = veiled * (1 - s) + s,
    # i.e. lin * keep + (grey mix of airlight and 1) * (1 - keep).
    keep = (1.0 - s) * np.float32(1.0 - veil)
    grey = ((1.0 - s) * np.float32(airlight * veil) + s) / np.maximum(1.0 - keep, 1e-6)
    out = mix(lin, grey, keep)
    params = {'wind_deg': round(wind, 2), 'veil': round(veil, 4), 'airlight': round(airlight, 4)}
    params.update(sp)
    return out, params


# ------------------------------------------------------------------ benchmark-like styles
# The public rain sets are made the Photoshop way (Yang et al., CVPR 2017; Li et al., CVPR 2019):
# sparse noise, motion-blurred into streaks, screen-blended onto the *display* (sRGB) values,
# optionally under a veil. Their geometry is in pixels of a ~480x320 frame, so here it is too
# (scaled by a per-image factor for other cameras), not relative to the image size like the
# physical layers above: a training crop is a piece of a frame, its streaks are as thin.

class StreakStyle(NamedTuple):
    directions: tuple[int, int]         # streak layers, one direction each (severity 0 -> 1)
    density: tuple[float, float]        # streaks per 100 000 px per layer (severity 0 -> 1)
    length: tuple[float, float]         # range of the image's mean streak length, px
    thickness: tuple[float, float]      # range of the drawn line width per streak, px
    sigma: tuple[float, float]          # range of the image's streak blur, px
    value: tuple[float, float]          # range of each streak's brightness
    opacity: tuple[float, float]        # layer opacity (severity 0 -> 1)
    spread: float                       # largest angle between a layer and the first, deg
                                        # (each image draws its own, 20-100 % of it)
    jitter: float                       # per-streak angle jitter, deg
    accumulation: tuple[float, float]   # veil share 1 - alpha (severity 0 -> 1)
    soft: float = 0.0                   # >0: every second layer is this much wider and blurrier


#: Rain100L: one direction of thin, light, sparse streaks, nothing else. Lengths as measured on
#: the benchmark's residuals (input - ground truth): p25/p50/p75/p90 9/16/35/64 px; these give
#: 14/22/37/53 (14-32 px, used for the shipped stage 1, gave 13/20/28/39).
RAIN100L = StreakStyle(directions=(1, 1), density=(150, 600), length=(12, 48),
                       thickness=(1.0, 1.0), sigma=(0.35, 0.6), value=(0.15, 0.9),
                       opacity=(0.6, 0.9), spread=0.0, jitter=1.5, accumulation=(0.0, 0.0))
#: Rain100H: up to five directions of long, partly wide streaks, and rain accumulation (the
#: veil: O = alpha (B + sum S_t) + (1 - alpha) A).
RAIN100H = StreakStyle(directions=(2, 5), density=(300, 800), length=(30, 70),
                       thickness=(1.0, 1.4), sigma=(0.25, 0.55), value=(0.3, 1.0),
                       opacity=(0.65, 0.95), spread=12.0, jitter=2.0, accumulation=(0.02, 0.12),
                       soft=2.0)
#: Outdoor-Rain (Li et al., CVPR 2019): streaks in one or two nearby directions inside a veil
#: with depth-like variation (O = T (B + S) + (1 - T) A, T = exp(-beta d)): the veil is
#: ``fog.apply`` on the streaked image, so distant streaks fade too.
OUTDOOR_RAIN = StreakStyle(directions=(1, 2), density=(150, 500), length=(20, 50),
                           thickness=(1.0, 2.0), sigma=(0.4, 0.9), value=(0.3, 0.9),
                           opacity=(0.55, 0.85), spread=10.0, jitter=3.0, accumulation=(0.0, 0.0))
OUTDOOR_VEIL = (0.2, 0.8)  # fog severity (severity 0 -> 1)


def styled_streak_map(h: int, w: int, rng: np.random.Generator, severity: float,
                      style: StreakStyle) -> tuple[np.ndarray, dict]:
    """Coverage (float32 HxW in [0, 1], opacity included) of a style's streak layers.

    The layers are drawn into one canvas (overlaps keep the brighter streak) and blurred once:
    a third of the cost of screen-combining five separately blurred layers; with ``style.soft``
    the odd layers go to a second, wider and blurrier canvas (near, defocused drops)."""
    scale = float(rng.uniform(0.8, 1.25))        # camera resolution / distance to the rain
    main = float(np.clip(rng.normal(0.0, 12.0), -35.0, 35.0))
    length = float(rng.uniform(*style.length)) * scale
    sigma = float(rng.uniform(*style.sigma)) * scale
    spread = style.spread * float(rng.uniform(0.2, 1.0))
    area = h * w / 1e5
    n_max = int(np.ceil(style.density[1] * area))
    n = int(round(lerp(*style.density, severity) * area))
    k = int(round(lerp(*style.directions, severity)))
    opacity = lerp(*style.opacity, severity)
    thick = (style.thickness[0] * scale, style.thickness[1] * scale)
    segs, soft_segs, layers = [], [], []
    for i in range(k):   # the same seed gives the same first layers at every severity
        angle = main if i == 0 else main + float(rng.uniform(-spread, spread))
        layer_len = length if i == 0 else length * float(rng.uniform(0.75, 1.3))
        soft = style.soft > 0 and i % 2 == 1
        f = style.soft if soft else 1.0
        seg = streak_segments(h, w, rng, n, n_max, layer_len, angle, style.jitter, 1.0,
                              value_range=style.value,
                              thickness_range=(thick[0] * f, thick[1] * f), taper=True)
        (soft_segs if soft else segs).append(seg)
        layers.append({'count': n, 'angle_deg': round(angle, 2), 'length_px': round(layer_len, 2),
                       'soft': soft})
    cover = blur(draw_segments(h, w, *(np.concatenate(c) for c in zip(*segs))), sigma)
    if soft_segs:
        wide = draw_segments(h, w, *(np.concatenate(c) for c in zip(*soft_segs)))
        cover = screen(cover, blur(wide, sigma * style.soft) * np.float32(0.5))
    cover *= np.float32(opacity)
    return cover, {'scale': round(scale, 4), 'opacity': round(opacity, 4),
                   'blur_px': round(sigma, 3), 'layers': layers}


def apply_style(lin: np.ndarray, rng: np.random.Generator, severity: float,
                style: StreakStyle = RAIN100L) -> tuple[np.ndarray, dict]:
    """Photoshop-style rain on a float32 linear-light RGB image; returns (image, params).

    Streaks (and the accumulation veil) are blended on display values, as the benchmark sets
    were made: ``d = sqrt(lin)``, ``d' = (1 - a) (d + S (1 - d)) + a A`` with white streaks
    ``S``, veil share ``a`` and a light grey ``A``.
    """
    h, w = lin.shape[:2]
    # Drawn before the streak layers, whose number of draws depends on the severity.
    acc = lerp(*style.accumulation, severity) * float(rng.uniform(0.8, 1.2))
    grey_a = float(rng.uniform(0.8, 1.0))
    s, params = styled_streak_map(h, w, rng, severity, style)
    d = cv2.sqrt(lin)
    keep = (1.0 - s) * np.float32(1.0 - acc)
    other = (s * np.float32(1.0 - acc) + np.float32(acc * grey_a)) / np.maximum(1.0 - keep, 1e-6)
    d = mix(d, other, keep)
    params = {'accumulation': round(acc, 4), 'airlight': round(grey_a, 4), **params}
    return cv2.multiply(d, d), params


def apply_light(lin, rng, severity):
    """Rain100L-like: one direction of thin light streaks."""
    return apply_style(lin, rng, severity, RAIN100L)


def apply_heavy(lin, rng, severity):
    """Rain100H-like: heavy streaks in up to five directions with rain accumulation."""
    return apply_style(lin, rng, severity, RAIN100H)


def apply_veil(lin, rng, severity):
    """Outdoor-Rain-like: streaks inside a depth-varying veil (the fog model, applied after)."""
    out, params = apply_style(lin, rng, severity, OUTDOOR_RAIN)
    fog_severity = lerp(*OUTDOOR_VEIL, severity)
    out, fp = fog.apply(out, rng, fog_severity)
    params['veil'] = {'severity': round(fog_severity, 4), **fp}
    return out, params


def apply_streaks(lin, rng, severity):
    """The physical streak layers (:func:`apply`) without the accumulation veil: rain close
    in front of a near scene (a street, a vehicle ahead), where there is no depth for the far
    drops to build a veil. Training on :func:`apply` alone, whose veil grows with the rain,
    taught a network that rain means dehazing: it darkened Rain100L's unveiled frames."""
    return apply(lin, rng, severity, accumulation=False)


#: '<style>' -> apply, selected as 'rain:<style>' (see ``compose``).
STYLES = {'light': apply_light, 'heavy': apply_heavy, 'veil': apply_veil,
          'streaks': apply_streaks}
