"""``weather-restore replay BAG``: publish a bag into a live ROS 2 graph with its recorded timing.

Why not ``ros2 bag play``: it needs ros2cli and rosbag2_py, which PyPI-wheel installs do not
have. This player is rosbags (reading) + rclpy (publishing): messages are published as the
serialized bytes stored in the bag (``Publisher.publish(bytes)`` -> ``publish_raw``), so nothing
is deserialized and every byte arrives as recorded. rclpy has no generic publisher: the
message class is imported by type name, so a type must be importable here (its Python message
package installed); topics whose type is not are reported and left out.

Timing: message *i* is published at ``start + (t_i - t_0) / rate`` on a steady clock (drift
does not accumulate: each deadline is absolute). ``--clock`` publishes ``/clock`` (bag time)
before each message and at ``clock_hz`` in between, for nodes run with ``use_sim_time``.

QoS: like ros2 bag play, each topic is offered what was recorded (reliable only if every
recorded publisher was reliable, transient-local only if every one was, depth the largest
recorded and at least 10). ``--qos reliable|best_effort`` overrides the reliability for all
topics: a best-effort camera recording does not reach a reliable subscriber otherwise.
"""
from __future__ import annotations

import importlib
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

QOS_CHOICES = ('recorded', 'reliable', 'best_effort')


class ReplayError(RuntimeError):
    """A bag that cannot be replayed as asked; the message says why."""


@dataclass
class ReplayOptions:
    rate: float = 1.0
    loop: bool = False
    topics: list[str] | None = None          # None: all topics
    clock: bool = False                      # publish /clock (rosgraph_msgs/Clock)
    clock_hz: float = 40.0
    qos: str = 'recorded'
    remap: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0                       # seconds to sleep after creating publishers
    wait_for_subscribers: int = 0            # before starting: each topic has >= N subscribers
    wait_timeout: float = 30.0
    max_loops: int | None = None             # with loop: stop after this many passes


@dataclass
class ReplayStats:
    published: Counter = field(default_factory=Counter)     # output topic -> messages
    unavailable: dict[str, str] = field(default_factory=dict)   # topic -> why not published
    loops: int = 0
    seconds: float = 0.0
    max_lag_ms: float = 0.0     # how late the worst message was published
    subscribers_matched: bool = True

    @property
    def total(self) -> int:
        return sum(self.published.values())


def message_class(msgtype: str):
    """The rclpy message class for 'pkg/msg/Name' (rosidl_runtime_py when it is installed)."""
    try:
        from rosidl_runtime_py.utilities import get_message
        return get_message(msgtype)
    except ImportError:
        pass
    except (AttributeError, ValueError) as exc:
        raise ReplayError(f'message type {msgtype} is not available: {exc}') from None
    pkg, _, name = msgtype.rpartition('/')
    if not pkg or '/' not in pkg:
        raise ReplayError(f'not a ROS 2 message type name: {msgtype!r}')
    try:
        module = importlib.import_module(pkg.replace('/', '.'))
        return getattr(module, name)
    except (ImportError, AttributeError) as exc:
        raise ReplayError(f'message type {msgtype} is not available: {exc}') from None


