"""``weather-restore bench --engine`` and ``--backends``: engines timed side by side, one run.

:func:`time_engines`: several checkpoints' engines on the same frames, iterations interleaved,
and the prior refresh. :func:`compare_backends` (``--backends torch onnxruntime``): one model,
several backends, two figures per size and batch: the **network** (the backend's restorer call
on a ready ``[B,3,H,W]`` tensor with a cached prior: what the backend itself costs) and the
**engine** (``restore_batch`` of B cameras: upload, prior check, network, harm guard,
download). Iterations are interleaved (A, B, A, B, ...) so that a burst of other load on a shared machine slows every
backend alike; the table gives medians and the ratio of each backend to the first.
"""
from __future__ import annotations

import time


def compare_backends(args, settings) -> int:
    """``settings``: the engine's (device resolved, threads applied); each backend and the
    first --checkpoint replace its own."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from .engine import RestorationEngine

    ckpt = (args.checkpoint or ['shipped'])[0]
    w0, h0 = args.size[0]
    engines = {}
    for name in dict.fromkeys(args.backends):   # load all first: a failure costs no timing
        engines[name] = RestorationEngine.from_settings(
            settings.replace(checkpoint=None if ckpt == 'shipped' else ckpt, backend=name),
            warmup_shape=(h0, w0), log=lambda line: None)
    first = next(iter(engines.values()))
    names = list(engines)
    sync = torch.cuda.synchronize if first.device.type == 'cuda' else (lambda: None)
    print(f'model {ckpt} ({first.checkpoint.config.name}, encoder '
          f'{first.checkpoint.clip.model_name}), {first.precision}, device {first.device}, '
          f'{args.threads} CPU thread{"s" if args.threads != 1 else ""}, {args.iters} '
          f'iterations interleaved, median ms per batch')
    for name, engine in engines.items():
        print(f'  {name}: {engine.backend.describe()}')
    ratio_head = ''.join(f' {n + "/" + names[0]:>22}' for n in names[1:])
    print(f'\n{"size":>10} {"batch":>5} {"stage":8}' + ''.join(f' {n:>12}' for n in names)
          + ratio_head)
    rng = np.random.default_rng(0)
    gen = torch.Generator().manual_seed(0)
    for w, h in args.size:
        for batch in args.batch:
            frames = [(f'cam{i}', rng.integers(0, 256, (h, w, 3), np.uint8))
                      for i in range(batch)]
            x = torch.rand(batch, 3, h, w, generator=gen)
            prior = F.normalize(torch.randn(batch, first.model.cfg.clip_dim, generator=gen),
                                dim=-1)
            times = {stage: {n: [] for n in names} for stage in ('network', 'engine')}
            inputs = {n: (x.to(e.device, e.dtype), prior.to(e.device, e.dtype))
                      for n, e in engines.items()}
            for it in range(args.iters + 1):     # the first round warms up, not counted
                for n, engine in engines.items():
                    with torch.inference_mode():
                        t0 = time.perf_counter()
                        engine.backend.restore(*inputs[n])
                        sync()
                        t1 = time.perf_counter()
                    engine.restore_batch(frames)
                    t2 = time.perf_counter()
                    if it:
                        times['network'][n].append((t1 - t0) * 1e3)
                        times['engine'][n].append((t2 - t1) * 1e3)
            for stage, per in times.items():
                med = {n: float(np.median(v)) for n, v in per.items()}
                print(f'{f"{w}x{h}":>10} {batch:5d} {stage:8}'
                      + ''.join(f' {med[n]:12.1f}' for n in names)
                      + ''.join(f' {med[n] / med[names[0]]:21.2f}x' for n in names[1:]),
                      flush=True)
            for engine in engines.values():
                for stream, _ in frames:
                    engine.forget_stream(stream)
    return 0


def time_engines(engines, args, h: int, w: int, batch: int) -> None:
    """Every engine on the same frames, iterations interleaved (A, B, A, B, ...): on a shared
    machine a burst of other load then slows each alike, so the ratio is fair. Also the prior
    refresh: the encoder's cost on a frame whose camera has no prior yet."""
    import numpy as np

    rng = np.random.default_rng(0)
    frames = [(f'cam{i}', rng.integers(0, 256, (h, w, 3), np.uint8)) for i in range(batch)]
    times = {name: [] for name, _ in engines}
    stages = {name: [] for name, _ in engines}
    refresh = {name: [] for name, _ in engines}
    for _ in range(args.iters):
        for name, engine in engines:
            t0 = time.perf_counter()
            results = engine.restore_batch(frames)
            times[name].append((time.perf_counter() - t0) * 1e3)
            stages[name].append(results[0].timings_ms)
    for _ in range(max(3, args.iters // 4)):
        for name, engine in engines:
            engine.forget_stream('refresh')
            refresh[name].append(engine.restore_batch([('refresh', frames[0][1])])[0]
                                 .timings_ms['clip'])
    base = None
    for name, engine in engines:
        t = np.asarray(times[name])
        med = float(np.median(t))
        base = base or med
        ratio = '' if med == base else f', {med / base:.2f}x the first'
        print(f'\nengine {name} ({engine.checkpoint.config.name}, encoder '
              f'{engine.checkpoint.clip.model_name}, {engine.precision}, batch {batch}): '
              f'min {t.min():.1f} ms, median {med:.1f} ms per batch{ratio}, '
              f'{1e3 * batch / med:.1f} frames/s; warm-up {engine.warmup_ms:.0f} ms')
        print('  median per stage: ' + ', '.join(
            f'{k} {np.median([s[k] for s in stages[name]]):.1f} ms' for k in stages[name][0]))
        print(f'  prior refresh (encoder on one new frame): median '
              f'{np.median(refresh[name]):.1f} ms')
