"""The restoration node in-process: real rclpy and DDS, the tiny real model.

Publisher -> node -> subscribers, all in one process on a private Context; one executor spun by
the test thread runs the node's callbacks and the probe's, while the node's own inference thread
restores and publishes. Nodes are module-scoped (a configure costs a model load), so tests that
change runtime parameters put them back. Over 450 lines because of that: the tests that share
those node fixtures stay in one module (bad input, output encodings and bag-vs-node equality
live in test_bad_input, test_output_encoding and test_output_contract).
"""
import threading
import time
import tracemalloc

import pytest
import torch

from ros_helpers import pattern_image, ros_context

pytest.importorskip('rclpy', reason='rclpy is not installed (pip install -e ".[ros-wheels]")',
                    exc_type=ImportError)

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from node_rig import DEVICE, Rig, new_header, same_header  # noqa: E402
from node_rig import diag as _diag  # noqa: E402
from node_rig import match as _match  # noqa: E402
from node_rig import values as _values  # noqa: E402
from node_rig import wait_outputs as _wait_outputs  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from std_srvs.srv import SetBool  # noqa: E402

from weather_restore_ros import imaging  # noqa: E402
from weather_restore_ros.output_contract import VISION_TYPES, has_vision_msgs  # noqa: E402
from weather_restore_ros.ros import params as P  # noqa: E402
from weather_restore_ros.ros import publishers  # noqa: E402

pytestmark = pytest.mark.ros

HAVE_VISION_MSGS = has_vision_msgs(publishers.MESSAGE_CLASSES)
needs_vision_msgs = pytest.mark.skipif(
    not HAVE_VISION_MSGS, reason='vision_msgs is not importable (tools/build_test_msgs.sh .venv)')
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
H, W = 48, 64


@pytest.fixture(scope='module')
def ctx():
    with ros_context() as c:
        yield c


@pytest.fixture(scope='module')
def single(ctx, tiny_checkpoint):
    """Default layout: one camera in the node's namespace; every optional output on; warm-up
    on (the default), which is what makes the first frame fast."""
    rig = Rig(ctx, tiny_checkpoint, '/single', publish_mask=True, publish_compressed=True,
              warmup=True).start()
    yield rig
    rig.close()


@pytest.fixture(scope='module')
def cams(ctx, tiny_checkpoint):
    rig = Rig(ctx, tiny_checkpoint, '/multi', cameras=['front', 'rear']).start()
    yield rig
    rig.close()


@pytest.fixture(scope='module')
def compressed(ctx, tiny_checkpoint):
    rig = Rig(ctx, tiny_checkpoint, '/comp', input_transport='compressed').start()
    yield rig
    rig.close()


# ------------------------------------------------------------------ frames in, frames out
@pytest.mark.parametrize('encoding,channels', [('rgb8', 3), ('bgr8', 3), ('mono8', 1)])
def test_image_roundtrip_keeps_header_on_every_output(single, encoding, channels):
    images = single.collect(Image, 'image_restored')
    jpegs = single.collect(CompressedImage, 'image_restored/compressed')
    masks = single.collect(Image, 'degradation_mask')
    outputs = [images, jpegs, masks]
    if HAVE_VISION_MSGS:
        from vision_msgs.msg import Classification
        weather = single.collect(Classification, 'weather')
        outputs.append(weather)
    labels = single.collect(String, 'weather/label')
    frame = pattern_image(H, W, channels, seed=1)
    msg = imaging.numpy_to_image(frame, encoding, header=new_header())
    pub = single.publisher(Image, 'image_raw', qos_profile_sensor_data)

    assert _wait_outputs(single, pub, msg, outputs), 'no restored output for the frame'
    assert single.spin_until(lambda: labels)

    out = _match(images, msg.header)
    assert (out.encoding, out.height, out.width) == (encoding, H, W)
    assert imaging.image_to_numpy(out).shape == (H, W, channels)
    jpeg = _match(jpegs, msg.header)
    assert 'jpeg' in jpeg.format and imaging.compressed_to_rgb(jpeg).shape == (H, W, 3)
    mask = _match(masks, msg.header)
    assert (mask.encoding, mask.height, mask.width) == ('mono8', H, W)
    if HAVE_VISION_MSGS:
        cls = _match(weather, msg.header)
        names = [r.class_id for r in cls.results]
        scores = [r.score for r in cls.results]
        assert sorted(names) == sorted(single.node.engine.class_names)
        assert scores == sorted(scores, reverse=True)
        assert abs(sum(scores) - 1.0) < 1e-3
        assert labels[-1].data == names[0]
    else:
        assert labels[-1].data in single.node.engine.class_names


