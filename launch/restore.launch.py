"""Restore one camera (or several, with ``cameras:=[front,rear]``).

    ros2 launch weather_restore_ros restore.launch.py input_topic:=/camera/image_raw
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue


def generate_launch_description():
    share = get_package_share_directory('weather_restore_ros')
    args = [
        DeclareLaunchArgument('namespace', default_value='',
                              description='namespace of the node and its topics'),
        DeclareLaunchArgument('cameras', default_value="['']",
                              description="camera namespaces, e.g. [front,rear]; [''] = one "
                                          'camera in the node namespace'),
        DeclareLaunchArgument('input_topic', default_value='image_raw',
                              description='single-camera input remap (image_raw -> this)'),
        DeclareLaunchArgument('output_topic', default_value='image_restored',
                              description='single-camera output remap'),
        DeclareLaunchArgument('params_file',
                              default_value=os.path.join(share, 'config', 'restore.yaml'),
                              description='node parameters (YAML)'),
        DeclareLaunchArgument('device', default_value='auto',
                              description='auto | cpu | cuda | cuda:N'),
        DeclareLaunchArgument('use_sim_time', default_value='false',
                              description='use /clock (bag replay with --clock)'),
        DeclareLaunchArgument('log_level', default_value='info',
                              description='debug | info | warn | error'),
    ]
    node = Node(
        package='weather_restore_ros',
        executable='restore_node',
        name='weather_restore',
        namespace=LaunchConfiguration('namespace'),
        output='screen',
        emulate_tty=True,
        parameters=[
            LaunchConfiguration('params_file'),
            {
                'device': LaunchConfiguration('device'),
                'cameras': ParameterValue(LaunchConfiguration('cameras'), value_type=list),
                'use_sim_time': ParameterValue(LaunchConfiguration('use_sim_time'),
                                               value_type=bool),
            },
        ],
        remappings=[
            ('image_raw', LaunchConfiguration('input_topic')),
            ('image_restored', LaunchConfiguration('output_topic')),
        ],
        arguments=['--ros-args', '--log-level', LaunchConfiguration('log_level')],
    )
    return LaunchDescription(args + [node])
