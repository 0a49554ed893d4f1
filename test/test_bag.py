"""``weather-restore bag``: offline restoration of rosbag2 files (rosbags only, no ROS needed).

Bags here are tiny (64x48 frames, a handful per camera) and one engine (the tiny random model)
is shared by the module, so the whole file runs in seconds. The comparison with the live node
(last test) needs rclpy and is skipped without it.
"""
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from weather_restore_ros.engine_settings import EngineSettings
from weather_restore_ros.imaging import image_to_rgb, numpy_to_image, rgb_to_compressed
from weather_restore_ros.prior_cache import RefreshPolicy
from weather_restore_ros.rosbag.accounting import Accounting, AccountingError, TopicAccount
from weather_restore_ros.rosbag.restore_bag import BagError, RestoreOptions, restore_bag
from weather_restore_ros.rosbag.topics import (OutputTopics, TopicPlanError, camera_namespace,
                                               plan_topics)
from weather_restore_ros.rosbag.typestore import get_store

STORE = get_store()
T = STORE.types
IMAGE, COMPRESSED, STRING = ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage',
                             'std_msgs/msg/String')
CUSTOM = 'my_pkg/msg/Odd'          # a type rosbags' Kilted store does not know
CUSTOM_DEF = 'int32 a\nstring b\n'
T0 = 1_700_000_000 * 10**9
FRAMES = 4


def _qos(reliable=True, latched=False, depth=10):
    from rosbags.interfaces import (Qos, QosDurability, QosHistory, QosLiveliness,
                                    QosReliability, QosTime)
    z = QosTime(sec=0, nsec=0)
    return [Qos(history=QosHistory.KEEP_LAST, depth=depth,
                reliability=QosReliability.RELIABLE if reliable else QosReliability.BEST_EFFORT,
                durability=QosDurability.TRANSIENT_LOCAL if latched else QosDurability.VOLATILE,
                deadline=z, lifespan=z, liveliness=QosLiveliness.AUTOMATIC,
                liveliness_lease_duration=z, avoid_ros_namespace_conventions=False)]


def _header(stamp_ns, frame_id):
    return T['std_msgs/msg/Header'](
        stamp=T['builtin_interfaces/msg/Time'](sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9),
        frame_id=frame_id)


