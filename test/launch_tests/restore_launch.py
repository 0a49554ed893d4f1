"""launch_testing test of launch/restore.launch.py (run by test_launch.py where launch_testing
is installed, or by hand: ``launch_test test/launch_tests/restore_launch.py``).

Needs the package installed in an ament index (colcon build; source install/setup.bash) so that
launch_ros finds ``restore_node``, and ``WEATHER_RESTORE_TEST_PARAMS``: a params file naming a
checkpoint that exists (test_launch.py writes one with the tiny test checkpoint).
"""
import os
import time
import unittest
from pathlib import Path

import launch
import launch_testing
import launch_testing.actions
import launch_testing.asserts
import pytest
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource

LAUNCH_FILE = Path(__file__).resolve().parents[2] / 'launch' / 'restore.launch.py'
NAMESPACE = 'launch_test_cam'


@pytest.mark.launch_test
def generate_test_description():
    restore = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(LAUNCH_FILE)),
        launch_arguments={'namespace': NAMESPACE, 'device': 'cpu',
                          'params_file': os.environ['WEATHER_RESTORE_TEST_PARAMS']}.items())
    return launch.LaunchDescription([restore, launch_testing.actions.ReadyToTest()])


class TestRestoresFrames(unittest.TestCase):

    def test_frame_in_restored_frame_out(self, proc_output):
        import rclpy
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import Image
        from std_msgs.msg import Header

        from weather_restore_ros.imaging import numpy_to_image

        proc_output.assertWaitFor(f'restoring /{NAMESPACE}/image_raw', timeout=120)
        rclpy.init()
        try:
            node = rclpy.create_node('launch_test_probe')
            got = []
            node.create_subscription(Image, f'/{NAMESPACE}/image_restored', got.append, 10)
            pub = node.create_publisher(Image, f'/{NAMESPACE}/image_raw',
                                        qos_profile_sensor_data)
            header = Header(frame_id='launch_test_optical')
            header.stamp.sec, header.stamp.nanosec = 77, 7
            import numpy as np
            msg = numpy_to_image(np.full((48, 64, 3), 90, np.uint8), 'rgb8', header=header)
            deadline = time.monotonic() + 30
            while not got and time.monotonic() < deadline:
                pub.publish(msg)
                rclpy.spin_once(node, timeout_sec=0.3)
            self.assertTrue(got, 'no frame on image_restored')
            self.assertEqual((got[0].header.stamp.sec, got[0].header.frame_id),
                             (77, 'launch_test_optical'))
            node.destroy_node()
        finally:
            rclpy.shutdown()


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):

    def test_exit_code(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)
