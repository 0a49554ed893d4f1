"""``weather-restore node``: the ROS 2 node without ros2cli (same main as ``restore_node``)."""


def register(sub) -> None:
    p = sub.add_parser(
        'node', help='run the ROS 2 restoration node',
        description='Run the weather_restore ROS 2 node (what restore.launch.py starts). '
                    'Arguments after -- are passed to ROS, e.g. -- -r image_raw:=/cam/image_raw')
    p.add_argument('--params-file', help='node parameters (YAML, e.g. config/restore.yaml)')
    p.add_argument('--name', help='node name (default weather_restore)')
    p.add_argument('--namespace', help='node namespace')
    p.add_argument('ros_args', nargs='*', help='extra --ros-args arguments')
    p.set_defaults(func=run)


def run(args) -> int:
    ros_args = ['--ros-args']
    if args.params_file:
        ros_args += ['--params-file', args.params_file]
    if args.name:
        ros_args += ['-r', f'__node:={args.name}']
    if args.namespace:
        ros_args += ['-r', f'__ns:={args.namespace}']
    extra = [a for a in args.ros_args if a != '--ros-args']
    from ..ros.node import main
    return main(args=['weather-restore'] + ros_args + extra)
