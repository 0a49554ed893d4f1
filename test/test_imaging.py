"""imaging.py: every encoding, three message libraries, the layouts cameras send, bad input."""
import subprocess
import sys
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from weather_restore_ros.imaging import (
    OUTPUT_ENCODING_CHOICES, OUTPUT_ENCODINGS, SUPPORTED_ENCODINGS, ImageConversionError,
    compressed_to_rgb, image_to_numpy, image_to_rgb, numpy_to_image, output_encoding,
    output_image, rgb_to_compressed, rgb_to_encoding)

# samples per pixel, bytes per sample: independent of the module's table on purpose
LAYOUT = {
    'rgb8': (3, 1), 'bgr8': (3, 1), 'rgba8': (4, 1), 'bgra8': (4, 1), 'mono8': (1, 1),
    'mono16': (1, 2), '8UC1': (1, 1), '8UC3': (3, 1), '8UC4': (4, 1), '16UC1': (1, 2),
    'yuv422': (2, 1), 'uyvy': (2, 1), 'yuv422_yuy2': (2, 1), 'yuyv': (2, 1),
    'bayer_rggb8': (1, 1), 'bayer_bggr8': (1, 1), 'bayer_gbrg8': (1, 1), 'bayer_grbg8': (1, 1),
}
PACKED_8BIT = ['rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8', '8UC1', '8UC3', '8UC4']
YUV = {'yuv422': cv2.COLOR_YUV2RGB_UYVY, 'uyvy': cv2.COLOR_YUV2RGB_UYVY,
       'yuv422_yuy2': cv2.COLOR_YUV2RGB_YUY2, 'yuyv': cv2.COLOR_YUV2RGB_YUY2}
BAYER = ['bayer_rggb8', 'bayer_bggr8', 'bayer_gbrg8', 'bayer_grbg8']
BACKENDS = ['rclpy', 'rosbags', 'namespace']
H, W = 333, 517  # odd on purpose


def test_encoding_table_matches():
    assert set(SUPPORTED_ENCODINGS) == set(LAYOUT)
    assert set(OUTPUT_ENCODINGS) == set(LAYOUT) - set(YUV) - set(BAYER)


# --- message libraries --------------------------------------------------------------------------

@pytest.fixture(scope='module')
def rosbags_types():
    typesys = pytest.importorskip('rosbags.typesys')
    store = typesys.get_typestore(typesys.Stores.ROS2_KILTED)
    types = store.types
    return store, types['sensor_msgs/msg/Image'], types['sensor_msgs/msg/CompressedImage']


def image_type(backend, rosbags_types):
    if backend == 'rclpy':
        return pytest.importorskip('sensor_msgs.msg').Image
    if backend == 'rosbags':
        return rosbags_types[1]
    return SimpleNamespace


def compressed_type(backend, rosbags_types):
    if backend == 'rclpy':
        return pytest.importorskip('sensor_msgs.msg').CompressedImage
    if backend == 'rosbags':
        return rosbags_types[2]
    return SimpleNamespace


def raw_message(backend, rosbags_types, encoding, height, width, step, payload, bigendian=0):
    """A message as a driver would send it: hand-made bytes, any step, any byte order."""
    fields = dict(height=height, width=width, encoding=encoding, is_bigendian=bigendian, step=step)
    if backend == 'rclpy':
        import array
        msg_type = image_type(backend, rosbags_types)
        data = array.array('B')
        data.frombytes(payload)
        return msg_type(data=data, **fields)
    if backend == 'rosbags':
        store, msg_type, _ = rosbags_types
        header = store.types['std_msgs/msg/Header'](
            stamp=store.types['builtin_interfaces/msg/Time'](sec=1, nanosec=2), frame_id='cam')
        return msg_type(header=header, data=np.frombuffer(payload, np.uint8).copy(), **fields)
    return SimpleNamespace(data=bytearray(payload), **fields)


def random_samples(encoding, height=H, width=W, seed=0):
    """Random array in the encoding's stored layout (what numpy_to_image takes)."""
    channels, itemsize = LAYOUT[encoding]
    if channels == 2:
        width -= width % 2
    rng = np.random.default_rng(seed)
    dtype = np.uint16 if itemsize == 2 else np.uint8
    return rng.integers(0, np.iinfo(dtype).max + 1, (height, width, channels), dtype=dtype)


