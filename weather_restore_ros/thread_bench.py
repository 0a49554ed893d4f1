"""``weather-restore bench --engine --load N``: engine latency quiet and under CPU load, per
thread setting, in one run.

Why subprocesses: the OpenMP wait policy is read once, when torch's library loads, and torch's
inter-op pool size can be set only once, so every thread setting gets a worker process of its
own (``python -m weather_restore_ros.thread_bench --worker``) that loads the engine and then
times batches when asked. The parent never imports torch: it starts the busy-loop load
(:class:`weather_restore_ros.procstat.BusyLoad`), asks each worker in turn for a few
iterations, and goes round load levels and workers again and again, so a burst of outside load
or a slow minute hits every cell alike. It also measures how many cores the rest of the machine
kept busy meanwhile: a "quiet" column on a machine that was not quiet says so.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

from . import cpu_threads
from .procstat import BusyLoad, CpuMeter, machine_line

CHUNK = 4     # iterations per worker per visit


@dataclass(frozen=True)
class Setting:
    threads: int
    interop: int | None       # None: torch's default (one thread per core)
    wait: str                 # cpu_threads.WAIT_CHOICES

    @property
    def name(self) -> str:
        interop = 'torch' if self.interop is None else str(self.interop)
        wait = _effective_wait(self.wait)
        return f'{self.threads:>2} threads, inter-op {interop:>5}, wait {wait}'


def settings(threads: int | None, sweep: bool) -> list[Setting]:
    """The setting asked for (or the default) first; with ``sweep`` the alternatives too."""
    n = threads or cpu_threads.default_threads()[0]
    wait = 'auto'
    first = Setting(n, 1, wait)
    if not sweep:
        return [first]
    cores = cpu_threads.usable_cores()
    counts = sorted({1, n, min(cores, 2 * n), cores} - {0})
    out = [first] + [Setting(t, 1, w) for t in counts for w in ('PASSIVE', 'runtime')]
    out.append(Setting(n, None, 'PASSIVE'))
    seen, unique = set(), []
    for s in out:
        key = (s.threads, s.interop, _effective_wait(s.wait))
        if key not in seen:
            seen.add(key)
            unique.append(s)
    return unique


def _effective_wait(wait: str) -> str:
    return cpu_threads.set_wait_policy(wait, env=dict(os.environ)) or 'unset'


class Worker:
    """One process with one thread setting and a loaded engine; ``time(k)`` -> k latencies."""

    def __init__(self, setting: Setting, spec: dict):
        env = dict(os.environ)
        cpu_threads.set_wait_policy(setting.wait, env)
        env.pop('OMP_NUM_THREADS', None)      # the setting's count is given explicitly
        self.setting = setting
        self.proc = subprocess.Popen(
            [sys.executable, '-m', 'weather_restore_ros.thread_bench', '--worker',
             json.dumps({**spec, **asdict(setting)})],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f'benchmark worker for {setting.name} failed to start '
                               '(see its error above)')
        self.info = json.loads(line)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def time(self, iters: int) -> list[float]:
        self.proc.stdin.write(f'{iters}\n')
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _median(values) -> float:
    v = sorted(values)
    return (v[(len(v) - 1) // 2] + v[len(v) // 2]) / 2


def measure(spec: dict, setting_list: list[Setting], load: int, iters: int, log=print) -> dict:
    """Medians per setting and load level, plus what the rest of the machine used."""
    workers = []
    try:
        for s in setting_list:        # one at a time: loading is CPU heavy
            log(f'  starting a worker: {s.name}')
            workers.append(Worker(s, spec))
        levels = list(range(load + 1))
        times = {(i, k): [] for i in range(len(workers)) for k in levels}
        others = {k: [] for k in levels}
        for _ in range(math.ceil(iters / CHUNK)):
            for k in levels:
                with BusyLoad(k) as busy:
                    time.sleep(0.2)                     # the loops get on a core first
                    meter = CpuMeter([w.pid for w in workers] + busy.pids).start()
                    for i, w in enumerate(workers):
                        times[(i, k)] += w.time(CHUNK)
                    others[k].append(meter.stop().others_cores)
        rows = []
        for i, w in enumerate(workers):
            med = {k: _median(times[(i, k)]) for k in levels}
            rows.append({'setting': asdict(w.setting), 'name': w.setting.name,
                         'applied': w.info['settings'], 'median_ms': med,
                         'min_ms': {k: min(times[(i, k)]) for k in levels},
                         'iterations': len(times[(i, 0)])})
        busy = {k: (None if None in v else sum(v) / len(v)) for k, v in others.items()}
        return {'rows': rows, 'others_cores': busy, 'levels': levels}
    finally:
        for w in workers:
            w.close()


def format_report(result: dict, header: str) -> str:
    levels = result['levels']
    lines = [header, f'machine: {machine_line()}']
    for k in levels:
        o = result['others_cores'][k]
        if o is not None:
            lines.append(f'  load {k}: {k} busy loop(s) started by the benchmark; every other '
                         f'process kept {o:.2f} cores busy meanwhile'
                         + (' (the machine was NOT quiet)' if k == 0 and o > 0.25 else ''))
    cols = ''.join(f'{f"load {k} ms":>11}' for k in levels)
    ratio = f'{"load1/load0":>13}' if len(levels) > 1 else ''
    lines.append(f'{"setting":40}{cols}{ratio}')
    for r in result['rows']:
        med = r['median_ms']
        cells = ''.join(f'{med[k]:>11.1f}' for k in levels)
        rat = f'{med[1] / med[0]:>12.2f}x' if len(levels) > 1 else ''
        lines.append(f'{r["name"]:40}{cells}{rat}')
    if len(levels) > 1:
        first = result['rows'][0]['median_ms']
        best0 = min(r['median_ms'][0] for r in result['rows'])
        lines.append(f'first setting under one more busy core: {first[1] / first[0]:.2f}x its '
                     f'load-0 median, {first[1] / best0:.2f}x the best load-0 median '
                     '(target <= 2x)')
    return '\n'.join(lines)


def run(args) -> int:
    """The ``bench --engine --load N`` command (args from commands/bench.py)."""
    w, h = args.size[0]             # bench takes lists: the first size and batch here
    batch = args.batch[0]
    ckpt = (args.checkpoint or ['shipped'])[0]
    spec = {'checkpoint': None if ckpt == 'shipped' else ckpt, 'device': args.device,
            'precision': args.precision, 'size': [w, h], 'batch': batch}
    chosen = settings(args.threads, args.sweep)
    print(f'engine under CPU load: {w}x{h}, batch {batch}, model {ckpt}, device '
          f'{args.device}; {len(chosen)} setting(s) x {args.load + 1} load level(s), '
          f'{math.ceil(args.iters / CHUNK) * CHUNK} iterations each', flush=True)
    t0 = time.monotonic()
    try:
        result = measure(spec, chosen, args.load, args.iters)
    except RuntimeError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    result['seconds'] = round(time.monotonic() - t0, 1)
    result['machine'] = machine_line()
    result['spec'] = spec
    print(format_report(result, f'engine median per batch (ms); {result["seconds"]:.0f} s'))
    if getattr(args, 'json', None):
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=2, default=str)
        print(f'json: {args.json}')
    return 0


def _worker(spec: dict) -> int:
    settings_ = cpu_threads.configure(spec['threads'], interop=spec['interop'],
                                      wait_policy=spec['wait'])
    import numpy as np

    from .engine import RestorationEngine
    w, h = spec['size']
    engine = RestorationEngine.from_checkpoint(spec['checkpoint'], device=spec['device'],
                                               precision=spec['precision'],
                                               warmup_shape=(h, w))
    rng = np.random.default_rng(0)
    frames = [(f'cam{i}', rng.integers(0, 256, (h, w, 3), np.uint8))
              for i in range(spec['batch'])]
    engine.restore_batch(frames)
    import torch
    applied = {**asdict(settings_), 'torch_threads': torch.get_num_threads(),
               'torch_interop': torch.get_num_interop_threads()}
    print(json.dumps({'settings': applied}), flush=True)
    for line in sys.stdin:
        out = []
        for _ in range(int(line)):
            t = time.perf_counter()
            engine.restore_batch(frames)
            out.append((time.perf_counter() - t) * 1e3)
        print(json.dumps(out), flush=True)
    return 0


if __name__ == '__main__':
    if len(sys.argv) == 3 and sys.argv[1] == '--worker':
        sys.exit(_worker(json.loads(sys.argv[2])))
    sys.exit('usage: weather-restore bench --engine --load N [--sweep]')
