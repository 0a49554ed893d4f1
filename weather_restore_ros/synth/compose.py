"""Weather composition: one entry point over the single effects and their combinations.

Effects are applied in physical order whatever order the name lists them in: scene-level haze
first (it attenuates the scene), then precipitation between the camera and the scene (rain,
snow), and lens raindrops last (they sit on the optics). The *label* of a combination is its
first component ('rain+fog' -> 'rain', 'fog+rain' -> 'fog'), which also gets the full severity;
the other components get ``SECONDARY_SEVERITY`` times it so the labelled weather dominates.

A component may name a *style* of its effect, ``'<effect>:<style>'`` (``WEATHER_STYLES``), made
to look like a public benchmark family; the label stays the effect ('rain:heavy+fog' -> 'rain'):

    rain:light       Rain100L (Yang et al., CVPR 2017): one direction of thin, light streaks
    rain:heavy       Rain100H: long streaks in up to five directions + rain accumulation veil
    rain:veil        Outdoor-Rain (Li et al., CVPR 2019): streaks inside depth-varying haze
    rain:streaks     the physical model's streaks without its accumulation veil (near rain)
    snow:small|medium|large   Snow100K-S/M/L (Liu et al., DesnowNet 2018): semi-transparent,
                     blurred particles of growing size, alpha-blended white
    raindrop:focused|defocused  RainDrop (Qian et al., CVPR 2018): the drops in focus (crisp
                     rims, clear refracted view) or far out of it (soft blobs)

Without a style an effect is the package's own physical model (unchanged, and what the shipped
model and its held-out set use).
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
# Styles: effect -> {style: apply(linear image, rng, severity) -> (linear image, params)}.
WEATHER_STYLES: dict[str, dict[str, Callable]] = {
    'rain': rain.STYLES,
    'snow': snow.STYLES,
    'raindrop': raindrop.STYLES,
}
STYLED_WEATHERS = tuple(f'{e}:{s}' for e, styles in WEATHER_STYLES.items() for s in styles)
WEATHER_COMBINATIONS = ('rain+fog', 'snow+fog', 'rain+raindrop')
CLEAR = 'clear'
SECONDARY_SEVERITY = 0.5
DEFAULT_SEVERITY_RANGE = (0.3, 1.0)
_PHYSICAL_ORDER = ('fog', 'rain', 'snow', 'raindrop')
_MIN_SIDE = 4


def _effect(component: str) -> str:
    """'rain:heavy' -> 'rain'."""
    return component.split(':', 1)[0]


def parse_weather(weather: str) -> tuple[str, ...]:
    """'rain+fog' -> ('rain', 'fog'), 'Rain : Heavy+fog' -> ('rain:heavy', 'fog'); ('clear',) for
    clear. Raises ValueError for unknown effects or styles and for repeated effects."""
    if not isinstance(weather, str):
        raise TypeError(f'weather must be a string, got {type(weather).__name__}')
    parts = tuple(':'.join(q.strip() for q in p.split(':')).lower() for p in weather.split('+'))
    if parts == (CLEAR,):
        return parts
    known = ', '.join(list(WEATHER_EFFECTS) + list(STYLED_WEATHERS) + list(WEATHER_COMBINATIONS)
                      + [CLEAR])
    for p in parts:
        effect, _, style = p.partition(':')
        if effect not in WEATHER_EFFECTS or (':' in p and style not in
                                             WEATHER_STYLES.get(effect, {})):
            raise ValueError(f'unknown weather {weather!r} (component {p!r}); known: {known}')
    effects = [_effect(p) for p in parts]
    if len(set(effects)) != len(effects):
        raise ValueError(f'weather {weather!r} repeats a component')
    return parts


def weather_label(weather: str) -> str:
    """Class label of a weather name: the effect of the first component of a combination."""
    return _effect(parse_weather(weather)[0])


def synthesize(image_rgb_uint8: np.ndarray, weather: str, rng: np.random.Generator | int,
               severity: float | None = None) -> tuple[np.ndarray, dict]:
    """Degrade a clean image with a weather effect or combination.

    image: HxWx3 RGB uint8 (grey HxW / HxWx1, RGBA, uint16 and [0, 1] floats are converted).
    weather: 'rain', 'snow', 'fog', 'raindrop', 'clear', a styled effect ('rain:heavy', see the
        module docstring) or a '+'-joined combination.
    rng: a Generator (used and advanced) or an int seed (same seed -> identical bytes).
    severity: in [0, 1] (clipped); None draws it uniformly from ``DEFAULT_SEVERITY_RANGE``.
    Returns (HxWx3 uint8 RGB, params) where params is JSON-serialisable: weather, label,
    severity, seed (None for a Generator) and per-effect parameters under 'effects' (keyed by
    effect; a styled one also gives its 'style').
    """
    rgb = as_rgb_uint8(image_rgb_uint8)
    parts = parse_weather(weather)
    gen, seed = make_rng(rng)
    if severity is None:
        severity = gen.uniform(*DEFAULT_SEVERITY_RANGE)
    s = check_severity(severity)
    params = {'weather': '+'.join(parts), 'label': _effect(parts[0]), 'severity': round(s, 6),
              'seed': seed, 'effects': {}}
    if parts == (CLEAR,):
        return rgb.copy(), params
    h, w = rgb.shape[:2]
    if h < _MIN_SIDE or w < _MIN_SIDE:
        # OpenCV treats 1-pixel-wide arrays as vectors/scalars: work on an edge-padded copy.
        rgb = np.pad(rgb, ((0, max(0, _MIN_SIDE - h)), (0, max(0, _MIN_SIDE - w)), (0, 0)),
                     mode='edge')
    lin = to_linear(rgb)
    for name in sorted(parts, key=lambda p: _PHYSICAL_ORDER.index(_effect(p))):
        sev = s if name == parts[0] else s * SECONDARY_SEVERITY
        effect, _, style = name.partition(':')
        apply = WEATHER_STYLES[effect][style] if style else WEATHER_EFFECTS[effect]
        lin, p = apply(lin, gen, sev)
        params['effects'][effect] = {'severity': round(sev, 6), **({'style': style} if style
                                                                   else {}), **p}
    return np.ascontiguousarray(to_srgb_uint8(lin)[:h, :w]), params


def random_weather(image: np.ndarray, rng: np.random.Generator | int,
                   classes=DEFAULT_WEATHER_CLASSES,
                   severity_range: tuple[float, float] = DEFAULT_SEVERITY_RANGE
                   ) -> tuple[np.ndarray, str, dict]:
    """Pick a weather uniformly from ``classes`` and apply it: (degraded, label, params).

    Cheap enough to run on the fly inside a DataLoader worker (give each worker its own
    Generator). 'clear' returns an unchanged copy of the image. ``classes`` may hold styles
    and combinations; their label is their first component's effect.
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
