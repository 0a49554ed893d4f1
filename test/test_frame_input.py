"""frame_input and image_headers: what a camera frame is refused for, warned about or converted
from, on the deserialized messages of the bad-input matrix (no ROS, no model)."""
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from bad_inputs import CASES, STORE, H, W, frame, jpeg, png_bomb
from weather_restore_ros import image_headers
from weather_restore_ros.frame_input import (CONVERSIONS, WARNINGS, DecodedFrame, StreamDecoder,
                                             decode_frame)
from weather_restore_ros.imaging import REASONS, ImageConversionError, numpy_to_image


def _messages(case):
    for data in case.messages:
        try:
            yield STORE.deserialize_cdr(data, case.msgtype)
        except Exception:   # the non-UTF-8 encoding: rosbags refuses it (the bag's reason)
            assert case.bag_reason == 'undeserializable'


def test_the_matrix_covers_every_reason_warning_and_conversion():
    assert len(CASES) >= 20
    assert {c.reason for c in CASES if c.reason} == set(REASONS) - {'invalid'}
    assert {w for c in CASES for w in c.warnings} == set(WARNINGS)
    assert {k for c in CASES for k in c.conversions} == set(CONVERSIONS)


@pytest.mark.parametrize('case', CASES, ids=lambda c: c.kind)
def test_each_kind_is_refused_or_restored_as_stated(case):
    decoder = StreamDecoder()
    warnings, conversions = [], []
    for msg in _messages(case):
        if case.reason:
            with pytest.raises(ImageConversionError) as info:
                decoder.decode(msg)
            assert info.value.reason == case.reason, str(info.value)
            continue
        out = decoder.decode(msg)
        assert isinstance(out, DecodedFrame) and out.rgb.dtype == np.uint8
        h, w = (msg.height, msg.width) if case.transport == 'raw' else (H, W)
        assert out.rgb.shape == (h, w, 3)
        warnings += out.warnings
        conversions += out.conversions
    assert sorted(warnings) == sorted(case.warnings)
    assert sorted(conversions) == sorted(case.conversions)


def test_converted_images_have_the_right_colours():
    """Convertible kinds give the picture, not just any array: CMYK, grey, 16-bit, big-endian."""
    by = {c.kind: c for c in CASES}
    ref = frame()

    def rgb(kind):
        return decode_frame(next(_messages(by[kind]))).rgb.astype(int)

    assert np.abs(rgb('cmyk_jpeg') - ref).mean() < 4
    assert np.abs(rgb('greyscale_jpeg') - ref[..., 1:2]).mean() < 3
    assert np.array_equal(rgb('png_16bit'), ref)
    assert np.array_equal(rgb('big_endian_mono16'), np.repeat(ref[..., :1], 3, 2))
    assert np.array_equal(rgb('data_long'), ref)


@pytest.mark.parametrize('kind,reason', [('png_header_announces_huge_image', 'oversized'),
                                         ('size_overflow_32bit', 'size_overflow'),
                                         ('oversized', 'oversized')])
def test_huge_announced_sizes_are_refused_before_anything_is_decoded(kind, reason, monkeypatch):
    """Memory stays bounded because the size is judged from the header alone: the decoder is
    never called (it would allocate the announced 400 MP first), and a raw header's size is
    refused before its data length is even looked at (the data here is 100 bytes)."""
    def no_decoding(*args):
        raise AssertionError('decoded an image whose header is over the limit')
    monkeypatch.setattr(cv2, 'imdecode', no_decoding)
    msg = next(_messages(next(c for c in CASES if c.kind == kind)))
    with pytest.raises(ImageConversionError) as info:
        decode_frame(msg)
    assert info.value.reason == reason, str(info.value)


def test_header_reading():
    h = image_headers.read_header(png_bomb(300, 200))
    assert (h.codec, h.width, h.height, h.channels, h.bit_depth, h.complete) == (
        'png', 300, 200, 1, 8, True)
    j = jpeg()
    h = image_headers.read_header(j)
    assert (h.codec, h.width, h.height, h.channels, h.complete) == ('jpeg', W, H, 3, True)
    assert not image_headers.read_header(j[:len(j) // 2]).complete
    assert image_headers.read_header(j[:20]) is None            # cut before the frame header
    assert image_headers.read_header(np.frombuffer(j, np.uint8)).width == W   # any buffer
    bmp = cv2.imencode('.bmp', frame())[1].tobytes()
    assert image_headers.codec_of(bmp) == 'BMP' and image_headers.read_header(bmp) is None
    with pytest.raises(ImageConversionError, match='only JPEG and PNG') as info:
        decode_frame(SimpleNamespace(format='bmp', data=bmp))
    assert info.value.reason == 'unsupported_encoding'


def test_stream_decoder_notes_changes_but_not_repeats():
    decoder = StreamDecoder()
    head = SimpleNamespace(stamp=SimpleNamespace(sec=1, nanosec=0), frame_id='cam')
    a = numpy_to_image(frame(), 'rgb8', head, msg_type=SimpleNamespace)
    b = numpy_to_image(frame()[..., ::-1], 'bgr8', head, msg_type=SimpleNamespace)
    notes = [decoder.decode(m).warnings for m in (a, a, b, b, a)]
    assert notes == [(), (), ('format_changed',), (), ('format_changed',)]
    with pytest.raises(ImageConversionError):
        decoder.decode(SimpleNamespace(format='jpeg', data=b''))
    assert decoder.decode(a).warnings == ()    # a refused frame does not change the format
