"""What a JPEG or PNG says about itself, read from its header bytes without decoding it.

Why: a decoder allocates the image its header announces before it reads any pixel data, so a
few hundred bytes claiming 30000x30000 (a "decompression bomb", or just a corrupt header) cost
gigabytes. OpenCV's own guard (``CV_IO_MAX_IMAGE_PIXELS``, 2^30 pixels) is far above any
camera. Reading the size first lets a consumer refuse such a frame for free. The same header
says whether the image is complete (JPEG EOI, PNG IEND marker at the end: older OpenCVs decode a
cut-short JPEG into a half-grey frame with only a warning on stderr), its channels (greyscale,
CMYK) and its bit depth. Pure Python on any buffer (bytes, array.array, a uint8 numpy array:
read in place, never copied): no numpy, no cv2.
"""
from __future__ import annotations

import struct
from typing import NamedTuple

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}   # colour type -> samples (palette: RGB)
# SOFn markers (frame headers); C4 (DHT), C8 (JPG) and CC (DAC) share the range but are not.
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_TAIL = 64   # end markers are looked for this close to the end (some writers pad a little)
# Other formats OpenCV would decode (and size without our check): refused by name.
OTHER_SIGNATURES = {b'BM': 'BMP', b'II*\x00': 'TIFF', b'MM\x00*': 'TIFF', b'GIF8': 'GIF',
                    b'RIFF': 'WebP', b'\x00\x00\x00\x0cjP': 'JPEG 2000', b'\xffO\xffQ': 'JPEG 2000'}


class CompressedHeader(NamedTuple):
    codec: str            # 'jpeg' or 'png'
    width: int
    height: int
    channels: int         # colour components: 1 grey, 2 grey+alpha, 3 colour, 4 RGBA or CMYK
    bit_depth: int        # bits per sample: 8, 16 (PNG), 12 (some JPEGs), 1-4 (PNG palette/grey)
    complete: bool        # the end marker is there (EOI / IEND)


def codec_of(data) -> str | None:
    """'jpeg', 'png', another format's name (BMP, TIFF, ...), or None for unknown bytes."""
    head = bytes(memoryview(data)[:12])
    if head.startswith(b'\xff\xd8\xff'):
        return 'jpeg'
    if head.startswith(PNG_SIGNATURE):
        return 'png'
    return next((name for sig, name in OTHER_SIGNATURES.items() if head.startswith(sig)), None)


def read_header(data) -> CompressedHeader | None:
    """The header of a JPEG or PNG; None when ``data`` is neither or its header is unreadable
    (cut before the frame header, or a malformed segment)."""
    codec = codec_of(data)
    data = memoryview(data).cast('B')
    tail = bytes(data[-_TAIL:])
    if codec == 'png':
        return _png(data, tail)
    if codec == 'jpeg':
        return _jpeg(data, tail)
    return None


def _png(data: memoryview, tail: bytes) -> CompressedHeader | None:
    # signature, then the IHDR chunk: length 13, 'IHDR', width, height, depth, colour type
    if len(data) < 33 or bytes(data[12:16]) != b'IHDR':
        return None
    width, height, depth, colour = struct.unpack_from('>IIBB', data, 16)
    if colour not in _PNG_CHANNELS:
        return None
    return CompressedHeader('png', width, height, _PNG_CHANNELS[colour], depth, b'IEND' in tail)


def _jpeg(data: memoryview, tail: bytes) -> CompressedHeader | None:
    """Walk the marker segments to the first SOFn (it always precedes the scan data)."""
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:        # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):   # standalone markers: no length
            i += 2
            continue
        if marker in (0xD9, 0xDA):                 # EOI or start of scan before any SOF
            return None
        length = struct.unpack_from('>H', data, i + 2)[0]
        if marker in _JPEG_SOF:
            if length < 8 or i + 10 > n:
                return None
            depth, height, width, channels = struct.unpack_from('>BHHB', data, i + 4)
            return CompressedHeader('jpeg', width, height, channels, depth, b'\xff\xd9' in tail)
        if length < 2:
            return None
        i += 2 + length
    return None
