"""``weather-restore replay BAG``: publish a rosbag2 into a live ROS 2 graph (no ros2cli needed)."""
from __future__ import annotations

import argparse
import sys

from . import rclpy_missing


def _remap(text: str) -> tuple[str, str]:
    src, sep, dst = text.partition(':=')
    if not sep or not src or not dst:
        raise argparse.ArgumentTypeError(f'expected FROM:=TO, got {text!r}')
    return src, dst


def register(sub) -> None:
    p = sub.add_parser(
        'replay', help='publish a bag to a running ROS 2 graph with its recorded timing',
        description=(
            'Publish the messages of a rosbag2 (sqlite3 or MCAP) with their recorded timing, as '
            'the serialized bytes in the bag. Each topic is offered the QoS it was recorded '
            'with unless --qos overrides the reliability. A message type must be importable '
            '(its Python message package installed); other topics are reported and skipped.'),
        epilog='example: weather-restore replay my_bag --topics /front/image_raw --qos reliable')
    p.add_argument('bag', metavar='BAG', help='bag folder (or a .mcap/.db3 file)')
    p.add_argument('--rate', type=float, default=1.0, help='playback speed factor (default 1)')
    p.add_argument('--loop', action='store_true', help='start over at the end, until Ctrl-C')
    p.add_argument('--topics', nargs='+', metavar='TOPIC', help='only these topics')
    p.add_argument('--clock', action='store_true',
                   help='publish /clock with the bag time (for nodes with use_sim_time)')
    p.add_argument('--clock-hz', type=float, default=40.0, help='/clock rate between messages')
    p.add_argument('--qos', choices=('recorded', 'reliable', 'best_effort'), default='recorded',
                   help='reliability to offer (default: what was recorded)')
    p.add_argument('--remap', type=_remap, nargs='+', default=[], metavar='FROM:=TO',
                   help='publish topic FROM under the name TO')
    p.add_argument('--delay', type=float, default=0.0, metavar='S',
                   help='wait S seconds after creating the publishers (discovery)')
    p.add_argument('--wait-for-subscribers', type=int, default=0, metavar='N',
                   help='start only when every topic has N subscribers (up to --wait-timeout)')
    p.add_argument('--wait-timeout', type=float, default=30.0, metavar='S')
    p.set_defaults(func=run)


def run(args) -> int:
    if rclpy_missing('replay'):
        return 2
    from ..rosbag.player import ReplayError, ReplayOptions, replay_bag

    options = ReplayOptions(rate=args.rate, loop=args.loop, topics=args.topics,
                            clock=args.clock, clock_hz=args.clock_hz, qos=args.qos,
                            remap=dict(args.remap), delay=args.delay,
                            wait_for_subscribers=args.wait_for_subscribers,
                            wait_timeout=args.wait_timeout)
    try:
        stats = replay_bag(args.bag, options, log=lambda s: print(s, file=sys.stderr))
    except ReplayError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    for topic, n in sorted(stats.published.items()):
        print(f'{topic}: {n}')
    print(f'published {stats.total} messages in {stats.seconds:.1f} s '
          f'({stats.loops} pass{"es" if stats.loops != 1 else ""}; '
          f'latest message {stats.max_lag_ms:.1f} ms behind schedule)')
    for topic, why in stats.unavailable.items():
        print(f'not replayed: {topic}: {why}', file=sys.stderr)
    return 0