def qos_profile(recorded, override: str = 'recorded'):
    """rclpy QoSProfile for a topic from its recorded offered profiles (rosbags Qos list)."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    from rosbags.interfaces import QosDurability, QosReliability

    recorded = list(recorded or [])
    reliable = (all(q.reliability == QosReliability.RELIABLE for q in recorded)
                if recorded else True)
    latched = bool(recorded) and all(q.durability == QosDurability.TRANSIENT_LOCAL
                                     for q in recorded)
    depth = max([10] + [int(q.depth) for q in recorded])
    if override == 'reliable':
        reliable = True
    elif override == 'best_effort':
        reliable = False
    elif override != 'recorded':
        raise ReplayError(f'--qos must be one of {", ".join(QOS_CHOICES)}')
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=depth,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


class Player:
    """Publishers for a bag's topics on ``node``; ``play()`` runs one or more passes.

    Runs in the calling thread (publishing needs no executor). ``stop()`` may be called from
    another thread; a sleeping player wakes at once.
    """

    def __init__(self, bag: str | Path, node, options: ReplayOptions | None = None, log=None):
        from rosbags.rosbag2 import Reader, ReaderError

        self.bag = Path(bag)
        self.node = node
        self.options = options or ReplayOptions()
        self.log = log or (lambda s: node.get_logger().info(s))
        self.stats = ReplayStats()
        self._stop = threading.Event()
        if self.options.rate <= 0:
            raise ReplayError('--rate must be positive')
        if self.options.qos not in QOS_CHOICES:
            raise ReplayError(f'--qos must be one of {", ".join(QOS_CHOICES)}')
        try:
            self.reader = Reader(self.bag)
            self.reader.open()
        except (OSError, ReaderError) as exc:
            raise ReplayError(f'cannot read bag {self.bag}: {exc}') from None
        try:
            self._make_publishers()
        except BaseException:
            self.reader.close()
            raise

    def _make_publishers(self) -> None:
        conns = self.reader.connections
        known = {c.topic for c in conns}
        wanted = set(self.options.topics) if self.options.topics else known
        missing = wanted - known
        if missing:
            raise ReplayError(f'topics not in the bag: {", ".join(sorted(missing))}')
        self.publishers: dict[int, object] = {}     # input connection id -> publisher
        by_topic: dict[tuple[str, str], list] = {}
        for c in conns:
            if c.topic in wanted:
                by_topic.setdefault((c.topic, c.msgtype), []).append(c)
        for (topic, msgtype), cs in by_topic.items():
            try:
                cls = message_class(msgtype)
            except ReplayError as exc:
                self.stats.unavailable[topic] = str(exc)
                self.log(f'not replaying {topic}: {exc}')
                continue
            qos = qos_profile([q for c in cs for q in c.ext.offered_qos_profiles],
                              self.options.qos)
            pub = self.node.create_publisher(cls, self.options.remap.get(topic, topic), qos)
            for c in cs:
                self.publishers[c.id] = pub
        self.connections = [c for c in conns if c.id in self.publishers]
        self.clock_pub = None
        if self.options.clock:
            from rclpy.qos import QoSProfile
            from rosgraph_msgs.msg import Clock
            self._Clock = Clock
            self.clock_pub = self.node.create_publisher(Clock, '/clock', QoSProfile(depth=1))

    # ------------------------------------------------------------------ control
    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        for pub in set(self.publishers.values()):
            self.node.destroy_publisher(pub)
        if self.clock_pub is not None:
            self.node.destroy_publisher(self.clock_pub)
        self.publishers.clear()
        self.reader.close()

    def wait_for_subscribers(self, count: int, timeout: float) -> bool:
        """Wait until every publisher has ``count`` matched subscriptions (discovery)."""
        deadline = time.monotonic() + timeout
        pubs = set(self.publishers.values())
        while not self._stop.is_set():
            if all(p.get_subscription_count() >= count for p in pubs):
                return True
            if time.monotonic() >= deadline:
                return False
            self._stop.wait(0.02)
        return False

    # ------------------------------------------------------------------ playing
    def play(self) -> ReplayStats:
        opt = self.options
        t_start = time.monotonic()
        if opt.wait_for_subscribers > 0:
            ok = self.wait_for_subscribers(opt.wait_for_subscribers, opt.wait_timeout)
            self.stats.subscribers_matched = ok
            if not ok:
                self.log(f'not every topic has {opt.wait_for_subscribers} subscriber(s) after '
                         f'{opt.wait_timeout:g} s; playing anyway')
        if opt.delay > 0:
            self._stop.wait(opt.delay)
        if self.connections:
            while not self._stop.is_set():
                self._play_once()
                self.stats.loops += 1
                if not opt.loop or (opt.max_loops and self.stats.loops >= opt.max_loops):
                    break
        self.stats.seconds = time.monotonic() - t_start
        return self.stats

    def _play_once(self) -> None:
        rate = self.options.rate
        t0_bag = None
        t0_wall = time.monotonic()
        clock_period = 1.0 / self.options.clock_hz if self.options.clock_hz > 0 else None
        for conn, timestamp, data in self.reader.messages(connections=self.connections):
            if t0_bag is None:
                t0_bag = timestamp
            due = t0_wall + (timestamp - t0_bag) / 1e9 / rate
            while True:
                now = time.monotonic()
                if self._stop.is_set():
                    return
                if now >= due:
                    break
                wait = due - now
                if self.clock_pub is not None and clock_period:
                    self._publish_clock(t0_bag + int((now - t0_wall) * rate * 1e9))
                    wait = min(wait, clock_period)
                self._stop.wait(wait)
            if self.clock_pub is not None:
                self._publish_clock(timestamp)
            lag = (time.monotonic() - due) * 1e3
            self.stats.max_lag_ms = max(self.stats.max_lag_ms, lag)
            pub = self.publishers[conn.id]
            pub.publish(bytes(data))
            self.stats.published[pub.topic_name] += 1

    def _publish_clock(self, stamp_ns: int) -> None:
        msg = self._Clock()
        msg.clock.sec, msg.clock.nanosec = divmod(int(stamp_ns), 10**9)
        self.clock_pub.publish(msg)


def replay_bag(bag: str | Path, options: ReplayOptions | None = None, *, context=None,
               node_name: str = 'weather_restore_replay', log=None) -> ReplayStats:
    """Replay ``bag`` once (or looping) on a node of its own; blocks until done.

    ``context``: an initialised rclpy Context to use (in-process tests and the demo); None
    initialises and shuts down one of its own. Ctrl-C stops playback cleanly.
    """
    import rclpy

    own = context is None
    if own:
        from rclpy.context import Context
        context = Context()
        rclpy.init(context=context)
    node = rclpy.create_node(node_name, context=context)
    player = None
    try:
        player = Player(bag, node, options, log=log)
        try:
            return player.play()
        except KeyboardInterrupt:
            player.stop()
            return player.stats
    finally:
        if player is not None:
            player.close()
        node.destroy_node()
        if own:
            context.try_shutdown()
