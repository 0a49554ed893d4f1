"""All-weather image restoration for ROS 2 cameras (Tan et al., IEEE TIP 2024).

Layers, lowest first; each imports only the ones above it in this list:
  cpu_threads  the CPU thread policy (applied before torch loads)
  imaging      sensor_msgs/Image <-> numpy, no torch, no rclpy
  model/       the pure-PyTorch network and losses, no ROS
  backends/    who runs the two networks for the engine: torch, or onnxruntime with the
               graphs of backends/onnx_export (weather-restore export); onnx* imported lazily
  encoders/, harm, prior_cache   prior encoders; the do-no-harm measure; per-camera prior cache
  engine_settings  the engine's settings, validated once, and their node parameters and
               command-line flags; no torch
  checkpoint, factory, devices, tiling, frame_transfer, engine   GPU-resident inference
  data/, synth/, training, evaluation   training machines only
  ros/         the rclpy node: thin glue over the engine
"""

__version__ = '0.1.0'

DEFAULT_WEATHER_CLASSES = ('clear', 'rain', 'snow', 'fog', 'raindrop')
