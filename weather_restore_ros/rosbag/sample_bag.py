"""A short synthetic two-camera bag, made on the spot from the shipped photos.

Why generate instead of shipping a bag: a fresh machine has no camera and no data set, and a
bag of synthetic weather is small to make (about 10 ms a frame) and has known ground truth per
segment. Each camera looks at its own photo through a slowly panning 320x240 window (so frames
differ like video), and the weather changes every ``seconds_per_segment``: clear, rain, fog,
snow. The segment table is stored in the bag's ``custom_data`` (key ``weather_restore.segments``)
and returned.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..output_contract import IMAGE, QosSpec
from .topics import offered_qos
from .typestore import get_store

DEFAULT_CAMERAS = {'front': 'china', 'rear': 'rocket'}
DEFAULT_SEGMENTS = ('clear', 'rain', 'fog', 'snow')
START_NS = 1_700_000_000 * 10**9     # fixed: the same arguments give the same bag
SEGMENTS_KEY = 'weather_restore.segments'


@dataclass
class Segment:
    weather: str
    start_ns: int      # bag/header time of the first frame
    end_ns: int        # exclusive

    def contains(self, stamp_ns: int) -> bool:
        return self.start_ns <= stamp_ns < self.end_ns


@dataclass
class SampleBag:
    path: Path
    cameras: dict[str, str]                  # camera name -> photo
    topics: dict[str, str]                   # camera name -> image topic
    segments: list[Segment]
    frames_per_camera: int
    rate_hz: float
    size: tuple[int, int]                    # (width, height)
    stamps: dict[str, list[int]] = field(default_factory=dict)   # camera -> header stamps

    def segment_of(self, stamp_ns: int) -> Segment | None:
        return next((s for s in self.segments if s.contains(stamp_ns)), None)


def driver_qos():
    """What a camera driver offers (REP-2003 'system default'): reliable, keep last 10."""
    return offered_qos(QosSpec(depth=10))


def _panning_frames(photo: np.ndarray, count: int, size: tuple[int, int]):
    """``count`` crops of ``size`` (w, h) sliding across the photo and back."""
    w, h = size
    scale = max((w * 1.25) / photo.shape[1], (h * 1.1) / photo.shape[0])
    big = cv2.resize(photo, (int(round(photo.shape[1] * scale)),
                             int(round(photo.shape[0] * scale))), interpolation=cv2.INTER_AREA)
    span_x, span_y = big.shape[1] - w, big.shape[0] - h
    for i in range(count):
        phase = 0.5 - 0.5 * np.cos(2 * np.pi * i / max(count, 1))
        x, y = int(round(phase * span_x)), int(round(0.5 * span_y))
        yield big[y:y + h, x:x + w]


def sample_frames(cameras: dict[str, str] | None = None, segments=DEFAULT_SEGMENTS,
                  frames_per_segment: int = 10, size: tuple[int, int] = (320, 240),
                  severity: float = 0.8, seed: int = 0):
    """The frames of a sample bag, in bag order: ``(index, camera, weather, clean, degraded)``
    for each frame index and each camera in turn (``frames_per_segment`` per weather).

    The one place that says what the demo shows, so that a check of the shipped model on the
    demo's frames sees the bytes the demo plays.
    """
    from ..synth import sample_images, synthesize

    cameras = dict(cameras or DEFAULT_CAMERAS)
    photos = dict(sample_images(sorted(set(cameras.values()))))
    count = frames_per_segment * len(segments)
    rng = np.random.default_rng(seed)
    frames = {c: _panning_frames(photos[p], count, size) for c, p in cameras.items()}
    for i in range(count):
        weather = segments[i // frames_per_segment]
        for cam in cameras:
            clean = np.ascontiguousarray(next(frames[cam]))
            degraded, _ = synthesize(clean, weather, rng=int(rng.integers(2**31)),
                                     severity=severity)
            yield i, cam, weather, clean, degraded


def make_sample_bag(path: str | Path, *, cameras: dict[str, str] | None = None,
                    segments=DEFAULT_SEGMENTS, seconds_per_segment: float = 2.0,
                    rate_hz: float = 5.0, size: tuple[int, int] = (320, 240),
                    storage: str = 'mcap', severity: float = 0.8, seed: int = 0,
                    encoding: str = 'rgb8') -> SampleBag:
    """Write the bag at ``path`` (must not exist); returns what is in it.

    Cameras publish on ``/<name>/image_raw`` (sensor_msgs/Image) at ``rate_hz``; the second
    camera is offset by a quarter period, as two unsynchronised drivers would be. Header stamps
    equal the bag timestamps. The frames are :func:`sample_frames`.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer

    from ..imaging import numpy_to_image, rgb_to_encoding

    cameras = dict(cameras or DEFAULT_CAMERAS)
    store = get_store()
    Image, Header, Time = (store.types[IMAGE], store.types['std_msgs/msg/Header'],
                           store.types['builtin_interfaces/msg/Time'])
    per_segment = max(1, int(round(seconds_per_segment * rate_hz)))
    period = int(round(1e9 / rate_hz))
    count = per_segment * len(segments)
    segs = [Segment(w, START_NS + k * per_segment * period,
                    START_NS + (k + 1) * per_segment * period) for k, w in enumerate(segments)]
    info = SampleBag(Path(path), cameras, {c: f'/{c}/image_raw' for c in cameras}, segs,
                     count, rate_hz, tuple(size))
    plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
    order = {cam: k for k, cam in enumerate(cameras)}
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        writer.set_custom_data(SEGMENTS_KEY, json.dumps(
            [{'weather': s.weather, 'start_ns': s.start_ns, 'end_ns': s.end_ns} for s in segs]))
        conns = {c: writer.add_connection(info.topics[c], IMAGE, typestore=store,
                                          offered_qos_profiles=driver_qos()) for c in cameras}
        for i, cam, _, _, degraded in sample_frames(cameras, segments, per_segment, size,
                                                     severity, seed):
            stamp = START_NS + i * period + order[cam] * period // (2 * len(cameras))
            header = Header(stamp=Time(sec=stamp // 10**9, nanosec=stamp % 10**9),
                            frame_id=f'{cam}_camera')
            msg = numpy_to_image(rgb_to_encoding(degraded, encoding), encoding,
                                 header=header, msg_type=Image)
            writer.write(conns[cam], stamp, store.serialize_cdr(msg, IMAGE))
            info.stamps.setdefault(cam, []).append(stamp)
    return info


def read_segments(reader) -> list[Segment]:
    """The segment table of a bag made by ``make_sample_bag`` (empty for any other bag)."""
    storage = getattr(reader, 'storage', reader)     # rosbags keeps metadata on its storage
    custom = getattr(getattr(storage, 'metadata', None), 'custom', None) or {}
    text = custom.get(SEGMENTS_KEY)
    return [Segment(**s) for s in json.loads(text)] if text else []
