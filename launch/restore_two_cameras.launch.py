"""Two cameras, one process, one model (batched): front/image_raw and rear/image_raw.

    ros2 launch weather_restore_ros restore_two_cameras.launch.py \
        front_topic:=/vehicle/front/image_raw rear_topic:=/vehicle/rear/image_raw

Outputs: <namespace>/front/image_restored, <namespace>/rear/image_restored, each camera's
weather/... topics beside them. This is ``restore.launch.py`` with ``cameras:=[front, rear]``
and ``camera_topics`` made from ``front_topic``/``rear_topic``, so it starts the same node, and
that file's other arguments (namespace, params_file, device, use_sim_time, log_level) work here
too: set on the command line or by an including launch file, they reach it unchanged.
"""
import os

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration

# Beside this file, installed (share/weather_restore_ros/launch) or in the source tree.
RESTORE_LAUNCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'restore.launch.py')


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument('front_topic', default_value='front/image_raw',
                              description='input of the front camera'),
        DeclareLaunchArgument('rear_topic', default_value='rear/image_raw',
                              description='input of the rear camera'),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(RESTORE_LAUNCH),
            launch_arguments={
                'cameras': '[front, rear]',
                'camera_topics': ["{front: '", LaunchConfiguration('front_topic'),
                                  "', rear: '", LaunchConfiguration('rear_topic'), "'}"],
            }.items()),
    ])
