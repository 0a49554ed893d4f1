"""The node as users start it: ``weather-restore node --params-file ...`` in its own process.

Frames go in from this test process over DDS (loopback, this run's domain), restored frames come
back, and Ctrl-C (SIGINT) ends the node cleanly with exit code 0.
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from ros_helpers import collect, domain_id, pattern_image, ros_context, ros_node, spin_until

pytest.importorskip('rclpy', reason='rclpy is not installed (pip install -e ".[ros-wheels]")',
                    exc_type=ImportError)

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
pytestmark = [pytest.mark.ros]


def test_console_scripts_point_at_the_node_main():
    from importlib.metadata import entry_points

    from weather_restore_ros.ros.restore_node import main
    scripts = {e.name: e for e in entry_points(group='console_scripts')}
    assert scripts['restore_node'].load() is main
    assert scripts['weather-restore'].value == 'weather_restore_ros.cli:main'
    assert (BIN / 'restore_node').exists() and (BIN / 'weather-restore').exists()


def test_cli_translates_options_to_ros_args():
    from argparse import Namespace

    from weather_restore_ros.commands.node import build_ros_args
    args = Namespace(params_file='p.yaml', name='wr', namespace='/car', log_level='debug',
                     ros_args=['--ros-args', '-r', 'image_raw:=/cam/image'])
    assert build_ros_args(args) == ['--ros-args', '--params-file', 'p.yaml', '-r', '__node:=wr',
                                    '-r', '__ns:=/car', '--log-level', 'debug', '-r',
                                    'image_raw:=/cam/image']


def _params_file(tmp_path, checkpoint):
    """config/restore.yaml with the tiny checkpoint, on CPU: what a user edits."""
    data = yaml.safe_load((ROOT / 'config' / 'restore.yaml').read_text())
    params = data['/**']['ros__parameters']
    params.update(checkpoint=str(checkpoint), device='cpu')
    path = tmp_path / 'restore.yaml'
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.slow
def test_node_process_restores_frames_and_exits_on_sigint(tiny_checkpoint, tmp_path):
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from weather_restore_ros.imaging import numpy_to_image

    env = dict(os.environ, HF_HUB_OFFLINE='1', ROS_DOMAIN_ID=str(domain_id()),
               ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST', PYTHONUNBUFFERED='1',
               RCUTILS_LOGGING_BUFFERED_STREAM='0')
    env.pop('OMP_WAIT_POLICY', None)       # the node's own policy, asserted below
    log = tmp_path / 'node.log'
    with open(log, 'wb') as out:
        proc = subprocess.Popen(
            [str(BIN / 'weather-restore'), 'node', '--params-file',
             str(_params_file(tmp_path, tiny_checkpoint)), '--namespace', '/proc_cam'],
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        with ros_context() as ctx, ros_node('feeder', ctx) as (node, executor):
            restored = collect(node, Image, '/proc_cam/image_restored')
            pub = node.create_publisher(Image, '/proc_cam/image_raw', qos_profile_sensor_data)
            header = Header(frame_id='proc_optical')
            header.stamp.sec, header.stamp.nanosec = 4242, 17
            msg = numpy_to_image(pattern_image(48, 64, 3, seed=3), 'rgb8', header=header)
            last = [0.0]

            def arrived():
                assert proc.poll() is None, f'node exited early:\n{log.read_text()}'
                if restored:
                    return True
                if time.monotonic() - last[0] > 0.5:  # until the node is up and matched
                    pub.publish(msg)
                    last[0] = time.monotonic()
                return False

            assert spin_until(executor, arrived, timeout=120.0, step=0.1), log.read_text()
        out = restored[0]
        assert (out.header.stamp.sec, out.header.stamp.nanosec, out.header.frame_id) == \
            (4242, 17, 'proc_optical')
        assert (out.height, out.width, out.encoding) == (48, 64, 'rgb8')

        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=15)  # a hang on shutdown fails here
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert code == 0, text
    assert 'model loaded on cpu' in text and 'restoring /proc_cam/image_raw' in text
    # torch is first imported at configure, after the thread policy: the wait policy took
    assert 'OMP_WAIT_POLICY PASSIVE' in text and 'imported before' not in text
    assert 'Traceback' not in text, text


@pytest.mark.slow
def test_node_process_exits_1_when_the_model_cannot_load(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE='1', ROS_DOMAIN_ID=str(domain_id()))
    proc = subprocess.run(
        [str(BIN / 'restore_node'), '--ros-args', '-p',
         f'checkpoint:={tmp_path / "missing.safetensors"}', '-p', 'device:=cpu'],
        env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert 'cannot load the restoration model' in proc.stdout + proc.stderr


def test_node_module_imports_without_vision_msgs():
    """The import fallback itself: vision_msgs blocked in a fresh interpreter."""
    code = ("import sys; sys.modules['vision_msgs'] = None; sys.modules['vision_msgs.msg'] = None\n"
            "import weather_restore_ros.ros.restore_node\n"
            "from weather_restore_ros.ros.publishers import MESSAGE_CLASSES as m\n"
            "assert not any(k.startswith('vision_msgs/') for k in m), m\n"
            "assert 'std_msgs/msg/String' in m, m\n"
            "print('ok')")
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert proc.returncode == 0 and 'ok' in proc.stdout, proc.stderr
