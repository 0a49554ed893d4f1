"""Weather synthesis: determinism, shapes, physically expected direction of each effect, CLI."""
import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from weather_restore_ros import DEFAULT_WEATHER_CLASSES
from weather_restore_ros.synth import (WEATHER_COMBINATIONS, WEATHER_EFFECTS, contact_sheet,
                                       parse_weather, random_weather, sample_images, synthesize,
                                       weather_label)
from weather_restore_ros.synth.samples import ASSETS_DIR, SAMPLE_FILES

ALL_WEATHERS = list(WEATHER_EFFECTS) + list(WEATHER_COMBINATIONS)


@pytest.fixture(scope='module')
def photo():
    """A real outdoor photo, downscaled to keep the tests fast."""
    rgb = dict(sample_images(['china']))['china']
    return cv2.resize(rgb, (320, 213), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope='module')
def dark_flat():
    """Dark, nearly flat image: anything bright and structured in the output was added."""
    rng = np.random.default_rng(0)
    return (np.full((240, 320, 3), 60) + rng.integers(0, 8, (240, 320, 3))).astype(np.uint8)


def grey(img):
    return img.astype(np.float64).mean(axis=2)


def orientation(diff):
    """(streak angle from vertical in degrees, positive = leaning right going down; coherence)."""
    gx = cv2.Sobel(diff, cv2.CV_64F, 1, 0, ksize=3)
    gy = cv2.Sobel(diff, cv2.CV_64F, 0, 1, ksize=3)
    jxx, jyy, jxy = (gx * gx).sum(), (gy * gy).sum(), (gx * gy).sum()
    phi = 0.5 * np.degrees(np.arctan2(2 * jxy, jxx - jyy))  # dominant gradient direction
    coherence = np.hypot(jxx - jyy, 2 * jxy) / (jxx + jyy)
    return -phi, coherence


def bright_blobs(diff, threshold=15.0):
    """Connected components of locally bright added structure (the veil removed by a high-pass)."""
    hp = (diff - cv2.GaussianBlur(diff, (0, 0), 6)).astype(np.float32)
    n, _, stats, _ = cv2.connectedComponentsWithStats((hp > threshold).astype(np.uint8),
                                                      connectivity=8)
    return stats[1:, cv2.CC_STAT_AREA]


# ----------------------------------------------------------------------------- API basics

@pytest.mark.parametrize('weather', ALL_WEATHERS)
def test_deterministic_by_seed(photo, weather):
    a, pa = synthesize(photo, weather, 123, 0.6)
    b, pb = synthesize(photo, weather, 123, 0.6)
    c, _ = synthesize(photo, weather, 124, 0.6)
    assert a.tobytes() == b.tobytes()
    assert pa == pb
    assert a.tobytes() != c.tobytes()
    json.dumps(pa)  # params are JSON-serialisable (labels, logs)


def test_generator_is_used_and_advanced(photo):
    gen = np.random.default_rng(5)
    a, pa = synthesize(photo, 'rain', gen, 0.5)
    b, _ = synthesize(photo, 'rain', gen, 0.5)
    assert pa['seed'] is None
    assert a.tobytes() != b.tobytes()
    c, _ = synthesize(photo, 'rain', np.random.default_rng(5), 0.5)
    assert a.tobytes() == c.tobytes()


def test_severity_none_is_drawn_from_the_default_range(photo):
    _, p = synthesize(photo, 'fog', 3)
    assert 0.3 <= p['severity'] <= 1.0
    _, p2 = synthesize(photo, 'fog', 3)
    assert p == p2


@pytest.mark.parametrize('shape', [(1, 1, 3), (2, 3), (5, 7, 1), (37, 53, 3), (64, 101, 4),
                                   (241, 321, 3), (3, 200, 3)])
@pytest.mark.parametrize('weather', ALL_WEATHERS)
def test_any_size_and_channel_layout(shape, weather):
    img = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    out, _ = synthesize(img, weather, 0, 0.8)
    assert out.dtype == np.uint8
    assert out.shape == shape[:2] + (3,)
    assert out.flags['C_CONTIGUOUS']