def padded(samples, pad, bigendian=False):
    """Bytes with ``pad`` garbage bytes after every row, and the resulting step."""
    height, width, channels = samples.shape
    rows = samples.astype('>u2' if bigendian else samples.dtype.newbyteorder('<'))
    rows = rows.reshape(height, -1).view(np.uint8)
    garbage = np.full((height, pad), 0xAB, np.uint8)
    return np.hstack([rows, garbage]).tobytes(), rows.shape[1] + pad


# --- round trips --------------------------------------------------------------------------------

@pytest.mark.parametrize('backend', BACKENDS)
@pytest.mark.parametrize('encoding', sorted(LAYOUT))
def test_round_trip_every_encoding(encoding, backend, rosbags_types):
    samples = random_samples(encoding)
    msg = numpy_to_image(samples, encoding, msg_type=image_type(backend, rosbags_types))
    channels, itemsize = LAYOUT[encoding]
    assert (msg.height, msg.width, msg.encoding) == (samples.shape[0], samples.shape[1], encoding)
    assert msg.step == samples.shape[1] * channels * itemsize and msg.is_bigendian == 0
    back = image_to_numpy(msg, raw=True)
    assert back.dtype == samples.dtype and np.array_equal(back, samples)
    rgb = image_to_rgb(msg)
    assert rgb.shape == samples.shape[:2] + (3,) and rgb.dtype == np.uint8


@pytest.mark.parametrize('backend', BACKENDS)
@pytest.mark.parametrize('encoding', sorted(LAYOUT))
def test_padded_step_matches_packed(encoding, backend, rosbags_types):
    samples = random_samples(encoding, 37, 53, seed=1)
    payload, step = padded(samples, pad=13)
    height, width = samples.shape[:2]
    msg = raw_message(backend, rosbags_types, encoding, height, width, step, payload)
    packed = numpy_to_image(samples, encoding, msg_type=SimpleNamespace)
    assert np.array_equal(image_to_numpy(msg, raw=True), samples)
    assert np.array_equal(image_to_numpy(msg), image_to_numpy(packed))
    assert np.array_equal(image_to_rgb(msg), image_to_rgb(packed))


def test_data_longer_than_needed_is_ignored():
    samples = random_samples('rgb8', 4, 5)
    msg = SimpleNamespace(height=4, width=5, encoding='rgb8', is_bigendian=0, step=15,
                          data=samples.tobytes() + b'extra')
    assert np.array_equal(image_to_numpy(msg), samples)


@pytest.mark.parametrize('encoding', ['mono16', '16UC1'])
@pytest.mark.parametrize('pad', [0, 1, 6])  # pad 1: odd step, unaligned uint16 rows
def test_sixteen_bit_byte_order_and_scaling(encoding, pad):
    samples = np.array([[[0x1234], [0xFF01], [0x00FF]], [[0x8000], [0x0100], [0xFFFF]]], np.uint16)
    for bigendian in (False, True):
        payload, step = padded(samples, pad, bigendian)
        msg = SimpleNamespace(height=2, width=3, encoding=encoding, is_bigendian=int(bigendian),
                              step=step, data=payload)
        raw = image_to_numpy(msg, raw=True)
        assert raw.dtype == np.uint16 and raw.dtype.isnative and np.array_equal(raw, samples)
        eight = image_to_numpy(msg)
        assert eight.dtype == np.uint8 and eight.shape == (2, 3, 1)
        assert eight.ravel().tolist() == [0x12, 0xFF, 0x00, 0x80, 0x01, 0xFF]  # value >> 8
        assert np.array_equal(image_to_rgb(msg), np.repeat(eight, 3, axis=2))


def test_channel_orders_to_rgb():
    rgba = np.array([[[10, 20, 30, 40], [50, 60, 70, 80]]], np.uint8)
    rgb = rgba[..., :3]
    cases = {'rgb8': rgb, 'bgr8': rgb[..., ::-1], 'rgba8': rgba, 'bgra8': rgba[..., [2, 1, 0, 3]],
             '8UC3': rgb[..., ::-1], '8UC4': rgba[..., [2, 1, 0, 3]]}  # 8UCn: OpenCV's BGR(A)
    for encoding, stored in cases.items():
        msg = numpy_to_image(stored, encoding, msg_type=SimpleNamespace)
        assert np.array_equal(image_to_numpy(msg), stored), encoding  # own order
        assert np.array_equal(image_to_rgb(msg), rgb), encoding
    grey = numpy_to_image(np.array([[7, 9]], np.uint8), 'mono8', msg_type=SimpleNamespace)
    assert image_to_numpy(grey).shape == (1, 2, 1)
    assert image_to_rgb(grey).tolist() == [[[7, 7, 7], [9, 9, 9]]]


