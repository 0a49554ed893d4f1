"""The rosbags typestore used everywhere in this package: ROS 2 Kilted plus vision_msgs.

Why a module of its own: rosbags ships sensor_msgs/std_msgs for each distro but not
vision_msgs, and the weather topic is a ``vision_msgs/msg/Classification``. The definitions are
embedded here (the upstream vision_msgs 4.x .msg files, comments dropped; the same text as
``tools/vision_msgs_pkg/msg/``) because ``tools/`` is not installed with the package. The RIHS01
hashes rosbags computes from them equal upstream's (checked in test/test_bag.py), so bags we
write carry the same type hash as a bag recorded from the real package.
"""
from __future__ import annotations

import functools

# Type names are the output contract's; re-exported here for the rosbag/ and node_bench/ modules.
from ..output_contract import CLASSIFICATION, COMPRESSED_IMAGE, IMAGE, LABEL_INFO, STRING

__all__ = ['CLASSIFICATION', 'COMPRESSED_IMAGE', 'IMAGE', 'LABEL_INFO', 'STRING',
           'VISION_MSGS_DEFINITIONS', 'definition_of', 'get_store', 'msg_class']

VISION_MSGS_DEFINITIONS = {
    'vision_msgs/msg/ObjectHypothesis': 'string class_id\nfloat64 score\n',
    'vision_msgs/msg/Classification': 'std_msgs/Header header\nObjectHypothesis[] results\n',
    'vision_msgs/msg/VisionClass': 'uint16 class_id\nstring class_name\n',
    'vision_msgs/msg/LabelInfo': ('std_msgs/Header header\nvision_msgs/VisionClass[] class_map\n'
                                  'float32 threshold\n'),
}


@functools.lru_cache(maxsize=1)
def get_store():
    """The shared typestore (built once: registering types generates Python classes)."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    types = {}
    for name, text in VISION_MSGS_DEFINITIONS.items():
        types.update(get_types_from_msg(text, name))
    store.register(types)
    return store


def msg_class(msgtype: str):
    """The rosbags dataclass of ``msgtype`` (e.g. to build messages or pass as ``msg_type``)."""
    return get_store().types[msgtype]


def definition_of(connection, store=None) -> tuple[str, str] | None:
    """(msgdef, rihs01) to write for an input connection, or None when neither source has one.

    The input's own definition and hash come first, so a copied topic keeps exactly the type
    it was recorded with (even a custom type this machine does not know). Older bags (sqlite3
    from Humble) store no definition: then the typestore's one, if it knows the type.
    """
    from rosbags.interfaces import MessageDefinitionFormat

    msgdef = connection.msgdef
    if msgdef.format != MessageDefinitionFormat.NONE and msgdef.data and connection.digest:
        return msgdef.data, connection.digest
    store = store or get_store()
    if connection.msgtype in store.types:
        generated, _ = store.generate_msgdef(connection.msgtype, ros_version=2)
        return (msgdef.data or generated), (connection.digest or
                                            store.hash_rihs01(connection.msgtype))
    return None
