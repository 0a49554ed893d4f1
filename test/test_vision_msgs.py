"""vision_msgs through real rclpy: Classification and LabelInfo publisher -> subscriber.

Where vision_msgs has no wheel (PyPI ROS wheels), it is built by
``tools/build_test_msgs.sh .venv`` (make setup); on a ROS 2 install it comes from the distro.
"""
import pytest

from ros_helpers import collect, ros_context, ros_node, spin_until, wait_for_subscribers

pytest.importorskip('rclpy', reason='rclpy is not installed (pip install -e ".[ros-wheels]")',
                    exc_type=ImportError)
pytest.importorskip(
    'vision_msgs.msg',
    reason='vision_msgs is not importable: run tools/build_test_msgs.sh .venv '
           '(or apt-get install ros-$ROS_DISTRO-vision-msgs on a ROS 2 install)',
    exc_type=ImportError)

from builtin_interfaces.msg import Time  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from vision_msgs.msg import (  # noqa: E402
    Classification, LabelInfo, ObjectHypothesis, VisionClass)

pytestmark = pytest.mark.ros

CLASSES = ('clear', 'rain', 'snow', 'fog', 'raindrop')

# RIHS01 type hashes of upstream ros-perception/vision_msgs 4.x (ros2 branch). Equal hashes
# mean the locally built package interoperates with nodes and bags using the real one.
UPSTREAM_TYPE_HASH = {
    'vision_msgs/msg/Classification':
        'RIHS01_f74db28d0eaef3afb78f48bf2161cd709a1383a0309d3454383b25be11345143',
    'vision_msgs/msg/LabelInfo':
        'RIHS01_3d37df4015cdf660cc851c51897f2acd957e1ca6205ba0a99aebffb9406b0783',
}


def _roundtrip(msg_type, topic, outgoing):
    """Publish ``outgoing`` and receive it through DDS in the same process; return the
    received message and the type hash the publisher advertises."""
    with ros_context() as ctx, ros_node('vision_msgs_probe', ctx) as (node, executor):
        received = collect(node, msg_type, topic)
        pub = node.create_publisher(msg_type, topic, 10)
        assert wait_for_subscribers(executor, pub), f'no subscriber matched on {topic}'

        def arrived():
            if not received:  # re-publish: the first sample may race the reader's matching
                pub.publish(outgoing)
            return bool(received)

        assert spin_until(executor, arrived, timeout=10.0, step=0.1), f'nothing on {topic}'
        info = node.get_publishers_info_by_topic(topic)
        return received[0], str(info[0].topic_type_hash)


def test_classification_roundtrip():
    out = Classification(
        header=Header(stamp=Time(sec=12, nanosec=345), frame_id='front_camera'),
        results=[ObjectHypothesis(class_id=name, score=score)
                 for name, score in zip(CLASSES, (0.05, 0.7, 0.1, 0.1, 0.05))])
    got, type_hash = _roundtrip(Classification, 'weather/classification', out)

    assert got.header.frame_id == 'front_camera'
    assert (got.header.stamp.sec, got.header.stamp.nanosec) == (12, 345)
    assert [h.class_id for h in got.results] == list(CLASSES)
    assert [h.score for h in got.results] == pytest.approx([0.05, 0.7, 0.1, 0.1, 0.05])
    assert got == out
    assert type_hash == UPSTREAM_TYPE_HASH['vision_msgs/msg/Classification']


def test_label_info_roundtrip():
    out = LabelInfo(
        header=Header(frame_id='front_camera'),
        class_map=[VisionClass(class_id=i, class_name=name) for i, name in enumerate(CLASSES)],
        threshold=0.25)
    got, type_hash = _roundtrip(LabelInfo, 'weather/label_info', out)

    assert got.header.frame_id == 'front_camera'
    assert [(c.class_id, c.class_name) for c in got.class_map] == list(enumerate(CLASSES))
    assert got.threshold == pytest.approx(0.25)
    assert got == out
    assert type_hash == UPSTREAM_TYPE_HASH['vision_msgs/msg/LabelInfo']


def test_field_types_match_upstream():
    """Field names and types of the four messages (vision_msgs >= 4.1)."""
    assert ObjectHypothesis.get_fields_and_field_types() == {
        'class_id': 'string', 'score': 'double'}
    assert Classification.get_fields_and_field_types() == {
        'header': 'std_msgs/Header', 'results': 'sequence<vision_msgs/ObjectHypothesis>'}
    assert VisionClass.get_fields_and_field_types() == {
        'class_id': 'uint16', 'class_name': 'string'}
    assert LabelInfo.get_fields_and_field_types() == {
        'header': 'std_msgs/Header', 'class_map': 'sequence<vision_msgs/VisionClass>',
        'threshold': 'float'}
