"""Camera messages in: what the node and ``weather-restore bag`` restore, refuse, or restore
with a note. One place, so a live camera and its recording are judged alike.

:mod:`imaging` converts; this module decides. Every frame ends one of three ways:

* **refused** (:class:`ImageConversionError`, ``reason`` a key of ``imaging.REASONS``): what
  cannot be a camera colour frame or cannot be read. A size that no message can hold, or that
  a compressed header announces beyond ``max_pixels``, is refused before anything is allocated
  for it, so a corrupt header costs nothing;
* **restored with a warning** (``WARNINGS``): readable, but a consumer may trip on it or the
  header is likely wrong, e.g. a zero stamp breaks TF lookups and message_filters, a step that
  is not a whole number of pixels or data past the last row usually mean a wrong width or
  encoding. The node counts them in ``/diagnostics`` (WARN);
* **restored after a conversion** (``CONVERSIONS``): valid images in a form a colour camera
  rarely sends (greyscale or CMYK JPEG, 16-bit PNG, big-endian samples). Counted, not a warning.

Pure numpy/cv2 through imaging: no torch, no rclpy.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .imaging import (MAX_INPUT_PIXELS, ImageConversionError, decode_compressed, encoding_layout,
                      image_to_rgb)

WARNINGS = {
    'zero_stamp': 'header stamp 0: TF lookups and time synchronisation cannot use it',
    'empty_frame_id': 'empty header frame_id: no TF frame to place the image in',
    'unaligned_step': 'step is not a whole number of pixels (rows read as padded)',
    'trailing_data': 'data longer than height x step (the rest ignored)',
    'odd_bayer_size': 'a Bayer mosaic with an odd width or height (no sensor makes one)',
    'format_mismatch': 'CompressedImage.format names another codec than the data is',
    'format_changed': 'encoding or size differs from the previous frame of the stream',
}
CONVERSIONS = {
    'big_endian': '16-bit samples in big-endian byte order',
    'mono_compressed': 'a greyscale JPEG or PNG, replicated to RGB',
    'deep_compressed': 'more than 8 bits per sample (16-bit PNG), read at 8 (the high byte)',
    'cmyk_jpeg': 'a CMYK (or YCCK) JPEG, converted to RGB by the decoder',
}
# REP 118 depth images: distances, not intensities; restoring "weather" in them means nothing.
DEPTH_ENCODINGS = ('16UC1', '32FC1')
COMPRESSED_ENCODING = 'bgr8'   # what 'same' means for a compressed stream (image_transport's)


class DecodedFrame(NamedTuple):
    rgb: np.ndarray                  # HxWx3 uint8
    encoding: str                    # the input's encoding (compressed: COMPRESSED_ENCODING)
    warnings: tuple[str, ...] = ()   # keys of WARNINGS
    conversions: tuple[str, ...] = ()  # keys of CONVERSIONS


def decode_frame(msg, max_pixels: int = MAX_INPUT_PIXELS) -> DecodedFrame:
    """Any camera message (Image or CompressedImage, told apart by ``format``) -> DecodedFrame,
    or ImageConversionError with a reason. The output encoding is ``imaging.output_encoding
    (frame.encoding, output_encoding parameter)``, nothing else."""
    frame = _compressed(msg, max_pixels) if hasattr(msg, 'format') else _raw(msg, max_pixels)
    header = getattr(msg, 'header', None)   # test doubles may have none
    stamp = getattr(header, 'stamp', None)
    warnings = []
    if stamp is not None and not (getattr(stamp, 'sec', 0) or getattr(stamp, 'nanosec', 0)):
        warnings.append('zero_stamp')
    if getattr(header, 'frame_id', None) == '':
        warnings.append('empty_frame_id')
    return frame._replace(warnings=frame.warnings + tuple(warnings)) if warnings else frame


def _raw(msg, max_pixels: int) -> DecodedFrame:
    encoding = getattr(msg, 'encoding', None)
    if encoding in DEPTH_ENCODINGS:
        raise ImageConversionError(f'{encoding} is a depth image, not camera colour: not '
                                   'restored', reason='depth_image')
    rgb = image_to_rgb(msg, max_pixels)   # every other refusal, sizes checked first
    channels, itemsize = encoding_layout(encoding)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    warnings = []
    if step % (channels * itemsize):
        warnings.append('unaligned_step')
    if len(msg.data) > height * step:
        warnings.append('trailing_data')
    if encoding.startswith('bayer_') and (width % 2 or height % 2):
        warnings.append('odd_bayer_size')
    big = itemsize == 2 and bool(msg.is_bigendian)
    return DecodedFrame(rgb, encoding, tuple(warnings), ('big_endian',) * big)


def _compressed(msg, max_pixels: int) -> DecodedFrame:
    fmt = str(getattr(msg, 'format', '') or '')
    if fmt.partition(';')[0].strip() in DEPTH_ENCODINGS:
        raise ImageConversionError(f'format {fmt!r} is a depth image, not camera colour: not '
                                   'restored', reason='depth_image')
    # refusals: empty, not JPEG/PNG, corrupt, cut short, oversized (from the header)
    rgb, head = decode_compressed(msg, max_pixels)
    low = fmt.lower()
    named = 'jpeg' if ('jpeg' in low or 'jpg' in low) else 'png' if 'png' in low else None
    warnings = ('format_mismatch',) if named not in (None, head.codec) else ()
    conversions = []
    if head.channels <= 2:
        conversions.append('mono_compressed')
    if head.bit_depth > 8:
        conversions.append('deep_compressed')
    if head.codec == 'jpeg' and head.channels == 4:
        conversions.append('cmyk_jpeg')
    return DecodedFrame(rgb, COMPRESSED_ENCODING, warnings, tuple(conversions))


class StreamDecoder:
    """``decode_frame`` for one camera stream; also notes ``format_changed`` when a frame's
    encoding or size differs from the previous decoded frame's (each such frame is still
    restored, and published in its own encoding and size)."""

    def __init__(self, max_pixels: int = MAX_INPUT_PIXELS):
        self.max_pixels = max_pixels
        self.format: tuple | None = None

    def decode(self, msg) -> DecodedFrame:
        frame = decode_frame(msg, self.max_pixels)
        fmt = (frame.encoding, *frame.rgb.shape[:2])
        if self.format is not None and fmt != self.format:
            frame = frame._replace(warnings=frame.warnings + ('format_changed',))
        self.format = fmt
        return frame
