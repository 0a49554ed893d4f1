"""One measured run at a fixed rate, the peak-throughput search, and the soak.

Every fixed-rate run gets a fresh node process, so no run inherits another's counters,
latency window or memory, and each starts as the node would on the robot: loaded, warmed up
with two frames per camera, then played at the rate for the duration. The subscriber waits for
the last outputs (or for a second without any: a dropped frame never comes) before counting.
"""
from __future__ import annotations

import math
import os
import random
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from ..procstat import BusyLoad, CpuMeter, machine_line
from .frames import FrameSet
from .nodeproc import NodeProcess
from .probe import Probe, grouped_latency

SHM_SEGMENT = 512 * 1024   # Fast DDS's default shared-memory segment: larger frames go by UDP
SOAK_GRACE_S = 3.0      # a frame without output this long after its publish counts as dropped


class BenchError(RuntimeError):
    """The benchmark could not run; the message says why."""


@dataclass
class BenchOptions:
    rates: list[float] = field(default_factory=lambda: [10.0, 30.0, 60.0])
    duration_s: float = 5.0
    checkpoint: str | None = None
    device: str = 'cpu'
    threads: int | None = None
    peak: bool = True
    peak_runs: int = 4
    peak_max_hz: float = 240.0
    max_dropped_pct: float = 5.0
    soak_minutes: float | None = None
    soak_rate: float | None = None
    soak_interval_s: float = 10.0
    load: int = 0
    domain_id: int | None = None
    startup_timeout_s: float = 120.0
    qos: str = 'sensor_data'                 # the player's and the node's input QoS
    dds_profile: str | None = None           # FASTDDS_DEFAULT_PROFILES_FILE for all of it
    node_parameters: dict = field(default_factory=dict)


def _pct(values, q):
    return round(float(np.percentile(values, q)), 1) if len(values) else None


def _latency(values) -> dict:
    return {'p50': _pct(values, 50), 'p95': _pct(values, 95),
            'max': round(max(values), 1) if values else None,
            'mean': round(float(np.mean(values)), 1) if values else None}


def _float(values: dict, key: str):
    try:
        return float(values[key])
    except (KeyError, ValueError):
        return None


