"""image_restored's encoding and size depend on the input encoding and ``output_encoding``
only: never on the path that made the frame (restored, ``enabled`` false, skip-when-clear, the
model's non-finite output replaced by the input, an oversize frame downscaled or tiled).

Every input encoding, raw and compressed, through every path, in the live node and in
``weather-restore bag``. Frames are 64x96 (6144 px) so ``max_frame_pixels`` 4096 (the
smallest allowed) makes them oversize.
"""
import cv2
import numpy as np
import pytest
import torch

from bad_inputs import COMPRESSED, IMAGE, STORE, compressed, header, image
from weather_restore_ros.engine_settings import EngineSettings
from weather_restore_ros.frame_input import DEPTH_ENCODINGS
from weather_restore_ros.imaging import SUPPORTED_ENCODINGS, encoding_layout, output_encoding

H, W = 64, 96
RAW = [e for e in SUPPORTED_ENCODINGS if e not in DEPTH_ENCODINGS]
PATHS = ('restore', 'passthrough', 'skip_clear', 'invalid_output', 'downscale', 'tile')


def _samples(encoding, seed=0):
    channels, itemsize = encoding_layout(encoding)
    dtype = np.uint16 if itemsize == 2 else np.uint8
    rng = np.random.default_rng(seed)
    return rng.integers(0, np.iinfo(dtype).max, (H, W, channels), dtype=dtype)


def _compressed_inputs(seed=0):
    """(name, format, bytes): the JPEG/PNG kinds cameras and image_transport send."""
    bgr = _samples('bgr8', seed)
    enc = lambda ext, a: cv2.imencode(ext, np.ascontiguousarray(a))[1].tobytes()  # noqa: E731
    return [('jpeg', 'rgb8; jpeg compressed bgr8', enc('.jpg', bgr)),
            ('png', 'bgr8; png compressed bgr8', enc('.png', bgr)),
            ('grey_jpeg', 'mono8; jpeg compressed mono8', enc('.jpg', bgr[..., 0])),
            ('png16', 'bgr16; png compressed bgr16', enc('.png', bgr * np.uint16(257)))]


def _inputs(seed):
    """[(input encoding, msgtype, CDR bytes)] for every raw encoding and compressed kind."""
    out = [(e, IMAGE, image(_samples(e, seed), e, header(e))) for e in RAW]
    out += [('bgr8', COMPRESSED, compressed(data, fmt, header(name)))
            for name, fmt, data in _compressed_inputs(seed)]
    return out


class _Spy:
    """Counts calls of an engine method (still calling it)."""

    def __init__(self, engine, name):
        self.engine, self.name, self.calls = engine, name, 0
        original = getattr(engine, name)

        def counted(*args, **kwargs):
            self.calls += 1
            return original(*args, **kwargs)
        setattr(engine, name, counted)

    def remove(self):
        delattr(self.engine, self.name)


def _nan_model(engine):
    model = engine.model
    forward = model.forward
    model.forward = lambda x, emb: forward(x, emb)._replace(
        image=torch.full_like(x, float('nan')))
    return lambda: delattr(model, 'forward')


# ------------------------------------------------------------------ the live node
@pytest.fixture(scope='module')
def rigs(tiny_checkpoint):
    pytest.importorskip('rclpy', reason='rclpy is not installed', exc_type=ImportError)
    from node_rig import Rig
    from rclpy.qos import qos_profile_sensor_data
    from ros_helpers import ros_context
    from sensor_msgs.msg import CompressedImage, Image

    with ros_context() as ctx:
        out = {}
        for msgtype, transport, msg_type, topic in (
                (IMAGE, 'raw', Image, 'image_raw'),
                (COMPRESSED, 'compressed', CompressedImage, 'image_raw/compressed')):
            rig = Rig(ctx, tiny_checkpoint, f'/enc_{transport}', input_transport=transport,
                      publish_compressed=True).start()
            out[msgtype] = (rig, rig.publisher(msg_type, topic, qos_profile_sensor_data),
                            rig.collect(Image, 'image_restored'),
                            rig.collect(CompressedImage, 'image_restored/compressed'), msg_type)
        try:
            yield out
        finally:
            for rig, *_ in out.values():
                rig.close()


_NODE_PARAMS = {
    'passthrough': {'enabled': False},
    'skip_clear': {'skip_clear_threshold': 1e-6, 'prior.refresh_frames': 0,
                   'prior.refresh_seconds': 0.0, 'prior.scene_cut_threshold': 0.0},
    'downscale': {'max_frame_pixels': 4096, 'oversize': 'downscale'},
    'tile': {'max_frame_pixels': 4096, 'oversize': 'tile'},
}
_DEFAULTS = {'enabled': True, 'skip_clear_threshold': 0.0, 'prior.refresh_frames': 30,
             'prior.refresh_seconds': 2.0, 'prior.scene_cut_threshold': 0.12,
             'max_frame_pixels': 1920 * 1080, 'oversize': 'tile'}


