"""What the robot loads: the node restores a frame without a single training-side module.

The training wing (``training/``), the datasets (``data/``) and the weather synthesis
(``synth/``) are for training machines; a node that imported them would drag their imports
(and their bugs) onto the vehicle. Checked in a fresh interpreter, so that nothing this test
process imported counts: the real node (shipped model, CPU) is configured and activated, a
frame goes in over DDS and the restored frame comes back, then the interpreter lists the
package's modules. Twice: the node as ``restore_node`` starts it (``ros.restore_node``), and
behind ``weather-restore node`` (whose parser imports every subcommand module first).
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ros_helpers import domain_id

pytest.importorskip('rclpy', reason='rclpy is not installed (pip install -e ".[ros-wheels]")',
                    exc_type=ImportError)

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.ros]

#: Never on the robot: the packages of the training machines.
TRAINING_SIDE = ('weather_restore_ros.training', 'weather_restore_ros.data',
                 'weather_restore_ros.synth')
#: What restoring a frame in the node must have gone through (so the check is not vacuous).
ROBOT_PATH = ('weather_restore_ros.ros.restore_node', 'weather_restore_ros.engine',
              'weather_restore_ros.backends.torch_backend', 'weather_restore_ros.prior_cache',
              'weather_restore_ros.model.restorer', 'weather_restore_ros.encoders.timm_encoder',
              'weather_restore_ros.frame_input', 'weather_restore_ros.output_contract',
              'weather_restore_ros.harm')

NODE_SCRIPT = r'''
import json, sys, time
import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
if sys.argv[1] == 'cli':   # what `weather-restore node` imports before it starts the node
    from weather_restore_ros.cli import build_parser
    build_parser().parse_args(['node'])
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from weather_restore_ros.imaging import numpy_to_image
from weather_restore_ros.ros.restore_node import RestoreNode

ctx = rclpy.Context()
rclpy.init(context=ctx)
node = RestoreNode(context=ctx, namespace='/robot_imports',
                   parameter_overrides=[Parameter('device', value='cpu')])
assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
feeder = rclpy.create_node('feeder', namespace='/robot_imports', context=ctx)
executor = SingleThreadedExecutor(context=ctx)
executor.add_node(node)
executor.add_node(feeder)
restored = []
feeder.create_subscription(Image, 'image_restored', restored.append, 10)
pub = feeder.create_publisher(Image, 'image_raw', qos_profile_sensor_data)
frame = np.random.default_rng(0).integers(0, 256, (48, 64, 3), np.uint8)
msg = numpy_to_image(frame, 'rgb8', header=Header(frame_id='cam'))
deadline, last = time.monotonic() + 60, 0.0
while not restored and time.monotonic() < deadline:
    if time.monotonic() - last > 0.5:   # best effort, discovery: again until it arrives
        pub.publish(msg)
        last = time.monotonic()
    executor.spin_once(timeout_sec=0.05)
executor.shutdown(timeout_sec=1.0)
node.destroy_node()
feeder.destroy_node()
rclpy.shutdown(context=ctx)
print(json.dumps({'restored': len(restored),
                  'modules': sorted(m for m in sys.modules if m.startswith('weather_restore_ros'))}))
'''


@pytest.mark.parametrize('entry', ['restore_node', 'cli'])
def test_the_node_restores_a_frame_without_training_modules(entry):
    env = dict(os.environ, HF_HUB_OFFLINE='1', ROS_DOMAIN_ID=str(domain_id()),
               ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST', OMP_NUM_THREADS='1',
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')]))
    proc = subprocess.run([sys.executable, '-c', NODE_SCRIPT, entry], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report['restored'] >= 1, proc.stderr
    modules = report['modules']
    missing = [m for m in ROBOT_PATH if m not in modules]
    assert not missing, f'the node did not go through {missing}: {modules}'
    loaded = [m for m in modules if any(m == p or m.startswith(p + '.') for p in TRAINING_SIDE)]
    assert not loaded, f'the robot imported training-side modules {loaded}'
