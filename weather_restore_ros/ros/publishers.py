"""The node's publishers of one camera, made from :mod:`weather_restore_ros.output_contract`.

The contract says which topics, message types and QoS; this module is the rclpy side of it:
the rclpy message classes for those types (vision_msgs only where it is installed), the
``QoSProfile`` of a :class:`~weather_restore_ros.output_contract.QosSpec`, and one object per
camera that creates the publishers and publishes what the contract's builders make. The bag
tool writes the same builders' messages (``rosbag/restore_bag.py``).
"""
from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header, String

from ..output_contract import (CLASSIFICATION, COMPRESSED_IMAGE, HEADER, IMAGE, LABEL_INFO,
                               OBJECT_HYPOTHESIS, STRING, VISION_CLASS, OutputTopics, QosSpec,
                               frame_messages, has_vision_msgs, image_messages, label_info)


def rclpy_message_classes() -> dict[str, type]:
    """Message type name -> rclpy class for every type the contract uses that is importable:
    vision_msgs is optional (no typed weather topic without it; weather/label stays)."""
    classes = {IMAGE: Image, COMPRESSED_IMAGE: CompressedImage, STRING: String, HEADER: Header}
    try:
        from vision_msgs.msg import Classification, LabelInfo, ObjectHypothesis, VisionClass
    except ImportError:
        return classes
    classes.update({CLASSIFICATION: Classification, OBJECT_HYPOTHESIS: ObjectHypothesis,
                    LABEL_INFO: LabelInfo, VISION_CLASS: VisionClass})
    return classes


#: Read when a camera's publishers are made (a test may replace it to drop vision_msgs).
MESSAGE_CLASSES = rclpy_message_classes()


def qos_profile(spec: QosSpec) -> QoSProfile:
    return QoSProfile(
        depth=spec.depth, history=HistoryPolicy.KEEP_LAST,
        reliability=ReliabilityPolicy.RELIABLE if spec.reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=(DurabilityPolicy.TRANSIENT_LOCAL if spec.transient_local
                    else DurabilityPolicy.VOLATILE))


class CameraPublishers:
    """The output publishers of one entry of ``cameras`` ('' = the node's own namespace).

    Per-frame outputs are lifecycle publishers (silent while inactive); the latched class names
    get a plain publisher and are published at once, so they exist before activation too.
    """

    def __init__(self, node, camera: str, *, mask: bool, compressed: bool):
        self.node = node
        self.types = MESSAGE_CLASSES
        self.typed = has_vision_msgs(self.types)
        self.mask, self.compressed = mask, compressed
        self.topics = OutputTopics.for_camera(camera)
        self.publishers = {}
        for topic, out in self.topics.outputs(mask, compressed, self.typed).items():
            create = (node.create_publisher if out.qos.transient_local
                      else node.create_lifecycle_publisher)
            self.publishers[out.key] = create(self.types[out.msgtype], topic, qos_profile(out.qos))

    def publish_label_info(self, class_names) -> None:
        pub = self.publishers.get('label_info')
        if pub is not None:
            header = self.types[HEADER](stamp=self.node.get_clock().now().to_msg())
            pub.publish(label_info(self.types, header, class_names))

    def publish_frame(self, header, result, encoding: str, *, output_encoding: str,
                      jpeg_quality: int) -> None:
        """Every output of a restored frame (``engine.RestoreResult``), with the input header."""
        self._publish(frame_messages(self.types, header, result, encoding,
                                     output_encoding=output_encoding, mask=self.mask,
                                     compressed=self.compressed, jpeg_quality=jpeg_quality))

    def publish_image(self, header, rgb, encoding: str, *, output_encoding: str,
                      jpeg_quality: int, source=None) -> None:
        """Only the image outputs (restoration off: ``source`` passed through where it can)."""
        self._publish(image_messages(self.types, header, rgb, encoding,
                                     output_encoding=output_encoding,
                                     compressed=self.compressed, jpeg_quality=jpeg_quality,
                                     source=source))

    def _publish(self, messages: dict) -> None:
        for key, msg in messages.items():
            self.publishers[key].publish(msg)

    def destroy(self) -> None:
        for pub in self.publishers.values():
            self.node.destroy_lifecycle_publisher(pub)   # also right for the plain one
        self.publishers.clear()