def test_compressed_input(compressed):
    images = compressed.collect(Image, 'image_restored')
    rgb = pattern_image(H, W, 3, seed=2)
    msg = imaging.rgb_to_compressed(rgb, 'jpeg', header=new_header('front_optical'))
    pub = compressed.publisher(CompressedImage, 'image_raw/compressed', qos_profile_sensor_data)
    assert _wait_outputs(compressed, pub, msg, [images])
    out = _match(images, msg.header)
    assert (out.encoding, out.height, out.width) == ('bgr8', H, W)


def test_topics_are_relative_to_namespace_and_cameras(single, cams, compressed):
    def names(rig):
        topics = rig.node.get_publisher_names_and_types_by_node(rig.node.get_name(), rig.ns)
        return {t for t, _ in topics}

    assert {'/single/image_restored', '/single/weather/label', '/single/degradation_mask',
            '/single/image_restored/compressed'} <= names(single)
    assert {'/multi/front/image_restored', '/multi/rear/image_restored',
            '/multi/front/weather/label', '/multi/rear/weather/label'} <= names(cams)
    assert '/multi/degradation_mask' not in names(cams)  # off by default
    subs = {c.subscription.topic_name for c in cams.node.cameras.values()}
    assert subs == {'/multi/front/image_raw', '/multi/rear/image_raw'}
    assert compressed.node.cameras[''].subscription.topic_name == '/comp/image_raw/compressed'
    assert single.node.cameras[''].subscription.qos_profile.reliability == \
        ReliabilityPolicy.BEST_EFFORT
    assert single.node.cameras[''].subscription.qos_profile.depth == 1


@needs_vision_msgs
def test_label_info_reaches_a_late_subscriber(single):
    from vision_msgs.msg import LabelInfo
    infos = single.collect(LabelInfo, 'weather/label_info', LATCHED)  # joins after configure
    assert single.spin_until(lambda: infos)
    assert [(c.class_id, c.class_name) for c in infos[0].class_map] == \
        list(enumerate(single.node.engine.class_names))


def _pending_is(rig, camera, msg) -> bool:
    pending = rig.node._pending.get(camera)
    return pending is not None and same_header(pending[0].header, msg.header)


def test_two_cameras_share_one_batch(cams):
    """Frames that are pending together go through one restore_batch call."""
    engine = cams.node.engine
    original = engine.restore_batch
    calls, gate = [], threading.Event()

    def gated(frames):
        calls.append(sorted(name for name, _ in frames))
        gate.wait(10.0)  # hold the inference thread so the next frames pile up
        return original(frames)

    engine.restore_batch = gated
    try:
        front = cams.collect(Image, 'front/image_restored')
        rear = cams.collect(Image, 'rear/image_restored')
        pub_f = cams.publisher(Image, 'front/image_raw', qos_profile_sensor_data)
        pub_r = cams.publisher(Image, 'rear/image_raw', qos_profile_sensor_data)
        first = imaging.numpy_to_image(pattern_image(H, W, 3, 3), 'rgb8', header=new_header())
        assert cams.send_until(pub_f, first, lambda: calls), 'inference never started'
        # The worker is now blocked inside the first call: these two arrive together.
        f = imaging.numpy_to_image(pattern_image(H, W, 3, 4), 'rgb8', header=new_header('f'))
        r = imaging.numpy_to_image(pattern_image(H, W, 3, 5), 'rgb8', header=new_header('r'))
        assert cams.send_until(pub_f, f, lambda: _pending_is(cams, 'front', f))
        assert cams.send_until(pub_r, r, lambda: _pending_is(cams, 'rear', r))
        gate.set()
        assert cams.spin_until(lambda: any(same_header(m.header, f.header) for m in front)
                               and any(same_header(m.header, r.header) for m in rear))
    finally:
        gate.set()
        engine.restore_batch = original
    assert ['front', 'rear'] in calls
    # Separate prior caches per camera.
    assert engine.cache('front') is not engine.cache('rear')
    assert engine.cache('front').stats()['frames'] >= 1
    assert engine.cache('rear').stats()['frames'] >= 1


