"""CPU time and memory of processes from ``/proc``, and busy-loop load, for the benchmarks.

Why /proc and not psutil: nothing to install, and the numbers are the kernel's own (what
``top`` shows). Linux only; elsewhere the readers return None and the benchmarks say so.

``BusyLoad(n)`` starts ``n`` processes that each spin one core in a pure-Python loop: the
"other nodes on the vehicle computer" of the benchmarks, started and stopped by the benchmark
itself, so quiet and loaded are measured in one run.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

_TICK = os.sysconf('SC_CLK_TCK') if hasattr(os, 'sysconf') else 100
_PAGE = os.sysconf('SC_PAGE_SIZE') if hasattr(os, 'sysconf') else 4096


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds used by ``pid`` so far (None: gone or no /proc)."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            text = f.read()
    except OSError:
        return None
    fields = text[text.rindex(')') + 2:].split()   # the name may hold spaces
    return (int(fields[11]) + int(fields[12])) / _TICK


def rss_mb(pid: int) -> float | None:
    """Resident memory of ``pid`` in MiB (None: gone or no /proc)."""
    try:
        with open(f'/proc/{pid}/statm') as f:
            return int(f.read().split()[1]) * _PAGE / 2**20
    except (OSError, IndexError, ValueError):
        return None


def system_busy_seconds() -> float | None:
    """CPU seconds all cores spent busy since boot (everything in /proc/stat but idle/iowait)."""
    try:
        with open('/proc/stat') as f:
            parts = f.readline().split()
    except OSError:
        return None
    values = [int(v) for v in parts[1:9]]        # user nice system idle iowait irq softirq steal
    return (sum(values) - values[3] - values[4]) / _TICK


class CpuMeter:
    """CPU use of some processes and of the whole machine between ``start()`` and ``stop()``.

    ``percent(pid)``: 100 = one core. ``others_cores``: cores kept busy by every process not
    given here (the training run, other users): how quiet the machine really was.
    """

    def __init__(self, pids):
        self.pids = list(pids)

    def start(self) -> 'CpuMeter':
        self.t0 = time.monotonic()
        self.sys0 = system_busy_seconds()
        self.cpu0 = {p: cpu_seconds(p) for p in self.pids}
        return self

    def stop(self) -> 'CpuMeter':
        self.wall = max(time.monotonic() - self.t0, 1e-9)
        sys1 = system_busy_seconds()
        self.used = {}
        for p in self.pids:
            c1 = cpu_seconds(p)
            self.used[p] = (None if c1 is None or self.cpu0[p] is None
                            else c1 - self.cpu0[p])
        mine = sum(v for v in self.used.values() if v is not None)
        self.others_cores = (None if sys1 is None or self.sys0 is None
                             else max(0.0, (sys1 - self.sys0 - mine) / self.wall))
        return self

    def percent(self, pid: int) -> float | None:
        used = self.used.get(pid)
        return None if used is None else 100.0 * used / self.wall


class BusyLoad:
    """``with BusyLoad(n):`` n processes spinning a core each; stopped (by pid) on exit.

    ``python -S``: no site packages, so nothing but the loop runs (no ROS bootstrap, no torch).
    """

    def __init__(self, n: int):
        if n < 0:
            raise ValueError(f'load must be >= 0 processes, got {n}')
        self.n = n
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> 'BusyLoad':
        for _ in range(self.n):
            self.procs.append(subprocess.Popen(
                [sys.executable, '-S', '-c', 'while True: pass'],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        return self

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def __exit__(self, *exc) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs.clear()


def machine_line() -> str:
    """'2 cores (AMD EPYC), load average 1.48' for report headers."""
    model = ''
    try:
        with open('/proc/cpuinfo') as f:
            model = next((ln.split(':', 1)[1].strip() for ln in f if ln.startswith('model name')),
                         '')
    except OSError:
        pass
    try:
        load = f', load average {os.getloadavg()[0]:.2f}'
    except OSError:
        load = ''
    return f'{os.cpu_count()} cores' + (f' ({model})' if model else '') + load
