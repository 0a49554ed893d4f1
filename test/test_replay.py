"""``weather-restore replay``: a bag published into a live graph (real rclpy, in-process).

The subscribers take the raw serialized bytes, so "delivered" means byte-identical to the bag.
"""
import threading
import time

import pytest

from test_bag import write_bag

rclpy = pytest.importorskip('rclpy', reason='rclpy is not installed', exc_type=ImportError)

from ros_helpers import ros_context  # noqa: E402

from weather_restore_ros.rosbag.player import (  # noqa: E402
    Player, ReplayError, ReplayOptions, message_class, qos_profile, replay_bag)

pytestmark = pytest.mark.ros


def _bag_messages(path):
    from rosbags.rosbag2 import Reader
    out = {}
    with Reader(path) as r:
        for c, t, raw in r.messages():
            out.setdefault(c.topic, []).append((t, bytes(raw)))
    return out


class _Sink:
    """A node in its own spinning thread that keeps (receive time, raw bytes) per topic."""

    def __init__(self, ctx, topics, clock=False):
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        self.node = rclpy.create_node('sink', context=ctx)
        self.got = {t: [] for t in topics}
        self.clock = []
        qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        for topic, msgtype in topics.items():
            self.node.create_subscription(
                message_class(msgtype), topic,
                lambda raw, t=topic: self.got[t].append((time.monotonic(), raw)), qos, raw=True)
        if clock:
            from rosgraph_msgs.msg import Clock
            self.node.create_subscription(
                Clock, '/clock', lambda m: self.clock.append(
                    m.clock.sec * 10**9 + m.clock.nanosec), 100)
        self.executor = SingleThreadedExecutor(context=ctx)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def wait(self, counts, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(len(self.got[t]) >= n for t, n in counts.items()):
                return True
            time.sleep(0.02)
        return False

    def close(self):
        self.executor.shutdown(timeout_sec=2)
        self.thread.join(timeout=5)
        self.node.destroy_node()


def test_replay_delivers_every_message_at_the_recorded_timing(tmp_path):
    bag = write_bag(tmp_path / 'bag', 'mcap')
    recorded = _bag_messages(bag)
    topics = {'/front/image_raw': 'sensor_msgs/msg/Image',
              '/rear/image_raw/compressed': 'sensor_msgs/msg/CompressedImage',
              '/chatter': 'std_msgs/msg/String'}
    with ros_context() as ctx:
        sink = _Sink(ctx, topics, clock=True)
        try:
            # best-effort recordings (rear, chatter) reach this reliable sink only with
            # the reliability override
            stats = replay_bag(bag, ReplayOptions(qos='reliable', clock=True,
                                                  wait_for_subscribers=1, wait_timeout=15),
                               context=ctx, log=lambda s: None)
            assert sink.wait({t: len(recorded[t]) for t in topics})
        finally:
            sink.close()
    assert stats.subscribers_matched
    assert stats.unavailable.keys() == {'/odd'}          # custom type: not importable here
    for topic in topics:
        assert [raw for _, raw in sink.got[topic]] == [raw for _, raw in recorded[topic]]
        assert stats.published[topic] == len(recorded[topic])
    # Timing: no faster than recorded (each message waits for its deadline).
    t_bag = [t for t, _ in recorded['/front/image_raw']]
    t_rx = [t for t, _ in sink.got['/front/image_raw']]
    assert t_rx[-1] - t_rx[0] >= 0.9 * (t_bag[-1] - t_bag[0]) / 1e9
    # /clock carries bag time, never runs backwards, and stays inside the bag.
    all_t = [t for msgs in recorded.values() for t, _ in msgs]
    assert sink.clock and sink.clock == sorted(sink.clock)
    assert min(all_t) <= sink.clock[0] and sink.clock[-1] <= max(all_t)


def test_rate_and_loop(tmp_path):
    bag = write_bag(tmp_path / 'bag', 'sqlite3')
    recorded = _bag_messages(bag)
    span = (recorded['/chatter'][-1][0] - recorded['/front/image_raw'][0][0]) / 1e9
    with ros_context() as ctx:
        sink = _Sink(ctx, {'/front/image_raw': 'sensor_msgs/msg/Image'})
        node = rclpy.create_node('player', context=ctx)
        try:
            player = Player(bag, node, ReplayOptions(rate=4.0, loop=True, max_loops=2,
                                                     topics=['/front/image_raw'],
                                                     wait_for_subscribers=1),
                            log=lambda s: None)
            stats = player.play()
            player.close()
            assert sink.wait({'/front/image_raw': 2 * len(recorded['/front/image_raw'])})
        finally:
            sink.close()
            node.destroy_node()
    assert stats.loops == 2 and stats.total == 2 * len(recorded['/front/image_raw'])
    assert stats.seconds < 2 * span          # 4x faster than recorded, twice


def test_qos_from_recording_and_override():
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

    from test_bag import _qos
    p = qos_profile(_qos(reliable=False, latched=True, depth=3))
    assert p.reliability == ReliabilityPolicy.BEST_EFFORT
    assert p.durability == DurabilityPolicy.TRANSIENT_LOCAL and p.depth == 10
    assert qos_profile(_qos(reliable=False), 'reliable').reliability == (
        ReliabilityPolicy.RELIABLE)
    assert qos_profile(_qos(), 'best_effort').reliability == ReliabilityPolicy.BEST_EFFORT
    mixed = qos_profile(_qos() + _qos(reliable=False))
    assert mixed.reliability == ReliabilityPolicy.BEST_EFFORT
    assert qos_profile([]).reliability == ReliabilityPolicy.RELIABLE


def test_message_class_lookup():
    from std_msgs.msg import String
    assert message_class('std_msgs/msg/String') is String
    with pytest.raises(ReplayError, match='not available'):
        message_class('my_pkg/msg/Odd')


def test_replay_cli(tmp_path, capsys):
    from weather_restore_ros.cli import main
    bag = write_bag(tmp_path / 'bag', 'mcap')
    assert main(['replay', str(bag), '--rate', '10', '--topics', '/chatter',
                 '--remap', '/chatter:=/talk']) == 0
    out = capsys.readouterr().out
    assert '/talk: 4' in out and 'published 4 messages' in out
    assert main(['replay', str(bag), '--topics', '/nope']) == 2
