"""Helpers for tests that run real rclpy (publisher -> DDS -> subscriber).

Import from test modules as ``from ros_helpers import ...`` (pytest puts test/ on sys.path).
Every helper imports rclpy lazily, so a test module can import this file and still skip
cleanly with ``rclpy = pytest.importorskip('rclpy')`` where rclpy is missing.

    from ros_helpers import ros_context, collect, spin_until

    def test_roundtrip():
        with ros_context() as ctx, ros_node('probe', ctx) as (node, executor):
            got = collect(node, String, 'chatter')
            pub = node.create_publisher(String, 'chatter', 10)
            assert spin_until(executor, lambda: pub.get_subscription_count() > 0)
            pub.publish(String(data='x'))
            assert spin_until(executor, lambda: got)

Isolation: test/conftest.py sets ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and a ROS_DOMAIN_ID
drawn from the test process id; ``domain_id()`` reads it, so every context made here uses the
per-process domain even where something else changed the environment after start-up.
"""
import contextlib
import os
import random
import time

import pytest

# Valid without port clashes on Linux: 0..101; 0 is everyone's default, so avoid it.
_FALLBACK_DOMAIN = random.Random(os.getpid()).randint(1, 100)


def domain_id() -> int:
    """The DDS domain of this test process (conftest's ROS_DOMAIN_ID, else one from the pid)."""
    value = os.environ.get('ROS_DOMAIN_ID', '')
    return int(value) if value.strip().isdigit() else _FALLBACK_DOMAIN


@contextlib.contextmanager
def ros_context(domain: int | None = None):
    """A private, initialised rclpy Context, shut down on exit (never the global one)."""
    import rclpy
    from rclpy.context import Context
    from rclpy.signals import SignalHandlerOptions

    ctx = Context()
    rclpy.init(context=ctx, domain_id=domain_id() if domain is None else domain,
               signal_handler_options=SignalHandlerOptions.NO)  # leave Ctrl-C to pytest
    try:
        yield ctx
    finally:
        ctx.try_shutdown()


@pytest.fixture
def ros_ctx():
    """Fixture form of ``ros_context()`` (import it into the test module to use it)."""
    with ros_context() as ctx:
        yield ctx


@contextlib.contextmanager
def ros_node(name: str, context, namespace: str = ''):
    """(node, executor) on ``context``: a plain Node in a SingleThreadedExecutor."""
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node

    node = Node(name, namespace=namespace, context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        yield node, executor
    finally:
        executor.remove_node(node)
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()


def spin_until(executor, predicate, timeout: float = 5.0, step: float = 0.05) -> bool:
    """Spin ``executor`` until ``predicate()`` is truthy; False after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        executor.spin_once(timeout_sec=min(step, remaining))


def collect(node, msg_type, topic: str, qos=10) -> list:
    """Subscribe ``node`` to ``topic``; returns the list every received message is appended to.

    The subscription is kept alive as ``list.subscription`` (a list subclass attribute).
    """
    received = _Received()
    received.subscription = node.create_subscription(msg_type, topic, received.append, qos)
    return received


class _Received(list):
    subscription = None


def wait_for_subscribers(executor, publisher, count: int = 1, timeout: float = 5.0) -> bool:
    """Spin until ``publisher`` has matched at least ``count`` subscriptions."""
    return spin_until(executor, lambda: publisher.get_subscription_count() >= count, timeout)


def make_image(array, encoding: str = 'rgb8', frame_id: str = 'camera', stamp=None):
    """sensor_msgs/Image from an HxW[xC] uint8 numpy array (via weather_restore_ros.imaging)."""
    from std_msgs.msg import Header

    from weather_restore_ros.imaging import numpy_to_image

    header = Header(frame_id=frame_id)
    if stamp is not None:
        header.stamp = stamp
    return numpy_to_image(array, encoding, header=header)


def pattern_image(height: int = 48, width: int = 64, channels: int = 3, seed: int = 0):
    """A deterministic HxWxC uint8 image with structure (gradients + noise) for round trips."""
    import numpy as np

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = ((x * 255 // max(width - 1, 1)) + (y * 255 // max(height - 1, 1))) // 2
    img = np.repeat(base[..., None], channels, axis=2).astype(np.int16)
    img += rng.integers(-20, 21, size=img.shape, dtype=np.int16)
    return np.clip(img, 0, 255).astype(np.uint8)