def test_flood_keeps_newest_frame_only(cams):
    """A camera faster than inference: memory stays flat, replaced frames are counted."""
    engine = cams.node.engine
    original = engine.restore_batch

    def slow(frames):
        time.sleep(0.05)
        return original(frames)

    frame = pattern_image(240, 320, 3, seed=6)  # 230 kB: 150 queued frames would be 35 MB
    msgs = [imaging.numpy_to_image(frame, 'rgb8', header=new_header()) for _ in range(150)]
    pub = cams.publisher(Image, 'front/image_raw', qos_profile_sensor_data)
    before = cams.stats('front')
    engine.restore_batch = slow
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for m in msgs:
            pub.publish(m)
            cams.executor.spin_once(timeout_sec=0.005)
            assert len(cams.node._pending) <= 2  # never more than one frame per camera
        cams.spin_for(0.3)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
        engine.restore_batch = original
    def counts():
        after = cams.stats('front')
        return tuple(after[k] - before[k] for k in ('received', 'dropped', 'published'))

    # Once the pipeline drains (one frame may be pending and one in inference), every
    # received frame was either published or counted as dropped: nothing lost, nothing queued.
    deadline = time.monotonic() + 20.0
    while time.monotonic() < deadline:
        received, dropped, published = counts()
        if received == dropped + published:
            break
        cams.spin_for(0.1)
    assert received > 20
    assert dropped > 0
    assert published < received
    assert received == dropped + published
    assert peak < 8e6, f'{peak / 1e6:.1f} MB traced during the flood: frames are piling up'


# ------------------------------------------------------------------ parameters and service
def test_runtime_parameters_take_effect_at_once(single):
    engine = single.node.engine
    stream_cache = engine.cache('')
    results = single.set_params(**{'prior.refresh_frames': 7, 'skip_clear_threshold': 0.9,
                                   'prior.refresh_seconds': 0.5, 'oversize': 'downscale'})
    try:
        assert all(r.successful for r in results), [r.reason for r in results]
        assert engine.refresh_policy.every_n_frames == 7
        assert engine.refresh_policy.max_age_s == 0.5
        assert stream_cache.policy.every_n_frames == 7  # existing streams follow
        assert engine.skip_clear_threshold == 0.9
        assert engine.oversize == 'downscale'
        assert single.node.get_parameter('prior.refresh_frames').value == 7
    finally:
        results = single.set_params(**{'prior.refresh_frames': 30, 'skip_clear_threshold': 0.0,
                                       'prior.refresh_seconds': 2.0, 'oversize': 'tile'})
        assert all(r.successful for r in results)


@pytest.mark.parametrize('name,value,reason', [
    ('device', 'cuda', 'read-only'),
    ('input_qos', 'reliable', 'read-only'),
    ('oversize', 'banana', 'tile, downscale'),
    ('output_encoding', 'yuv422', 'same, rgb8, bgr8'),
    ('jpeg_quality', 0, ''),
    ('prior.ema', 0.995, ''),
])
def test_bad_parameter_changes_are_rejected_with_a_reason(single, name, value, reason):
    before = single.node.get_parameter(name).value
    [result] = single.set_params(**{name: value})
    assert not result.successful
    assert result.reason and reason in result.reason
    assert single.node.get_parameter(name).value == before
    assert single.node.p[name] == before


