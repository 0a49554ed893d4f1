"""Pure-PyTorch all-weather restoration network (no ROS, no open_clip).

``config`` (ModelConfig, presets), ``sar`` (selective adaptive residual encoder), ``cwp``
(CLIP-weather prior tokens + cross-attention), ``restorer`` (WeatherRestorer), ``losses``,
``profile`` (parameters / GFLOPs / CPU latency).
"""
from .config import CONFIGS, DEFAULT_WEATHER_CLASSES, ModelConfig, get_config
from .restorer import RestorerOutput, WeatherRestorer, build_model, to_rgb3

__all__ = ['CONFIGS', 'DEFAULT_WEATHER_CLASSES', 'ModelConfig', 'get_config', 'RestorerOutput',
           'WeatherRestorer', 'build_model', 'to_rgb3']
