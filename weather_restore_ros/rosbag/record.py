"""Record live topics into a rosbag2 with rosbags (what ``ros2 bag record`` would do).

Why raw subscriptions: with ``raw=True`` rclpy hands the callback the serialized CDR bytes, which
go into the bag unchanged: no Python deserialisation of camera frames, and the bag holds exactly
what was on the wire. Timestamps are the receive time on the node's clock, as rosbag2 records.
The offered QoS recorded per topic is given by the caller (it is the publisher's, which a
subscriber cannot query cheaply); the message definition and type hash come from the rosbags
typestore.
"""
from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Callable


class Recorder:
    """Subscribe ``node`` to ``topics`` and write every message to a new bag at ``path``.

    topics: topic -> (msgtype, rosbags Qos list offered by the publisher). ``on_message``
    (optional) is called as ``on_message(topic, receive_monotonic_s, raw_bytes)`` after the
    write, e.g. to measure latency on a steady clock.
    """

    def __init__(self, node, path: str | Path, topics: dict[str, tuple[str, list]], *,
                 storage: str = 'mcap',
                 on_message: Callable[[str, float, bytes], None] | None = None):
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
        from rosbags.interfaces import QosDurability
        from rosbags.rosbag2 import StoragePlugin, Writer

        from .player import message_class
        from .typestore import get_store

        self.node = node
        self.on_message = on_message
        self.counts: Counter = Counter()
        self._lock = threading.Lock()
        plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
        self.writer = Writer(path, version=9, storage_plugin=plugin)
        self.writer.open()
        store = get_store()
        self._conns = {}
        self.subscriptions = {}
        for topic, (msgtype, offered) in topics.items():
            self._conns[topic] = self.writer.add_connection(
                topic, msgtype, typestore=store, offered_qos_profiles=offered)
            latched = bool(offered) and all(
                q.durability == QosDurability.TRANSIENT_LOCAL for q in offered)
            # Reliable and deep: a recorder must not lose what a reliable publisher sends.
            qos = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST,
                             reliability=ReliabilityPolicy.RELIABLE,
                             durability=(DurabilityPolicy.TRANSIENT_LOCAL if latched
                                         else DurabilityPolicy.VOLATILE))
            self.subscriptions[topic] = node.create_subscription(
                message_class(msgtype), topic, lambda data, t=topic: self._on_message(t, data),
                qos, raw=True)
        self._closed = False

    def _on_message(self, topic: str, data: bytes) -> None:
        received = time.monotonic()
        stamp = self.node.get_clock().now().nanoseconds
        with self._lock:
            if self._closed:
                return
            self.writer.write(self._conns[topic], stamp, data)
            self.counts[topic] += 1
        if self.on_message is not None:
            self.on_message(topic, received, data)

    def publishers_matched(self) -> bool:
        """True when every recorded topic has at least one publisher (discovery done)."""
        return all(s.get_publisher_count() > 0 for s in self.subscriptions.values())

    def close(self) -> None:
        """Stop recording and finish the bag (metadata.yaml)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for sub in self.subscriptions.values():
                self.node.destroy_subscription(sub)
            self.writer.close()
