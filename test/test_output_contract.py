"""The output contract: one description of what the package publishes, used by the node and the
bag tool, and the check that the bag writes what the node publishes, field by field.

The names and the builder are checked without ROS; the last test runs the same frames through
the live node and through ``weather-restore bag`` (one engine, so one set of weights and one
thread setting) and compares every output message field by field, and every output topic's type
and offered QoS as the ROS graph reports them.
"""
import dataclasses
import hashlib

import numpy as np
import pytest

from weather_restore_ros.output_contract import (CLASSIFICATION, IMAGE, LABEL_INFO, OUTPUTS,
                                                 STRING, VISION_TYPES, OutputTopics,
                                                 frame_messages, image_messages, label_info)
from weather_restore_ros.rosbag.typestore import get_store

STORE = get_store()


def test_topic_names_for_the_node_and_for_a_bag():
    front = OutputTopics.for_camera('front')
    assert (front.image, front.label_info) == ('front/image_restored', 'front/weather/label_info')
    own = OutputTopics.for_camera('')          # the camera in the node's own namespace
    assert (own.image, own.compressed, own.mask) == (
        'image_restored', 'image_restored/compressed', 'degradation_mask')
    assert OutputTopics('/front').weather == '/front/weather'
    assert OutputTopics('').label == '/weather/label'
    assert set(front.outputs()) == {'front/image_restored', 'front/weather', 'front/weather/label',
                                    'front/weather/label_info'}
    assert set(front.outputs(mask=True, compressed=True)) - set(front.outputs()) == {
        'front/degradation_mask', 'front/image_restored/compressed'}
    untyped = front.outputs(mask=True, typed=False)
    assert {o.msgtype for o in untyped.values()}.isdisjoint(VISION_TYPES)
    assert 'front/weather/label' in untyped
    assert OUTPUTS['label_info'].qos.transient_local and OUTPUTS['label_info'].qos.depth == 1
    assert all(o.qos.reliable and not o.qos.transient_local and o.qos.depth == 5
               for k, o in OUTPUTS.items() if k != 'label_info')


@pytest.fixture(scope='module')
def result(tiny_checkpoint):
    """A real RestoreResult: the tiny model's forward pass on a 48x64 frame."""
    from weather_restore_ros.engine import RestorationEngine
    engine = RestorationEngine.from_checkpoint(str(tiny_checkpoint), device='cpu', warmup=False)
    rng = np.random.default_rng(3)
    return engine, engine.restore(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))


def test_frame_messages_carry_the_header_and_the_result(result):
    engine, r = result
    T = STORE.types
    header = T['std_msgs/msg/Header'](stamp=T['builtin_interfaces/msg/Time'](sec=5, nanosec=7),
                                      frame_id='cam')
    msgs = frame_messages(T, header, r, 'bgr8', mask=True, compressed=True)
    assert list(msgs) == ['image', 'compressed', 'mask', 'weather', 'label']
    assert all(m.header is header for k, m in msgs.items() if k != 'label')
    image = msgs['image']
    assert (image.encoding, image.height, image.width) == ('bgr8', 48, 64)
    np.testing.assert_array_equal(image.data.reshape(48, 64, 3), r.image[..., ::-1])
    np.testing.assert_array_equal(msgs['mask'].data.reshape(48, 64), r.mask)
    scores = [(h.class_id, h.score) for h in msgs['weather'].results]
    assert scores == sorted(r.scores.items(), key=lambda kv: kv[1], reverse=True)
    assert msgs['label'].data == r.label == scores[0][0]
    for key, msg in msgs.items():   # every message serializes as its declared type
        STORE.serialize_cdr(msg, OUTPUTS[key].msgtype)
    without_vision = {k: v for k, v in T.items() if k not in VISION_TYPES}
    assert set(frame_messages(without_vision, header, r, 'rgb8')) == {'image', 'label'}
    assert set(image_messages(T, header, r.image, 'rgb8', compressed=True)) == {
        'image', 'compressed'}
    info = label_info(T, header, engine.class_names)
    assert [(c.class_id, c.class_name) for c in info.class_map] == list(
        enumerate(engine.class_names))
    STORE.serialize_cdr(info, LABEL_INFO)


# ------------------------------------------------------------------ live node == bag
def read_bag(path):
    """{topic: [(timestamp, bytes)]}, {topic: connection} of a bag."""
    from rosbags.rosbag2 import Reader
    msgs, conns = {}, {}
    with Reader(path) as r:
        conns = {c.topic: c for c in r.connections}
        for c, t, raw in r.messages():
            msgs.setdefault(c.topic, []).append((t, bytes(raw)))
    return msgs, conns


def fields(msg, name=''):
    """A message as {dotted field name: value}; arrays as (dtype, length, sha256)."""
    if dataclasses.is_dataclass(msg):
        out = {}
        for f in dataclasses.fields(msg):
            out.update(fields(getattr(msg, f.name), f'{name}{f.name}.'))
        return out
    if isinstance(msg, np.ndarray):
        return {name[:-1]: (msg.dtype.str, msg.size, hashlib.sha256(msg.tobytes()).hexdigest())}
    if isinstance(msg, list):
        out = {f'{name}len': len(msg)}
        for i, m in enumerate(msg):
            out.update(fields(m, f'{name}{i}.'))
        return out
    return {name[:-1]: msg}


