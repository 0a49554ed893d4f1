"""All-weather image restoration for ROS 2 cameras (Tan et al., IEEE TIP 2024).

Layers, lowest first; each imports only the ones above it in this list:
  imaging      sensor_msgs/Image <-> numpy, no torch, no rclpy
  model/       the pure-PyTorch network and losses, no ROS
  backends/    who runs the two networks for the engine: torch, or onnxruntime with the
               graphs of backends/onnx_export (weather-restore export); onnx* imported lazily
  clip_prior, prior_cache, engine   GPU-resident inference
  data/, synth/, training, evaluation   training machines only
  ros/         the rclpy node: thin glue over the engine
"""

__version__ = '0.1.0'

DEFAULT_WEATHER_CLASSES = ('clear', 'rain', 'snow', 'fog', 'raindrop')
