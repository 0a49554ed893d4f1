"""CLI subcommands, one module each (see weather_restore_ros.cli)."""
import sys


def rclpy_missing(what: str) -> bool:
    """True (after saying why on stderr) when rclpy cannot be imported for ``what``."""
    try:
        import rclpy  # noqa: F401
    except ImportError as exc:
        print(f'error: {what} needs rclpy (source a ROS 2 install or pip install '
              f'"weather_restore_ros[ros-wheels]"): {exc}', file=sys.stderr)
        return True
    return False
