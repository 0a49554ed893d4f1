"""``weather-restore bag`` and the live node with ``backend: onnxruntime``: the same restored
frames and weather as with torch (mean absolute difference <= 1 grey level per frame)."""
import time

import numpy as np
import pytest

from onnx_helpers import require_onnxruntime
from tiny_model import make_tiny_checkpoint

require_onnxruntime()

from weather_restore_ros.cli import main  # noqa: E402
from weather_restore_ros.imaging import image_to_rgb  # noqa: E402
from weather_restore_ros.rosbag.sample_bag import make_sample_bag  # noqa: E402
from weather_restore_ros.rosbag.typestore import get_store  # noqa: E402

pytestmark = pytest.mark.usefixtures('one_torch_thread')
STORE = get_store()


@pytest.fixture(scope='module')
def visible(tmp_path_factory):
    """A tiny checkpoint whose network visibly changes frames, and a folder for its graphs."""
    root = tmp_path_factory.mktemp('ort_ros')
    return make_tiny_checkpoint(root / 'visible.safetensors', head_std=0.1), root / 'onnx'


def restored_frames(bag, suffix='/image_restored'):
    """{(camera, stamp ns): RGB} of a bag's ``suffix`` image topics, {(camera, stamp):
    weather label}."""
    from rosbags.rosbag2 import Reader
    images, labels = {}, {}
    with Reader(bag) as reader:
        for conn, t, raw in reader.messages():
            if conn.topic.endswith(suffix):
                images[(conn.topic.split('/')[1], t)] = image_to_rgb(
                    STORE.deserialize_cdr(raw, conn.msgtype))
            elif conn.topic.endswith('/weather/label'):
                labels[(conn.topic.split('/')[1], t)] = STORE.deserialize_cdr(
                    raw, conn.msgtype).data
    return images, labels


def test_bag_gives_the_same_frames_with_either_backend(tmp_path, visible, capsys):
    ckpt, onnx_dir = visible
    info = make_sample_bag(tmp_path / 'in', seconds_per_segment=0.4, rate_hz=5.0,
                           size=(96, 72))     # the shipped photos with rain, fog, snow
    out = {}
    for backend in ('torch', 'onnxruntime'):
        argv = ['bag', str(info.path), str(tmp_path / backend), '--checkpoint', str(ckpt),
                '--device', 'cpu', '--no-progress', '--backend', backend]
        if backend == 'onnxruntime':
            argv += ['--onnx-dir', str(onnx_dir)]
        assert main(argv) == 0
        out[backend] = restored_frames(tmp_path / backend)
    (t_img, t_lab), (o_img, o_lab) = out['torch'], out['onnxruntime']
    assert len(t_img) == 2 * info.frames_per_camera and t_img.keys() == o_img.keys()
    inputs, _ = restored_frames(info.path, '/image_raw')
    worst = 0.0
    for key, a in t_img.items():
        d = np.abs(a.astype(np.int16) - o_img[key].astype(np.int16))
        worst = max(worst, float(d.mean()))
        assert d.mean() <= 1.0 and d.max() <= 2, key
        assert np.abs(a.astype(np.int16) - inputs[key]).mean() > 2   # really restored
    assert t_lab == o_lab
    summary = (tmp_path / 'onnxruntime_summary.json').read_text()
    assert 'onnxruntime' in summary and 'CPUExecutionProvider' in summary
    print(f'worst per-frame mean difference: {worst:.4f} grey levels')


@pytest.mark.ros
def test_node_with_onnxruntime_restores_and_publishes(visible):
    pytest.importorskip('rclpy', reason='rclpy is not installed', exc_type=ImportError)
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from ros_helpers import collect, make_image, pattern_image, ros_context, spin_until
    from sensor_msgs.msg import Image

    from weather_restore_ros.engine import RestorationEngine
    from weather_restore_ros.ros.restore_node import RestoreNode

    ckpt, onnx_dir = visible
    frame = pattern_image(48, 64, 3, seed=4)
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    with ros_context() as ctx:
        node = RestoreNode(
            context=ctx, namespace='/ortcam', parameter_overrides=[
                Parameter('checkpoint', value=str(ckpt)), Parameter('device', value='cpu'),
                Parameter('warmup', value=False), Parameter('input_qos', value='reliable'),
                Parameter('backend', value='onnxruntime'),
                Parameter('onnx_dir', value=str(onnx_dir))])
        probe = Node('probe', namespace='/ortcam', context=ctx)
        executor = SingleThreadedExecutor(context=ctx)
        executor.add_node(node)
        executor.add_node(probe)
        try:
            assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
            assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
            assert node.engine.backend.name == 'onnxruntime'
            got = collect(probe, Image, 'image_restored', reliable)
            pub = probe.create_publisher(Image, 'image_raw', reliable)
            assert spin_until(executor, lambda: pub.get_subscription_count() > 0, 10)
            msg = make_image(frame, 'rgb8', frame_id='ort_optical')
            deadline = time.monotonic() + 20
            while not got and time.monotonic() < deadline:
                pub.publish(msg)
                spin_until(executor, lambda: bool(got), 1.0)
            assert got, 'no image_restored from the onnxruntime node'
        finally:
            executor.shutdown(timeout_sec=1.0)
            node.destroy_node()
            probe.destroy_node()
    out = got[0]
    assert out.header.frame_id == 'ort_optical' and out.encoding == 'rgb8'
    restored = image_to_rgb(out)
    want = RestorationEngine.from_checkpoint(str(ckpt), device='cpu', warmup=False).restore(frame)
    d = np.abs(restored.astype(np.int16) - want.image.astype(np.int16))
    assert d.mean() <= 1.0 and d.max() <= 2
    assert np.abs(restored.astype(np.int16) - frame).mean() > 2   # it really restored
