"""``weather-restore bench``: latency of the model and of the whole engine, as numbers (the
timings: ``engine_bench``, ``thread_bench``, ``node_bench``)."""
from __future__ import annotations

import sys

from . import image_size as _size   # the one WIDTHxHEIGHT parser (--size)


def register(sub) -> None:
    from ..engine_settings import add_engine_arguments

    p = sub.add_parser(
        'bench', help='measure per-frame latency',
        description='Time the restoration network alone (per config, random weights, batch 1, '
                    'fp32) and optionally the full engine (upload, CLIP prior refresh, network, '
                    'download) on synthetic frames. The network figure is the minimum over '
                    '--iters runs after warm-up (the best estimate on a shared machine); the '
                    'engine figure gives minimum and median. --backends times one model on '
                    'several backends side by side (network and engine, every --size and '
                    '--batch) and prints the ratio.')
    p.add_argument('--configs', nargs='+', help='model configs to time (default small; none '
                                                'with --backends)')
    p.add_argument('--size', type=_size, nargs='+', default=[(640, 480)],
                   help='WIDTHxHEIGHT ... (default 640x480; --load and --node: the first)')
    p.add_argument('--iters', type=int, default=20)
    p.add_argument('--engine', action='store_true',
                   help='also time the full engine with the shipped (or --checkpoint) model')
    p.add_argument('--checkpoint', nargs='+', metavar='CKPT',
                   help="engine: checkpoints to time side by side in one run, iterations "
                        "interleaved so a busy machine slows each alike ('shipped' = the "
                        "packaged model); ratios are against the first")
    p.add_argument('--batch', type=int, nargs='+', default=[1],
                   help='engine: cameras restored together (several: each is timed)')
    p.add_argument('--backends', nargs='+', choices=('torch', 'onnxruntime'),
                   help='time the shipped (or first --checkpoint) model on these backends side '
                        'by side, e.g. --backends torch onnxruntime')
    p.add_argument('--load', type=int, default=0, metavar='N',
                   help='engine: also time it while N busy-loop processes run (load levels '
                        '0..N in one run, interleaved; each thread setting in its own process)')
    p.add_argument('--sweep', action='store_true',
                   help='with --load: compare thread counts, OpenMP wait policies and inter-op '
                        'threads against the chosen setting')
    p.add_argument('--json', metavar='PATH', help='--load / --node: also write the report here')
    # --checkpoint and --backends above take several, timed side by side, instead of the
    # engine's one. Device cpu by default, not auto: the network figures are CPU figures
    # unless a GPU is asked for by name, whatever the machine has. (--load and --node use
    # the device, precision, threads and first checkpoint only.)
    add_engine_arguments(p, defaults={'device': 'cpu'}, omit=('checkpoint', 'backend'))
    from ..node_bench.cli import add_arguments as add_node_arguments
    add_node_arguments(p)
    p.set_defaults(func=run)


def run(args) -> int:
    if args.node:   # the live node over DDS: its own module
        from ..node_bench.cli import run as run_node_bench
        return run_node_bench(args)
    if args.load < 0 or (args.load and not args.engine):
        print('error: --load N needs --engine and N >= 0', file=sys.stderr)
        return 2
    if args.load:   # quiet and loaded in one run, one process per thread setting
        from ..thread_bench import run as run_under_load
        return run_under_load(args)
    from ..engine_settings import settings_from_args
    settings = settings_from_args(args)
    args.threads = settings.configure_threads().threads   # before torch starts its pool

    from ..checkpoint import CheckpointError
    from ..encoders import MissingWeightsError
    from ..engine import EngineError, RestorationEngine, resolve_device
    from ..engine_bench import time_engines
    from ..model.config import CONFIGS
    from ..model.profile import count_parameters, gflops, time_forward
    from ..model.restorer import WeatherRestorer

    w, h = args.size[0]
    if args.iters < 1 or min(args.batch) < 1:
        print('error: --iters and --batch must be >= 1', file=sys.stderr)
        return 2
    if args.configs is None:
        args.configs = [] if args.backends else ['small']
    unknown = [c for c in args.configs if c not in CONFIGS]
    if unknown:
        print(f'error: unknown config(s) {unknown}; choose from {sorted(CONFIGS)}',
              file=sys.stderr)
        return 2
    try:
        device = str(resolve_device(args.device))
    except EngineError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    settings = settings.replace(device=device, threads=args.threads)
    if args.backends:
        from ..engine_bench import compare_backends
        try:
            return compare_backends(args, settings)
        except (CheckpointError, EngineError, MissingWeightsError) as exc:
            print(f'error: {exc}', file=sys.stderr)
            return 2
    engines = []
    if args.engine:  # load first: a missing checkpoint fails before minutes of timing
        for ckpt in args.checkpoint or ['shipped']:
            try:
                engines.append((ckpt, RestorationEngine.from_settings(
                    settings.replace(checkpoint=None if ckpt == 'shipped' else ckpt),
                    warmup_shape=(h, w))))
            except (CheckpointError, EngineError, MissingWeightsError) as exc:
                print(f'error: {exc}', file=sys.stderr)
                return 2
    for w, h in args.size:
        print(f'{w}x{h}, {args.threads} CPU threads, device {device}, {args.iters} iterations')
        print(f'{"config":8} {"params":>10} {"GFLOPs":>8} {"min ms":>8}')
        for name in args.configs:
            model = WeatherRestorer(name)
            ms = time_forward(model, h, w, threads=args.threads, iters=args.iters,
                              channels_last=device.startswith('cuda'), device=device)
            print(f'{name:8} {count_parameters(model, inference_only=True):10,d} '
                  f'{gflops(model, h, w):8.2f} {ms:8.1f}', flush=True)
        for batch in args.batch if engines else ():
            time_engines(engines, args, h, w, batch)
    return 0
