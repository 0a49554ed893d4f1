"""The bad-input matrix: every kind of odd camera message, as serialized CDR bytes.

One definition for the live node (test_bad_input.py publishes these bytes) and for
``weather-restore bag`` (the same bytes written into a bag), so both are judged on identical
input. Each case says what must happen to it: refused with a ``reason`` (imaging.REASONS), or
restored with counted ``warnings`` / ``conversions`` (frame_input.WARNINGS / CONVERSIONS).
Messages are built with rosbags (a hard dependency of the bag tools): its CDR is rclpy's wire
format. Frames are 48x64 so a case costs milliseconds.
"""
from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass

import cv2
import numpy as np

from weather_restore_ros.image_headers import PNG_SIGNATURE
from weather_restore_ros.rosbag.typestore import get_store

STORE = get_store()
T = STORE.types
IMAGE, COMPRESSED = 'sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage'
H, W = 48, 64
_stamp = iter(range(1, 10_000))


@dataclass(frozen=True)
class Case:
    kind: str
    transport: str                 # 'raw' (Image) or 'compressed' (CompressedImage)
    messages: tuple                # CDR bytes, sent in this order
    reason: str | None = None      # every message refused with this reason
    warnings: tuple = ()           # restored; counted (a key may repeat)
    conversions: tuple = ()
    bag_reason: str | None = None  # where the bag tool's deserializer refuses first

    @property
    def msgtype(self) -> str:
        return IMAGE if self.transport == 'raw' else COMPRESSED


def header(frame_id='cam', zero=False):
    n = 0 if zero else next(_stamp)
    return T['std_msgs/msg/Header'](
        stamp=T['builtin_interfaces/msg/Time'](sec=1_800_000_000 + n if n else 0,
                                              nanosec=n * 1000),
        frame_id=frame_id)


