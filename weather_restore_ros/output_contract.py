"""What the package publishes for a camera: topic names, message types, QoS, and the messages of
one restored frame. The one description the live node (``ros/``) and the offline bag tool
(``rosbag/``) both build from, so "the bag writes what the node publishes" holds by
construction rather than by keeping two copies alike.

Per camera namespace ``<ns>`` (relative names in the node, resolved in its namespace)::

    <ns>/image_restored             sensor_msgs/Image            every frame
    <ns>/image_restored/compressed  sensor_msgs/CompressedImage  with compressed (JPEG)
    <ns>/degradation_mask           sensor_msgs/Image (mono8)    with mask
    <ns>/weather                    vision_msgs/Classification   every frame (with vision_msgs)
    <ns>/weather/label              std_msgs/String              every frame
    <ns>/weather/label_info         vision_msgs/LabelInfo        once, latched

No rclpy and no rosbags here: message classes come in as a table (message type name -> class:
rclpy's, or a rosbags typestore's ``types``), and QoS is plain data (:class:`QosSpec`) that
``ros/`` turns into an rclpy ``QoSProfile`` and ``rosbag/`` into the offered-QoS profiles a bag
records. Messages are built with keyword arguments only, which both libraries accept.
"""
from __future__ import annotations

from dataclasses import dataclass

from .imaging import numpy_to_image, output_image, rgb_to_compressed

IMAGE = 'sensor_msgs/msg/Image'
COMPRESSED_IMAGE = 'sensor_msgs/msg/CompressedImage'
STRING = 'std_msgs/msg/String'
HEADER = 'std_msgs/msg/Header'
CLASSIFICATION = 'vision_msgs/msg/Classification'
OBJECT_HYPOTHESIS = 'vision_msgs/msg/ObjectHypothesis'
LABEL_INFO = 'vision_msgs/msg/LabelInfo'
VISION_CLASS = 'vision_msgs/msg/VisionClass'
#: Types only vision_msgs provides; without them the node publishes weather/label only.
VISION_TYPES = (CLASSIFICATION, OBJECT_HYPOTHESIS, LABEL_INFO, VISION_CLASS)


@dataclass(frozen=True)
class QosSpec:
    """A publisher's QoS as data: history is always KEEP_LAST ``depth``."""

    depth: int
    reliable: bool = True
    transient_local: bool = False


#: Per-frame outputs: reliable (REP-2003: perception outputs are "system default"), volatile.
STREAM_QOS = QosSpec(depth=5)
#: The class names: latched, so a subscriber that joins late still gets them.
LATCHED_QOS = QosSpec(depth=1, transient_local=True)


@dataclass(frozen=True)
class Output:
    key: str              # the builder's and OutputTopics' name for it
    leaf: str             # topic name below the camera namespace
    msgtype: str
    qos: QosSpec
    option: str = ''      # '' always; 'mask' / 'compressed': only when that output is asked for


OUTPUTS = {o.key: o for o in (
    Output('image', 'image_restored', IMAGE, STREAM_QOS),
    Output('weather', 'weather', CLASSIFICATION, STREAM_QOS),
    Output('label', 'weather/label', STRING, STREAM_QOS),
    Output('label_info', 'weather/label_info', LABEL_INFO, LATCHED_QOS),
    Output('mask', 'degradation_mask', IMAGE, STREAM_QOS, option='mask'),
    Output('compressed', 'image_restored/compressed', COMPRESSED_IMAGE, STREAM_QOS,
           option='compressed'),
)}


@dataclass(frozen=True)
class OutputTopics:
    """The output topic names of one camera.

    ``OutputTopics('/front')`` names them as a bag or a graph sees them (``/front/weather``;
    ``''`` is the root namespace: ``/weather``); :meth:`for_camera` gives the relative names
    the node creates for an entry of its ``cameras`` parameter (``front/weather``, or
    ``weather`` for the camera in the node's own namespace).
    """

    namespace: str
    relative: bool = False

    @classmethod
    def for_camera(cls, camera: str) -> OutputTopics:
        return cls(camera.strip('/'), relative=True)

    def topic(self, key: str) -> str:
        leaf = OUTPUTS[key].leaf
        return leaf if self.relative and not self.namespace else f'{self.namespace}/{leaf}'

    image = property(lambda self: self.topic('image'))
    compressed = property(lambda self: self.topic('compressed'))
    mask = property(lambda self: self.topic('mask'))
    weather = property(lambda self: self.topic('weather'))
    label = property(lambda self: self.topic('label'))
    label_info = property(lambda self: self.topic('label_info'))

    def outputs(self, mask: bool = False, compressed: bool = False,
                typed: bool = True) -> dict[str, Output]:
        """topic -> Output of every output published with these options; ``typed``: whether
        vision_msgs is available (else no weather, no weather/label_info)."""
        wanted = {'': True, 'mask': mask, 'compressed': compressed}
        return {self.topic(k): o for k, o in OUTPUTS.items()
                if wanted[o.option] and (typed or o.msgtype not in VISION_TYPES)}

    def all(self, mask: bool = False, compressed: bool = False) -> dict[str, str]:
        """topic -> message type of every output written with these options."""
        return {t: o.msgtype for t, o in self.outputs(mask, compressed).items()}


def has_vision_msgs(types) -> bool:
    return all(t in types for t in VISION_TYPES)


def image_messages(types, header, rgb, encoding: str, *, output_encoding: str = 'same',
                   compressed: bool = False, jpeg_quality: int = 90, source=None) -> dict:
    """``image`` (and ``compressed``) for a frame that arrived in ``encoding``; the image is
    in ``imaging.output_encoding(encoding, output_encoding)`` on every path. ``source``: the
    input message, passed through where it already is that encoding (restoration off)."""
    out = {'image': output_image(rgb, encoding, output_encoding, header=header,
                                 msg_type=types[IMAGE], source=source)}
    if compressed:
        out['compressed'] = rgb_to_compressed(rgb, 'jpeg', quality=jpeg_quality, header=header,
                                              msg_type=types[COMPRESSED_IMAGE])
    return out


def frame_messages(types, header, result, encoding: str, *, output_encoding: str = 'same',
                   mask: bool = False, compressed: bool = False,
                   jpeg_quality: int = 90) -> dict:
    """Output key -> message for one restored frame (an ``engine.RestoreResult``), every one
    carrying ``header`` unchanged: image, [compressed], [mask], [weather], label. ``weather``
    is there when ``types`` has vision_msgs; it lists every class with its score, best first."""
    out = image_messages(types, header, result.image, encoding,
                         output_encoding=output_encoding, compressed=compressed,
                         jpeg_quality=jpeg_quality)
    if mask and result.mask is not None:
        out['mask'] = numpy_to_image(result.mask, 'mono8', header=header, msg_type=types[IMAGE])
    if has_vision_msgs(types):
        ranked = sorted(result.scores.items(), key=lambda kv: kv[1], reverse=True)
        out['weather'] = types[CLASSIFICATION](header=header, results=[
            types[OBJECT_HYPOTHESIS](class_id=c, score=float(s)) for c, s in ranked])
    out['label'] = types[STRING](data=result.label)
    return out


def label_info(types, header, class_names) -> object:
    """The LabelInfo of a model's classes (class id = index in the model's class order)."""
    return types[LABEL_INFO](
        header=header, class_map=[types[VISION_CLASS](class_id=i, class_name=n)
                                  for i, n in enumerate(class_names)], threshold=0.0)
