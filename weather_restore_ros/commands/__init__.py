"""CLI subcommands, one module each (see weather_restore_ros.cli), and what they share."""
import argparse
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


def image_size(text: str) -> tuple[int, int]:
    """argparse type for ``WIDTHxHEIGHT`` (e.g. 640x480) -> (width, height), both positive."""
    try:
        w, h = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected WIDTHxHEIGHT, e.g. 640x480; got {text!r}')
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f'width and height must be positive, got {text!r}')
    return w, h