def test_grey_input_is_converted(photo):
    g = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    a, _ = synthesize(g, 'snow', 9, 0.5)
    b, _ = synthesize(np.repeat(g[:, :, None], 3, axis=2), 'snow', 9, 0.5)
    assert a.shape == photo.shape
    assert a.tobytes() == b.tobytes()


def test_float_input_in_unit_range(photo):
    a, _ = synthesize(photo.astype(np.float32) / 255.0, 'rain', 2, 0.5)
    b, _ = synthesize(photo, 'rain', 2, 0.5)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_input_is_not_modified(photo):
    before = photo.copy()
    for weather in ALL_WEATHERS:
        synthesize(photo, weather, 0, 1.0)
    assert np.array_equal(photo, before)


def test_weather_names_and_labels():
    assert set(WEATHER_EFFECTS) == {'rain', 'snow', 'fog', 'raindrop'}
    assert {'rain+fog', 'snow+fog'} <= set(WEATHER_COMBINATIONS)
    assert parse_weather(' Rain + FOG ') == ('rain', 'fog')
    assert weather_label('rain+fog') == 'rain'
    assert weather_label('fog+rain') == 'fog'
    assert weather_label('clear') == 'clear'
    for bad in ('hail', 'rain+rain', 'rain+clear', '', 'rain+'):
        with pytest.raises(ValueError):
            parse_weather(bad)
    with pytest.raises(TypeError):
        synthesize(np.zeros((8, 8, 3), np.uint8), 'rain', None)


def test_combination_applies_every_component(photo):
    out, p = synthesize(photo, 'rain+fog', 4, 0.8)
    assert p['label'] == 'rain'
    assert set(p['effects']) == {'rain', 'fog'}
    assert p['effects']['rain']['severity'] == pytest.approx(0.8)
    assert p['effects']['fog']['severity'] < 0.8
    rain_only, _ = synthesize(photo, 'rain', 4, 0.8)
    # fog lowers contrast on top of what rain alone does
    assert grey(out).std() < grey(rain_only).std()


# ------------------------------------------------------------- physics: expected direction

def test_fog_lowers_contrast_and_moves_towards_airlight(photo):
    for seed in range(3):
        out, p = synthesize(photo, 'fog', seed, 0.6)
        airlight = np.array(p['effects']['fog']['airlight']) * 255
        assert grey(out).std() < 0.75 * grey(photo).std()
        before = np.abs(photo.reshape(-1, 3).mean(0) - airlight).mean()
        after = np.abs(out.reshape(-1, 3).mean(0) - airlight).mean()
        assert after < 0.8 * before
        assert out.mean() > photo.mean()


def test_fog_is_denser_far_away():
    # Same texture everywhere, so only the depth proxy's row (ground-plane) cue differs:
    # contrast must survive better in the bottom rows (near) than in the top rows (far).
    rng = np.random.default_rng(0)
    tex = cv2.GaussianBlur(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8), (0, 0), 1.5)
    for seed in range(3):
        out, _ = synthesize(tex, 'fog', seed, 0.7)
        kept = grey(out).std(axis=1) / grey(tex).std(axis=1)
        assert kept[:60].mean() < kept[-40:].mean()


def test_rain_adds_bright_streaks_oriented_along_the_wind(dark_flat):
    for seed in range(4):
        out, p = synthesize(dark_flat, 'rain', seed, 0.6)
        diff = grey(out) - grey(dark_flat)
        assert diff.mean() > 3  # brighter: added light
        angle, coherence = orientation(diff)
        assert coherence > 0.6, 'rain structure is strongly oriented'
        wind = p['effects']['rain']['wind_deg']
        assert abs(angle - wind) < 8.0, (angle, wind)
        areas = bright_blobs(diff)
        assert len(areas) > 100


