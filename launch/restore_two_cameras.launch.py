"""Two cameras, one process, one model (batched): front/image_raw and rear/image_raw.

    ros2 launch weather_restore_ros restore_two_cameras.launch.py \
        front_topic:=/vehicle/front/image_raw rear_topic:=/vehicle/rear/image_raw

Outputs: <namespace>/front/image_restored, <namespace>/rear/image_restored, each camera's
weather/... topics beside them. ``device`` left empty keeps the params file's value.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = 'weather_restore_ros'


def _node(context, *args, **kwargs):
    def arg(name):
        return LaunchConfiguration(name).perform(context)

    overrides = {'cameras': ['front', 'rear'],
                 'use_sim_time': arg('use_sim_time').lower() in ('true', '1', 'yes')}
    if arg('device').strip():
        overrides['device'] = arg('device')
    front, rear = arg('front_topic'), arg('rear_topic')
    return [Node(
        package=PACKAGE,
        executable='restore_node',
        name='weather_restore',
        namespace=arg('namespace'),
        output='screen',
        emulate_tty=True,
        parameters=[arg('params_file'), overrides],
        remappings=[
            ('front/image_raw', front),
            ('front/image_raw/compressed', front + '/compressed'),
            ('rear/image_raw', rear),
            ('rear/image_raw/compressed', rear + '/compressed'),
        ],
        arguments=['--ros-args', '--log-level', arg('log_level')],
    )]


def generate_launch_description():
    share = get_package_share_directory(PACKAGE)
    return LaunchDescription([
        DeclareLaunchArgument('namespace', default_value='',
                              description='namespace of the node and its topics'),
        DeclareLaunchArgument('front_topic', default_value='front/image_raw',
                              description='input of the front camera'),
        DeclareLaunchArgument('rear_topic', default_value='rear/image_raw',
                              description='input of the rear camera'),
        DeclareLaunchArgument('params_file',
                              default_value=os.path.join(share, 'config', 'restore.yaml'),
                              description='node parameters (YAML)'),
        DeclareLaunchArgument('device', default_value='',
                              description="auto | cpu | cuda | cuda:N; empty = the params file's"),
        DeclareLaunchArgument('use_sim_time', default_value='false',
                              description='use /clock (bag replay with --clock)'),
        DeclareLaunchArgument('log_level', default_value='info',
                              description='debug | info | warn | error'),
        OpaqueFunction(function=_node),
    ])
