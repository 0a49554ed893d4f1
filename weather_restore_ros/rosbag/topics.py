"""Which topics of a bag are restored, and into which names: the offline ``bag`` command, the
demo and the tests.

The offline tool writes exactly the topics a live node would publish for the same camera
(``output_contract.OutputTopics``), so a restored bag and a recording of a live run are
interchangeable downstream:

    <ns>/image_raw               (sensor_msgs/Image)           -> <ns>/image_restored
    <ns>/image_raw/compressed    (sensor_msgs/CompressedImage) -> <ns>/image_restored
    and, per camera, <ns>/weather (vision_msgs/Classification), <ns>/weather/label
    (std_msgs/String), <ns>/weather/label_info (LabelInfo, once), <ns>/degradation_mask (--mask)
    and <ns>/image_restored/compressed (--compressed).

``<ns>`` is the image topic's parent (after dropping ``/compressed`` from a CompressedImage
topic): ``/front/image_raw`` -> ``/front``, ``/image_raw`` -> '' (a camera in the root
namespace). Other image names follow the same rule (``/cam/image_rect`` -> ``/cam``), which is
what a node in namespace ``/cam`` remapped to that input would publish. No rclpy here.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..output_contract import COMPRESSED_IMAGE, IMAGE, OUTPUTS, OutputTopics, QosSpec

IMAGE_TYPES = (IMAGE, COMPRESSED_IMAGE)
# Image names the node publishes: a topic ending in one of these is an output, never picked as
# an input by default (restoring a restored stream is not what anyone means).
OUTPUT_LEAVES = tuple(o.leaf for o in OUTPUTS.values() if o.msgtype in IMAGE_TYPES)


class TopicPlanError(ValueError):
    """Topic selection that cannot be written without ambiguity; the message says how to fix."""


def camera_namespace(topic: str, msgtype: str) -> str:
    """'/front/image_raw' -> '/front'; '/front/image_raw/compressed' -> '/front'; '/x' -> ''."""
    t = topic.rstrip('/')
    if msgtype == COMPRESSED_IMAGE and t.endswith('/compressed'):
        t = t[:-len('/compressed')]
    return t.rpartition('/')[0]


def camera_name(namespace: str) -> str:
    """The node's ``cameras`` entry for a namespace ('/front' -> 'front', '' -> '')."""
    return namespace.strip('/')


def output_topics(topic: str, msgtype: str) -> OutputTopics:
    return OutputTopics(camera_namespace(topic, msgtype))


def _rank(topic: str, msgtype: str) -> int:
    """Which input of one camera wins by default: raw image_raw, then its compressed form."""
    leaf = topic.rstrip('/')
    if msgtype == IMAGE and leaf.endswith('/image_raw'):
        return 0
    if msgtype == COMPRESSED_IMAGE and leaf.endswith('/image_raw/compressed'):
        return 1
    return 2 if msgtype == IMAGE else 3


def is_output_topic(topic: str) -> bool:
    t = topic.rstrip('/')
    return any(t == leaf or t.endswith('/' + leaf) for leaf in OUTPUT_LEAVES)


@dataclass
class TopicPlan:
    """Which input topics are restored (topic -> OutputTopics) and which are copied."""

    restore: dict[str, OutputTopics] = field(default_factory=dict)
    copy: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def plan_topics(topic_types: dict[str, str], selected: list[str] | None = None, *,
                mask: bool = False, compressed: bool = False) -> TopicPlan:
    """Decide the fate of every input topic.

    topic_types: input topic -> message type. selected: the ``--topics`` list (None = every
    image topic that is not itself an output). Two inputs of one camera (``image_raw`` and
    ``image_raw/compressed`` recorded side by side) would write the same outputs: by default
    the raw one is restored and the other copied (a note says so); asked for explicitly, it is
    an error. An output name that already exists in the input is an error too, because the bag
    would then hold two different streams under one name.
    """
    plan = TopicPlan()
    if selected is not None:
        unknown = [t for t in selected if t not in topic_types]
        if unknown:
            raise TopicPlanError(f'topics not in the bag: {", ".join(unknown)}')
        wrong = [t for t in selected if topic_types[t] not in IMAGE_TYPES]
        if wrong:
            raise TopicPlanError('not image topics (sensor_msgs/Image or CompressedImage): '
                                 + ', '.join(f'{t} ({topic_types[t]})' for t in wrong))
        candidates = list(dict.fromkeys(selected))
    else:
        candidates = [t for t, ty in topic_types.items()
                      if ty in IMAGE_TYPES and not is_output_topic(t)]
    by_ns: dict[str, list[str]] = {}
    for t in candidates:
        by_ns.setdefault(camera_namespace(t, topic_types[t]), []).append(t)
    for ns, topics in by_ns.items():
        topics.sort(key=lambda t: (_rank(t, topic_types[t]), t))
        if len(topics) > 1:
            if selected is not None:
                raise TopicPlanError(
                    f'{", ".join(topics)} would all be restored into {ns}/image_restored; '
                    'pick one of them with --topics')
            plan.notes.append(f'{ns or "/"}: restoring {topics[0]}; '
                              f'{", ".join(topics[1:])} copied unchanged (same camera)')
        plan.restore[topics[0]] = OutputTopics(ns)
    plan.copy = [t for t in topic_types if t not in plan.restore]
    for src, out in plan.restore.items():
        for t in out.all(mask=mask, compressed=compressed):
            if t in topic_types:
                raise TopicPlanError(
                    f'output topic {t} (from {src}) already exists in the input bag: was it '
                    'recorded with the node running, or restored before? Restore the original '
                    'recording instead')
    return plan


def offered_qos(spec: QosSpec) -> list:
    """A publisher QoS as the rosbags offered-QoS profiles a bag records (``metadata.yaml``), so
    a replay offers what the live publisher did: the node's outputs (``output_contract``:
    reliable KEEP_LAST(5) volatile; LabelInfo latched, depth 1) or a camera driver's."""
    from rosbags.interfaces import (Qos, QosDurability, QosHistory, QosLiveliness,
                                    QosReliability, QosTime)

    zero = QosTime(sec=0, nsec=0)
    return [Qos(history=QosHistory.KEEP_LAST, depth=spec.depth,
                reliability=(QosReliability.RELIABLE if spec.reliable
                             else QosReliability.BEST_EFFORT),
                durability=(QosDurability.TRANSIENT_LOCAL if spec.transient_local
                            else QosDurability.VOLATILE),
                deadline=zero, lifespan=zero, liveliness=QosLiveliness.AUTOMATIC,
                liveliness_lease_duration=zero, avoid_ros_namespace_conventions=False)]
