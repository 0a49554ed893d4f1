"""``bench --node`` options (added to the ``bench`` parser) and the command itself."""
from __future__ import annotations

import json
import sys
import time


def add_arguments(p) -> None:
    g = p.add_argument_group(
        'node benchmark (--node)',
        'The real node in its own process, frames played to it over DDS from memory at fixed '
        'rates (sensor-data QoS by default), its outputs received by a subscriber: '
        'delivered rate, dropped %%, end-to-end latency, jitter, CPU %% and RSS of the node, '
        'and the highest rate with <= 5 %% dropped. Uses --size, --checkpoint (the first), '
        '--device, --threads (the node\'s threads parameter), --load and --json.')
    g.add_argument('--node', action='store_true', help='benchmark the live node over DDS')
    g.add_argument('--rates', type=float, nargs='+', default=[10.0, 30.0, 60.0], metavar='HZ',
                   help='frame rates per camera (default 10 30 60)')
    g.add_argument('--cameras', type=int, default=1, metavar='N',
                   help='cameras, restored by one node (default 1)')
    g.add_argument('--duration', type=float, default=5.0, metavar='S',
                   help='seconds per run (default 5)')
    g.add_argument('--bag', metavar='PATH',
                   help='play frames from this rosbag2 (its Image or CompressedImage topics) '
                        'instead of generated ones (--size is then the bag\'s)')
    g.add_argument('--bag-topics', nargs='+', metavar='TOPIC', help='with --bag: only these')
    g.add_argument('--qos', choices=('sensor_data', 'reliable'), default='sensor_data',
                   help="the player's QoS and the node's input_qos (default sensor_data: best "
                        'effort, as the node subscribes by default)')
    g.add_argument('--dds-profile', metavar='XML',
                   help='Fast DDS profile for the player, subscriber and node '
                        '(FASTDDS_DEFAULT_PROFILES_FILE). Default: none, except that best-effort '
                        'frames over 512 KiB get the shipped config/fastdds_large_frames.xml '
                        '(without it most are lost), said in the report; "none": never')
    g.add_argument('--no-peak', action='store_true', help='skip the peak-throughput search')
    g.add_argument('--peak-runs', type=int, default=4, metavar='N',
                   help='runs the peak search may add (default 4)')
    g.add_argument('--max-dropped', type=float, default=5.0, metavar='PCT',
                   help='peak search: most frames that may be dropped (default 5 %%)')
    g.add_argument('--soak', type=float, metavar='MINUTES',
                   help='instead: one node for MINUTES at the first --rates (or --soak-rate); '
                        'prints RSS and latency every --soak-interval and their slopes')
    g.add_argument('--soak-rate', type=float, metavar='HZ')
    g.add_argument('--soak-interval', type=float, default=10.0, metavar='S')
    g.add_argument('--domain-id', type=int, metavar='N',
                   help='DDS domain (default: a private one, discovery on localhost)')
    g.add_argument('--startup-timeout', type=float, default=120.0, metavar='S')


def options_from(args):
    from .runner import BenchOptions
    ckpt = (args.checkpoint or ['shipped'])[0]
    return BenchOptions(
        rates=list(args.rates), duration_s=args.duration,
        checkpoint=None if ckpt == 'shipped' else ckpt,
        device='cpu' if args.device == 'auto' else args.device, threads=args.threads,
        peak=not args.no_peak, peak_runs=args.peak_runs, max_dropped_pct=args.max_dropped,
        soak_minutes=args.soak, soak_rate=args.soak_rate, soak_interval_s=args.soak_interval,
        load=args.load, domain_id=args.domain_id, startup_timeout_s=args.startup_timeout,
        qos=args.qos, dds_profile=args.dds_profile)


def large_frames_profile(fs, qos: str) -> str | None:
    """The shipped Fast DDS profile when best-effort frames exceed the shared-memory segment
    and the environment names no profile; None otherwise (or when it is not installed)."""
    import os
    from pathlib import Path

    from .runner import SHM_SEGMENT
    big = max(len(f) for cam in fs.frames for f in cam) > SHM_SEGMENT
    if not big or qos != 'sensor_data' or os.environ.get('FASTDDS_DEFAULT_PROFILES_FILE'):
        return None
    name = 'fastdds_large_frames.xml'
    places = [Path(__file__).resolve().parents[2] / 'config' / name]   # a source checkout
    try:
        from ament_index_python.packages import get_package_share_directory
        places.append(Path(get_package_share_directory('weather_restore_ros')) / 'config' / name)
    except Exception:  # not installed with colcon / no ament index
        pass
    return next((str(p) for p in places if p.is_file()), None)


def _check(args) -> str | None:
    if any(r <= 0 for r in args.rates) or (args.soak_rate is not None and args.soak_rate <= 0):
        return 'rates must be positive'
    if args.cameras < 1 or args.duration <= 0 or args.peak_runs < 0 or args.load < 0:
        return '--cameras must be >= 1, --duration > 0, --peak-runs and --load >= 0'
    if args.soak is not None and (args.soak <= 0 or args.soak_interval <= 0):
        return '--soak and --soak-interval must be positive'
    if not 0 <= args.max_dropped < 100:
        return '--max-dropped must be in [0, 100)'
    if args.dds_profile not in (None, 'none'):
        import os
        if not os.path.isfile(args.dds_profile):
            return f'no such DDS profile: {args.dds_profile}'
    return None


def run(args, log=print) -> int:
    from ..commands import rclpy_missing
    problem = _check(args)
    if problem:
        print(f'error: {problem}', file=sys.stderr)
        return 2
    if rclpy_missing('bench --node'):
        return 2
    from . import frames as F
    from .report import format_report
    from .runner import BenchError, Session, header, one_line

    options = options_from(args)
    try:
        fs = (F.from_bag(args.bag, args.cameras, topics=args.bag_topics) if args.bag
              else F.generated(args.cameras, tuple(args.size[0])))
    except F.FrameError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    if args.dds_profile is None:
        options.dds_profile = large_frames_profile(fs, options.qos)
        if options.dds_profile:
            log(f'frames over 512 KiB with best-effort QoS: using the DDS profile '
                f'{options.dds_profile} (--dds-profile none to measure without it)')
    t0 = time.monotonic()
    report: dict = {}
    try:
        with Session(fs, options, log=log) as session:
            report['config'] = header(fs, options, session)
            if options.soak_minutes:
                log(f'soak: {options.soak_minutes:g} min, a sample every '
                    f'{options.soak_interval_s:g} s')
                report['soak'] = session.soak(print_line=log)
            else:
                report['runs'] = []
                for rate in options.rates:
                    log(f'  run: {rate:g} Hz x {fs.cameras} camera(s) for '
                        f'{options.duration_s:g} s')
                    report['runs'].append(session.run_rate(rate))
                    log('    ' + one_line(report['runs'][-1]))
                if options.peak:
                    report['peak'] = session.peak(report['runs'])
    except BenchError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    report['seconds'] = round(time.monotonic() - t0, 1)
    log(format_report(report))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(report, f, indent=2)
        log(f'json: {args.json}')
    return 0