def test_enabled_service_switches_to_passthrough(single):
    client = single.probe.create_client(SetBool, 'enabled')
    images = single.collect(Image, 'image_restored')
    pub = single.publisher(Image, 'image_raw', qos_profile_sensor_data)
    assert single.spin_until(lambda: client.service_is_ready())

    def call(value):
        future = client.call_async(SetBool.Request(data=value))
        assert single.spin_until(future.done)
        return future.result()

    assert call(False).success
    try:
        assert single.node.get_parameter('enabled').value is False
        msg = imaging.numpy_to_image(pattern_image(H, W, 3, seed=7), 'bgr8',
                                     header=new_header())
        before = single.stats()['passthrough']
        assert _wait_outputs(single, pub, msg, [images])
        out = _match(images, msg.header)
        assert out.encoding == 'bgr8' and bytes(out.data) == bytes(msg.data)
        assert single.spin_until(lambda: single.stats()['passthrough'] > before, 2.0)
    finally:
        assert call(True).success
    assert single.node.p['enabled'] is True


def test_skip_when_clear_passes_frames_through(single):
    """With every refresh trigger off, a stream whose cached prior says clear (any confidence
    above a tiny threshold) is passed through: the output equals the input, still stamped."""
    images = single.collect(Image, 'image_restored')
    pub = single.publisher(Image, 'image_raw', qos_profile_sensor_data)
    warm = imaging.numpy_to_image(pattern_image(H, W, 3, seed=8), 'rgb8', header=new_header())
    assert _wait_outputs(single, pub, warm, [images])  # the stream has a prior now
    assert all(r.successful for r in single.set_params(**{
        'skip_clear_threshold': 1e-6, 'prior.refresh_frames': 0, 'prior.refresh_seconds': 0.0,
        'prior.scene_cut_threshold': 0.0}))
    try:
        before = single.stats()['skipped_clear']
        msg = imaging.numpy_to_image(pattern_image(H, W, 3, seed=9), 'rgb8',
                                     header=new_header())
        assert _wait_outputs(single, pub, msg, [images])
        out = _match(images, msg.header)
        assert bytes(out.data) == bytes(msg.data)
        assert single.spin_until(lambda: single.stats()['skipped_clear'] > before, 2.0)
    finally:
        assert all(r.successful for r in single.set_params(**{
            'skip_clear_threshold': 0.0, 'prior.refresh_frames': 30,
            'prior.refresh_seconds': 2.0, 'prior.scene_cut_threshold': 0.12}))


# ------------------------------------------------------------------ model failures, diagnostics
# (bad input: test_bad_input.py)
def test_model_failure_publishes_the_input_and_is_reported(single):
    """A network that returns NaN for a frame: the input goes out unchanged (same header),
    counted as invalid_output, with a warning and a WARN diagnostic; nothing crashes."""
    model = single.node.engine.model
    forward = model.forward
    model.forward = lambda x, emb: forward(x, emb)._replace(
        image=torch.full_like(x, float('nan')))
    try:
        images = single.collect(Image, 'image_restored')
        pub = single.publisher(Image, 'image_raw', qos_profile_sensor_data)
        frame = pattern_image(H, W, 3, seed=14)
        msg = imaging.numpy_to_image(frame, 'rgb8', header=new_header())
        assert _wait_outputs(single, pub, msg, [images])
        assert (imaging.image_to_numpy(_match(images, msg.header)) == frame).all()
        # counted right after the publish, on the node's thread: wait for it
        assert single.spin_until(lambda: single.stats()['invalid_output'] >= 1, 5.0)
        assert any('non-finite' in t for t in single.log.texts('warning'))
        status = _diag(single, 'default', lambda s: int(_values(s)['invalid_output']) >= 1)
        assert status.level == DiagnosticStatus.WARN and 'unrestored' in status.message
    finally:
        del model.forward   # the class's forward again