class Session:
    """rclpy context, probe, frames and the busy-loop load for a whole benchmark."""

    def __init__(self, frames: FrameSet, options: BenchOptions, log=print):
        self.frames, self.options, self.log = frames, options, log
        self.domain = options.domain_id
        if self.domain is None:   # a private domain: fake cameras never reach a robot
            os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
            self.domain = random.SystemRandom().randint(1, 100)
        self._profile_env = os.environ.get('FASTDDS_DEFAULT_PROFILES_FILE')
        if options.dds_profile == 'none':
            options.dds_profile = None
        if options.dds_profile:   # before rclpy.init; the node process inherits it
            os.environ['FASTDDS_DEFAULT_PROFILES_FILE'] = os.path.abspath(options.dds_profile)

    def __enter__(self) -> 'Session':
        import rclpy
        from rclpy.context import Context
        from rclpy.signals import SignalHandlerOptions

        self.ctx = Context()
        rclpy.init(context=self.ctx, domain_id=self.domain,
                   signal_handler_options=SignalHandlerOptions.NO)
        self.probe = Probe(self.ctx, self.frames, reliable=self.options.qos == 'reliable')
        self.busy = BusyLoad(self.options.load).__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.busy.__exit__(*exc)
        self.probe.close()
        self.ctx.try_shutdown()
        if self.options.dds_profile:
            if self._profile_env is None:
                os.environ.pop('FASTDDS_DEFAULT_PROFILES_FILE', None)
            else:
                os.environ['FASTDDS_DEFAULT_PROFILES_FILE'] = self._profile_env

    # ------------------------------------------------------------------ the node
    def start_node(self) -> NodeProcess:
        o = self.options
        params = {'device': o.device, 'threads': o.threads or 0, 'input_qos': o.qos,
                  **o.node_parameters}
        if o.checkpoint:
            params['checkpoint'] = o.checkpoint
        if self.frames.msgtype.endswith('CompressedImage'):
            params['input_transport'] = 'compressed'
        self.probe.reset()
        node = NodeProcess(self.frames.cameras, params, self.domain)
        deadline = time.monotonic() + o.startup_timeout_s
        while not (self.probe.node_active() and self.probe.matched()):
            if not node.alive():
                raise BenchError(f'the node exited with code {node.proc.returncode} before it '
                                 'was ready (see its log above)')
            if time.monotonic() > deadline:
                node.stop()
                raise BenchError(f'the node was not active {o.startup_timeout_s:g} s after '
                                 'start (model load, or DDS discovery on this domain)')
            time.sleep(0.05)
        if not self.probe.warm_up(o.startup_timeout_s):   # on a camera of its own
            node.stop()
            raise BenchError('the node published no restored frame for the warm-up frames'
                             + self._transport_hint())
        return node

    # ------------------------------------------------------------------ one run
    def run_rate(self, rate: float) -> dict:
        o = self.options
        node = self.start_node()
        try:
            self.probe.reset()
            base = self.probe.fresh_diagnostics()
            meter = CpuMeter([node.pid, os.getpid()] + self.busy.pids).start()
            node.start_sampling()
            _, _, lag = self.probe.play(rate, o.duration_s)
            meter.stop()
            self.probe.settle()
            final = self.probe.fresh_diagnostics()
            rss = node.stop_sampling()
            sent, recv = self.probe.records()
        finally:
            node.stop()
        result = summarise(rate, sent, recv, base, final)
        result.update(self._process(meter, node.pid, rss), player_worst_lag_ms=round(lag, 1))
        return result

    def _transport_hint(self) -> str:
        big = max(len(f) for cam in self.frames.frames for f in cam) > SHM_SEGMENT
        if (big and self.options.qos == 'sensor_data'
                and not os.environ.get('FASTDDS_DEFAULT_PROFILES_FILE')):
            return ('; frames over 512 KiB with best-effort QoS are mostly lost by Fast DDS '
                    "defaults (its shared-memory segment is 512 KiB): use --dds-profile "
                    'config/fastdds_large_frames.xml or --qos reliable')
        return ''

    def _process(self, meter: CpuMeter, pid: int, rss) -> dict:
        values = [v for _, v in rss]
        return {'node_cpu_pct': _round(meter.percent(pid)),
                'bench_cpu_pct': _round(meter.percent(os.getpid())),
                'others_cores': _round(meter.others_cores, 2),
                'node_rss_mb': _round(values[-1] if values else None),
                'node_rss_max_mb': _round(max(values) if values else None)}

    # ------------------------------------------------------------------ peak search
    def peak(self, runs: list[dict]) -> dict:
        """The highest rate with <= max_dropped_pct dropped: bracket from the fixed-rate runs,
        then probe at the rate the node sustained when overloaded, else halve the bracket."""
        o = self.options
        tried = list(runs)

        def ok(r):
            return r['dropped_pct'] <= o.max_dropped_pct

        extra = []
        while len(extra) < o.peak_runs:
            good = [r for r in tried if ok(r)]
            lo = max((r['rate_hz'] for r in good), default=None)
            bad = [r for r in tried if not ok(r) and (lo is None or r['rate_hz'] > lo)]
            hi = min((r['rate_hz'] for r in bad), default=None)
            if lo is None:
                cand = hi / 2
                if cand < 0.25:
                    break
            elif hi is None:
                if lo >= o.peak_max_hz:
                    break
                cand = min(2 * lo, o.peak_max_hz)
            else:
                if hi / lo < 1.1:
                    break
                sustained = next(r for r in bad if r['rate_hz'] == hi)['delivered_hz']
                cand = sustained if lo * 1.05 < sustained < hi / 1.05 else math.sqrt(lo * hi)
            cand = round(cand, 1)
            self.log(f'  peak search: {cand:g} Hz')
            r = self.run_rate(cand)
            self.log('    ' + one_line(r))
            extra.append(r)
            tried.append(r)
        good = [r for r in tried if ok(r)]
        best = max(good, key=lambda r: r['rate_hz']) if good else None
        return {'rate_hz': best['rate_hz'] if best else None,
                'max_dropped_pct': o.max_dropped_pct, 'runs': extra,
                'tried_hz': sorted({r['rate_hz'] for r in tried})}

    # ------------------------------------------------------------------ soak
    def soak(self, print_line=print) -> dict:
        o = self.options
        rate = o.soak_rate or o.rates[0]
        total = o.soak_minutes * 60.0
        node = self.start_node()
        stop = threading.Event()
        samples = []
        try:
            self.probe.reset()
            node.start_sampling(period_s=1.0)
            player = threading.Thread(target=self.probe.play, args=(rate, total + SOAK_GRACE_S,
                                                                    stop), daemon=True)
            t_start = time.monotonic()
            player.start()
            k = 1
            while time.monotonic() - t_start < total + SOAK_GRACE_S and player.is_alive():
                due = t_start + k * o.soak_interval_s + SOAK_GRACE_S
                meter = CpuMeter([node.pid]).start()
                time.sleep(max(0.0, due - time.monotonic()))
                meter.stop()
                if not node.alive():
                    raise BenchError(f'the node exited during the soak (code '
                                     f'{node.proc.returncode})')
                lo = t_start + (k - 1) * o.soak_interval_s
                sample = self._soak_sample(lo, lo + o.soak_interval_s, meter, node)
                sample['t_s'] = round(lo + o.soak_interval_s - t_start, 1)
                samples.append(sample)
                print_line(soak_line(sample))
                k += 1
                if sample['t_s'] >= total:
                    break
        finally:
            stop.set()
            node.stop()
        return {'rate_hz': rate, 'minutes': o.soak_minutes, 'interval_s': o.soak_interval_s,
                'samples': samples, **soak_slopes(samples)}

    def _soak_sample(self, lo: float, hi: float, meter: CpuMeter, node: NodeProcess) -> dict:
        with self.probe.lock:     # frames published in [lo, hi); drop what is now accounted
            sent = [{k: t for k, t in s.items() if lo <= t < hi} for s in self.probe.sent]
            recv = [dict(r) for r in self.probe.recv]
            for s, r in zip(self.probe.sent, self.probe.recv):
                for key in [key for key, t in s.items() if t < hi]:
                    del s[key]
                    r.pop(key, None)
        lat = [v for vs in grouped_latency(sent, recv).values() for v in vs]
        n_sent = sum(len(s) for s in sent)
        rss = node.rss_samples()
        return {'rss_mb': _round(rss[-1][1] if rss else None),
                'node_cpu_pct': _round(meter.percent(node.pid)),
                'delivered_hz': round(len(lat) / (hi - lo) / max(1, len(sent)), 2),
                'dropped_pct': round(100.0 * (1 - len(lat) / n_sent), 1) if n_sent else None,
                'e2e_ms': _latency(lat)}


