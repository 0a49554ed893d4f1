"""CLI subcommands, one module each (see weather_restore_ros.cli), and what they share."""
import argparse
import sys


def add_backend_arguments(p, onnx_dir: bool = True) -> None:
    """``--backend`` (and ``--onnx-dir``): what runs the networks (node parameters
    ``backend``, ``onnx_dir``)."""
    p.add_argument('--backend', choices=('torch', 'onnxruntime'), default='torch',
                   help='torch (default) or onnxruntime (TensorRT -> CUDA -> CPU provider, '
                        'as installed; pip install "weather_restore_ros[onnx]")')
    if onnx_dir:
        p.add_argument('--onnx-dir', metavar='DIR',
                       help='onnxruntime: graphs from weather-restore export (default: '
                            'exported once into ~/.cache/weather_restore_ros/onnx)')


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