def test_speckled_output_publishes_the_input_there_and_is_reported(ctx, tmp_path):
    """A real runaway (the tiny model's weights x3), held finite: it sprays colour speckle over
    the grey square of the frame. The node publishes the input there (harm guard), counts the
    frame as unsafe_output with a warning and a WARN diagnostic, and keeps serving;
    ``harm_guard: false`` at runtime publishes the raw, speckled output."""
    import numpy as np
    from tiny_model import make_provoked_checkpoint, speckle_frame

    from weather_restore_ros import harm
    ckpt = make_provoked_checkpoint(tmp_path / 'blown.safetensors')
    rig = Rig(ctx, ckpt, '/guard', precision='fp32').start()   # fp16 would overflow to NaN
    try:
        images = rig.collect(Image, 'image_restored')
        pub = rig.publisher(Image, 'image_raw', qos_profile_sensor_data)
        frame = speckle_frame()
        msg = imaging.numpy_to_image(frame, 'rgb8', header=new_header())
        assert _wait_outputs(rig, pub, msg, [images])
        out = imaging.image_to_numpy(_match(images, msg.header))
        assert (out[48:112, 80:144] == frame[48:112, 80:144]).all()   # the square: the input
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None]
        assert not harm.harmed(t(frame), t(out)).any()
        assert rig.spin_until(lambda: rig.stats()['unsafe_output'] >= 1, 5.0)
        assert rig.stats()['invalid_output'] == 0
        assert any('speckle' in x for x in rig.log.texts('warning'))
        status = _diag(rig, 'default', lambda s: int(_values(s)['unsafe_output']) >= 1)
        assert status.level == DiagnosticStatus.WARN and 'partly unrestored' in status.message

        assert all(r.successful for r in rig.set_params(harm_guard=False))
        before = rig.stats()['unsafe_output']
        msg = imaging.numpy_to_image(frame, 'rgb8', header=new_header())
        assert _wait_outputs(rig, pub, msg, [images])                 # still serving
        raw = imaging.image_to_numpy(_match(images, msg.header))
        assert harm.harmed(t(frame), t(raw)).all()                    # the raw speckle
        assert rig.stats()['unsafe_output'] == before
    finally:
        rig.close()


def test_diagnostics_content_and_error_when_silent(single):
    images = single.collect(Image, 'image_restored')
    pub = single.publisher(Image, 'image_raw', qos_profile_sensor_data)
    msg = imaging.numpy_to_image(pattern_image(H, W, 3, seed=13), 'rgb8', header=new_header())
    assert _wait_outputs(single, pub, msg, [images])
    status = _diag(single, 'default', lambda s: s.level != DiagnosticStatus.ERROR
                   and int(_values(s)['published']) >= 1)
    values = _values(status)
    for key in ('input_rate_hz', 'output_rate_hz', 'latency_p50_ms', 'latency_p95_ms',
                'received', 'published', 'dropped', 'skipped_clear', 'bad_input',
                'prior_age_s', 'weather', 'weather_score'):
        assert key in values, key
    assert float(values['latency_p95_ms']) >= float(values['latency_p50_ms']) >= 0
    assert values['weather'] in single.node.engine.class_names
    assert status.hardware_id == '/single/image_raw'

    arrays = single.collect(DiagnosticArray, '/diagnostics')
    engine_name = f'{single.node.get_fully_qualified_name()}: engine'
    assert single.spin_until(lambda: any(s.name == engine_name for a in arrays
                                         for s in a.status), 5.0)
    eng = next(s for a in arrays for s in a.status if s.name == engine_name)
    engine = single.node.engine
    assert {'device': str(engine.device), 'precision': engine.precision}.items() \
        <= _values(eng).items()
    assert DEVICE != 'cpu' or engine.precision == 'fp32'

    assert all(r.successful for r in single.set_params(input_timeout_s=0.2))
    try:
        status = _diag(single, 'default', lambda s: s.level == DiagnosticStatus.ERROR)
        assert 'no frame' in status.message
    finally:
        assert all(r.successful for r in single.set_params(input_timeout_s=2.0))


# ------------------------------------------------------------------ QoS, lifecycle, no vision_msgs
# rclpy's own publisher-side handler still calls the deprecated logger.warn
@pytest.mark.filterwarnings('ignore:Deprecated in favor of:DeprecationWarning')
def test_incompatible_publisher_qos_is_reported(ctx, tiny_checkpoint):
    rig = Rig(ctx, tiny_checkpoint, '/rel', input_qos='reliable').start()
    try:
        rig.publisher(Image, 'image_raw', qos_profile_sensor_data)  # best effort: no match
        assert rig.spin_until(lambda: any('incompatible QoS' in t
                                          for t in rig.log.texts('warning')), 10.0)
        text = next(t for t in rig.log.texts('warning') if 'incompatible QoS' in t)
        assert '/rel/image_raw' in text and 'RELIABILITY' in text
        assert 'input_qos:=sensor_data' in text
    finally:
        rig.close()


