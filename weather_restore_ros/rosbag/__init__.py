"""Rosbag2 tools: offline restoration of a bag, live replay, and the self-contained demo.

Built on ``rosbags`` (pure Python), so restoring a bag needs no ROS install; only the live parts
(``player``, ``record``, ``live_demo``) import rclpy, and they do so inside their functions.

  typestore      the rosbags typestore (ROS 2 Kilted) with vision_msgs registered
  topics         which image topics are restored, into the node's output names
                 (output_contract); the offered QoS a bag records for them
  accounting     per-topic read/copied/restored/skipped counters that must add up
  restore_bag    ``weather-restore bag``: restore every camera of a bag into a new bag
  player         ``weather-restore replay``: publish a bag into a live graph with its timing
  record         rclpy subscriptions written to a bag (raw bytes, no re-serialisation)
  sample_bag     a short synthetic two-camera bag (clear/rain/fog/snow segments)
  live_demo      ``weather-restore demo``: sample bag -> live node -> output bag + sheet
"""