@pytest.mark.ros
def test_the_bag_writes_what_the_node_publishes(tmp_path, tiny_checkpoint, one_torch_thread):
    """Same frames, same engine: every output of the live node (received as CDR bytes) equals
    the bag's, field by field; same topics, types and offered QoS. One camera, frames sent one
    at a time: the bag and the node then both restore one frame per forward pass (a batch of
    two cameras can round differently), and the node never drops one. The prior's wall-clock
    refresh is off (the bag measures age on the bag clock); frame-count refreshes and scene cuts
    are on, so the prior cache is exercised. LabelInfo's header differs by design: the node
    publishes it at configure (stamp = now, no frame yet), the bag with its first frame's header.
    """
    pytest.importorskip('rclpy', exc_type=ImportError)
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from ros_helpers import ros_context, spin_until
    from sensor_msgs.msg import Image

    from weather_restore_ros.ros import publishers
    from weather_restore_ros.ros.restore_node import RestoreNode
    from weather_restore_ros.rosbag.restore_bag import RestoreOptions, restore_bag
    from weather_restore_ros.rosbag.sample_bag import make_sample_bag

    if not all(t in publishers.MESSAGE_CLASSES for t in VISION_TYPES):
        pytest.skip('vision_msgs is not importable (tools/build_test_msgs.sh .venv)')

    info = make_sample_bag(tmp_path / 'in', cameras={'front': 'china'},
                           seconds_per_segment=0.4, rate_hz=5.0, size=(64, 48))
    in_msgs, _ = read_bag(info.path)
    frames = in_msgs['/front/image_raw']
    ns = '/contract'
    with ros_context() as ctx:
        node = RestoreNode(context=ctx, namespace=ns, parameter_overrides=[
            Parameter(k, value=v) for k, v in {
                'checkpoint': str(tiny_checkpoint), 'device': 'cpu', 'warmup': False,
                'cameras': ['front'], 'input_qos': 'reliable', 'publish_mask': True,
                'publish_compressed': True, 'prior.refresh_frames': 3,
                'prior.refresh_seconds': 0.0}.items()])
        probe = executor = None
        try:
            assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
            summary = restore_bag(info.path, tmp_path / 'out', RestoreOptions(
                progress=False, mask=True, compressed=True, engine=node.engine.settings),
                engine=node.engine)   # the node's settings; its streams are forgotten after
            assert summary.ok
            out_msgs, out_conns = read_bag(tmp_path / 'out')
            outputs = {t: c for t, c in out_conns.items() if t != '/front/image_raw'}
            assert set(outputs) == set(OutputTopics('/front').outputs(mask=True, compressed=True))

            node.trigger_activate()
            probe = Node('probe', context=ctx)
            executor = SingleThreadedExecutor(context=ctx)
            executor.add_node(node)
            executor.add_node(probe)
            live: dict[str, list[bytes]] = {t: [] for t in outputs}
            subs = [probe.create_subscription(
                publishers.MESSAGE_CLASSES[c.msgtype], ns + t,
                lambda raw, t=t: live[t].append(bytes(raw)),
                QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                           durability=publishers.qos_profile(
                               OUTPUTS['label_info' if c.msgtype == LABEL_INFO else 'image']
                               .qos).durability), raw=True)
                for t, c in outputs.items()]
            pub = probe.create_publisher(Image, f'{ns}/front/image_raw', 10)
            assert spin_until(executor, lambda: pub.get_subscription_count() > 0 and all(
                s.get_publisher_count() > 0 for s in subs), timeout=15)
            per_frame = [t for t in outputs if out_conns[t].msgtype != LABEL_INFO]
            for k, (_, raw) in enumerate(frames):
                pub.publish(raw)
                assert spin_until(executor, lambda: all(len(live[t]) > k for t in per_frame),
                                  timeout=30), f'frame {k}: no output on some topic'
            assert spin_until(executor, lambda: live['/front/weather/label_info'], timeout=5)

            made = {pub.topic_name: pub.qos_profile
                    for pub in node.cameras['front'].outputs.publishers.values()}
            for t, conn in outputs.items():
                # type, reliability and durability as the graph reports them (discovery does
                # not carry history and depth: those from the node's publisher)
                [endpoint] = probe.get_publishers_info_by_topic(ns + t)
                graph, q = endpoint.qos_profile, conn.ext.offered_qos_profiles[0]
                assert (endpoint.topic_type, graph.reliability.name, graph.durability.name,
                        made[ns + t].history.name, made[ns + t].depth) == (
                    conn.msgtype, q.reliability.name, q.durability.name, q.history.name,
                    q.depth), t
        finally:
            if executor is not None:
                executor.shutdown(timeout_sec=2)
            node.trigger_deactivate()
            if probe is not None:
                probe.destroy_node()
            node.destroy_node()

    for t, conn in outputs.items():
        bag = [fields(STORE.deserialize_cdr(raw, conn.msgtype)) for _, raw in out_msgs[t]]
        got = [fields(STORE.deserialize_cdr(raw, conn.msgtype)) for raw in live[t]]
        if conn.msgtype == LABEL_INFO:   # see the docstring: compare all but the header
            bag, got = ([{k: v for k, v in m.items() if not k.startswith('header.')}
                         for m in ms] for ms in (bag, got[:1]))
        assert len(got) == len(bag) == (1 if conn.msgtype == LABEL_INFO else len(frames)), t
        for i, (a, b) in enumerate(zip(got, bag)):
            assert a == b, f'{t} message {i}: ' + ', '.join(
                f'{k}: node {a.get(k)!r} bag {b.get(k)!r}' for k in sorted(set(a) | set(b))
                if a.get(k) != b.get(k))
    assert {IMAGE, CLASSIFICATION, STRING} <= {c.msgtype for c in outputs.values()}
