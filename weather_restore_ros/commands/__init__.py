"""CLI subcommands, one module each (see weather_restore_ros.cli)."""
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
