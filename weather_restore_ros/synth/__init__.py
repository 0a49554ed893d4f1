"""Weather synthesis: clean images -> paired degraded training data (numpy + OpenCV only).

    from weather_restore_ros.synth import synthesize, random_weather
    degraded, params = synthesize(rgb, 'rain+fog', rng=0, severity=0.7)
    degraded, label, params = random_weather(rgb, np.random.default_rng(seed))

Effects (one module each, physical model in its docstring): ``rain`` (streak layers + veil),
``snow`` (layered flakes + bright veil), ``fog`` (atmospheric scattering with a depth proxy),
``raindrop`` (refracting, defocused drops on the lens); ``compose`` combines them
('rain+fog', 'snow+fog', ...; the label of a combination is its first component). Styles made to
look like the public benchmark families ('rain:light' ~ Rain100L, 'rain:heavy' ~ Rain100H,
'rain:veil' ~ Outdoor-Rain, 'snow:small|medium|large' ~ Snow100K-S/M/L,
'raindrop:focused|defocused' ~ RainDrop) are listed in ``compose``'s docstring.
"""
from .compose import (CLEAR, DEFAULT_SEVERITY_RANGE, SECONDARY_SEVERITY, STYLED_WEATHERS,
                      WEATHER_COMBINATIONS, WEATHER_EFFECTS, WEATHER_STYLES, parse_weather,
                      random_weather, synthesize, weather_label)
from .contact_sheet import contact_sheet
from .samples import sample_images

__all__ = [
    'CLEAR', 'DEFAULT_SEVERITY_RANGE', 'SECONDARY_SEVERITY', 'STYLED_WEATHERS',
    'WEATHER_COMBINATIONS', 'WEATHER_EFFECTS', 'WEATHER_STYLES', 'contact_sheet',
    'parse_weather', 'random_weather', 'sample_images', 'synthesize', 'weather_label',
]