def test_lifecycle_deactivate_stops_output_and_cleanup_frees_model(ctx, tiny_checkpoint):
    rig = Rig(ctx, tiny_checkpoint, '/life', autostart=False)
    try:
        assert rig.node.engine is None  # autostart only applies to main()
        rig.start()
        images = rig.collect(Image, 'image_restored')
        pub = rig.publisher(Image, 'image_raw', qos_profile_sensor_data)
        msg = imaging.numpy_to_image(pattern_image(H, W, 3, 14), 'rgb8', header=new_header())
        assert _wait_outputs(rig, pub, msg, [images])
        assert rig.node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        later = imaging.numpy_to_image(pattern_image(H, W, 3, 15), 'rgb8', header=new_header())
        assert not _wait_outputs(rig, pub, later, [images], timeout=1.0)
        assert rig.node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert _wait_outputs(rig, pub, later, [images])
        assert rig.node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert rig.node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
        assert rig.node.engine is None and not rig.node.cameras
    finally:
        rig.close()


def test_configure_fails_cleanly_on_bad_startup_values(ctx, tiny_checkpoint, tmp_path):
    rig = Rig(ctx, tiny_checkpoint, '/bad1', input_qos='fast')
    try:
        assert rig.node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert any('input_qos must be one of' in t for t in rig.log.texts('error'))
    finally:
        rig.close()
    rig = Rig(ctx, tmp_path / 'missing.safetensors', '/bad2')
    try:
        assert rig.node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert any('cannot load the restoration model' in t for t in rig.log.texts('error'))
    finally:
        rig.close()
    rig = Rig(ctx, tiny_checkpoint, '/bad3', cameras=['front', 'no spaces!'])
    try:
        assert rig.node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert any('cannot create the topics' in t for t in rig.log.texts('error'))
        assert rig.node.engine is None and not rig.node.cameras  # nothing half-made left
    finally:
        rig.close()


def test_without_vision_msgs_label_is_still_published(ctx, tiny_checkpoint, monkeypatch):
    monkeypatch.setattr(publishers, 'MESSAGE_CLASSES', {
        k: v for k, v in publishers.MESSAGE_CLASSES.items() if k not in VISION_TYPES})
    rig = Rig(ctx, tiny_checkpoint, '/novm').start()
    try:
        labels = rig.collect(String, 'weather/label')
        images = rig.collect(Image, 'image_restored')
        pub = rig.publisher(Image, 'image_raw', qos_profile_sensor_data)
        msg = imaging.numpy_to_image(pattern_image(H, W, 3, 16), 'rgb8', header=new_header())
        assert _wait_outputs(rig, pub, msg, [images])
        assert rig.spin_until(lambda: labels)
        assert labels[0].data in rig.node.engine.class_names
        topics = {t for t, _ in rig.node.get_publisher_names_and_types_by_node('weather_restore',
                                                                                '/novm')}
        assert '/novm/weather' not in topics and '/novm/weather/label_info' not in topics
        notes = [t for t in rig.log.texts('warning') if 'vision_msgs' in t]
        assert len(notes) == 1 and 'weather/label' in notes[0]
    finally:
        rig.close()


# ------------------------------------------------------------------ config file
def test_config_yaml_matches_declared_parameters():
    """config/restore.yaml lists every parameter with the declared default and type."""
    from pathlib import Path

    import yaml
    path = Path(__file__).resolve().parents[1] / 'config' / 'restore.yaml'
    params = yaml.safe_load(path.read_text())['/**']['ros__parameters']

    def flatten(d, prefix=''):
        for k, v in d.items():
            if isinstance(v, dict):
                yield from flatten(v, f'{prefix}{k}.')
            else:
                yield f'{prefix}{k}', v
    flat = dict(flatten(params))
    assert set(flat) == set(P.BY_NAME)
    for name, value in flat.items():
        spec = P.BY_NAME[name]
        assert value == spec.default and type(value) is type(spec.default), name
        if spec.choices:
            assert value in spec.choices
