"""``weather-restore bench``: latency of the model and of the whole engine, as numbers."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser(
        'bench', help='measure per-frame latency',
        description='Time the restoration network alone (per config) and the full engine '
                    '(upload, CLIP prior refresh, network, download) on synthetic frames. '
                    'Reports the minimum and median over --iters runs after warm-up.')
    p.add_argument('--configs', nargs='+', default=['small'], help='model configs to time')
    p.add_argument('--size', default='640x480', help='WIDTHxHEIGHT (default 640x480)')
    p.add_argument('--threads', type=int, default=2, help='CPU threads (torch.set_num_threads)')
    p.add_argument('--iters', type=int, default=20)
    p.add_argument('--device', default='cpu', help='cpu | cuda | cuda:N | auto')
    p.add_argument('--precision', default='auto')
    p.add_argument('--engine', action='store_true',
                   help='also time the full engine with the shipped (or --checkpoint) model')
    p.add_argument('--checkpoint')
    p.add_argument('--batch', type=int, default=1, help='engine: cameras restored together')
    p.set_defaults(func=run)


def run(args) -> int:
    import time

    import numpy as np
    import torch

    from ..model.profile import count_parameters, gflops, time_forward
    from ..model.restorer import WeatherRestorer

    w, h = (int(v) for v in args.size.lower().split('x'))
    torch.set_num_threads(args.threads)
    device = args.device if args.device != 'auto' else (
        'cuda' if torch.cuda.is_available() else 'cpu')
    print(f'{w}x{h}, {args.threads} CPU threads, device {device}, {args.iters} iterations')
    print(f'{"config":8} {"params":>10} {"GFLOPs":>8} {"min ms":>8}')
    for name in args.configs:
        model = WeatherRestorer(name)
        ms = time_forward(model, h, w, threads=args.threads, iters=args.iters,
                          channels_last=device.startswith('cuda'), device=device)
        print(f'{name:8} {count_parameters(model):10,d} {gflops(model, h, w):8.2f} {ms:8.1f}',
              flush=True)
    if args.engine:
        from ..engine import RestorationEngine
        engine = RestorationEngine.from_checkpoint(args.checkpoint, device=device,
                                                   precision=args.precision,
                                                   warmup_shape=(h, w))
        rng = np.random.default_rng(0)
        frames = [(f'cam{i}', rng.integers(0, 256, (h, w, 3), np.uint8))
                  for i in range(args.batch)]
        times, stages = [], []
        for _ in range(args.iters):
            t0 = time.perf_counter()
            results = engine.restore_batch(frames)
            times.append((time.perf_counter() - t0) * 1e3)
            stages.append(results[0].timings_ms)
        t = np.asarray(times)
        print(f'\nengine ({engine.checkpoint.config.name}, {engine.dtype}, batch {args.batch}): '
              f'min {t.min():.1f} ms, median {np.median(t):.1f} ms per batch, '
              f'{1e3 * args.batch / np.median(t):.1f} frames/s; warm-up {engine.warmup_ms:.0f} ms')
        keys = stages[0].keys()
        print('  median per stage: ' + ', '.join(
            f'{k} {np.median([s[k] for s in stages]):.1f} ms' for k in keys))
    return 0
