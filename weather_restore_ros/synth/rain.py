"""Rain streaks.

Physical model: during one exposure a falling drop moves much farther than its own size, so the
camera integrates it into a thin, semi-transparent streak along the fall direction (gravity plus
wind). A drop refracts light from a wide cone of the scene, so it is brighter than the background
it hides: streaks are *added* (screen blend in linear light). Drops at different distances form
layers: far drops give short, thin, dim and dense streaks; near drops give long, wide, defocused
ones. The countless unresolved drops further away scatter light like fog ("rain accumulation",
Yang et al., CVPR 2017): ``O = t * (B + S) + (1 - t) * A`` with a uniform transmission ``t``.
"""
from __future__ import annotations

import numpy as np

from ._common import ambient_light, blur, draw_segments, lerp, mix, screen, size_scales

# name, streaks per 640x480 frame (severity 0 -> 1), length px at 480 lines (severity 0 -> 1),
# thickness px, blur sigma px, opacity (severity 0 -> 1), angle jitter deg
_LAYERS = (
    ('far', (500, 3000), (8, 16), 1.0, 0.45, (0.30, 0.45), 2.5),
    ('mid', (120, 900), (18, 36), 1.0, 0.7, (0.40, 0.60), 3.0),
    ('near', (8, 70), (45, 110), 3.0, 1.8, (0.30, 0.45), 3.5),
)


def rain_streak_map(h: int, w: int, rng: np.random.Generator, severity: float,
                    wind_deg: float) -> tuple[np.ndarray, dict]:
    """Coverage map (float32 HxW in [0, 1]) of all streak layers, screen-combined."""
    ls, area = size_scales(h, w)
    total = np.zeros((h, w), np.float32)
    layers = []
    for name, n_rng, len_rng, thick, sigma, op_rng, jitter in _LAYERS:
        # Draw the random numbers for the densest case and keep a prefix, so that a higher
        # severity with the same seed adds streaks to the same ones (monotonic, reproducible).
        n_max = int(np.ceil(n_rng[1] * area))
        n = int(round(lerp(*n_rng, severity) * area))
        length = lerp(*len_rng, severity) * ls
        layer_angle = wind_deg + rng.normal(0.0, 2.0)
        pad = length * 1.2
        x0 = rng.uniform(-pad, w + pad, n_max)[:n]
        y0 = rng.uniform(-pad, h + pad, n_max)[:n]
        ang = np.deg2rad(layer_angle + rng.normal(0.0, jitter, n_max)[:n])
        lens = length * rng.uniform(0.6, 1.4, n_max)[:n]
        val = rng.uniform(0.45, 1.0, n_max)[:n]
        dx, dy = np.sin(ang) * lens, np.cos(ang) * lens
        thickness = max(1.0, thick * ls)
        cover = draw_segments(h, w, x0, y0, x0 + dx, y0 + dy, val, thickness)
        cover = blur(cover, sigma * ls)
        opacity = lerp(*op_rng, severity)
        total = screen(total, cover * np.float32(opacity))
        layers.append({'name': name, 'count': n, 'length_px': round(length, 2),
                       'angle_deg': round(float(layer_angle), 2), 'opacity': round(opacity, 3)})
    return total, {'layers': layers}


def apply(lin: np.ndarray, rng: np.random.Generator, severity: float) -> tuple[np.ndarray, dict]:
    """Rain on a float32 linear-light RGB image; returns (image, params).

    ``wind_deg``: streak angle from vertical, positive = leaning right going down.
    """
    h, w = lin.shape[:2]
    wind = float(np.clip(rng.normal(0.0, 14.0), -40.0, 40.0))
    ambient, local = ambient_light(lin)

    # Rain accumulation veil: light grey, scaled with the scene's own brightness.
    veil = lerp(0.04, 0.24, severity) * float(rng.uniform(0.8, 1.2))
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
