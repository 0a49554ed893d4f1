"""Player and subscriber of the node benchmark, in the benchmark process, on one steady clock.

The player publishes every camera's frames with sensor-data QoS (best effort, as the node
subscribes by default; ``reliable`` as a driver offering system-default QoS), at an absolute
schedule (no drift), the cameras
spread evenly over the frame period as unsynchronised drivers would be. Each frame gets a new
header stamp (the wall clock, like a driver); the node copies headers unchanged, so the
subscriber pairs every restored frame with the publish time of its input: that difference is the
end-to-end latency (player publish -> DDS -> node -> DDS -> subscriber receive). The
subscriber takes raw CDR bytes (no deserialisation of 1 MB frames in Python) with reliable QoS,
so it sees everything the node publishes. ``/diagnostics`` gives the node's own counters and its
receive -> publish latency.
"""
from __future__ import annotations

import threading
import time
from collections import defaultdict

from ..rosbag.live_demo import header_stamp_ns
from ..rosbag.typestore import IMAGE
from .frames import FrameSet, set_stamp
from .nodeproc import NAMESPACE, WARMUP_CAMERA, camera_names

NODE_NAME = f'{NAMESPACE}/weather_restore'


class Probe:
    def __init__(self, context, frames: FrameSet, reliable: bool = False):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
        from sensor_msgs.msg import CompressedImage, Image

        self.frames = frames
        self.cams = camera_names(frames.cameras)
        self.node = rclpy.create_node('weather_restore_bench_probe', context=context)
        raw = frames.msgtype == IMAGE
        cls = Image if raw else CompressedImage
        leaf = 'image_raw' if raw else 'image_raw/compressed'
        monitor = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST,
                             reliability=ReliabilityPolicy.RELIABLE)
        qos = monitor if reliable else qos_profile_sensor_data    # a driver's choices
        self.pubs = [self.node.create_publisher(cls, f'{NAMESPACE}/{c}/{leaf}', qos)
                     for c in self.cams + [WARMUP_CAMERA]]
        self.subs = [self.node.create_subscription(
            Image, f'{NAMESPACE}/{c}/image_restored',
            lambda data, i=i: self._on_output(i, data), monitor, raw=True)
            for i, c in enumerate(self.cams + [WARMUP_CAMERA])]
        self.diag_sub = self.node.create_subscription(DiagnosticArray, '/diagnostics',
                                                      self._on_diagnostics, 10)
        self.lock = threading.Lock()
        self.sent: list[dict[int, float]] = [dict() for _ in self.cams]    # stamp -> t publish
        self.recv: list[dict[int, float]] = [dict() for _ in self.cams]    # stamp -> t receive
        self.warm_outputs = 0
        self.last_output = 0.0
        self.diag: dict[str, dict[str, str]] = {}       # status name -> values (+ 'message')
        self.diag_time = 0.0
        self._bufs = [[bytearray(r) for r in cam] for cam in frames.frames]
        self._bufs.append(self._bufs[0])                   # the warm-up camera's
        self._last_stamp = [0] * (len(self.cams) + 1)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self._spin = threading.Thread(target=self.executor.spin, name='bench-probe',
                                      daemon=True)
        self._spin.start()

    # ------------------------------------------------------------------ callbacks
    def _on_output(self, i: int, data: bytes) -> None:
        t = time.monotonic()
        stamp = header_stamp_ns(data)
        with self.lock:
            if i == len(self.cams):
                self.warm_outputs += 1
                return
            self.recv[i][stamp] = t
            self.last_output = t

    def _on_diagnostics(self, msg) -> None:
        with self.lock:
            for s in msg.status:
                if s.name.startswith(NODE_NAME + ':'):
                    values = {kv.key: kv.value for kv in s.values}
                    values['message'] = s.message
                    self.diag[s.name] = values
            self.diag_time = time.monotonic()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        with self.lock:
            self.sent = [dict() for _ in self.cams]
            self.recv = [dict() for _ in self.cams]
            self.diag = {}
            self.warm_outputs = 0

    def warm_up(self, timeout: float) -> bool:
        """Frames at 2 Hz to the warm-up camera until two come back (the first at a size is
        slow; best-effort frames sent while discovery settles are lost); False on timeout."""
        deadline = time.monotonic() + timeout
        k = 0
        while time.monotonic() < deadline:
            with self.lock:
                if self.warm_outputs >= 2:
                    return True
            self._publish(len(self.cams), k, record=False)
            k += 1
            time.sleep(0.5)
        return False

    def node_active(self) -> bool:
        with self.lock:
            return self.diag.get(f'{NODE_NAME}: engine', {}).get('message') == 'active'

    def matched(self) -> bool:
        return (all(p.get_subscription_count() > 0 for p in self.pubs)
                and all(s.get_publisher_count() > 0 for s in self.subs))

    def camera_diag(self) -> dict[str, dict[str, str]]:
        with self.lock:
            return {c: dict(self.diag.get(f'{NODE_NAME}: camera {c}', {})) for c in self.cams}

    def fresh_diagnostics(self, timeout: float = 2.5) -> dict[str, dict[str, str]]:
        """The node's camera statuses from a /diagnostics message received after now."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            with self.lock:
                if self.diag_time > t0:
                    break
            time.sleep(0.02)
        return self.camera_diag()

    # ------------------------------------------------------------------ playing
    def play(self, rate_hz: float, duration_s: float, stop: threading.Event | None = None
             ) -> tuple[float, float, float]:
        """Publish at ``rate_hz`` per camera for ``duration_s``; (t start, t end, worst lag ms).
        """
        n = len(self.cams)
        period = 1.0 / rate_hz
        t0 = time.monotonic() + 0.05
        k, worst = 0, 0.0
        while True:
            for i in range(n):
                due = t0 + (k + i / n) * period
                if due - t0 >= duration_s or (stop is not None and stop.is_set()):
                    return t0, time.monotonic(), worst
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                worst = max(worst, (time.monotonic() - due) * 1e3)
                self._publish(i, k)
            k += 1

    def _publish(self, i: int, k: int, record: bool = True) -> None:
        bufs = self._bufs[i]
        buf = bufs[k % len(bufs)]
        stamp = max(time.time_ns(), self._last_stamp[i] + 1)   # unique per camera
        self._last_stamp[i] = stamp
        set_stamp(buf, stamp)
        data = bytes(buf)
        if record:
            t = time.monotonic()
            with self.lock:
                self.sent[i][stamp] = t
        self.pubs[i].publish(data)

    def settle(self, quiet_s: float = 1.0, limit_s: float = 15.0) -> None:
        """Wait for the outputs of the last frames: until every frame has one, or none came
        for ``quiet_s`` (dropped frames never will), at most ``limit_s``."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < limit_s:
            with self.lock:
                done = all(all(k in r for k in s) for s, r in zip(self.sent, self.recv))
                idle = time.monotonic() - max(self.last_output, t0)
            if done or idle > quiet_s:
                return
            time.sleep(0.02)

    def records(self) -> tuple[list[dict[int, float]], list[dict[int, float]]]:
        with self.lock:
            return [dict(s) for s in self.sent], [dict(r) for r in self.recv]

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        self._spin.join(timeout=5.0)
        self.node.destroy_node()


def grouped_latency(sent, recv) -> dict[int, list[float]]:
    """camera index -> end-to-end latencies in ms of the frames that came back."""
    out = defaultdict(list)
    for i, (s, r) in enumerate(zip(sent, recv)):
        out[i] = [(r[k] - t) * 1e3 for k, t in s.items() if k in r]
    return out
