"""sensor_msgs/Image and CompressedImage <-> numpy, without cv_bridge, torch or rclpy.

Why not cv_bridge: it is not on PyPI, and the distro build breaks under pip's NumPy 2
(vision_opencv #535). Why duck typing: the same converter serves the rclpy node (messages whose
``data`` is an ``array.array``), offline bag tools (``rosbags`` dataclasses whose ``data`` is a
numpy array) and tests (``SimpleNamespace``). Only building a message without an explicit
``msg_type`` imports ``sensor_msgs.msg``, lazily.

Arrays are HxWxC. Reading is zero-copy where the stored bytes already are the requested pixels
(8-bit packed encodings, padded rows included): such an array is a view of ``msg.data``, so
writing into it writes into the message (and it is read-only when ``data`` is ``bytes``); copy
it before modifying it in place.

16-bit encodings (mono16, 16UC1) read as 8 bits keep the high byte (``value >> 8``), so a
16UC1 depth image in millimetres becomes 256 mm steps; ``image_to_numpy(msg, raw=True)``
returns the uint16 values themselves. Sizes are checked before any pixel is read (JPEG/PNG
from their headers, :mod:`image_headers`). What a restorer accepts from a camera (depth refused,
odd frames counted) is decided in :mod:`frame_input`, not here.
"""
from __future__ import annotations

import array as pyarray
import dataclasses
import re
import sys
from types import SimpleNamespace
from typing import NamedTuple

import cv2
import numpy as np

from .image_headers import codec_of, read_header


class ImageConversionError(ValueError):
    """The one error for a message or array that cannot be converted, so callers catch one type.

    ``reason`` is a short, stable key (one of REASONS) for counters: the node's diagnostics and
    the bag tool's accounting count skipped frames by it, so it must not depend on wording.
    """

    def __init__(self, message: str, reason: str = 'invalid'):
        super().__init__(message)
        self.reason = reason


REASONS = {
    'unsupported_encoding': 'an encoding or compression this converter does not handle',
    'garbled_encoding': 'an encoding string with non-printable or non-ASCII characters',
    'depth_image': 'a depth image (16UC1, 32FC1, compressedDepth), not a camera colour frame',
    'float_image': 'a floating-point image (32FC3, 64FC1, ...), not a camera colour frame',
    'corrupt': 'compressed data that does not decode (corrupt JPEG/PNG)',
    'truncated': 'image data shorter than height x step',
    'truncated_compressed': 'a JPEG or PNG cut short (no end marker)',
    'empty': 'zero width or height, or no data',
    'step_zero': 'step 0 (no row length)',
    'bad_step': 'step smaller than a row of pixels',
    'odd_width': 'a YUV 4:2:2 image with an odd width',
    'size_overflow': 'width x height or height x step beyond 32 bits: no message holds it',
    'oversized': 'more pixels than any camera makes (a corrupt header), refused before decoding',
    'invalid': 'inconsistent or mistyped image fields',
}
MAX_INPUT_PIXELS = 64_000_000  # beyond any camera (8K is 33 MP): a corrupt header, not a frame


class _Layout(NamedTuple):
    channels: int        # samples per pixel as stored (UYVY/YUYV: 2 bytes per pixel)
    itemsize: int        # bytes per sample
    to_rgb: int | None   # cv2.cvtColor code from the stored samples to RGB; None: already RGB
    from_rgb: int | None  # cv2.cvtColor code from RGB for publishing; None: RGB as is
    decoded: bool = False  # samples are not pixels (chroma pairs, Bayer mosaic): read as RGB


