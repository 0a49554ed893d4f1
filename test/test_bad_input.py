"""The bad-input matrix (test/bad_inputs.py) through the live node and through
``weather-restore bag``: each kind is refused with its counted reason or restored with its
counted warning/conversion, the node stays alive and restores the next good frame, and the bag
accounts for every message. The same serialized bytes go to both.

Memory is bounded by construction, not by luck: nothing queues (the node keeps one pending
frame per camera, test_node's flood test), and a header announcing a huge image is refused
from its size before anything is decoded (test_frame_input checks the decoder is never
called; here the reasons say the same: ``oversized``/``size_overflow``, not ``truncated``).
"""
from collections import Counter

import pytest

from bad_inputs import CASES, H, STORE, W, good_compressed, good_raw, header
from weather_restore_ros.imaging import output_encoding


def _expected_output(case, msg) -> tuple[str, int, int]:
    """(encoding, height, width) of image_restored for a restored message of ``case``."""
    if case.transport == 'compressed':
        return output_encoding('bgr8'), H, W
    return output_encoding(msg.encoding), msg.height, msg.width


def _same(a, b) -> bool:
    return (a.stamp.sec, a.stamp.nanosec, a.frame_id) == (b.stamp.sec, b.stamp.nanosec,
                                                           b.frame_id)


def _counts_grew(before: dict, after: dict, expected) -> bool:
    return all(after.get(k, 0) - before.get(k, 0) >= n for k, n in Counter(expected).items())


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
        for transport, msg_type, topic in (('raw', Image, 'image_raw'),
                                           ('compressed', CompressedImage,
                                            'image_raw/compressed')):
            rig = Rig(ctx, tiny_checkpoint, f'/bad_{transport}',
                      input_transport=transport).start()
            out[transport] = (rig, rig.publisher(msg_type, topic, qos_profile_sensor_data),
                              rig.collect(Image, 'image_restored'), msg_type)
        try:
            yield out
        finally:
            for rig, *_ in out.values():
                rig.close()


_fed: set[str] = set()


def _feed(rigs, case) -> None:
    """Send every message of ``case`` (then a good frame) to its node and check what
    happened; once per case per run (the diagnostics test reuses what the others fed)."""
    from rclpy.serialization import deserialize_message
    from std_msgs.msg import Header
    from weather_restore_ros import imaging
    from ros_helpers import pattern_image

    if case.kind in _fed:
        return
    rig, pub, images, msg_type = rigs[case.transport]
    before = rig.stats()
    for data in case.messages:
        msg = deserialize_message(data, msg_type)   # rclpy reads even the non-UTF-8 encoding
        if case.reason:
            done = (lambda: rig.stats()['bad_input'].get(case.reason, 0)
                    > before['bad_input'].get(case.reason, 0))
            assert rig.send_until(pub, data, done), f'{case.kind}: {case.reason} not counted'
            continue
        seen = len(images)   # a new output: this run's, not one left from an earlier try
        assert rig.send_until(pub, data, lambda: any(_same(m.header, msg.header)
                                                     for m in images[seen:])), f'{case.kind}'
        out = next(m for m in images[seen:] if _same(m.header, msg.header))  # header copied
        assert (out.encoding, out.height, out.width) == _expected_output(case, msg)
    after = rig.stats()
    assert _counts_grew(before['input_warnings'], after['input_warnings'], case.warnings)
    assert _counts_grew(before['conversions'], after['conversions'], case.conversions)
    if case.reason:
        assert any('skipped a frame' in t for t in rig.log.texts('warning'))
    if case.warnings:
        assert any(w in t for t in rig.log.texts('warning') for w in case.warnings)
    # Alive, and the next good frame is restored.
    head = Header(frame_id='good')
    head.stamp.sec, head.stamp.nanosec = header().stamp.sec, 1
    rgb = pattern_image(H, W, 3, seed=len(_fed))
    good = (imaging.numpy_to_image(rgb, 'rgb8', header=head) if case.transport == 'raw'
            else imaging.rgb_to_compressed(rgb, header=head))
    published = rig.stats()['published']
    assert rig.send_until(pub, good, lambda: any(_same(m.header, head) for m in images)), \
        f'{case.kind}: the good frame after it was not restored'
    # counted right after the publish, on the node's thread: wait for it
    assert rig.spin_until(lambda: rig.stats()['published'] > published, 2.0)
    assert rig.node._worker.is_alive()
    _fed.add(case.kind)