def test_snow_adds_many_small_round_bright_blobs(dark_flat):
    for seed in range(4):
        out, _ = synthesize(dark_flat, 'snow', seed, 0.6)
        diff = grey(out) - grey(dark_flat)
        assert diff.mean() > 3
        areas = bright_blobs(diff)
        assert len(areas) > 100
        assert np.median(areas) < 30
        _, coherence = orientation(diff)
        assert coherence < 0.5, 'flakes are blobs, not streaks'


def test_raindrops_change_local_regions_only(photo):
    for seed in range(3):
        out, p = synthesize(photo, 'raindrop', seed, 0.5)
        diff = np.abs(out.astype(int) - photo.astype(int)).max(axis=2)
        changed = (diff > 10).mean()
        assert 0.03 < changed < 0.6
        assert (diff <= 1).mean() > 0.4, 'most of the frame is untouched'
        n, _ = cv2.connectedComponents((diff > 10).astype(np.uint8))
        assert n - 1 >= 3, 'several separate drops'
        assert abs(changed - p['effects']['raindrop']['coverage']) < 0.15


@pytest.mark.parametrize('weather', ALL_WEATHERS)
def test_severity_is_monotonic(photo, weather):
    for seed in range(2):
        diffs = [np.abs(synthesize(photo, weather, seed, s)[0].astype(float) - photo).mean()
                 for s in (0.1, 0.4, 0.7, 1.0)]
        assert all(b > a for a, b in zip(diffs, diffs[1:])), diffs


# ------------------------------------------------------------------------ random_weather

def test_random_weather_clear_returns_the_input(photo):
    out, label, p = random_weather(photo, 0, classes=('clear',))
    assert label == 'clear'
    assert np.array_equal(out, photo)
    out2, _ = synthesize(photo, 'clear', 0)
    assert np.array_equal(out2, photo)


def test_random_weather_labels_and_determinism(photo):
    small = cv2.resize(photo, (96, 64))
    labels = set()
    for seed in range(40):
        out, label, p = random_weather(small, seed)
        again, label2, _ = random_weather(small, seed)
        assert label == label2 and out.tobytes() == again.tobytes()
        assert label in DEFAULT_WEATHER_CLASSES
        assert p['label'] == label
        if label != 'clear':
            assert 0.3 <= p['severity'] <= 1.0
        labels.add(label)
    assert labels == set(DEFAULT_WEATHER_CLASSES)
    _, label, p = random_weather(small, np.random.default_rng(0), classes=('snow+fog',),
                                 severity_range=(0.5, 0.5))
    assert label == 'snow' and p['weather'] == 'snow+fog' and p['severity'] == 0.5


# --------------------------------------------------------------- samples and contact sheet

def test_sample_images_are_shipped_small_and_licensed():
    samples = sample_images()
    assert 3 <= len(samples) <= 5
    for name, rgb in samples:
        assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
        assert rgb.shape[1] <= 640
    total = sum((ASSETS_DIR / f).stat().st_size for f in SAMPLE_FILES.values())
    assert total <= 400 * 1024
    licences = (ASSETS_DIR / 'LICENSES.md').read_text()
    for f in SAMPLE_FILES.values():
        assert f'`{f}`' in licences


def test_contact_sheet_layout():
    a = np.zeros((50, 100, 3), np.uint8)
    b = np.full((100, 100), 200, np.uint8)  # grey, taller
    sheet = contact_sheet([[a, b, a], [a]], [['one', 'two', 'three'], ['four']], tile_width=64,
                          pad=4)
    assert sheet.dtype == np.uint8 and sheet.ndim == 3
    assert sheet.shape[1] == 3 * (64 + 4) + 4
    assert sheet.shape[0] == 4 + 64 + 4 + 32 + 4
    # labels are drawn (white text pixels in the first tile)
    assert sheet[4:20, 4:68].max() > 150
    col_labels = contact_sheet([[a, a]], ['x', 'y'], tile_width=64)
    assert col_labels.shape[1] == 2 * 68 + 4
    assert contact_sheet([[a, None]], None, tile_width=32).shape[1] == 2 * 36 + 4


