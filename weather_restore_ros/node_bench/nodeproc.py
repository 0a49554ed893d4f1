"""The node under test: ``restore_node`` in a process of its own.

Why a separate process: its CPU time and resident memory are then the node's alone (read from
``/proc``, as ``top`` would show them), the benchmark's Python player and subscriber do not
share its interpreter lock, and frames cross DDS exactly as they would from a camera driver.
It is the same ``main()`` that ``ros2 run`` starts, with parameters on the command line.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

from ..procstat import rss_mb

NAMESPACE = '/bench'
#: A camera of its own for the warm-up frames: the node's counters and latency window of the
#: measured cameras then hold the measured frames only.
WARMUP_CAMERA = 'warmup'


def camera_names(n: int) -> list[str]:
    return [f'cam{i}' for i in range(n)]


class NodeProcess:
    """Start the node with ``parameters`` (name -> value) in DDS domain ``domain``."""

    def __init__(self, cameras: int, parameters: dict, domain: int, log_level: str = 'warn'):
        params = {'cameras': camera_names(cameras) + [WARMUP_CAMERA], **parameters}
        cmd = [sys.executable, '-m', 'weather_restore_ros.ros.restore_node', '--ros-args',
               '-r', f'__ns:={NAMESPACE}', '--log-level', log_level]
        for name, value in params.items():
            cmd += ['-p', f'{name}:={_yaml(value)}']
        env = dict(os.environ, ROS_DOMAIN_ID=str(domain))
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid
        self._rss: list[tuple[float, float]] = []
        self._sampling = None

    def alive(self) -> bool:
        return self.proc.poll() is None

    # ------------------------------------------------------------------ memory over time
    def start_sampling(self, period_s: float = 0.5) -> None:
        """Sample RSS every ``period_s`` in a thread: the peak of a run, the series of a soak."""
        self._rss = []
        stop = threading.Event()

        def loop():
            while not stop.is_set():
                value = rss_mb(self.pid)
                if value is not None:
                    self._rss.append((time.monotonic(), value))
                stop.wait(period_s)
        thread = threading.Thread(target=loop, name='rss-sampler', daemon=True)
        thread.start()
        self._sampling = (stop, thread)

    def stop_sampling(self) -> list[tuple[float, float]]:
        if self._sampling is not None:
            stop, thread = self._sampling
            stop.set()
            thread.join(timeout=2.0)
            self._sampling = None
        return list(self._rss)

    def rss_samples(self) -> list[tuple[float, float]]:
        return list(self._rss)

    # ------------------------------------------------------------------ stopping
    def stop(self, timeout: float = 15.0) -> int | None:
        """Ctrl-C (the node shuts down cleanly), then kill if it does not exit in time."""
        self.stop_sampling()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def _yaml(value) -> str:
    """A parameter value as ``-p name:=value`` wants it (YAML)."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, (list, tuple)):
        return '[' + ', '.join(f"'{v}'" for v in value) + ']'
    if isinstance(value, str):
        return f"'{value}'"
    return str(value)
