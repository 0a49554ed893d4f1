"""``weather-restore bench --node``: the real node measured over DDS, as NVIDIA's ros2_benchmark
measures a graph: frames played from memory at fixed rates, delivered rate, drops, latency,
jitter, the node process's CPU and memory, a peak-throughput search and a soak mode.

  frames    the frames to play: from a bag, or generated (the demo's sample bag), as raw CDR
  node      the node under test in a process of its own (CPU % and RSS from /proc)
  probe     the player and the subscriber in the benchmark process (one steady clock)
  runner    one run at a rate, the peak search, the soak
  report    the table, the soak slope
  cli       the ``bench --node`` options
"""