# OpenCV names a Bayer pattern after the second row's 2nd and 3rd pixels, so ROS's bayer_rggb8
# is OpenCV's "BG". The old names are used because every OpenCV has them (the RGGB-style aliases
# appeared in 4.x and equal these); test_imaging checks a pure red scene comes out red.
_ENCODINGS = {
    'rgb8': _Layout(3, 1, None, None),
    'bgr8': _Layout(3, 1, cv2.COLOR_BGR2RGB, cv2.COLOR_RGB2BGR),
    'rgba8': _Layout(4, 1, cv2.COLOR_RGBA2RGB, cv2.COLOR_RGB2RGBA),
    'bgra8': _Layout(4, 1, cv2.COLOR_BGRA2RGB, cv2.COLOR_RGB2BGRA),
    'mono8': _Layout(1, 1, cv2.COLOR_GRAY2RGB, cv2.COLOR_RGB2GRAY),
    'mono16': _Layout(1, 2, cv2.COLOR_GRAY2RGB, cv2.COLOR_RGB2GRAY),
    # Channel-only types name no colour order (cv_bridge refuses to colour-convert them). They come
    # from cv_bridge's default passthrough on OpenCV frames, which are BGR(A): read them so.
    '8UC1': _Layout(1, 1, cv2.COLOR_GRAY2RGB, cv2.COLOR_RGB2GRAY),
    '8UC3': _Layout(3, 1, cv2.COLOR_BGR2RGB, cv2.COLOR_RGB2BGR),
    '8UC4': _Layout(4, 1, cv2.COLOR_BGRA2RGB, cv2.COLOR_RGB2BGRA),
    '16UC1': _Layout(1, 2, cv2.COLOR_GRAY2RGB, cv2.COLOR_RGB2GRAY),
    # ROS's "yuv422" is UYVY; "uyvy"/"yuyv" are the newer names (image_encodings, Jazzy+).
    'yuv422': _Layout(2, 1, cv2.COLOR_YUV2RGB_UYVY, None, True),
    'uyvy': _Layout(2, 1, cv2.COLOR_YUV2RGB_UYVY, None, True),
    'yuv422_yuy2': _Layout(2, 1, cv2.COLOR_YUV2RGB_YUY2, None, True),
    'yuyv': _Layout(2, 1, cv2.COLOR_YUV2RGB_YUY2, None, True),
    'bayer_rggb8': _Layout(1, 1, cv2.COLOR_BayerBG2RGB, None, True),
    'bayer_bggr8': _Layout(1, 1, cv2.COLOR_BayerRG2RGB, None, True),
    'bayer_gbrg8': _Layout(1, 1, cv2.COLOR_BayerGR2RGB, None, True),
    'bayer_grbg8': _Layout(1, 1, cv2.COLOR_BayerGB2RGB, None, True),
}
SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(_ENCODINGS)
# What rgb_to_encoding writes as asked; YUV and Bayer inputs are published as rgb8 instead.
OUTPUT_ENCODINGS: tuple[str, ...] = tuple(k for k, v in _ENCODINGS.items() if not v.decoded)
OUTPUT_ENCODING_CHOICES = ('same', 'rgb8', 'bgr8')   # the node's and the bag's output_encoding

# CompressedImage: the part after "compressed" names the channel order handed to imencode.
_RGB_ORDERED = ('rgb8', 'rgba8', 'rgb16', 'rgba16')
_CODECS = {'jpeg': '.jpg', 'jpg': '.jpg', 'png': '.png'}
_FLOAT = re.compile(r'(16|32|64)FC[1-4]?')


def _layout(encoding) -> _Layout:
    layout = _ENCODINGS.get(encoding) if isinstance(encoding, str) else None
    if layout is not None:
        return layout
    text = isinstance(encoding, str)
    if text and not (encoding.isascii() and encoding.isprintable()):
        raise ImageConversionError(f'garbled image encoding {encoding!r}',
                                   reason='garbled_encoding')
    if text and _FLOAT.fullmatch(encoding):
        raise ImageConversionError(f'{encoding}: floating-point images are not converted',
                                   reason='float_image')
    raise ImageConversionError(f'unsupported image encoding {encoding!r}; supported: '
                               f'{", ".join(SUPPORTED_ENCODINGS)}', reason='unsupported_encoding')


def encoding_layout(encoding: str) -> tuple[int, int]:
    """(samples per pixel as stored, bytes per sample): UYVY is (2, 1), mono16 (1, 2)."""
    layout = _layout(encoding)
    return layout.channels, layout.itemsize