# --- zero copy ----------------------------------------------------------------------------------

def data_buffer(msg):
    return msg.data if isinstance(msg.data, np.ndarray) else np.frombuffer(msg.data, np.uint8)


@pytest.mark.parametrize('backend', BACKENDS)
@pytest.mark.parametrize('encoding', PACKED_8BIT)
def test_zero_copy_views(encoding, backend, rosbags_types):
    samples = random_samples(encoding, 20, 31, seed=2)
    payload, step = padded(samples, pad=5)
    for msg in (numpy_to_image(samples, encoding, msg_type=image_type(backend, rosbags_types)),
                raw_message(backend, rosbags_types, encoding, 20, 31, step, payload)):
        view = image_to_numpy(msg)
        assert np.shares_memory(view, data_buffer(msg)), encoding
        if encoding == 'rgb8':
            assert np.shares_memory(image_to_rgb(msg), data_buffer(msg))


def test_rclpy_data_is_array_and_view_writes_through():
    sensor_msgs = pytest.importorskip('sensor_msgs.msg')
    msg = numpy_to_image(np.zeros((2, 3, 3), np.uint8), 'rgb8', msg_type=sensor_msgs.Image)
    assert type(msg.data).__name__ == 'array'
    image_to_numpy(msg)[1, 2, 0] = 200  # documented: a view of the message, not a copy
    assert msg.data[1 * 9 + 2 * 3] == 200


def test_bytes_data_gives_read_only_view():
    msg = SimpleNamespace(height=1, width=2, encoding='mono8', is_bigendian=0, step=2,
                          data=b'\x01\x02')
    view = image_to_numpy(msg)
    assert not view.flags.writeable and view.ravel().tolist() == [1, 2]


def test_numpy_to_image_copies_its_input():
    samples = np.zeros((2, 2, 3), np.uint8)
    for msg_type in (SimpleNamespace, pytest.importorskip('sensor_msgs.msg').Image):
        msg = numpy_to_image(samples, 'rgb8', msg_type=msg_type)
        samples[0, 0, 0] = 9
        assert image_to_numpy(msg)[0, 0, 0] == 0
        samples[0, 0, 0] = 0


# --- YUV and Bayer ------------------------------------------------------------------------------

@pytest.mark.parametrize('encoding', sorted(YUV))
def test_yuv_matches_opencv_reference(encoding):
    samples = random_samples(encoding, 33, 52, seed=3)
    msg = numpy_to_image(samples, encoding, msg_type=SimpleNamespace)
    expected = cv2.cvtColor(samples, YUV[encoding])
    assert np.array_equal(image_to_rgb(msg), expected)
    assert np.array_equal(image_to_numpy(msg), expected)  # 3ch RGB, not the 2-byte samples


@pytest.mark.parametrize('encoding', sorted(YUV))
def test_yuv_constant_colour_by_hand(encoding):
    # BT.601 studio range: red (255, 0, 0) is Y=81, U(Cb)=90, V(Cr)=240; grey 128 is Y=U=V=128.
    for (y, u, v), rgb in (((81, 90, 240), (255, 0, 0)), ((128, 128, 128), (130, 130, 130))):
        uyvy = YUV[encoding] == cv2.COLOR_YUV2RGB_UYVY
        macropixel = [u, y, v, y] if uyvy else [y, u, y, v]
        payload = bytes(macropixel * 3 * 4)  # 4 rows x 6 pixels
        msg = SimpleNamespace(height=4, width=6, encoding=encoding, is_bigendian=0, step=12,
                              data=payload)
        out = image_to_rgb(msg).astype(int)
        assert np.abs(out - np.array(rgb)).max() <= 2, (encoding, out[0, 0])


def mosaic(rgb, pattern):
    """An RGB scene seen through a Bayer filter, named as ROS does (2x2 cell, row by row)."""
    out = np.empty(rgb.shape[:2], np.uint8)
    for index, colour in enumerate(pattern):
        row, col = divmod(index, 2)
        out[row::2, col::2] = rgb[row::2, col::2, 'rgb'.index(colour)]
    return out