def _send(rig, pub, images, jpegs, data, msg_type):
    from rclpy.serialization import deserialize_message
    msg = deserialize_message(data, msg_type)
    same = lambda m: (m.header.stamp.sec, m.header.stamp.nanosec, m.header.frame_id) == (  # noqa
        msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id)
    assert rig.send_until(pub, data, lambda: any(map(same, images)) and any(map(same, jpegs)))
    return next(filter(same, images)), next(filter(same, jpegs))


@pytest.mark.ros
@pytest.mark.parametrize('requested', ['same', 'rgb8'])
@pytest.mark.parametrize('path', PATHS)
def test_node_output_encoding_and_size_do_not_depend_on_the_path(rigs, path, requested):
    restore = []
    spies = []
    for msgtype, (rig, pub, images, jpegs, msg_type) in rigs.items():
        if path == 'skip_clear':   # the stream needs a prior (a clear verdict) first
            warm = next(data for _, t, data in _inputs(1) if t == msgtype)
            _send(rig, pub, images, jpegs, warm, msg_type)
        params = {**_NODE_PARAMS.get(path, {}), 'output_encoding': requested}
        assert all(r.successful for r in rig.set_params(**params))
        if path == 'invalid_output':
            restore.append(_nan_model(rig.node.engine))
        if path in ('downscale', 'tile'):
            spies.append(_Spy(rig.node.engine, f'_{path}d'))
    try:
        for encoding, msgtype, data in _inputs(2):
            rig, pub, images, jpegs, msg_type = rigs[msgtype]
            before = rig.stats()
            out, jpeg = _send(rig, pub, images, jpegs, data, msg_type)
            assert (out.encoding, out.height, out.width) == (
                output_encoding(encoding, requested), H, W), (path, encoding)
            assert out.step * out.height == len(out.data) and out.is_bigendian == 0
            assert jpeg.format == 'rgb8; jpeg compressed bgr8'
            counter = {'passthrough': 'passthrough', 'skip_clear': 'skipped_clear',
                       'invalid_output': 'invalid_output'}.get(path, 'published')
            assert rig.spin_until(lambda: rig.stats()[counter] > before[counter], 2.0), counter
        assert all(s.calls for s in spies)
    finally:
        for undo in restore:
            undo()
        for spy in spies:
            spy.remove()
        for rig, *_ in rigs.values():
            assert all(r.successful for r in rig.set_params(**_DEFAULTS,
                                                            output_encoding='same'))


# ------------------------------------------------------------------ weather-restore bag
@pytest.fixture(scope='module')
def encodings_bag(tmp_path_factory):
    """One topic per input kind, two frames each (the first gives skip-when-clear a prior)."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    path = tmp_path_factory.mktemp('encbag') / 'in'
    t = 10**18
    topics = {}
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        for i, (encoding, msgtype, _) in enumerate(_inputs(0)):
            topic = f'/k{i}/image_raw' + ('/compressed' if msgtype == COMPRESSED else '')
            conn = w.add_connection(topic, msgtype, typestore=STORE)
            topics[topic] = encoding
            for seed in (3, 4):
                t += 10**7
                w.write(conn, t, _inputs(seed)[i][2])
    return path, topics


@pytest.fixture(scope='module')
def engine(tiny_checkpoint):
    from weather_restore_ros.engine import RestorationEngine
    return RestorationEngine.from_checkpoint(str(tiny_checkpoint), device='cpu', warmup=False)


_BAG_SETTINGS = {   # what the bag tool gets for the node parameters above
    path: EngineSettings.from_params(params) for path, params in _NODE_PARAMS.items()}


@pytest.mark.parametrize('requested', ['same', 'bgr8'])
@pytest.mark.parametrize('path', [p for p in PATHS if p != 'passthrough'])
def test_bag_output_encoding_and_size_do_not_depend_on_the_path(encodings_bag, engine,
                                                                tmp_path, path, requested):
    from test_bag import read_bag

    from weather_restore_ros.rosbag.restore_bag import RestoreOptions, restore_bag
    inp, topics = encodings_bag
    options = RestoreOptions(progress=False, output_encoding=requested, compressed=True,
                             engine=_BAG_SETTINGS.get(path, EngineSettings()))
    undo = _nan_model(engine) if path == 'invalid_output' else None
    spy = _Spy(engine, f'_{path}d') if path in ('downscale', 'tile') else None
    try:
        summary = restore_bag(inp, tmp_path / 'out', options, engine=engine)
    finally:
        if undo:
            undo()
        if spy:
            spy.remove()
    assert summary.ok, summary.problems
    assert spy is None or spy.calls
    out = read_bag(tmp_path / 'out')[0]
    for topic, encoding in topics.items():
        acc = summary.accounting[topic]
        assert acc.restored == 2 and not acc.skipped
        if path == 'skip_clear':
            assert acc.clear_passthrough == 1
        if path == 'invalid_output':
            assert acc.invalid_output == 2
        ns = topic.split('/')[1]
        for _, raw in out[f'/{ns}/image_restored']:
            img = STORE.deserialize_cdr(raw, IMAGE)
            assert (img.encoding, img.height, img.width) == (
                output_encoding(encoding, requested), H, W), (path, topic, encoding)
        for _, raw in out[f'/{ns}/image_restored/compressed']:
            assert STORE.deserialize_cdr(raw, COMPRESSED).format == 'rgb8; jpeg compressed bgr8'