def _byte_view(data) -> np.ndarray:
    """Flat uint8 view of whichever ``data`` container the message library uses (lists copied)."""
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            raise ImageConversionError(f'image data must be uint8, got a {data.dtype} array')
        return np.ascontiguousarray(data).reshape(-1)
    try:
        return np.frombuffer(data, dtype=np.uint8)  # bytes, bytearray, array.array, memoryview
    except (TypeError, ValueError):
        pass
    try:
        if isinstance(data, str):
            raise TypeError('a str is not bytes')
        return np.asarray(data, dtype=np.uint8).reshape(-1)  # a plain sequence of ints
    except (TypeError, ValueError, OverflowError) as exc:
        raise ImageConversionError(f'image data is not a byte buffer: {exc}') from None


def _cvt(image: np.ndarray, code: int) -> np.ndarray:
    try:
        return cv2.cvtColor(image, code)
    except cv2.error as exc:
        raise ImageConversionError(
            f'colour conversion failed for a {image.shape} image: {exc}') from None


def _check_even_width(encoding, layout, width):
    if layout.channels == 2 and width % 2:
        raise ImageConversionError(
            f'{encoding} shares chroma between pixel pairs and needs an even width, got {width}',
            reason='odd_width')


def _samples(msg, max_pixels: int | None = None) -> tuple[_Layout, np.ndarray]:
    """Validate the message; view its stored samples as HxWxC (16-bit in the message's order).

    Sizes are checked before anything is read: a header that no message can hold, or one over
    ``max_pixels``, is refused without allocating for it."""
    try:
        height, width, step = int(msg.height), int(msg.width), int(msg.step)
        encoding, bigendian, data = msg.encoding, bool(msg.is_bigendian), msg.data
    except (AttributeError, TypeError, ValueError) as exc:
        raise ImageConversionError(f'not an Image message: {exc}') from None
    layout = _layout(encoding)
    if height <= 0 or width <= 0:
        raise ImageConversionError(f'empty image: {width}x{height} ({encoding})',
                                   reason='empty')
    row_bytes = width * layout.channels * layout.itemsize
    if max(width * height, height * step) >> 32:
        raise ImageConversionError(
            f'{width}x{height} with step {step} ({encoding}) needs more than 4 GiB: '
            'no message holds that (a corrupt header)', reason='size_overflow')
    if max_pixels is not None and width * height > max_pixels:
        raise ImageConversionError(f'oversized frame {width}x{height} (limit {max_pixels} px)',
                                   reason='oversized')
    if step == 0:
        raise ImageConversionError(f'step 0 for a {width}x{height} image ({encoding})',
                                   reason='step_zero')
    if step < row_bytes:
        raise ImageConversionError(
            f'step {step} is smaller than width {width} x {layout.channels * layout.itemsize} '
            f'bytes per pixel = {row_bytes} ({encoding})', reason='bad_step')
    _check_even_width(encoding, layout, width)
    buf = _byte_view(data)
    if buf.size < height * step:
        raise ImageConversionError(f'image data too short: {buf.size} bytes for height {height}'
                                   f' x step {step} = {height * step}', reason='truncated')
    rows = buf[:height * step].reshape(height, step)[:, :row_bytes]
    if layout.itemsize == 2:
        rows = rows.view('>u2' if bigendian else '<u2')
    return layout, rows.reshape(height, width, layout.channels)


def _eight_bit(layout: _Layout, samples: np.ndarray) -> np.ndarray:
    if layout.itemsize == 2:
        return (samples >> 8).astype(np.uint8)
    if not layout.decoded:
        return samples
    return _cvt(samples[..., 0] if layout.channels == 1 else samples, layout.to_rgb)


