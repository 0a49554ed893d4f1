"""Our converter against ROS 2 cv_bridge, the reference every ROS user compares with.

Runs only where cv_bridge imports (a sourced ROS install). Only packed, little-endian messages are
compared: cv_bridge's Python side ignores ``step`` in several releases and its big-endian path
calls ``ndarray.newbyteorder``, which NumPy 2 removed; test_imaging covers those layouts.
"""
import zlib

import numpy as np
import pytest

cv_bridge = pytest.importorskip(
    'cv_bridge', reason='ROS 2 cv_bridge is not installable from PyPI; runs on a ROS install')
sensor_msgs = pytest.importorskip('sensor_msgs.msg')

from weather_restore_ros.imaging import (  # noqa: E402
    SUPPORTED_ENCODINGS, compressed_to_rgb, image_to_numpy, image_to_rgb, numpy_to_image,
    rgb_to_compressed, rgb_to_encoding)

SIXTEEN_BIT = ('mono16', '16UC1')


@pytest.fixture(scope='module')
def bridge():
    return cv_bridge.CvBridge()


def samples_for(bridge, encoding, height=33, width=48):
    """Random samples shaped like cv_bridge's passthrough image; skip encodings it lacks."""
    try:
        dtype, channels = bridge.encoding_to_dtype_with_channels(encoding)
    except (cv_bridge.CvBridgeError, KeyError, TypeError) as exc:
        pytest.skip(f'this cv_bridge does not know {encoding}: {exc}')
    rng = np.random.default_rng(zlib.crc32(encoding.encode()))
    dtype = np.dtype(dtype)
    shape = (height, width) if channels == 1 else (height, width, channels)
    return rng.integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)


@pytest.mark.parametrize('encoding', SUPPORTED_ENCODINGS)
def test_to_message_matches(bridge, encoding):
    samples = samples_for(bridge, encoding)
    theirs = bridge.cv2_to_imgmsg(samples, encoding)
    ours = numpy_to_image(samples, encoding)
    for field in ('height', 'width', 'encoding', 'step'):
        assert getattr(ours, field) == getattr(theirs, field), field
    assert int(ours.is_bigendian) == int(theirs.is_bigendian)
    assert bytes(ours.data) == bytes(theirs.data)


@pytest.mark.parametrize('encoding', SUPPORTED_ENCODINGS)
def test_passthrough_matches(bridge, encoding):
    samples = samples_for(bridge, encoding)
    msg = bridge.cv2_to_imgmsg(samples, encoding)
    theirs = bridge.imgmsg_to_cv2(msg, 'passthrough')
    ours = image_to_numpy(msg, raw=True)
    assert np.array_equal(ours.reshape(theirs.shape), theirs)


@pytest.mark.parametrize('encoding', SUPPORTED_ENCODINGS)
def test_rgb_matches(bridge, encoding):
    samples = samples_for(bridge, encoding)
    msg = bridge.cv2_to_imgmsg(samples, encoding)
    try:
        theirs = bridge.imgmsg_to_cv2(msg, 'rgb8')
    except cv_bridge.CvBridgeError as exc:  # e.g. 8UC1 -> rgb8: "conversion does not make sense"
        pytest.skip(f'cv_bridge does not convert {encoding} to rgb8: {exc}')
    ours = image_to_rgb(msg)
    assert ours.shape == theirs.shape
    # 16 -> 8 bit: cv_bridge rounds value * 255/65535, we keep the high byte; both within 1
    tolerance = 1 if encoding in SIXTEEN_BIT else 0
    assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= tolerance


@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8', 'mono16'])
def test_from_rgb_matches(bridge, encoding):
    rgb = samples_for(bridge, 'rgb8')
    theirs = bridge.imgmsg_to_cv2(bridge.cv2_to_imgmsg(rgb, 'rgb8'), encoding)
    ours = rgb_to_encoding(rgb, encoding).reshape(theirs.shape)
    one_grey_level = 257 if encoding == 'mono16' else 1
    assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= one_grey_level


@pytest.mark.parametrize('fmt', ['jpg', 'png'])
def test_compressed_matches(bridge, fmt):
    yy, xx = np.mgrid[0:48, 0:64]
    bgr = np.stack([xx * 4, yy * 5, (xx + yy) * 2], axis=2).astype(np.uint8)
    theirs_msg = bridge.cv2_to_compressed_imgmsg(bgr, dst_format=fmt)
    decoded = bridge.compressed_imgmsg_to_cv2(theirs_msg)
    assert np.array_equal(compressed_to_rgb(theirs_msg), decoded[..., ::-1])
    ours_msg = rgb_to_compressed(bgr[..., ::-1].copy(), 'jpeg' if fmt == 'jpg' else 'png')
    back = bridge.compressed_imgmsg_to_cv2(ours_msg)
    assert np.array_equal(compressed_to_rgb(ours_msg), back[..., ::-1])
    if fmt == 'png':
        assert np.array_equal(back, bgr)
