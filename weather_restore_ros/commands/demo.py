"""``weather-restore demo``: sample bag -> live node -> output bag, contact sheet and summary."""
from __future__ import annotations

import sys

from . import image_size as _size   # the one WIDTHxHEIGHT parser (--size)
from . import rclpy_missing


def register(sub) -> None:
    from ..engine_settings import add_engine_arguments
    p = sub.add_parser(
        'demo', help='run the live node on a generated two-camera bag and show the results',
        description=(
            'Build a short two-camera bag (/front/image_raw, /rear/image_raw: clear, rain, fog, '
            'snow), replay it into the restoration node running in this process, record what '
            'it publishes, and write a contact sheet and a summary. Needs nothing configured: '
            'it runs in a private DDS domain limited to this machine (see --domain-id).'))
    p.add_argument('--output', '-o', default='weather_restore_demo',
                   help='output folder (default ./weather_restore_demo)')
    p.add_argument('--seconds-per-segment', type=float, default=2.0, metavar='S')
    p.add_argument('--rate', type=float, default=5.0, metavar='HZ', help='camera frame rate')
    p.add_argument('--size', type=_size, default=(320, 240), metavar='WxH')
    p.add_argument('--domain-id', type=int, metavar='N',
                   help='join DDS domain N (default: a private one, discovery on localhost)')
    add_engine_arguments(p)   # the node's parameters, with the node's defaults
    p.set_defaults(func=run)


def run(args) -> int:
    if rclpy_missing('the demo'):
        return 2
    from ..engine_settings import settings_from_args
    settings = settings_from_args(args)
    settings.configure_threads()   # before live_demo's imports load torch (the node runs in here)
    from ..rosbag.live_demo import DemoError, DemoOptions, run_demo

    options = DemoOptions(output=args.output, engine=settings,
                          seconds_per_segment=args.seconds_per_segment, rate_hz=args.rate,
                          size=args.size, domain_id=args.domain_id)
    try:
        result = run_demo(options)
    except DemoError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    print(f'\ndemo finished in {result.summary["seconds_total"]:.0f} s:\n'
          f'  input bag      {result.input_bag}\n'
          f'  output bag     {result.output_bag}   (inputs + everything the node published)\n'
          f'  contact sheet  {result.contact_sheet}\n'
          f'  summary        {result.summary_txt}, {result.summary_json}')
    return 0
