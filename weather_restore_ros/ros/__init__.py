"""ROS 2 glue: the node, its parameters and message conversion helpers."""
