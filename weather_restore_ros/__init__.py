"""All-weather image restoration for ROS 2 cameras (Tan et al., IEEE TIP 2024).

Layers, lowest first; each imports only the ones above it in this list:
  cpu_threads, procstat   the CPU thread policy (before torch loads); /proc CPU and memory readers
  image_headers, imaging   sensor_msgs/Image <-> numpy (JPEG/PNG size from the header first);
                   no torch, no rclpy
  frame_input      what a camera frame gets: refused, restored with a warning, or converted
  output_contract  what is published per camera: topics, message types, QoS, and the messages
                   of a restored frame, for rclpy's or rosbags' classes; no rclpy
  model/           the pure-PyTorch network and losses, no ROS
  encoders/, harm, prior_cache   prior encoders; the do-no-harm measure; per-camera prior cache
  backends/        who runs the two networks for the engine: torch, or onnxruntime with the
                   graphs of backends/onnx_export (weather-restore export); onnx* imported lazily
  engine_settings  the engine's settings, validated once, and how each is spelled as a node
                   parameter and a command-line flag; no torch
  checkpoint, factory, devices, tiling, frame_transfer, engine
                   checkpoints -> restorer + encoder -> GPU-resident inference (the device and
                   precision a setting means here; frames over max_pixels; the frame upload)
  synth/, data/, metrics, baselines, holdout, stress, training, evaluation
                   training machines and tools/ (stress: the check tools/ship_model.py runs)
  ros/             the rclpy node (thin glue), its parameters, publishers, stats, diagnostics
  rosbag/          offline bag restoration (rosbags), replay and demo (rclpy inside them)
  thread_bench, node_bench/   ``bench --load`` (thread settings under load), ``bench --node``
  commands/, cli   one module per ``weather-restore`` subcommand
"""

__version__ = '0.1.0'

DEFAULT_WEATHER_CLASSES = ('clear', 'rain', 'snow', 'fog', 'raindrop')
