"""The frames a node benchmark plays, held in memory as serialized messages.

Why raw CDR: the player only rewrites the header stamp (8 bytes at a fixed offset) before each
publish, so playing 60 Hz of 640x480 costs the benchmark process almost nothing and every
camera's frame is exactly what a driver would send. Generated frames come from the demo's
sample bag (the shipped photos with synthetic clear/rain/fog/snow); ``--bag`` reads any
rosbag2 (MCAP or sqlite3) with rosbags, as the ``bag`` and ``replay`` commands do.
"""
from __future__ import annotations

import hashlib
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..rosbag.typestore import COMPRESSED_IMAGE, IMAGE

MAX_FRAMES = 40          # per camera: 40 x 640x480x3 = 37 MB held in memory


class FrameError(ValueError):
    """No usable frames; the message says why."""


@dataclass
class FrameSet:
    msgtype: str                       # IMAGE or COMPRESSED_IMAGE (the node's input_transport)
    frames: list[list[bytes]]          # per camera, serialized messages
    source: str                        # 'generated WxH' or the bag path and topics
    sha256: str                        # of every frame in play order: same input, same hash
    size: tuple[int, int] | None       # (w, h) of raw Images; None for compressed

    @property
    def cameras(self) -> int:
        return len(self.frames)


def set_stamp(buf: bytearray, stamp_ns: int) -> None:
    """Write a std_msgs/Header stamp into a serialized message that starts with a Header
    (little- or big-endian CDR, as its encapsulation says)."""
    fmt = '<iI' if buf[1] == 1 else '>iI'
    struct.pack_into(fmt, buf, 4, stamp_ns // 10**9, stamp_ns % 10**9)


def from_bag(path: str | Path, cameras: int, limit: int = MAX_FRAMES,
             topics: list[str] | None = None) -> FrameSet:
    """Up to ``limit`` frames per camera from the bag's image topics (all of one type:
    Image or CompressedImage); camera i plays topic i modulo the number of topics."""
    from rosbags.rosbag2 import Reader, ReaderError

    try:
        reader = Reader(Path(path))
        reader.open()
    except (OSError, ReaderError) as exc:
        raise FrameError(f'cannot read bag {path}: {exc}') from None
    try:
        conns = [c for c in reader.connections if c.msgtype in (IMAGE, COMPRESSED_IMAGE)
                 and (not topics or c.topic in topics)]
        if not conns:
            raise FrameError(f'{path} holds no sensor_msgs/Image or CompressedImage topic'
                             + (f' among {", ".join(topics)}' if topics else ''))
        msgtype = conns[0].msgtype
        conns = [c for c in conns if c.msgtype == msgtype]
        names = sorted({c.topic for c in conns})
        per_topic: dict[str, list[bytes]] = {t: [] for t in names}
        for conn, _, raw in reader.messages(connections=conns):
            if len(per_topic[conn.topic]) < limit:
                per_topic[conn.topic].append(bytes(raw))
            if all(len(v) >= limit for v in per_topic.values()):
                break
    finally:
        reader.close()
    frames = [per_topic[names[i % len(names)]] for i in range(cameras)]
    size = _image_size(frames[0][0]) if msgtype == IMAGE else None
    return FrameSet(msgtype, frames, f'{path} ({", ".join(names)})', _digest(frames), size)


def generated(cameras: int, size: tuple[int, int], per_segment: int = 4) -> FrameSet:
    """Frames of the demo's sample bag at ``size``: every camera its own shipped photo,
    ``per_segment`` frames each of clear, rain, fog and snow."""
    from ..rosbag.sample_bag import make_sample_bag
    from ..synth.samples import SAMPLE_FILES

    photos = list(SAMPLE_FILES)
    with tempfile.TemporaryDirectory(prefix='weather_restore_bench_') as tmp:
        info = make_sample_bag(Path(tmp) / 'frames', size=tuple(size), rate_hz=per_segment,
                               seconds_per_segment=1.0, cameras={
                                   f'cam{i}': photos[i % len(photos)] for i in range(cameras)})
        fs = from_bag(info.path, cameras, limit=4 * per_segment)
    w, h = size
    fs.source = f'generated {w}x{h} (shipped photos, clear/rain/fog/snow)'
    return fs


def _image_size(raw: bytes) -> tuple[int, int]:
    """(width, height) of a serialized sensor_msgs/Image (read after the frame_id string)."""
    little = raw[1] == 1
    end = '<' if little else '>'
    (n,) = struct.unpack_from(end + 'I', raw, 12)      # frame_id length, after the stamp
    body = (12 + n + 3) & ~3                            # CDR aligns to 4 from the body start
    height, width = struct.unpack_from(end + 'II', raw, 4 + body)
    return width, height


def _digest(frames: list[list[bytes]]) -> str:
    h = hashlib.sha256()
    for cam in frames:
        for raw in cam:
            h.update(raw[12:])        # everything after the stamp: same pixels, same hash
    return h.hexdigest()