# ----------------------------------------------------------------------------------- CLI

def _write_clean_dir(folder: Path):
    folder.mkdir()
    rng = np.random.default_rng(0)
    img1 = cv2.GaussianBlur(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), (0, 0), 2)
    img2 = cv2.GaussianBlur(rng.integers(0, 256, (33, 45, 3), dtype=np.uint8), (0, 0), 2)
    cv2.imwrite(str(folder / 'a.png'), img1)
    cv2.imwrite(str(folder / 'b.png'), img2)
    (folder / 'broken.jpg').write_bytes(b'not an image at all')
    (folder / 'notes.txt').write_text('ignored')
    return {'a': img1, 'b': img2}


def test_cli_synth_pairs_labels_and_failures(tmp_path, capsys):
    from weather_restore_ros.cli import main
    clean = _write_clean_dir(tmp_path / 'clean')
    out = tmp_path / 'out'
    rc = main(['synth', str(tmp_path / 'clean'), str(out), '--weathers', 'rain,snow+fog',
               '--per-image', '2', '--severity', '0.4:0.9', '--seed', '7', '--contact-sheet'])
    assert rc == 1
    assert 'broken.jpg' in capsys.readouterr().err
    with open(out / 'labels.csv', newline='') as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 * 2 * 2
    assert set(rows[0]) == {'file', 'weather', 'severity', 'seed'}
    assert {r['weather'] for r in rows} == {'rain', 'snow+fog'}
    names = sorted(r['file'] for r in rows)
    assert names == sorted(p.name for p in (out / 'input').iterdir())
    assert names == sorted(p.name for p in (out / 'gt').iterdir())
    assert 'a_rain_0.png' in names and 'b_snow+fog_1.png' in names
    assert (out / 'contact_sheet.png').is_file()
    for row in rows:
        assert 0.4 <= float(row['severity']) <= 0.9
        stem = row['file'].split('_')[0]
        gt = cv2.imread(str(out / 'gt' / row['file']))
        assert np.array_equal(gt, clean[stem])
        # each sample is reproducible from its labels.csv row alone
        degraded = cv2.imread(str(out / 'input' / row['file']))
        again, _ = synthesize(cv2.cvtColor(gt, cv2.COLOR_BGR2RGB), row['weather'],
                              int(row['seed']), float(row['severity']))
        assert np.array_equal(degraded, cv2.cvtColor(again, cv2.COLOR_RGB2BGR))
    # the same command again writes identical files
    first = (out / 'input' / 'a_rain_1.png').read_bytes()
    assert main(['synth', str(tmp_path / 'clean'), str(out), '--weathers', 'rain,snow+fog',
                 '--per-image', '2', '--severity', '0.4:0.9', '--seed', '7']) == 1
    assert (out / 'input' / 'a_rain_1.png').read_bytes() == first


def test_cli_synth_ok_and_usage_errors(tmp_path, capsys):
    from weather_restore_ros.cli import main
    clean = tmp_path / 'clean'
    clean.mkdir()
    cv2.imwrite(str(clean / 'x.jpg'), np.full((20, 30, 3), 128, np.uint8))
    assert main(['synth', str(clean), str(tmp_path / 'o1'), '--weathers', 'fog',
                 '--severity', '0.5']) == 0
    with open(tmp_path / 'o1' / 'labels.csv', newline='') as fh:
        rows = list(csv.DictReader(fh))
    assert [r['file'] for r in rows] == ['x_fog_0.png'] and rows[0]['severity'] == '0.5000'
    assert main(['synth', str(clean), str(tmp_path / 'o2'), '--weathers', 'hail']) == 2
    assert main(['synth', str(tmp_path / 'missing'), str(tmp_path / 'o3')]) == 2
    with pytest.raises(SystemExit):
        main(['synth', str(clean), str(tmp_path / 'o4'), '--severity', '0.9:0.1'])
    capsys.readouterr()