def summarise(rate, sent, recv, base, final) -> dict:
    """A run's numbers from what the player sent, the subscriber got and the node said.

    Rates are per camera over the played time (frames sent / rate), so a node that keeps up
    delivers exactly the camera rate."""
    per_cam = grouped_latency(sent, recv)
    lat = [v for vs in per_cam.values() for v in vs]
    n_sent = sum(len(s) for s in sent)
    jitter = []
    for i, r in enumerate(recv):
        times = sorted(r[k] for k in sent[i] if k in r)
        if len(times) > 2:
            jitter.append(float(np.std(np.diff(times))) * 1e3)
    node = {}
    for key in ('received', 'published', 'dropped', 'bad_input'):
        deltas = [(_float(final[c], key) or 0) - (_float(base.get(c, {}), key) or 0)
                  for c in final]
        node[key] = int(sum(deltas))
    p50 = [_float(v, 'latency_p50_ms') for v in final.values()]
    p95 = [_float(v, 'latency_p95_ms') for v in final.values()]
    cams = max(1, len(sent))
    seconds = n_sent / cams / rate
    return {
        'rate_hz': rate, 'seconds': round(seconds, 2), 'sent': n_sent, 'delivered': len(lat),
        'delivered_hz': round(len(lat) / seconds / cams, 2) if seconds > 0 else None,
        'dropped_pct': round(100.0 * (1 - len(lat) / n_sent), 1) if n_sent else 100.0,
        'e2e_ms': _latency(lat),
        'node_ms': {'p50': max((v for v in p50 if v is not None), default=None),
                    'p95': max((v for v in p95 if v is not None), default=None)},
        'jitter_ms': round(float(np.mean(jitter)), 1) if jitter else None,
        'node_counts': node,
        'lost_before_node': max(0, n_sent - node['received']),
    }


def soak_slopes(samples: list[dict]) -> dict:
    """Slopes per minute of RSS and latency p50, the first interval left out (start-up
    allocations are not a leak). Theil-Sen (the median of the slopes between every two
    samples): one transient allocation does not read as a leak, a steady growth does."""
    use = samples[1:] if len(samples) > 2 else samples
    out = {'rss_slope_mb_per_min': None, 'e2e_p50_slope_ms_per_min': None}
    t = [s['t_s'] / 60.0 for s in use]
    for key, get in (('rss_slope_mb_per_min', lambda s: s['rss_mb']),
                     ('e2e_p50_slope_ms_per_min', lambda s: s['e2e_ms']['p50'])):
        y = [get(s) for s in use]
        pairs = [(y[j] - y[i]) / (t[j] - t[i]) for i in range(len(use))
                 for j in range(i + 1, len(use)) if t[j] > t[i]]
        if pairs and None not in y:
            out[key] = round(float(np.median(pairs)), 3)
    return out


def one_line(r: dict) -> str:
    e = r['e2e_ms']
    return (f'{r["rate_hz"]:g} Hz: delivered {r["delivered_hz"]} Hz, dropped '
            f'{r["dropped_pct"]} %, e2e p50 {e["p50"]} ms p95 {e["p95"]} ms')


def soak_line(s: dict) -> str:
    e = s['e2e_ms']
    return (f'  t {s["t_s"]:>7.0f} s  RSS {s["rss_mb"]} MB  node CPU {s["node_cpu_pct"]} %  '
            f'delivered {s["delivered_hz"]} Hz  dropped {s["dropped_pct"]} %  '
            f'e2e p50 {e["p50"]} ms  p95 {e["p95"]} ms')


def _round(v, nd=1):
    return None if v is None else round(v, nd)


def header(frames: FrameSet, options: BenchOptions, session: Session) -> dict:
    return {'machine': machine_line(), 'cameras': frames.cameras, 'frames': frames.source,
            'frames_sha256': frames.sha256, 'msgtype': frames.msgtype,
            'size': list(frames.size) if frames.size else None,
            'duration_s': options.duration_s, 'checkpoint': options.checkpoint or 'shipped',
            'device': options.device, 'threads': options.threads or 'auto',
            'load_processes': options.load, 'domain_id': session.domain, 'qos': options.qos,
            'dds_profile': os.environ.get('FASTDDS_DEFAULT_PROFILES_FILE'),
            'max_dropped_pct': options.max_dropped_pct}
