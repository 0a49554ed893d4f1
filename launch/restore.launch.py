"""Restore one camera (or several, with ``cameras:=[front,rear]``).

    ros2 launch weather_restore_ros restore.launch.py input_topic:=/camera/image_raw
    ros2 launch weather_restore_ros restore.launch.py namespace:=car cameras:='[front, rear]'

Launch arguments left empty (cameras, device) keep the params file's value; set, they override it.
``input_topic``/``output_topic`` remap the single-camera topics (``image_raw`` and
``image_raw/compressed`` follow ``input_topic``); with ``cameras`` the topics are
``<namespace>/<camera>/image_raw`` -> ``<namespace>/<camera>/image_restored``, and
``camera_topics`` remaps each camera's input (``restore_two_cameras.launch.py`` uses it)::

    ros2 launch weather_restore_ros restore.launch.py cameras:='[front, rear]' \
        camera_topics:="{front: /cam_f/image_raw, rear: /cam_r/image_raw}"
"""
import os

import yaml
from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = 'weather_restore_ros'


def _node(context, *args, **kwargs):
    """Built at launch time, so that empty arguments can leave the params file's values alone."""
    def arg(name):
        return LaunchConfiguration(name).perform(context)

    overrides = {'use_sim_time': arg('use_sim_time').lower() in ('true', '1', 'yes')}
    if arg('cameras').strip():
        cameras = yaml.safe_load(arg('cameras'))
        cameras = [cameras] if isinstance(cameras, str) else cameras
        overrides['cameras'] = [str(c) for c in cameras] or ['']
    if arg('device').strip():
        overrides['device'] = arg('device')
    inp, out = arg('input_topic'), arg('output_topic')
    remappings = [
        ('image_raw', inp),
        ('image_raw/compressed', inp + '/compressed'),
        ('image_restored', out),
        ('image_restored/compressed', out + '/compressed'),
    ]
    camera_topics = yaml.safe_load(arg('camera_topics')) if arg('camera_topics').strip() else {}
    if not isinstance(camera_topics, dict):
        raise ValueError("camera_topics must be a mapping such as '{front: /cam_f/image_raw}', "
                         f'got {arg("camera_topics")!r}')
    for camera, topic in camera_topics.items():
        remappings += [(f'{camera}/image_raw', str(topic)),
                       (f'{camera}/image_raw/compressed', f'{topic}/compressed')]
    return [Node(
        package=PACKAGE,
        executable='restore_node',
        name='weather_restore',
        namespace=arg('namespace'),
        output='screen',
        emulate_tty=True,
        parameters=[arg('params_file'), overrides],
        remappings=remappings,
        arguments=['--ros-args', '--log-level', arg('log_level')],
    )]


def generate_launch_description():
    share = get_package_share_directory(PACKAGE)
    return LaunchDescription([
        DeclareLaunchArgument('namespace', default_value='',
                              description='namespace of the node and its topics'),
        DeclareLaunchArgument('cameras', default_value='',
                              description="camera namespaces, e.g. '[front, rear]'; empty = the "
                                          "params file's (default: one camera in the namespace)"),
        DeclareLaunchArgument('input_topic', default_value='image_raw',
                              description='single-camera input (remaps image_raw and '
                                          'image_raw/compressed)'),
        DeclareLaunchArgument('output_topic', default_value='image_restored',
                              description='single-camera output (remaps image_restored)'),
        DeclareLaunchArgument('camera_topics', default_value='',
                              description="input of each camera of cameras, e.g. '{front: "
                                          "/cam_f/image_raw}' (remaps <camera>/image_raw and "
                                          '<camera>/image_raw/compressed)'),
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