@pytest.mark.parametrize('encoding', BAYER)
@pytest.mark.parametrize('colour', [(255, 0, 0), (0, 255, 0), (0, 0, 255), (200, 100, 50)])
def test_bayer_pattern_colours(encoding, colour):
    scene = np.broadcast_to(np.array(colour, np.uint8), (H, W, 3))
    raw = mosaic(scene, encoding[len('bayer_'):-1])
    msg = numpy_to_image(raw, encoding, msg_type=SimpleNamespace)
    rgb = image_to_rgb(msg)
    assert np.array_equal(rgb, scene), (encoding, rgb[H // 2, W // 2])  # borders included
    assert np.array_equal(image_to_numpy(msg, raw=True)[..., 0], raw)


# --- publishing in the input's encoding ---------------------------------------------------------

@pytest.mark.parametrize('encoding', sorted(LAYOUT))
def test_rgb_to_encoding_round_trip(encoding):
    rng = np.random.default_rng(4)
    rgb = rng.integers(0, 256, (11, 14, 3), dtype=np.uint8)
    if LAYOUT[encoding][0] == 1 and encoding not in BAYER:
        rgb = np.repeat(rgb[..., :1], 3, axis=2)  # mono keeps only grey exactly
    out = rgb_to_encoding(rgb, encoding)
    published = output_encoding(encoding)
    assert published == ('rgb8' if encoding in YUV or encoding in BAYER else encoding)
    msg = numpy_to_image(out, published, msg_type=SimpleNamespace)
    assert np.array_equal(image_to_rgb(msg), rgb)


@pytest.mark.parametrize('requested', OUTPUT_ENCODING_CHOICES)
@pytest.mark.parametrize('encoding', sorted(LAYOUT))
def test_output_encoding_is_the_input_encoding_and_the_parameter_only(encoding, requested):
    """The one rule for image_restored (node and bag): writable encodings stay, YUV and Bayer
    become rgb8, an explicit output_encoding wins; output_image always follows it, for a
    restored frame and for a frame passed through (``source``), whatever its layout."""
    expected = requested if requested != 'same' else (
        'rgb8' if encoding in YUV or encoding in BAYER else encoding)
    assert output_encoding(encoding, requested) == expected
    rgb = smooth_rgb(12, 18)
    samples = random_samples(encoding, 12, 18, seed=2)
    payload, step = padded(samples, 3, bigendian=LAYOUT[encoding][1] == 2)
    source = SimpleNamespace(height=12, width=18, encoding=encoding, step=step, data=payload,
                             is_bigendian=int(LAYOUT[encoding][1] == 2), header='h')
    for src in (None, source):
        out = output_image(rgb, encoding, requested, header='h', msg_type=SimpleNamespace,
                           source=src)
        channels, itemsize = LAYOUT[expected]
        assert (out.encoding, out.height, out.width, out.is_bigendian, out.header) == (
            expected, 12, 18, 0, 'h')
        assert out.step == 18 * channels * itemsize and len(out.data) == out.step * 12
    if expected == encoding:   # passed through: the samples themselves, all 16 bits kept
        out = output_image(rgb, encoding, requested, msg_type=SimpleNamespace, source=source)
        assert np.array_equal(image_to_numpy(out, raw=True), image_to_numpy(source, raw=True))


def test_output_image_passes_a_packed_source_through_as_is():
    source = numpy_to_image(random_samples('mono16', 4, 6), 'mono16', msg_type=SimpleNamespace)
    assert output_image(None, 'mono16', source=source) is source
    assert output_image(smooth_rgb(4, 6), 'mono16', 'rgb8', source=source).encoding == 'rgb8'
    with pytest.raises(ImageConversionError, match='output encoding must be one of'):
        output_encoding('rgb8', 'yuv422')


def test_rgb_to_encoding_values():
    rgb = np.array([[[255, 0, 0]]], np.uint8)
    assert rgb_to_encoding(rgb, 'bgr8').tolist() == [[[0, 0, 255]]]
    assert rgb_to_encoding(rgb, 'rgba8').tolist() == [[[255, 0, 0, 255]]]
    assert rgb_to_encoding(rgb, 'bgra8').tolist() == [[[0, 0, 255, 255]]]
    grey = np.full((1, 1, 3), 200, np.uint8)
    assert rgb_to_encoding(grey, 'mono8').tolist() == [[[200]]]
    assert rgb_to_encoding(grey, 'mono16').dtype == np.uint16
    assert rgb_to_encoding(grey, 'mono16').tolist() == [[[200 * 257]]]


# --- compressed ---------------------------------------------------------------------------------

def smooth_rgb(height=64, width=96):
    yy, xx = np.mgrid[0:height, 0:width]
    channels = [xx * 255 // width, yy * 255 // height, (xx + yy) % 256]
    return np.stack(channels, axis=2).astype(np.uint8)


def compressed(fmt, data, msg_type=SimpleNamespace, rosbags_types=None):
    if msg_type is SimpleNamespace:
        return SimpleNamespace(format=fmt, data=data)
    fields = dict(format=fmt, data=np.frombuffer(data, np.uint8).copy())
    if hasattr(msg_type, '__dataclass_fields__'):
        store = rosbags_types[0]
        fields['header'] = store.types['std_msgs/msg/Header'](
            stamp=store.types['builtin_interfaces/msg/Time'](sec=0, nanosec=0), frame_id='')
    else:
        import array
        fields['data'] = array.array('B', data)
    return msg_type(**fields)


@pytest.mark.parametrize('backend', BACKENDS)
@pytest.mark.parametrize('fmt', ['jpeg', 'png'])
def test_compressed_round_trip(fmt, backend, rosbags_types):
    rgb = smooth_rgb()
    header = SimpleNamespace(stamp=SimpleNamespace(sec=5, nanosec=6), frame_id='cam') \
        if backend == 'namespace' else None
    msg = rgb_to_compressed(rgb, fmt, quality=95, header=header,
                            msg_type=compressed_type(backend, rosbags_types))
    assert msg.format == f'rgb8; {fmt} compressed bgr8'
    if header is not None:
        assert msg.header is header
    back = compressed_to_rgb(msg)
    assert back.shape == rgb.shape and back.dtype == np.uint8
    if fmt == 'png':
        assert np.array_equal(back, rgb)
    else:
        assert np.abs(back.astype(int) - rgb).mean() < 3
    # what any other decoder sees: correct colours
    standard = cv2.imdecode(data_buffer(msg), cv2.IMREAD_COLOR)[..., ::-1]
    assert np.abs(standard.astype(int) - rgb).mean() < 3


@pytest.mark.parametrize('backend', BACKENDS)
def test_compressed_format_strings(backend, rosbags_types):
    rgb = smooth_rgb(32, 48)
    bgr = rgb[..., ::-1]
    grey = rgb[..., 1]
    grey3 = np.repeat(grey[..., None], 3, 2)

    def enc(ext, image, *params):
        return cv2.imencode(ext, np.ascontiguousarray(image), list(params))[1].tobytes()

    cases = [  # (format, encoded bytes, expected RGB, exact)
        ('jpeg', enc('.jpg', bgr, cv2.IMWRITE_JPEG_QUALITY, 98), rgb, False),
        ('png', enc('.png', bgr), rgb, True),
        ('', enc('.png', bgr), rgb, True),
        ('bgr8; jpeg compressed bgr8', enc('.jpg', bgr), rgb, False),
        ('rgb8; jpeg compressed bgr8', enc('.jpg', bgr), rgb, False),
        ('rgb8; png compressed bgr8', enc('.png', bgr), rgb, True),
        ('rgb8; png compressed rgb8', enc('.png', rgb), rgb, True),  # encoder got RGB: no swap
        ('bgra8; png compressed bgra8', enc('.png', np.dstack([bgr, np.full_like(grey, 255)])),
         rgb, True),
        ('mono8; png compressed', enc('.png', grey), grey3, True),
        ('mono8; jpeg compressed mono8', enc('.jpg', grey), grey3, False),
        ('mono16; png compressed', enc('.png', grey.astype(np.uint16) * 257), grey3, True),
    ]
    msg_type = compressed_type(backend, rosbags_types)
    for fmt, data, expected, exact in cases:
        out = compressed_to_rgb(compressed(fmt, data, msg_type, rosbags_types))
        assert out.shape == expected.shape and out.dtype == np.uint8, fmt
        diff = np.abs(out.astype(int) - expected)
        assert (diff.max() == 0) if exact else (diff.mean() < 3), fmt


# --- other message libraries --------------------------------------------------------------------

def test_rosbags_serialisation_round_trip(rosbags_types):
    store, image_cls, compressed_cls = rosbags_types
    samples = random_samples('bgra8', 17, 23, seed=5)
    msg = numpy_to_image(samples, 'bgra8', msg_type=image_cls)
    assert msg.header.frame_id == '' and msg.header.stamp.sec == 0  # rosbags has no defaults
    wire = store.serialize_cdr(msg, image_cls.__msgtype__)
    back = store.deserialize_cdr(wire, image_cls.__msgtype__)
    assert np.array_equal(image_to_numpy(back), samples)
    cmsg = rgb_to_compressed(smooth_rgb(), 'png', msg_type=compressed_cls)
    cback = store.deserialize_cdr(store.serialize_cdr(cmsg, compressed_cls.__msgtype__),
                                  compressed_cls.__msgtype__)
    assert np.array_equal(compressed_to_rgb(cback), smooth_rgb())


def test_rosbags_ros1_header_is_built():
    typesys = pytest.importorskip('rosbags.typesys')
    store = typesys.get_typestore(typesys.Stores.ROS1_NOETIC)
    msg_type = store.types['sensor_msgs/msg/Image']
    msg = numpy_to_image(np.zeros((2, 2), np.uint8), 'mono8', msg_type=msg_type)
    assert msg.header.seq == 0 and msg.header.frame_id == ''
    store.serialize_ros1(msg, 'sensor_msgs/msg/Image')


def test_header_is_kept(rosbags_types):
    sensor_msgs = pytest.importorskip('sensor_msgs.msg')
    from std_msgs.msg import Header
    header = Header(frame_id='camera_optical')
    header.stamp.sec = 42
    msg = numpy_to_image(np.zeros((2, 2, 3), np.uint8), 'rgb8', header=header,
                         msg_type=sensor_msgs.Image)
    assert msg.header.frame_id == 'camera_optical' and msg.header.stamp.sec == 42
    default = numpy_to_image(np.zeros((2, 2, 3), np.uint8), 'rgb8')  # default msg_type: rclpy
    assert isinstance(default, sensor_msgs.Image)
    assert isinstance(rgb_to_compressed(smooth_rgb()), sensor_msgs.CompressedImage)


def test_imports_neither_torch_nor_rclpy():
    code = ('import sys, numpy as np, weather_restore_ros.imaging as im; '
            'from types import SimpleNamespace as N; '
            'm = im.numpy_to_image(np.zeros((2, 2, 3), np.uint8), "bgr8", msg_type=N); '
            'im.image_to_rgb(m); '
            'bad = [m for m in ("torch", "rclpy", "sensor_msgs") if m in sys.modules]; '
            'assert not bad, bad')
    subprocess.run([sys.executable, '-c', code], check=True, timeout=60)


# --- bad input ----------------------------------------------------------------------------------

def msg(**overrides):
    fields = dict(height=10, width=100, encoding='rgb8', is_bigendian=0, step=300,
                  data=bytes(3000))
    fields.update(overrides)
    return SimpleNamespace(**fields)


BAD_IMAGES = {
    'unknown encoding': (msg(encoding='rgb9'), 'unsupported image encoding'),
    'none encoding': (msg(encoding=None), 'unsupported image encoding'),
    'short data': (msg(data=bytes(1000)),
                   'image data too short: 1000 bytes for height 10 x step 300 = 3000'),
    'step too small': (msg(step=299),
                       'step 299 is smaller than width 100 x 3 bytes per pixel = 300'),
    'step too small 16 bit': (msg(encoding='mono16', step=150, data=bytes(1500)),
                              'width 100 x 2 bytes'),
    'zero width': (msg(width=0), 'empty image'),
    'zero height': (msg(height=0), 'empty image'),
    'negative height': (msg(height=-1), 'empty image'),
    'odd yuv width': (msg(encoding='yuv422', width=5, step=10), 'even width'),
    'str data': (msg(data='x' * 3000), 'not a byte buffer'),
    'none data': (msg(data=None), 'not a byte buffer'),
    'float data': (msg(data=np.zeros(3000, np.float32)), 'uint8'),
    'out of range list': (msg(data=[256] * 3000), 'not a byte buffer'),
    'missing field': (SimpleNamespace(height=1, width=1, encoding='rgb8'), 'not an Image message'),
    'not a number': (msg(height='ten'), 'not an Image message'),
}


@pytest.mark.parametrize('case', sorted(BAD_IMAGES))
def test_bad_images_raise(case):
    bad, text = BAD_IMAGES[case]
    for convert in (image_to_numpy, image_to_rgb):
        with pytest.raises(ImageConversionError, match=text.replace('(', r'\(')) as info:
            convert(bad)
        assert isinstance(info.value, ValueError)


def test_list_data_is_accepted():
    assert image_to_numpy(msg(data=[1] * 3000)).shape == (10, 100, 3)


BAD_ARRAYS = [
    (np.zeros((4, 4, 3), np.uint8), 'mono8', 'needs an HxW'),
    (np.zeros((4, 4), np.uint8), 'rgb8', 'needs an HxWx3'),
    (np.zeros((4, 4, 4), np.uint8), 'rgb8', 'needs an HxWx3'),
    (np.zeros((4, 4, 3, 1), np.uint8), 'rgb8', 'needs an HxWx3'),
    (np.zeros(4, np.uint8), 'mono8', 'needs an HxW'),
    (np.zeros((0, 4, 3), np.uint8), 'rgb8', 'got shape'),
    (np.zeros((4, 4, 3), np.float32), 'rgb8', 'needs uint8 samples, got float32'),
    (np.zeros((4, 4), np.uint8), 'mono16', 'needs uint16 samples'),
    (np.zeros((4, 4), np.uint16), 'mono8', 'needs uint8 samples'),
    (np.zeros((4, 4), np.int8), 'mono8', 'needs uint8 samples'),
    (np.zeros((4, 5, 2), np.uint8), 'yuv422', 'even width'),
    (np.zeros((4, 4, 3), np.uint8), 'jpeg', 'unsupported image encoding'),
    ([[1, 2], [3, 4]], 'mono8', 'needs uint8 samples'),  # Python ints are int64
]


@pytest.mark.parametrize('array,encoding,text', BAD_ARRAYS)
def test_bad_arrays_raise(array, encoding, text):
    with pytest.raises(ImageConversionError, match=text):
        numpy_to_image(array, encoding, msg_type=SimpleNamespace)


@pytest.mark.parametrize('rgb', [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 4), np.uint8),
                                 np.zeros((4, 4, 3), np.float32), np.zeros((0, 4, 3), np.uint8)])
def test_bad_rgb_raises(rgb):
    with pytest.raises(ImageConversionError, match='HxWx3 uint8'):
        rgb_to_encoding(rgb, 'bgr8')
    with pytest.raises(ImageConversionError, match='HxWx3 uint8'):
        rgb_to_compressed(rgb, msg_type=SimpleNamespace)


def test_bad_publish_options_raise():
    rgb = smooth_rgb(8, 8)
    with pytest.raises(ImageConversionError, match='unsupported image encoding'):
        rgb_to_encoding(rgb, 'rgb16')
    with pytest.raises(ImageConversionError, match="unsupported compression 'webp'"):
        rgb_to_compressed(rgb, 'webp', msg_type=SimpleNamespace)
    for quality in (0, 101, 'high', 90.5):
        with pytest.raises(ImageConversionError, match='quality'):
            rgb_to_compressed(rgb, 'jpeg', quality=quality, msg_type=SimpleNamespace)


PNG = cv2.imencode('.png', np.zeros((8, 8), np.uint8))[1]
BAD_COMPRESSED = {
    'empty': (SimpleNamespace(format='jpeg', data=b''), 'no data'),
    'corrupt jpeg': (SimpleNamespace(format='jpeg', data=b'\xff\xd8\xff\xe0 not really a jpeg'),
                     'could not decode'),
    'random bytes': (SimpleNamespace(format='rgb8; jpeg compressed bgr8',
                                     data=bytes(range(256)) * 4), 'could not decode'),
    'truncated png': (SimpleNamespace(format='png', data=PNG[:20]), 'could not decode'),
    'compressedDepth': (SimpleNamespace(format='16UC1; compressedDepth png', data=bytes(100)),
                        'compressedDepth'),
    'no data field': (SimpleNamespace(format='jpeg'), 'not a CompressedImage'),
    'str data': (SimpleNamespace(format='jpeg', data='abc'), 'not a byte buffer'),
}


@pytest.mark.parametrize('case', sorted(BAD_COMPRESSED))
def test_bad_compressed_raise(case):
    bad, text = BAD_COMPRESSED[case]
    with pytest.raises(ImageConversionError, match=text):
        compressed_to_rgb(bad)
