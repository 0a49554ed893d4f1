"""Weather composition: one entry point over the single effects and their combinations.

Effects are applied in physical order whatever order the name lists them in: scene-level haze
first (it attenuates the scene), then precipitation between the camera and the scene (rain,
snow), and lens raindrops last (they sit on the optics). The *label* of a combination is its
first component ('rain+fog' -> 'rain', 'fog+rain' -> 'fog'), which also gets the full severity;
the other components get ``SECONDARY_SEVERITY`` times it so the labelled weather dominates.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .. import DEFAULT_WEATHER_CLASSES
from . import fog, rain, raindrop, snow
from ._common import as_rgb_uint8, check_severity, make_rng, to_linear, to_srgb_uint8

# Base effects: name -> apply(linear float32 HxWx3, rng, severity) -> (linear image, params).
WEATHER_EFFECTS: dict[str, Callable] = {
    'rain': rain.apply,
    'snow': snow.apply,
    'fog': fog.apply,
    'raindrop': raindrop.apply,
}
WEATHER_COMBINATIONS = ('rain+fog', 'snow+fog', 'rain+raindrop')
CLEAR = 'clear'
SECONDARY_SEVERITY = 0.5
DEFAULT_SEVERITY_RANGE = (0.3, 1.0)
_PHYSICAL_ORDER = ('fog', 'rain', 'snow', 'raindrop')
_MIN_SIDE = 4


def parse_weather(weather: str) -> tuple[str, ...]:
    """'rain+fog' -> ('rain', 'fog'); ('clear',) for clear. Raises ValueError for unknown names."""
    if not isinstance(weather, str):
        raise TypeError(f'weather must be a string, got {type(weather).__name__}')
    parts = tuple(p.strip().lower() for p in weather.split('+'))
    if parts == (CLEAR,):
        return parts
    known = ', '.join(list(WEATHER_EFFECTS) + list(WEATHER_COMBINATIONS) + [CLEAR])
    for p in parts:
        if p not in WEATHER_EFFECTS:
            raise ValueError(f'unknown weather {weather!r} (component {p!r}); known: {known}')
    if len(set(parts)) != len(parts):
        raise ValueError(f'weather {weather!r} repeats a component')
    return parts


def weather_label(weather: str) -> str:
    """Class label of a weather name: the first component of a combination."""
    return parse_weather(weather)[0]


def synthesize(image_rgb_uint8: np.ndarray, weather: str, rng: np.random.Generator | int,
               severity: float | None = None) -> tuple[np.ndarray, dict]:
    """Degrade a clean image with a weather effect or combination.

    image: HxWx3 RGB uint8 (grey HxW / HxWx1, RGBA, uint16 and [0, 1] floats are converted).
    weather: 'rain', 'snow', 'fog', 'raindrop', 'clear' or a '+'-joined combination.
    rng: a Generator (used and advanced) or an int seed (same seed -> identical bytes).
    severity: in [0, 1] (clipped); None draws it uniformly from ``DEFAULT_SEVERITY_RANGE``.
    Returns (HxWx3 uint8 RGB, params) where params is JSON-serialisable: weather, label,
    severity, seed (None for a Generator) and per-effect parameters under 'effects'.
    """
    rgb = as_rgb_uint8(image_rgb_uint8)
    parts = parse_weather(weather)
    gen, seed = make_rng(rng)
    if severity is None:
        severity = gen.uniform(*DEFAULT_SEVERITY_RANGE)
    s = check_severity(severity)
    params = {'weather': '+'.join(parts), 'label': parts[0], 'severity': round(s, 6),
              'seed': seed, 'effects': {}}
    if parts == (CLEAR,):
        return rgb.copy(), params
    h, w = rgb.shape[:2]
    if h < _MIN_SIDE or w < _MIN_SIDE:
        # OpenCV treats 1-pixel-wide arrays as vectors/scalars: work on an edge-padded copy.
        rgb = np.pad(rgb, ((0, max(0, _MIN_SIDE - h)), (0, max(0, _MIN_SIDE - w)), (0, 0)),
                     mode='edge')
    lin = to_linear(rgb)
    for name in sorted(parts, key=_PHYSICAL_ORDER.index):
        sev = s if name == parts[0] else s * SECONDARY_SEVERITY
        lin, p = WEATHER_EFFECTS[name](lin, gen, sev)
        params['effects'][name] = {'severity': round(sev, 6), **p}
    return np.ascontiguousarray(to_srgb_uint8(lin)[:h, :w]), params


def random_weather(image: np.ndarray, rng: np.random.Generator | int,
                   classes=DEFAULT_WEATHER_CLASSES,
                   severity_range: tuple[float, float] = DEFAULT_SEVERITY_RANGE
                   ) -> tuple[np.ndarray, str, dict]:
    """Pick a weather uniformly from ``classes`` and apply it: (degraded, label, params).

    Cheap enough to run on the fly inside a DataLoader worker (give each worker its own
    Generator). 'clear' returns an unchanged copy of the image. ``classes`` may hold
    combinations; their label is their first component.
    """
    if len(classes) == 0:
        raise ValueError('classes is empty')
    gen, seed = make_rng(rng)
    weather = classes[int(gen.integers(len(classes)))]
    lo, hi = (float(v) for v in severity_range)
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f'severity_range must satisfy 0 <= lo <= hi <= 1, got {severity_range}')
    severity = gen.uniform(lo, hi)
    degraded, params = synthesize(image, weather, gen, severity)
    params['seed'] = seed
    if params['label'] == CLEAR:
        params['severity'] = 0.0
    return degraded, params['label'], params