def image_to_numpy(msg, *, raw: bool = False) -> np.ndarray:
    """HxWxC uint8 in the message's own channel order (C = 1, 3 or 4).

    YUV 4:2:2 and Bayer come back as 3-channel RGB, because their stored samples are not pixels.
    ``raw=True`` returns the stored samples unconverted instead (uint16 in native byte order for
    16-bit, HxWx2 for YUV, the HxWx1 mosaic for Bayer): the exact inverse of ``numpy_to_image``.
    """
    layout, samples = _samples(msg)
    if not raw:
        return _eight_bit(layout, samples)
    return samples.astype(np.uint16, copy=False) if layout.itemsize == 2 else samples


def image_to_rgb(msg, max_pixels: int = MAX_INPUT_PIXELS) -> np.ndarray:
    """HxWx3 uint8 RGB from any supported encoding: one input for the network, whatever the camera.

    Mono is replicated, alpha dropped. Only rgb8 returns a view of the message data.
    """
    layout, samples = _samples(msg, max_pixels)
    image = _eight_bit(layout, samples)
    if layout.decoded or layout.to_rgb is None:
        return image
    return _cvt(image, layout.to_rgb)


def _checked_rgb(rgb) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or 0 in rgb.shape:
        raise ImageConversionError(
            f'expected an HxWx3 uint8 RGB array, got {rgb.dtype} {rgb.shape}')
    return rgb


def output_encoding(encoding: str, requested: str = 'same') -> str:
    """The encoding of every image published for a frame that arrived in ``encoding``, given the
    ``output_encoding`` parameter (``requested``): the one rule of the node and the bag tool.

    'same' keeps the input's encoding, except YUV and Bayer: rgb8 (``rgb_to_encoding``); a
    compressed stream's is 'bgr8' (``frame_input``). Nothing else decides it: not ``enabled``,
    skip-when-clear, a model failure or an oversize frame, so a consumer that handled one frame
    of a stream handles the next.
    """
    if requested != 'same':
        if requested not in OUTPUT_ENCODING_CHOICES:
            raise ImageConversionError(f'output encoding must be one of '
                                       f'{", ".join(OUTPUT_ENCODING_CHOICES)}, got {requested!r}')
        return requested
    _layout(encoding)
    return encoding if encoding in OUTPUT_ENCODINGS else 'rgb8'


def rgb_to_encoding(rgb, encoding: str) -> np.ndarray:
    """RGB back in the input's encoding, so the restored stream is a drop-in replacement.

    Returns the array layout ``numpy_to_image`` expects (HxWx1 for mono, uint16 for 16-bit).
    YUV and Bayer are not re-encoded: subsampling a restored image would throw away what the
    restoration produced, so those get rgb8 (see ``output_encoding``); rgb8 returns ``rgb`` itself.
    """
    layout = _layout(encoding)
    rgb = _checked_rgb(rgb)
    if layout.decoded or layout.from_rgb is None:
        return rgb
    out = _cvt(rgb, layout.from_rgb)
    if out.ndim == 2:
        out = out[..., None]
    if layout.itemsize == 2:
        out = out.astype(np.uint16) * 257  # full-scale, and value >> 8 gives the grey back
    return out


def _zero_message(cls):
    """A zeroed instance of a rosbags message class (dataclasses with string type names)."""
    module = sys.modules[cls.__module__]
    scalars = {'int': 0, 'float': 0.0, 'str': '', 'bool': False}
    return cls(**{
        f.name: scalars[f.type] if f.type in scalars else _zero_message(getattr(module, f.type))
        for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING})


def _blank_header(msg_type):
    """Build a zeroed header, since rosbags message classes have no field defaults."""
    try:
        header_type = msg_type.__dataclass_fields__['header'].type
        return _zero_message(getattr(sys.modules[msg_type.__module__], header_type))
    except (AttributeError, KeyError, TypeError):
        return SimpleNamespace(stamp=SimpleNamespace(sec=0, nanosec=0), frame_id='')


