"""``weather-restore``: one entry point, one subcommand per job.

Each subcommand lives in its own module exposing ``register(subparsers)``; the module is
imported only to build the parser, and heavy imports (torch, rclpy) happen inside the command
itself, so ``--help`` stays fast and the robot never loads training code.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__

# (subcommand, module) in the order ``--help`` lists them.
COMMANDS = (
    ('info', 'weather_restore_ros.commands.info'),
    ('restore', 'weather_restore_ros.commands.restore'),
    ('bench', 'weather_restore_ros.commands.bench'),
    ('export', 'weather_restore_ros.commands.export'),
    ('node', 'weather_restore_ros.commands.node'),
    ('bag', 'weather_restore_ros.commands.bag'),
    ('replay', 'weather_restore_ros.commands.replay'),
    ('demo', 'weather_restore_ros.commands.demo'),
    ('synth', 'weather_restore_ros.commands.synth'),
    ('train', 'weather_restore_ros.commands.train'),
    ('eval', 'weather_restore_ros.commands.evaluate'),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='weather-restore',
        description='Remove rain, snow, haze and raindrops from camera images, '
                    'offline or live in ROS 2.')
    parser.add_argument('--version', action='version', version=f'%(prog)s {__version__}')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    for name, module in COMMANDS:
        # Every listed subcommand must import: a broken one fails here, loudly, naming it,
        # instead of vanishing from --help.
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            raise ImportError(f'weather-restore {name}: cannot import {module}: {exc}') from exc
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, 'func', None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == '__main__':
    sys.exit(main())