def frame(h=H, w=W, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 // w, y * 255 // h, (x + y) % 256], -1) + rng.integers(0, 30, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def raw(encoding='rgb8', h=H, w=W, step=None, data=None, bigendian=0, head=None) -> bytes:
    """A hand-made Image: any field, any data, serialized."""
    step = w * 3 if step is None else step
    data = frame(h, w).tobytes()[:h * step] if data is None else data
    msg = T[IMAGE](header=head or header(), height=h, width=w, encoding=encoding,
                   is_bigendian=bigendian, step=step, data=np.frombuffer(data, np.uint8).copy())
    return bytes(STORE.serialize_cdr(msg, IMAGE))


def image(array, encoding, head=None) -> bytes:
    from weather_restore_ros.imaging import numpy_to_image
    return bytes(STORE.serialize_cdr(numpy_to_image(array, encoding, header=head or header(),
                                                    msg_type=T[IMAGE]), IMAGE))


def compressed(data: bytes, fmt='rgb8; jpeg compressed bgr8', head=None) -> bytes:
    msg = T[COMPRESSED](header=head or header(), format=fmt,
                        data=np.frombuffer(data, np.uint8).copy())
    return bytes(STORE.serialize_cdr(msg, COMPRESSED))


def jpeg(array=None) -> bytes:
    array = frame()[..., ::-1] if array is None else array
    return cv2.imencode('.jpg', np.ascontiguousarray(array))[1].tobytes()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack('>I', len(body)) + kind + body + struct.pack('>I', zlib.crc32(kind + body))


def png_bomb(width=20_000, height=20_000) -> bytes:
    """A well-formed PNG header announcing width x height grey pixels, a few bytes of data: a
    decoder would allocate width x height bytes before finding out."""
    ihdr = struct.pack('>IIBBBBB', width, height, 8, 0, 0, 0, 0)
    return (PNG_SIGNATURE + png_chunk(b'IHDR', ihdr)
            + png_chunk(b'IDAT', zlib.compress(b'\0' * 4096)) + png_chunk(b'IEND', b''))


def cmyk_jpeg() -> bytes:
    from PIL import Image as PilImage   # Pillow comes with torchvision
    out = io.BytesIO()
    PilImage.fromarray(frame()).convert('CMYK').save(out, 'JPEG', quality=95)
    return out.getvalue()


def garbled_utf8() -> bytes:
    """An Image whose encoding field holds bytes that are not UTF-8 (a corrupt publisher)."""
    data = bytearray(raw(encoding='rgbX'))
    i = data.index(b'rgbX')
    data[i + 3] = 0xFF
    return bytes(data)


def nan_floats() -> bytes:
    return np.full((H, W, 3), np.nan, np.float32).tobytes()


ROW = W * 3
CASES = [
    # --- raw: refused
    Case('step_zero', 'raw', (raw(step=0, data=bytes(H * ROW)),), 'step_zero'),
    Case('step_below_row', 'raw', (raw(step=ROW - 1),), 'bad_step'),
    Case('data_short', 'raw', (raw(data=bytes(1000)),), 'truncated'),
    Case('size_overflow_32bit', 'raw', (raw(h=65_536, w=65_536, step=3 * 65_536,
                                            data=bytes(100)),), 'size_overflow'),
    Case('oversized', 'raw', (raw(h=10_000, w=10_000, step=30_000, data=bytes(100)),),
         'oversized'),
    Case('empty', 'raw', (raw(h=0, w=0, step=0, data=b''),), 'empty'),
    Case('odd_width_yuv422', 'raw', (raw('yuv422', w=W - 1, step=2 * (W - 1)),), 'odd_width'),
    Case('depth_32FC1', 'raw', (raw('32FC1', step=4 * W, data=bytes(H * 4 * W)),),
         'depth_image'),
    Case('depth_16UC1', 'raw', (raw('16UC1', step=2 * W, data=bytes(H * 2 * W)),),
         'depth_image'),
    Case('nan_float_image', 'raw', (raw('32FC3', step=12 * W, data=nan_floats()),),
         'float_image'),
    Case('garbage_encoding', 'raw', (raw('rgb8\x07\x1b'),), 'garbled_encoding'),
    Case('non_utf8_encoding', 'raw', (garbled_utf8(),), 'garbled_encoding',
         bag_reason='undeserializable'),
    Case('unknown_encoding', 'raw', (raw('weird8'),), 'unsupported_encoding'),
    # --- raw: restored, with a warning or after a conversion
    Case('step_not_whole_pixels', 'raw',
         (raw(step=ROW + 1, data=frame(H, W + 1).reshape(H, -1)[:, :ROW + 1].tobytes()),),
         warnings=('unaligned_step',)),
    Case('data_long', 'raw', (raw(data=frame().tobytes() + bytes(500)),),
         warnings=('trailing_data',)),
    Case('odd_width_bayer', 'raw', (raw('bayer_rggb8', w=W - 1, step=W - 1),),
         warnings=('odd_bayer_size',)),
    Case('big_endian_mono16', 'raw',
         (raw('mono16', step=2 * W, bigendian=1,
              data=(frame()[..., 0].astype('>u2') * 257).tobytes()),),
         conversions=('big_endian',)),
    Case('size_and_encoding_change_every_frame', 'raw', (
        image(frame(), 'rgb8'), image(frame(32, 40)[..., ::-1], 'bgr8'),
        image(frame()[..., :1], 'mono8'), image(frame(24, 32)[..., :2], 'yuv422'),
        image(frame(40, 48)[..., :1], 'bayer_grbg8'), image(np.dstack([frame()] * 2)[..., :4],
                                                           'rgba8')),
        warnings=('format_changed',) * 5),
    Case('zero_stamp', 'raw', (image(frame(), 'rgb8', header('zero_stamp', zero=True)),),
         warnings=('zero_stamp',)),
    Case('empty_frame_id', 'raw', (image(frame(), 'rgb8', header('')),),
         warnings=('empty_frame_id',)),
    # --- compressed: refused
    Case('empty_compressed', 'compressed', (compressed(b''),), 'empty'),
    Case('truncated_jpeg', 'compressed', (compressed(jpeg()[:len(jpeg()) * 2 // 3]),),
         'truncated_compressed'),
    Case('png_header_announces_huge_image', 'compressed', (compressed(png_bomb(), 'png'),),
         'oversized'),
    Case('corrupt_jpeg', 'compressed', (compressed(b'\xff\xd8\xff' + bytes(range(256)) * 4),),
         'corrupt'),
    Case('compressed_depth', 'compressed',
         (compressed(bytes(100), '16UC1; compressedDepth png'),), 'depth_image'),
    # --- compressed: restored
    Case('format_names_wrong_codec', 'compressed', (compressed(jpeg(), 'png'),),
         warnings=('format_mismatch',)),
    Case('cmyk_jpeg', 'compressed', (compressed(cmyk_jpeg(), 'jpeg'),),
         conversions=('cmyk_jpeg',)),
    Case('greyscale_jpeg', 'compressed', (compressed(jpeg(frame()[..., 1]), 'mono8; jpeg '
                                                     'compressed mono8'),),
         conversions=('mono_compressed',)),
    Case('png_16bit', 'compressed',
         (compressed(cv2.imencode('.png', frame()[..., ::-1] * np.uint16(257))[1].tobytes(),
                     'bgr16; png compressed bgr16'),), conversions=('deep_compressed',)),
]
BY_KIND = {c.kind: c for c in CASES}
assert len(BY_KIND) == len(CASES)


def good_raw(head=None) -> bytes:
    return image(frame(seed=7), 'rgb8', head)


def good_compressed(head=None) -> bytes:
    return compressed(jpeg(frame(seed=8)[..., ::-1]), head=head)