def _new_message(msg_type, header, data: np.ndarray, **fields):
    """Build ``msg_type`` with data in the container its library expects.

    rclpy takes an ``array.array`` as is but checks any other sequence byte by byte in Python
    (seconds for a camera frame); rosbags and the rest get a numpy array.
    """
    data = data.reshape(-1).view(np.uint8)
    if hasattr(msg_type, 'get_fields_and_field_types'):  # rclpy; its default header is fine
        fields['data'] = pyarray.array('B')
        fields['data'].frombytes(data)
    else:
        fields['data'] = data.copy()
        header = _blank_header(msg_type) if header is None else header
    if header is not None:
        fields['header'] = header
    try:
        return msg_type(**fields)
    except Exception as exc:  # whatever the message library validates
        name = getattr(msg_type, '__name__', msg_type)
        raise ImageConversionError(f'cannot build {name}: {exc}') from None


def numpy_to_image(array, encoding: str, header=None, msg_type=None):
    """An Image from an array in the encoding's stored layout (``image_to_numpy(raw=True)``).

    Rows are packed (step = width x bytes per pixel) and little-endian (is_bigendian = 0), the
    layout every subscriber handles. The data is copied, so the array may be reused afterwards.
    """
    layout = _layout(encoding)
    arr = np.asarray(array)
    channels = arr.shape[2] if arr.ndim == 3 else 1 if arr.ndim == 2 else None
    if channels != layout.channels or 0 in arr.shape:
        shape = 'HxW or HxWx1' if layout.channels == 1 else f'HxWx{layout.channels}'
        raise ImageConversionError(f'{encoding} needs an {shape} array, got shape {arr.shape}')
    if arr.dtype.kind != 'u' or arr.dtype.itemsize != layout.itemsize:
        raise ImageConversionError(
            f'{encoding} needs uint{8 * layout.itemsize} samples, got {arr.dtype}')
    height, width = arr.shape[:2]
    _check_even_width(encoding, layout, width)
    if msg_type is None:
        from sensor_msgs.msg import Image as msg_type
    data = np.ascontiguousarray(arr, dtype='<u2' if layout.itemsize == 2 else np.uint8)
    return _new_message(msg_type, header, data, height=height, width=width, encoding=encoding,
                        is_bigendian=0, step=width * layout.channels * layout.itemsize)


def output_image(rgb, encoding: str, requested: str = 'same', header=None, msg_type=None,
                 source=None):
    """The published Image for a frame that arrived in ``encoding``: always in
    ``output_encoding(encoding, requested)``, packed, little-endian, the frame's size.

    ``source``: the input message, for passing a frame through unchanged (restoration off). It
    goes out as it came when it already is that encoding and layout; otherwise its stored
    samples are repacked (padding and byte order, all 16 bits kept) or, for YUV, Bayer and
    compressed input, ``rgb`` is encoded like a restored frame.
    """
    out = output_encoding(encoding, requested)
    if source is not None and getattr(source, 'encoding', None) == out:
        channels, itemsize = encoding_layout(out)
        packed = source.step == source.width * channels * itemsize
        if packed and len(source.data) == source.height * source.step and not (
                itemsize == 2 and source.is_bigendian):
            return source
        return numpy_to_image(image_to_numpy(source, raw=True), out, header=source.header,
                              msg_type=type(source))
    return numpy_to_image(rgb_to_encoding(rgb, out), out, header=header, msg_type=msg_type)


def compressed_to_rgb(msg, max_pixels: int = MAX_INPUT_PIXELS) -> np.ndarray:
    """HxWx3 uint8 RGB from a CompressedImage (JPEG or PNG, detected from the bytes)."""
    return decode_compressed(msg, max_pixels)[0]