def _frame(i, seed=0):
    rng = np.random.default_rng(seed + i)
    y, x = np.mgrid[0:48, 0:64]
    img = np.stack([x * 4, y * 5, (x + y) * 2], -1) + rng.integers(0, 40, (48, 64, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def _custom_store():
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore
    store = get_typestore(Stores.ROS2_KILTED)
    store.register(get_types_from_msg(CUSTOM_DEF, CUSTOM))
    return store


def write_bag(path, storage='sqlite3', bad=False):
    """Front camera raw rgb8, rear camera JPEG, a String topic with unusual QoS and a topic of
    a custom type; ``bad`` adds a corrupt JPEG, a depth image, truncated image data and a CDR
    buffer that does not deserialize (every other kind: test_bad_input.py)."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    custom_store = _custom_store()
    plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
    with Writer(path, version=9, storage_plugin=plugin) as w:
        w.set_custom_data('robot', 'rover-7')
        front = w.add_connection('/front/image_raw', IMAGE, typestore=STORE,
                                 offered_qos_profiles=_qos())
        rear = w.add_connection('/rear/image_raw/compressed', COMPRESSED, typestore=STORE,
                                offered_qos_profiles=_qos(reliable=False, depth=1))
        chat = w.add_connection('/chatter', STRING, typestore=STORE,
                                offered_qos_profiles=_qos(reliable=False, latched=True, depth=3))
        odd = w.add_connection('/odd', CUSTOM, typestore=custom_store,
                               offered_qos_profiles=_qos())
        for i in range(FRAMES):
            t = T0 + i * 100_000_000
            img = numpy_to_image(_frame(i), 'rgb8', header=_header(t, 'front_cam'),
                                 msg_type=T[IMAGE])
            w.write(front, t, STORE.serialize_cdr(img, IMAGE))
            jpg = rgb_to_compressed(_frame(i, 100), header=_header(t + 1000, 'rear_cam'),
                                    msg_type=T[COMPRESSED])
            w.write(rear, t + 2_000_000, STORE.serialize_cdr(jpg, COMPRESSED))
            w.write(chat, t + 5_000_000,
                    STORE.serialize_cdr(T[STRING](data=f'hello {i}'), STRING))
            w.write(odd, t + 6_000_000, custom_store.serialize_cdr(
                custom_store.types[CUSTOM](a=i, b='x' * i), CUSTOM))
        if bad:
            t = T0 + FRAMES * 100_000_000
            broken = T[COMPRESSED](header=_header(t, 'rear_cam'), format='jpeg',
                                   data=np.frombuffer(b'\xff\xd8not a jpeg', np.uint8))
            w.write(rear, t, STORE.serialize_cdr(broken, COMPRESSED))
            float_img = T[IMAGE](header=_header(t, 'front_cam'), height=2, width=2,
                                 encoding='32FC1', is_bigendian=0, step=8,
                                 data=np.zeros(16, np.uint8))
            w.write(front, t + 1, STORE.serialize_cdr(float_img, IMAGE))
            short = T[IMAGE](header=_header(t, 'front_cam'), height=48, width=64,
                             encoding='rgb8', is_bigendian=0, step=192,
                             data=np.zeros(100, np.uint8))
            w.write(front, t + 2, STORE.serialize_cdr(short, IMAGE))
            w.write(front, t + 3, b'\x00\x01\x00\x00\x07')
    return Path(path)


def read_bag(path):
    """{topic: [(timestamp, bytes)]}, {topic: connection} of a bag."""
    from rosbags.rosbag2 import Reader
    msgs, conns = {}, {}
    with Reader(path) as r:
        for c in r.connections:
            conns[c.topic] = c
        for c, t, raw in r.messages():
            msgs.setdefault(c.topic, []).append((t, bytes(raw)))
    return msgs, conns


def tree_digest(path):
    h = hashlib.sha256()
    for f in sorted(Path(path).rglob('*')):
        if f.is_file():
            h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope='module')
def engine(tiny_checkpoint):
    from weather_restore_ros.engine import RestorationEngine
    return RestorationEngine.from_checkpoint(str(tiny_checkpoint), device='cpu', warmup=False)


def _check_restored(inp, out, restored_from, keep_input=True, mask=False):
    """Restored frames decode and keep header and bag timestamp; other topics identical."""
    in_msgs, in_conns = read_bag(inp)
    out_msgs, out_conns = read_bag(out)
    for src in restored_from:
        names = OutputTopics(camera_namespace(src, in_conns[src].msgtype))
        src_msgs = [(t, STORE.deserialize_cdr(raw, in_conns[src].msgtype))
                    for t, raw in in_msgs[src]]
        images = out_msgs[names.image]
        assert len(images) == len(src_msgs) == FRAMES
        for (t_in, m_in), (t_out, raw) in zip(src_msgs, images):
            img = STORE.deserialize_cdr(raw, IMAGE)
            assert t_out == t_in
            assert (img.header.stamp.sec, img.header.stamp.nanosec, img.header.frame_id) == (
                m_in.header.stamp.sec, m_in.header.stamp.nanosec, m_in.header.frame_id)
            assert image_to_rgb(img).shape == (48, 64, 3)
        weather = [STORE.deserialize_cdr(raw, 'vision_msgs/msg/Classification')
                   for _, raw in out_msgs[names.weather]]
        labels = [STORE.deserialize_cdr(raw, STRING).data for _, raw in out_msgs[names.label]]
        assert [w.results[0].class_id for w in weather] == labels
        assert all(len(w.results) == 5 and abs(sum(h.score for h in w.results) - 1) < 1e-4
                   for w in weather)
        assert len(out_msgs[names.label_info]) == 1
        assert (names.mask in out_msgs) == mask
        assert (src in out_msgs) == keep_input
    copied = [t for t in in_msgs if keep_input or t not in restored_from]
    for topic in copied:
        assert out_msgs[topic] == in_msgs[topic], topic          # same bytes, same timestamps
        a, b = in_conns[topic], out_conns[topic]
        assert (b.msgtype, b.digest, b.msgdef.data) == (a.msgtype, a.digest, a.msgdef.data)
        assert b.ext.offered_qos_profiles == a.ext.offered_qos_profiles


def test_sqlite3_to_mcap(tmp_path, engine):
    inp = write_bag(tmp_path / 'in', 'sqlite3')
    before = tree_digest(inp)
    summary = restore_bag(inp, tmp_path / 'out', RestoreOptions(progress=False), engine=engine)
    assert summary.ok and summary.input_storage == 'sqlite3'
    assert (tmp_path / 'out' / 'out.mcap').exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ['in', 'out', 'out_summary.json']
    assert tree_digest(inp) == before                         # input never modified
    acc = summary.accounting
    assert acc['/front/image_raw'].restored == acc['/rear/image_raw/compressed'].restored == 4
    assert acc['/chatter'].copied == acc['/odd'].copied == FRAMES
    assert acc.totals() == {'read': 16, 'copied': 16, 'restored': 8, 'skipped': 0,
                            'expected': 16}
    table = acc.table()
    assert '/rear/image_raw/compressed' in table and table.splitlines()[-1].split()[:5] == [
        'total', '16', '16', '8', '0']
    _check_restored(inp, tmp_path / 'out', ['/front/image_raw', '/rear/image_raw/compressed'])
    data = json.loads((tmp_path / 'out_summary.json').read_text())
    assert data['ok'] and data['totals']['read'] == 16 and data['prior_age_clock']
    meta = yaml.safe_load((tmp_path / 'out' / 'metadata.yaml').read_text())
    assert meta['rosbag2_bagfile_information']['custom_data'] == {'robot': 'rover-7'}


def test_mcap_to_sqlite3_cli(tmp_path, tiny_checkpoint, capsys):
    from weather_restore_ros.cli import main
    inp = write_bag(tmp_path / 'in', 'mcap')
    out = tmp_path / 'out'
    args = ['bag', str(inp), str(out), '--storage', 'sqlite3', '--checkpoint',
            str(tiny_checkpoint), '--device', 'cpu', '--mask', '--drop-input-images',
            '--no-progress']
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert 'restored' in printed and 'out_summary.json' in printed
    assert (out / 'out.db3').exists()
    _check_restored(inp, out, ['/front/image_raw', '/rear/image_raw/compressed'],
                    keep_input=False, mask=True)
    # An existing output is refused; --overwrite replaces it.
    assert main(args) == 2
    assert 'exists' in capsys.readouterr().err
    assert main(args + ['--overwrite', '--topics', '/front/image_raw']) == 0
    out_msgs, _ = read_bag(out)
    assert '/rear/image_restored' not in out_msgs and '/rear/image_raw/compressed' in out_msgs


def test_bad_frames_are_accounted_not_fatal(tmp_path, engine):
    inp = write_bag(tmp_path / 'in', 'sqlite3', bad=True)
    summary = restore_bag(inp, tmp_path / 'out', RestoreOptions(progress=False), engine=engine)
    front, rear = summary.accounting['/front/image_raw'], summary.accounting[
        '/rear/image_raw/compressed']
    assert (front.read, front.restored, front.copied) == (FRAMES + 3, FRAMES, FRAMES + 3)
    assert dict(front.skipped) == {'depth_image': 1, 'truncated': 1, 'undeserializable': 1}
    assert dict(rear.skipped) == {'corrupt': 1} and rear.restored == FRAMES
    assert '32FC1' in front.examples['depth_image']
    assert summary.ok and not summary.problems
    assert 'corrupt 1' in summary.accounting.table()
    data = json.loads(Path(summary.summary_path).read_text())
    assert data['topics']['/front/image_raw']['skipped_reasons']['truncated'] == 1


def test_prior_age_is_measured_on_the_bag_clock(tmp_path, engine):
    """Frames 1 s apart in bag time, written in no time: only the bag clock sees them age."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    with Writer(tmp_path / 'in', version=9, storage_plugin=StoragePlugin.MCAP) as w:
        c = w.add_connection('/cam/image_raw', IMAGE, typestore=STORE)
        for i in range(6):
            t = T0 + i * 10**9
            w.write(c, t, STORE.serialize_cdr(numpy_to_image(
                _frame(0), 'rgb8', header=_header(t, 'cam'), msg_type=T[IMAGE]), IMAGE))
    options = RestoreOptions(progress=False, engine=EngineSettings(refresh=RefreshPolicy(
        every_n_frames=0, max_age_s=2.5, scene_cut_threshold=0.0)))
    summary = restore_bag(tmp_path / 'in', tmp_path / 'out', options, engine=engine)
    # stored at t=0 (empty); ages 1, 2, then 3 >= 2.5 -> refresh at t=3; ages 1, 2.
    assert dict(summary.accounting['/cam/image_raw'].prior_refreshes) == {'empty': 1, 'age': 1}


def test_speckled_frames_are_written_guarded_and_counted(tmp_path, capsys):
    """``weather-restore bag`` with a model that sprays speckle (the provoked tiny one): every
    frame is written with the input where it speckled and counted as unsafe in the table and
    the JSON summary; ``--no-harm-guard`` writes the raw frames and counts none."""
    import torch
    from rosbags.rosbag2 import StoragePlugin, Writer
    from tiny_model import make_provoked_checkpoint, speckle_frame

    from weather_restore_ros import harm
    from weather_restore_ros.cli import main
    ckpt = make_provoked_checkpoint(tmp_path / 'blown.safetensors')
    frame = speckle_frame()
    with Writer(tmp_path / 'in', version=9, storage_plugin=StoragePlugin.MCAP) as w:
        c = w.add_connection('/cam/image_raw', IMAGE, typestore=STORE)
        for i in range(3):
            t = T0 + i * 10**8
            w.write(c, t, STORE.serialize_cdr(numpy_to_image(
                frame, 'rgb8', header=_header(t, 'cam'), msg_type=T[IMAGE]), IMAGE))

    def t_(a):
        return torch.from_numpy(np.array(a)).permute(2, 0, 1)[None]   # a writable copy

    for flag, unsafe in (([], 3), (['--no-harm-guard'], 0)):
        out = tmp_path / f'out{len(flag)}'
        assert main(['bag', str(tmp_path / 'in'), str(out), '--checkpoint', str(ckpt),
                     '--device', 'cpu', '--no-progress', *flag]) == 0
        table = capsys.readouterr().out
        head, *_, total = [line for line in table.splitlines() if line.strip()][:-1]
        assert head.split()[6:8] == ['invalid', 'unsafe']
        assert total.split()[1:7] == ['3', '3', '3', '0', '0', str(unsafe)], table
        data = json.loads(Path(f'{out}_summary.json').read_text())
        assert data['topics']['/cam/image_raw']['unsafe_output'] == unsafe
        assert data['model_failures'] == {'invalid_output': 0, 'unsafe_output': unsafe}
        images = [image_to_rgb(STORE.deserialize_cdr(raw, IMAGE))
                  for _, raw in read_bag(out)[0]['/cam/image_restored']]
        assert len(images) == 3
        for img in images:
            assert harm.harmed(t_(frame), t_(img)).item() == (not unsafe)
            if unsafe:
                assert (img[48:112, 80:144] == frame[48:112, 80:144]).all()


def test_output_refusals(tmp_path, engine):
    inp = write_bag(tmp_path / 'in', 'mcap')
    keep = tmp_path / 'precious'
    keep.mkdir()
    (keep / 'notes.txt').write_text('mine')
    with pytest.raises(BagError, match='not a rosbag2 folder'):
        restore_bag(inp, keep, RestoreOptions(progress=False, overwrite=True), engine=engine)
    assert (keep / 'notes.txt').read_text() == 'mine'
    with pytest.raises(BagError, match='overlaps the input'):
        restore_bag(inp, inp / 'sub', RestoreOptions(progress=False), engine=engine)
    with pytest.raises(BagError, match='no such bag'):
        restore_bag(tmp_path / 'missing', tmp_path / 'o', RestoreOptions(), engine=engine)
    with pytest.raises(TopicPlanError, match='not in the bag'):
        restore_bag(inp, tmp_path / 'o2', RestoreOptions(topics=['/nope'], progress=False),
                    engine=engine)
    assert not (tmp_path / 'o2').exists() and not (tmp_path / '.o2.partial').exists()


def test_topic_naming_and_plan():
    assert camera_namespace('/front/image_raw', IMAGE) == '/front'
    assert camera_namespace('/front/image_raw/compressed', COMPRESSED) == '/front'
    assert camera_namespace('/image_raw', IMAGE) == ''
    o = OutputTopics('/front')
    assert (o.image, o.weather, o.label, o.mask) == (
        '/front/image_restored', '/front/weather', '/front/weather/label',
        '/front/degradation_mask')
    assert OutputTopics('').image == '/image_restored'
    types = {'/a/image_raw': IMAGE, '/a/image_raw/compressed': COMPRESSED,
             '/b/image_raw/compressed': COMPRESSED, '/imu': 'sensor_msgs/msg/Imu',
             '/c/image_restored': IMAGE}
    plan = plan_topics(types)
    assert set(plan.restore) == {'/a/image_raw', '/b/image_raw/compressed'}
    assert '/a/image_raw/compressed' in plan.copy and '/c/image_restored' in plan.copy
    assert plan.notes and 'copied unchanged' in plan.notes[0]
    with pytest.raises(TopicPlanError, match='pick one'):
        plan_topics(types, ['/a/image_raw', '/a/image_raw/compressed'])
    with pytest.raises(TopicPlanError, match='not image topics'):
        plan_topics(types, ['/imu'])
    with pytest.raises(TopicPlanError, match='already exists'):
        plan_topics({'/c/image_raw': IMAGE, '/c/image_restored': IMAGE})


def test_accounting_mismatch_is_an_error():
    acc = Accounting()
    a = acc.add(TopicAccount('/x', STRING, 'copy', expected=3, read=3, copied=3))
    acc.check({'/x': 3})
    a.copied = 2
    with pytest.raises(AccountingError, match='copied 2'):
        acc.check()
    a.copied = 3
    with pytest.raises(AccountingError, match='wrote 1'):
        acc.check({'/x': 1})
    r = acc.add(TopicAccount('/c/image_raw', IMAGE, 'restore', expected=2, read=2, copied=2,
                             restored=1))
    r.outputs = {'/c/image_restored': 1}
    assert any('restored 1 + skipped 0 != read 2' in p for p in acc.problems())


def test_vision_msgs_type_hashes_match_upstream():
    assert STORE.hash_rihs01('vision_msgs/msg/Classification') == (
        'RIHS01_f74db28d0eaef3afb78f48bf2161cd709a1383a0309d3454383b25be11345143')
    assert STORE.hash_rihs01('vision_msgs/msg/LabelInfo') == (
        'RIHS01_3d37df4015cdf660cc851c51897f2acd957e1ca6205ba0a99aebffb9406b0783')


# ---------------------------------------------------------------------- offline == live
@pytest.mark.ros
def test_offline_labels_match_the_live_node(tmp_path, engine, tiny_checkpoint):
    """The same frames through ``bag`` and through the live node (refresh every frame, frames
    sent one at a time so the node never drops): identical weather labels per header stamp."""
    rclpy = pytest.importorskip('rclpy', exc_type=ImportError)
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter
    from ros_helpers import ros_context, spin_until

    from weather_restore_ros.rosbag.sample_bag import make_sample_bag
    from weather_restore_ros.ros.restore_node import RestoreNode

    info = make_sample_bag(tmp_path / 'in', seconds_per_segment=0.4, rate_hz=5.0,
                           size=(64, 48))
    options = RestoreOptions(progress=False, engine=EngineSettings(refresh=RefreshPolicy(
        every_n_frames=1, max_age_s=0.0, scene_cut_threshold=0.0)))
    restore_bag(info.path, tmp_path / 'out', options, engine=engine)
    out_msgs, _ = read_bag(tmp_path / 'out')
    offline, offline_scores, live_scores = {}, {}, {}
    for cam in info.topics:
        stamps = [_stamp(STORE.deserialize_cdr(raw, IMAGE))
                  for _, raw in out_msgs[f'/{cam}/image_restored']]
        labels = [STORE.deserialize_cdr(raw, STRING).data
                  for _, raw in out_msgs[f'/{cam}/weather/label']]
        offline.update({(cam, s): lab for s, lab in zip(stamps, labels)})
        for _, raw in out_msgs[f'/{cam}/weather']:
            w = STORE.deserialize_cdr(raw, 'vision_msgs/msg/Classification')
            offline_scores[(cam, _stamp(w))] = {h.class_id: h.score for h in w.results}
    assert len(offline) == 2 * info.frames_per_camera

    from sensor_msgs.msg import Image
    from std_msgs.msg import String
    try:
        from vision_msgs.msg import Classification
    except ImportError:
        Classification = None
    in_msgs, _ = read_bag(info.path)
    live = {}
    with ros_context() as ctx:
        node = RestoreNode(context=ctx, parameter_overrides=[
            Parameter('checkpoint', value=str(tiny_checkpoint)),
            Parameter('device', value='cpu'), Parameter('cameras', value=list(info.topics)),
            Parameter('input_qos', value='reliable'), Parameter('warmup', value=False),
            Parameter('prior.refresh_frames', value=1),
            Parameter('prior.refresh_seconds', value=0.0),
            Parameter('prior.scene_cut_threshold', value=0.0)])
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        node.trigger_activate()
        probe = rclpy.create_node('probe', context=ctx)
        executor = MultiThreadedExecutor(num_threads=2, context=ctx)
        executor.add_node(node)
        executor.add_node(probe)
        got = []
        pubs, subs = {}, []
        for cam, topic in info.topics.items():
            pubs[topic] = probe.create_publisher(Image, topic, 10)
            subs.append(probe.create_subscription(
                String, f'/{cam}/weather/label', lambda m, c=cam: got.append((c, m.data)), 10))
            if Classification is not None:
                probe.create_subscription(Classification, f'/{cam}/weather', lambda m, c=cam: (
                    live_scores.__setitem__((c, _stamp(m)), {
                        h.class_id: h.score for h in m.results})), 10)
        try:
            assert spin_until(executor, lambda: all(
                p.get_subscription_count() > 0 for p in pubs.values()) and all(
                s.get_publisher_count() > 0 for s in subs), timeout=15)
            frames = sorted((t, topic, raw) for topic in info.topics.values()
                            for t, raw in in_msgs[topic])
            for _, topic, raw in frames:
                cam = topic.split('/')[1]
                stamp = _stamp(STORE.deserialize_cdr(raw, IMAGE))
                n, m = len(got), len(live_scores)
                pubs[topic].publish(raw)
                assert spin_until(executor, lambda: len(got) > n and (
                    Classification is None or len(live_scores) > m), timeout=30)
                live[(cam, stamp)] = got[-1][1]
                assert got[-1][0] == cam
        finally:
            executor.shutdown(timeout_sec=2)
            node.trigger_deactivate()
            probe.destroy_node()
            node.destroy_node()
    assert live == offline
    if Classification is not None:
        assert live_scores.keys() == offline_scores.keys()
        for key, scores in offline_scores.items():
            assert scores == pytest.approx(live_scores[key], abs=1e-4), key


def _stamp(msg):
    return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
