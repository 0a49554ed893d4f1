"""Two cameras, one process, one model (batched): front/image_raw and rear/image_raw.

    ros2 launch weather_restore_ros restore_two_cameras.launch.py \
        front_topic:=/vehicle/front/image_raw rear_topic:=/vehicle/rear/image_raw
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
        DeclareLaunchArgument('namespace', default_value=''),
        DeclareLaunchArgument('front_topic', default_value='front/image_raw'),
        DeclareLaunchArgument('rear_topic', default_value='rear/image_raw'),
        DeclareLaunchArgument('params_file',
                              default_value=os.path.join(share, 'config', 'restore.yaml')),
        DeclareLaunchArgument('device', default_value='auto'),
        DeclareLaunchArgument('use_sim_time', default_value='false'),
        DeclareLaunchArgument('log_level', default_value='info'),
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
                'cameras': ['front', 'rear'],
                'device': LaunchConfiguration('device'),
                'use_sim_time': ParameterValue(LaunchConfiguration('use_sim_time'),
                                               value_type=bool),
            },
        ],
        remappings=[
            ('front/image_raw', LaunchConfiguration('front_topic')),
            ('rear/image_raw', LaunchConfiguration('rear_topic')),
        ],
        arguments=['--ros-args', '--log-level', LaunchConfiguration('log_level')],
    )
    return LaunchDescription(args + [node])