def decode_compressed(msg, max_pixels: int = MAX_INPUT_PIXELS):
    """(HxWx3 uint8 RGB, the image's ``CompressedHeader``) from a CompressedImage.

    ``format`` follows image_transport ("rgb8; jpeg compressed bgr8"): the order after
    "compressed" is what was handed to the encoder, so "compressed rgb8" needs no swap. Plain
    "jpeg"/"png" mean OpenCV's usual BGR. 16-bit PNGs keep the high byte like ``image_to_numpy``;
    greyscale is replicated, CMYK converted by the decoder. The header is read first
    (:mod:`image_headers`): an image over ``max_pixels`` is refused before anything is
    allocated for it, one without its end marker before a decoder fills in the missing part.
    """
    try:
        fmt, data = str(getattr(msg, 'format', '') or ''), msg.data
    except AttributeError as exc:
        raise ImageConversionError(f'not a CompressedImage message: {exc}') from None
    if 'compresseddepth' in fmt.lower():
        raise ImageConversionError(f'compressedDepth images are depth, not camera colour '
                                   f'(format {fmt!r})', reason='depth_image')
    buf = _byte_view(data)
    if buf.size == 0:
        raise ImageConversionError(f'compressed image has no data (format {fmt!r})',
                                   reason='empty')
    head = read_header(buf)
    if head is None:
        codec = codec_of(buf)
        if codec not in (None, 'jpeg', 'png'):
            raise ImageConversionError(f'{codec} in a CompressedImage: only JPEG and PNG are '
                                       f'read (format {fmt!r})', reason='unsupported_encoding')
        raise ImageConversionError(
            f'could not decode {buf.size} bytes of compressed image: no readable '
            f'{codec.upper() if codec else "JPEG or PNG"} header (format {fmt!r})',
            reason='corrupt')
    if not head.complete:
        raise ImageConversionError(f'{head.codec} of {buf.size} bytes cut short: no end marker '
                                   f'(format {fmt!r})', reason='truncated_compressed')
    if head.width * head.height > max_pixels:
        raise ImageConversionError(
            f'{head.codec} header announces {head.width}x{head.height} (limit {max_pixels} px): '
            'refused before decoding', reason='oversized')
    try:
        image = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    except cv2.error:
        image = None
    if image is None:
        raise ImageConversionError(
            f'could not decode {buf.size} bytes of compressed image (format {fmt!r})',
            reason='corrupt')
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ImageConversionError(
            f'decoded image has unsupported depth {image.dtype} (format {fmt!r})',
            reason='unsupported_encoding')
    if image.ndim == 2 or image.shape[2] == 1:
        return _cvt(image, cv2.COLOR_GRAY2RGB), head
    _, compressed, order = fmt.rpartition('compressed')
    rgb_ordered = bool(compressed) and order.strip() in _RGB_ORDERED
    if image.shape[2] == 4:
        return _cvt(image, cv2.COLOR_RGBA2RGB if rgb_ordered else cv2.COLOR_BGRA2RGB), head
    return (image if rgb_ordered else _cvt(image, cv2.COLOR_BGR2RGB)), head


def rgb_to_compressed(rgb, fmt: str = 'jpeg', quality: int = 90, header=None, msg_type=None):
    """Encode RGB as a CompressedImage the way image_transport does for an rgb8 image.

    Format is "rgb8; jpeg compressed bgr8" (or png): the pixels go to the encoder in BGR, so
    any standard decoder sees correct colours. ``quality`` (1-100) applies to JPEG only.
    """
    rgb = _checked_rgb(rgb)
    codec = str(fmt).lower()
    if codec not in _CODECS:
        raise ImageConversionError(
            f'unsupported compression {fmt!r}; use one of {", ".join(_CODECS)}')
    if not isinstance(quality, (int, np.integer)) or not 1 <= quality <= 100:
        raise ImageConversionError(f'JPEG quality must be an int in 1..100, got {quality!r}')
    codec = 'png' if codec == 'png' else 'jpeg'
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if codec == 'jpeg' else []
    try:
        ok, encoded = cv2.imencode(_CODECS[codec], _cvt(rgb, cv2.COLOR_RGB2BGR), params)
    except cv2.error as exc:
        raise ImageConversionError(f'{codec} encoding failed: {exc}') from None
    if not ok:
        raise ImageConversionError(f'{codec} encoding failed for a {rgb.shape} image')
    if msg_type is None:
        from sensor_msgs.msg import CompressedImage as msg_type
    return _new_message(msg_type, header, encoded, format=f'rgb8; {codec} compressed bgr8')
