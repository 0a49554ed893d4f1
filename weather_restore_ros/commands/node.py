"""``weather-restore node``: the ROS 2 node without ros2cli (same main as ``restore_node``).

Only translates friendly options into ``--ros-args``; everything else is the node's ``main``, so
``weather-restore node --params-file f.yaml`` and ``restore_node --ros-args --params-file f.yaml``
behave the same.
"""
import os
import sys


def register(sub) -> None:
    from ..engine_settings import add_engine_arguments
    p = sub.add_parser(
        'node', help='run the ROS 2 restoration node',
        description='Run the weather_restore ROS 2 node (what restore.launch.py starts). '
                    'Arguments after -- are passed to ROS, e.g. -- -r image_raw:=/cam/image_raw '
                    '-p cameras:="[front, rear]"')
    p.add_argument('--params-file', help='node parameters (YAML, e.g. config/restore.yaml)')
    p.add_argument('--name', help='node name (default weather_restore)')
    p.add_argument('--namespace', help='node namespace')
    p.add_argument('--log-level', help='debug | info | warn | error')
    add_engine_arguments(p, node=True)   # given ones become -p parameters
    p.add_argument('ros_args', nargs='*', help='extra --ros-args arguments (after --)')
    p.set_defaults(func=run)


def build_ros_args(args) -> list[str]:
    from ..engine_settings import ros_args as engine_ros_args
    ros_args = ['--ros-args']
    if args.params_file:
        ros_args += ['--params-file', args.params_file]
    if args.name:
        ros_args += ['-r', f'__node:={args.name}']
    if args.namespace:
        ros_args += ['-r', f'__ns:={args.namespace}']
    if args.log_level:
        ros_args += ['--log-level', args.log_level]
    ros_args += engine_ros_args(args)
    return ros_args + [a for a in args.ros_args if a != '--ros-args']


def run(args) -> int:
    # rcl's own message for a missing file is a bare "Couldn't parse params file".
    if args.params_file and not os.path.isfile(args.params_file):
        print(f'weather-restore node: no such params file: {args.params_file}', file=sys.stderr)
        return 2
    from ..ros.restore_node import main
    return main(args=['weather-restore'] + build_ros_args(args))