@pytest.mark.ros
@pytest.mark.parametrize('case', CASES, ids=lambda c: c.kind)
def test_node_counts_each_kind_and_restores_the_next_good_frame(rigs, case):
    _feed(rigs, case)


@pytest.mark.ros
def test_node_diagnostics_name_every_kind(rigs):
    """/diagnostics carries a counter per reason, warning and conversion seen."""
    from node_rig import diag, values
    for case in CASES:
        _feed(rigs, case)
    for transport, (rig, *_) in rigs.items():
        cases = [c for c in CASES if c.transport == transport]
        keys = ({f'bad_input.{c.reason}' for c in cases if c.reason}
                | {f'input_warning.{w}' for c in cases for w in c.warnings}
                | {f'converted.{k}' for c in cases for k in c.conversions})
        status = diag(rig, 'default', lambda s: keys <= set(values(s)))
        assert all(int(values(status)[k]) >= 1 for k in keys)


# ------------------------------------------------------------------ weather-restore bag
def _topic(case) -> str:
    return f'/{case.kind}/image_raw' + ('/compressed' if case.transport == 'compressed' else '')


@pytest.fixture(scope='module')
def bag_run(tmp_path_factory, tiny_checkpoint):
    """One bag, one topic per kind: its messages, then a good frame; restored once."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    from weather_restore_ros.engine import RestorationEngine
    from weather_restore_ros.rosbag.restore_bag import RestoreOptions, restore_bag
    from test_bag import read_bag

    root = tmp_path_factory.mktemp('badbag')
    goods, t = {}, 10**18
    with Writer(root / 'in', version=9, storage_plugin=StoragePlugin.MCAP) as w:
        for case in CASES:
            conn = w.add_connection(_topic(case), case.msgtype, typestore=STORE)
            for data in case.messages:
                t += 10**7
                w.write(conn, t, data)
            goods[case.kind] = header('good')
            good = (good_raw if case.transport == 'raw' else good_compressed)(goods[case.kind])
            t += 10**7
            w.write(conn, t, good)
    engine = RestorationEngine.from_checkpoint(str(tiny_checkpoint), device='cpu', warmup=False)
    summary = restore_bag(root / 'in', root / 'out', RestoreOptions(progress=False),
                          engine=engine)
    return summary, read_bag(root / 'out')[0], goods


@pytest.mark.parametrize('case', CASES, ids=lambda c: c.kind)
def test_bag_accounts_for_each_kind_and_restores_the_next_good_frame(bag_run, case):
    from bad_inputs import IMAGE
    summary, out_msgs, goods = bag_run
    assert summary.ok, summary.problems
    acc = summary.accounting[_topic(case)]
    n = len(case.messages)
    assert acc.read == n + 1
    if case.reason:
        assert dict(acc.skipped) == {case.bag_reason or case.reason: n}
        assert acc.restored == 1
    else:
        assert not acc.skipped and acc.restored == n + 1
    assert not Counter(case.warnings) - acc.input_warnings
    extra = acc.input_warnings - Counter(case.warnings)   # the good frame may change the format
    assert extra in (Counter(), Counter({'format_changed': 1})), extra
    assert acc.conversions == Counter(case.conversions)
    images = [STORE.deserialize_cdr(raw, IMAGE)
              for _, raw in out_msgs[f'/{case.kind}/image_restored']]
    assert _same(images[-1].header, goods[case.kind])                 # the good frame, last
    restored = [STORE.deserialize_cdr(d, case.msgtype) for d in case.messages
                if not case.reason]
    for msg, img in zip(restored, images):
        assert _same(img.header, msg.header)
        assert (img.encoding, img.height, img.width) == _expected_output(case, msg)
