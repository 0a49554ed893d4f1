"""All-weather image restoration for ROS 2 cameras (Tan et al., IEEE TIP 2024).

Layers, lowest first; each imports only the ones above it in this list:
  cpu_threads, procstat   the CPU thread policy (before torch loads); /proc CPU and memory readers
  image_headers, imaging   sensor_msgs/Image <-> numpy (JPEG/PNG size from the header first);
                   no torch, no rclpy
  frame_input      what a camera frame gets: refused, restored with a warning, or converted
  output_contract  what is published per camera: topics, message types, QoS, and the messages
                   of a restored frame, for rclpy's or rosbags' classes; no rclpy
  file_frames      image files, folders and videos as RGB frames (restore); the image endings
  synth/, data/    weather synthesis (numpy, cv2); datasets (torch), the held-out set
                   (data.holdout), a dataset from a training config's entry (data.build)
  model/           the pure-PyTorch network and losses, no ROS
  encoders/, harm, prior_cache   prior encoders (ClipEncoder, TimmEncoder: their embedding is the
                   weather prior); the do-no-harm measure; the per-camera cache of the prior
  backends/        who runs the two networks for the engine: torch, or onnxruntime with the
                   graphs of backends/onnx_export (weather-restore export); onnx* imported lazily
  engine_settings  the engine's settings, validated once, and how each is spelled as a node
                   parameter and a command-line flag; no torch
  checkpoint, factory, devices, tiling, frame_transfer, engine
                   checkpoints (and where the shipped one lies: weights/) -> restorer + encoder
                   -> GPU-resident inference (the device and precision a setting means, for the
                   engine and the trainer; frames over max_pixels; the frame upload)
  training/        the training wing: config, objective, schedule, trainer; metrics, baselines,
                   evaluation, suite; stress (the check tools/ship_model.py runs)
  ros/             the rclpy node (restore_node: thin glue), its parameters, publishers, stats,
                   diagnostics
  rosbag/          offline bag restoration (rosbags), replay (player) and the demo (live_demo;
                   rclpy inside them)
  thread_bench, engine_bench, node_bench/   ``bench --load`` (thread settings under load),
                   ``bench --engine``/``--backends``, ``bench --node``
  commands/, cli   one thin module per ``weather-restore`` subcommand

The robot (ros/ and what it restores with) never imports training/, data/ or synth/:
test/test_robot_imports.py runs the node on a frame and checks.
"""

__version__ = '0.1.0'

DEFAULT_WEATHER_CLASSES = ('clear', 'rain', 'snow', 'fog', 'raindrop')
