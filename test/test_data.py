"""weather_restore_ros.data: layouts, labels, errors, deterministic augmentation, loaders."""
import os
import sys
import types

import cv2
import numpy as np
import pytest
import torch

from weather_restore_ros import DEFAULT_WEATHER_CLASSES
from weather_restore_ros.data import (CDD11_WEATHER, AllWeatherListDataset, CDD11Dataset,
                                      DatasetError, ImageReadError, MissingFileError,
                                      PairedFolderDataset, RealPhotoSet, SingleTestSet,
                                      SyntheticWeatherDataset, canonical_test_set, find_test_sets,
                                      infer_weather, label_index, make_loader, open_test_set,
                                      read_labels_csv, read_rgb, set_epoch)

CLS = DEFAULT_WEATHER_CLASSES


def lab(name):
    return CLS.index(name)


def img(seed, h=12, w=16):
    """A small RGB uint8 image, unique per seed."""
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def write(path, rgb):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return rgb


def to_u8(t):
    return (t.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


# ----------------------------------------------------------------------------- reading

def test_read_rgb_is_rgb_and_errors_name_the_file(tmp_path):
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0] = 200                                  # red
    write(tmp_path / 'red.png', rgb)
    got = read_rgb(tmp_path / 'red.png')
    assert got.shape == (4, 5, 3) and got[0, 0].tolist() == [200, 0, 0]
    with pytest.raises(MissingFileError, match='nothere.png'):
        read_rgb(tmp_path / 'nothere.png')
    (tmp_path / 'junk.png').write_bytes(b'not an image at all')
    with pytest.raises(ImageReadError, match='junk.png'):
        read_rgb(tmp_path / 'junk.png')


# ----------------------------------------------------------------------------- labels

@pytest.mark.parametrize('path,expected', [
    ('Snow100K/test/Snow100K-L/synthetic/beautiful_smile_00001.jpg', 'snow'),
    ('raindrop/test_a/data/0_rain.png', 'raindrop'),
    ('my_rain_drops/input/x.png', 'raindrop'),
    ('allweather/input/7_rain.png', 'raindrop'),
    ('outdoor-rain/test1/input/im_0001_s80_a04.png', 'rain'),
    ('allweather/input/im_0402_s90_a06.png', 'rain'),
    ('Rain100H/rain/rain-001.png', 'rain'),
    ('CDD-11_train/haze_rain/00001.png', 'rain'),
    ('CDD-11_train/haze_snow/00001.png', 'snow'),
    ('RESIDE/SOTS/outdoor/hazy/0001_0.8_0.2.jpg', 'fog'),
    ('foggy_city/input/a.png', 'fog'),
    ('dehaze/hazy/a.png', 'fog'),
    ('scenes/clear/a.png', 'clear'),
    ('train/input/a.png', None),                        # 'train' is not rain
    ('terrain/input/a.png', None),
    ('allweather/input/city_read_14216.jpg', None),
])
def test_infer_weather(path, expected):
    assert infer_weather(path) == expected


def test_label_index_aliases_and_error():
    assert label_index('haze', CLS) == lab('fog')
    assert label_index('Rainy', CLS) == lab('rain')
    assert label_index('rain-drop', CLS) == lab('raindrop')
    with pytest.raises(DatasetError, match='hail'):
        label_index('hail', CLS)


def test_read_labels_csv_with_and_without_header(tmp_path):
    (tmp_path / 'a.csv').write_text('file,weather,severity\ninput/x.png,snow,0.5\ny.png,fog,1\n')
    assert read_labels_csv(tmp_path / 'a.csv') == {'input/x.png': 'snow', 'y.png': 'fog'}
    (tmp_path / 'b.csv').write_text('# comment\nx.png,rain\n\nz,clear\n')
    assert read_labels_csv(tmp_path / 'b.csv') == {'x.png': 'rain', 'z': 'clear'}
    (tmp_path / 'c.csv').write_text('weather,file\nsnow,x.png\n')
    assert read_labels_csv(tmp_path / 'c.csv') == {'x.png': 'snow'}
    (tmp_path / 'd.csv').write_text('file,weather\nx.png,\n')
    with pytest.raises(DatasetError, match='line 2'):
        read_labels_csv(tmp_path / 'd.csv')


# ----------------------------------------------------------------------------- PairedFolder

def test_paired_two_folders_infers_label_and_returns_rgb_pairs(tmp_path):
    root = tmp_path / 'snow_scenes'
    a_in, a_gt = write(root / 'input/a.png', img(1)), write(root / 'gt/a.png', img(2))
    write(root / 'input/b.png', img(3))
    write(root / 'gt/b.jpg', img(4))                   # same stem, other extension
    ds = PairedFolderDataset(root)
    assert ds.layout == 'folders' and len(ds) == 2
    assert [s.name for s in ds.samples] == ['input/a.png', 'input/b.png']
    assert ds.labels == [lab('snow'), lab('snow')]
    s = ds[0]
    assert set(s) == {'input', 'target', 'label', 'name'}
    assert s['input'].dtype == torch.float32 and s['input'].shape == (3, 12, 16)
    assert 0.0 <= float(s['input'].min()) and float(s['input'].max()) <= 1.0
    np.testing.assert_array_equal(to_u8(s['input']), a_in)
    np.testing.assert_array_equal(to_u8(s['target']), a_gt)
    assert s['label'] == lab('snow') and s['name'] == 'input/a.png'
    assert ds.label_counts()['snow'] == 2


def test_paired_suffix_layout_with_labels_csv(tmp_path):
    root = tmp_path / 'mixed'
    write(root / 'x_in.png', img(1))
    write(root / 'x_gt.png', img(2))
    write(root / 'y_rain.png', img(3))
    write(root / 'y_clean.png', img(4))
    write(root / 'z_input.png', img(5))
    write(root / 'z_target.png', img(6))
    (root / 'labels.csv').write_text(
        'file,weather\nx_in.png,haze\ny_rain,raindrop\nz_input.png,clear\n')
    ds = PairedFolderDataset(root)
    assert ds.layout == 'suffix'
    got = {s.name: (os.path.basename(s.target_path), s.label) for s in ds.samples}
    assert got == {'x_in.png': ('x_gt.png', lab('fog')),
                   'y_rain.png': ('y_clean.png', lab('raindrop')),
                   'z_input.png': ('z_target.png', lab('clear'))}


def test_paired_fixed_weather_and_inference_failure(tmp_path):
    root = tmp_path / 'misc'
    write(root / 'input/a.png', img(1))
    write(root / 'gt/a.png', img(2))
    with pytest.raises(DatasetError, match='weather'):
        PairedFolderDataset(root)
    assert PairedFolderDataset(root, weather='snow').labels == [lab('snow')]


def test_paired_missing_target_strict_and_lenient(tmp_path):
    root = tmp_path / 'fog'
    write(root / 'input/a.png', img(1))
    write(root / 'gt/a.png', img(2))
    write(root / 'input/orphan.png', img(3))
    with pytest.raises(MissingFileError, match='orphan.png'):
        PairedFolderDataset(root)
    ds = PairedFolderDataset(root, strict=False)
    assert len(ds) == 1 and ds.skipped[0].endswith('orphan.png')


def test_paired_no_pairs_and_missing_root(tmp_path):
    write(tmp_path / 'lonely/photo.png', img(1))
    with pytest.raises(DatasetError, match='no image pairs'):
        PairedFolderDataset(tmp_path / 'lonely')
    with pytest.raises(MissingFileError):
        PairedFolderDataset(tmp_path / 'absent')


def test_unreadable_image_error_names_file(tmp_path):
    root = tmp_path / 'rain'
    write(root / 'gt/bad.png', img(1))
    os.makedirs(root / 'input')
    (root / 'input/bad.png').write_bytes(b'\x89PNG broken')
    ds = PairedFolderDataset(root)
    with pytest.raises(ImageReadError, match='bad.png'):
        ds[0]


# ----------------------------------------------------------------------------- list files

def _allweather_tree(tmp_path):
    d = tmp_path / 'data' / 'allweather'
    for name, seed in [('im_0001_s80_a04.png', 1), ('city_read_14216.png', 2), ('3_rain.png', 3)]:
        write(d / 'input' / name, img(seed))
        write(d / 'gt' / name, img(seed + 10))
    return d


def test_allweather_list_transweather_convention(tmp_path):
    d = _allweather_tree(tmp_path)
    # lines relative to the list's parent (./allweather/input/...), as in TransWeather's list
    (d / 'allweather.txt').write_text('./allweather/input/im_0001_s80_a04.png\n'
                                      './allweather/input/city_read_14216.png\n'
                                      './allweather/input/3_rain.png\n')
    ds = AllWeatherListDataset(d / 'allweather.txt')
    assert len(ds) == 3
    assert [os.path.relpath(s.target_path, d) for s in ds.samples] == [
        os.path.join('gt', 'im_0001_s80_a04.png'), os.path.join('gt', 'city_read_14216.png'),
        os.path.join('gt', '3_rain.png')]
    # Outdoor-Rain name -> rain, RainDrop name -> raindrop, plain Snow100K name -> default snow
    assert ds.labels == [lab('rain'), lab('snow'), lab('raindrop')]
    np.testing.assert_array_equal(to_u8(ds[1]['target']), img(12))
    # lines relative to the list's own folder work too
    (d / 'list2.txt').write_text('input/city_read_14216.png\n')
    with pytest.raises(DatasetError, match='weather'):     # not allweather*.txt: no default
        AllWeatherListDataset(d / 'list2.txt')
    assert AllWeatherListDataset(d / 'list2.txt', weather='snow').labels == [lab('snow')]


def test_list_raw_dataset_names_map_to_their_targets(tmp_path):
    rd = tmp_path / 'raindrop' / 'test'
    write(rd / 'input/0_rain.png', img(1))
    write(rd / 'gt/0_clean.png', img(2))
    (rd / 'raindroptesta.txt').write_text('input/0_rain.png\n')
    ds = AllWeatherListDataset(rd / 'raindroptesta.txt')
    assert os.path.basename(ds.samples[0].target_path) == '0_clean.png'
    assert ds.labels == [lab('raindrop')]

    od = tmp_path / 'outdoor-rain'
    write(od / 'input/im_0001_s80_a04.png', img(3))
    write(od / 'gt/im_0001.png', img(4))
    (od / 'test1.txt').write_text('input/im_0001_s80_a04.png\n')
    ds = AllWeatherListDataset(od / 'test1.txt')
    assert os.path.basename(ds.samples[0].target_path) == 'im_0001.png'
    assert ds.labels == [lab('rain')]


def test_list_explicit_columns(tmp_path):
    write(tmp_path / 'a/deg.png', img(1))
    write(tmp_path / 'b/clean.png', img(2))
    write(tmp_path / 'input/x.png', img(3))
    write(tmp_path / 'gt/x.png', img(4))
    (tmp_path / 'l.txt').write_text('# comment\n\na/deg.png b/clean.png fog\ninput/x.png haze\n')
    ds = AllWeatherListDataset(tmp_path / 'l.txt')
    assert os.path.basename(ds.samples[0].target_path) == 'clean.png'
    assert ds.labels == [lab('fog'), lab('fog')]


def test_list_missing_input_names_file_and_line(tmp_path):
    d = _allweather_tree(tmp_path)
    (d / 'allweather.txt').write_text('input/im_0001_s80_a04.png\n\ninput/missing_one.png\n')
    with pytest.raises(MissingFileError) as e:
        AllWeatherListDataset(d / 'allweather.txt')
    msg = str(e.value)
    assert 'missing_one.png' in msg and 'line 3' in msg and 'allweather.txt' in msg


def test_list_missing_target_names_file_and_line(tmp_path):
    d = tmp_path / 'set'
    write(d / 'input/a_snow.png', img(1))
    write(d / 'input/b_snow.png', img(1))
    write(d / 'gt/a_snow.png', img(2))
    (d / 'list.txt').write_text('input/a_snow.png\ninput/b_snow.png\n')
    with pytest.raises(MissingFileError) as e:
        AllWeatherListDataset(d / 'list.txt')
    assert 'b_snow.png' in str(e.value) and 'line 2' in str(e.value)
    with pytest.raises(MissingFileError, match='list file not found'):
        AllWeatherListDataset(d / 'nope.txt')


# ----------------------------------------------------------------------------- CDD-11

def _cdd(root, split, degs, names=('000001.png', '000002.png')):
    for i, n in enumerate(names):
        write(root / split / 'clear' / n, img(100 + i))
        for j, deg in enumerate(degs):
            write(root / split / deg / n, img(10 * j + i))


def test_cdd11_labels_and_pairs(tmp_path):
    degs = ['haze', 'rain', 'snow', 'low', 'haze_rain', 'low_haze_snow']
    _cdd(tmp_path, 'train', degs)
    ds = CDD11Dataset(tmp_path, 'train')
    assert len(ds) == 2 * len(degs)
    by_name = {s.name: s for s in ds.samples}
    for deg in degs:
        s = by_name[f'{deg}/000002.png']
        assert s.label == lab(CDD11_WEATHER[deg])
        assert s.target_path.endswith(os.path.join('clear', '000002.png'))
    assert by_name['haze/000001.png'].label == lab('fog')
    assert by_name['haze_rain/000001.png'].label == lab('rain')
    assert by_name['low_haze_snow/000001.png'].label == lab('snow')
    assert by_name['low/000001.png'].label == lab('clear')
    np.testing.assert_array_equal(to_u8(ds[ds.samples.index(by_name['rain/000002.png'])]['target']),
                                  img(101))
    only = CDD11Dataset(tmp_path, 'train', degradations=['snow'], include_clear=True)
    assert sorted(only.labels) == sorted([lab('snow')] * 2 + [lab('clear')] * 2)
    with pytest.raises(MissingFileError, match='test'):
        CDD11Dataset(tmp_path, 'test')
    with pytest.raises(DatasetError, match='blur'):
        CDD11Dataset(tmp_path, 'train', degradations=['blur'])


def test_cdd11_release_folder_names_and_missing_clear(tmp_path):
    _cdd(tmp_path, 'CDD-11_test', ['rain'])
    assert len(CDD11Dataset(tmp_path, 'test')) == 2
    write(tmp_path / 'CDD-11_test' / 'rain' / 'orphan.png', img(5))
    with pytest.raises(MissingFileError, match='orphan.png'):
        CDD11Dataset(tmp_path, 'test')


# ----------------------------------------------------------------------------- test sets

def test_single_test_sets_layouts(tmp_path):
    sots = tmp_path / 'RESIDE' / 'SOTS' / 'outdoor'
    write(sots / 'hazy/0001_0.8_0.2.jpg', img(1))
    write(sots / 'hazy/0002_0.9_0.16.jpg', img(2))
    write(sots / 'gt/0001.png', img(3))
    write(sots / 'gt/0002.png', img(4))
    ds = SingleTestSet('SOTS-outdoor', tmp_path / 'RESIDE')
    assert len(ds) == 2 and set(ds.labels) == {lab('fog')}
    assert [os.path.basename(s.target_path) for s in ds.samples] == ['0001.png', '0002.png']
    assert ds[0]['input'].shape == (3, 12, 16)        # full image by default

    rd = tmp_path / 'test_a'
    write(rd / 'data/0_rain.png', img(5))
    write(rd / 'gt/0_clean.png', img(6))
    ds = SingleTestSet('raindrop', rd)
    assert ds.labels == [lab('raindrop')]
    assert os.path.basename(ds.samples[0].target_path) == '0_clean.png'

    sn = tmp_path / 'Snow100K' / 'test' / 'Snow100K-S'
    write(sn / 'synthetic/beautiful_smile_00001.jpg', img(7))
    write(sn / 'gt/beautiful_smile_00001.jpg', img(8))
    write(sn / 'mask/beautiful_smile_00001.jpg', img(9))
    ds = SingleTestSet('snow100k-s', tmp_path / 'Snow100K')
    assert ds.labels == [lab('snow')] and len(ds) == 1

    t1 = tmp_path / 'test1'
    write(t1 / 'input/im_0001_s80_a04.png', img(10))
    write(t1 / 'gt/im_0001.png', img(11))
    ds = SingleTestSet('Test1', t1)
    assert ds.labels == [lab('rain')]
    np.testing.assert_array_equal(to_u8(ds[0]['target']), img(11))


def test_single_test_set_errors(tmp_path):
    with pytest.raises(DatasetError, match='unknown test set'):
        canonical_test_set('rain800')
    assert canonical_test_set('Snow100K-L') == 'snow100k-l'
    os.makedirs(tmp_path / 'empty')
    with pytest.raises(MissingFileError, match='snow100k-l'):
        SingleTestSet('snow100k-l', tmp_path / 'empty')


@pytest.mark.parametrize('layout', ['input_gt', 'input_target', 'prenet', 'one_folder',
                                    'rain_norain_folders'])
def test_rain100_layouts(tmp_path, layout):
    """Rain100L/H as they are distributed: input/ + gt/ (the shared data, most re-packagings),
    input/ + target/ (Restormer), PReNet's rainy/rain-NNN.png with norain-NNN.png beside,
    the original rain-NNN.png + norain-NNN.png in one folder, rain/ + norain/ folders."""
    root = tmp_path / 'Rain100L'
    inp, gt = {
        'input_gt': ('input/{n:03d}.png', 'gt/{n:03d}.png'),
        'input_target': ('input/{n:03d}.png', 'target/{n:03d}.png'),
        'prenet': ('rainy/rain-{n:03d}.png', 'norain-{n:03d}.png'),
        'one_folder': ('rain-{n:03d}.png', 'norain-{n:03d}.png'),
        'rain_norain_folders': ('rain/rain-{n:03d}.png', 'norain/norain-{n:03d}.png'),
    }[layout]
    for n in (1, 2, 10):
        write(root / inp.format(n=n), img(n))
        write(root / gt.format(n=n), img(100 + n))
    for ds in (SingleTestSet('rain100l', root), SingleTestSet('Rain100L', tmp_path)):
        assert len(ds) == 3 and set(ds.labels) == {lab('rain')}
        for k, n in enumerate((1, 2, 10)):
            s = ds[k]
            assert s['name'] == inp.format(n=n)
            np.testing.assert_array_equal(to_u8(s['input']), img(n))
            np.testing.assert_array_equal(to_u8(s['target']), img(100 + n))
    # an input without its target is an error naming it
    os.remove(root / gt.format(n=2))
    with pytest.raises(MissingFileError, match=os.path.basename(inp.format(n=2))):
        SingleTestSet('rain100l', root)
    assert len(SingleTestSet('rain100l', root, strict=False)) == 2


def test_rain100_shared_data_folder_names(tmp_path):
    """The shared data's rain100l_test/ and rain100h_test/ are found from their parent, and a
    folder without any of the layouts is reported."""
    for name, n in (('rain100l_test', 1), ('rain100h_test', 2)):
        write(tmp_path / name / 'input' / '001.png', img(n))
        write(tmp_path / name / 'gt' / '001.png', img(10 + n))
    ds = SingleTestSet('rain100h', tmp_path)
    assert ds.root == str(tmp_path / 'rain100h_test')
    np.testing.assert_array_equal(to_u8(ds[0]['input']), img(2))
    assert canonical_test_set('Rain100H_test') == 'rain100h'
    os.makedirs(tmp_path / 'nothing')
    with pytest.raises(MissingFileError, match='rain100l'):
        SingleTestSet('rain100l', tmp_path / 'nothing')


def test_real_photo_sets_labelled_by_folder(tmp_path):
    photos = tmp_path / 'real_photos'
    write(photos / 'real_rain' / 'b.jpg', img(1))
    write(photos / 'real_rain' / 'a.png', img(2))
    write(photos / 'dawn_fog' / 'foggy-002.jpg', img(3))
    rain = RealPhotoSet('real-rain', photos)
    assert [s.name for s in rain.samples] == ['a.png', 'b.jpg']
    assert rain.labels == [lab('rain')] * 2 and rain.root == str(photos / 'real_rain')
    item = rain[0]
    assert set(item) == {'input', 'label', 'name'}            # no ground truth
    np.testing.assert_array_equal(to_u8(item['input']), img(2))
    fog = open_test_set('real-fog', photos / 'dawn_fog')        # the folder itself
    assert isinstance(fog, RealPhotoSet) and fog.labels == [lab('fog')]
    assert open_test_set('dawn-fog', tmp_path).root == str(photos / 'dawn_fog')
    with pytest.raises(DatasetError, match='RealPhotoSet'):
        SingleTestSet('real-rain', photos)
    os.makedirs(tmp_path / 'empty')
    with pytest.raises(MissingFileError, match='real-fog: no photos'):
        RealPhotoSet('real-fog', tmp_path / 'empty')


def test_find_test_sets_lists_every_set_under_a_root(tmp_path):
    write(tmp_path / 'rain100l_test' / 'input' / '001.png', img(1))
    write(tmp_path / 'rain100l_test' / 'gt' / '001.png', img(2))
    write(tmp_path / 'Rain100H' / 'rainy' / 'rain-001.png', img(3))
    write(tmp_path / 'Rain100H' / 'norain-001.png', img(4))
    write(tmp_path / 'real_photos' / 'real_rain' / '1.jpg', img(5))
    write(tmp_path / 'real_photos' / 'dawn_fog' / '2.jpg', img(6))
    write(tmp_path / 'unrelated' / 'input' / 'x.png', img(7))    # no known set's name
    sets = find_test_sets(tmp_path)
    assert [(s.name, len(s)) for s in sets] == [('rain100l', 1), ('rain100h', 1),
                                                 ('real-rain', 1), ('real-fog', 1)]
    assert find_test_sets(tmp_path / 'unrelated') == []
    # a set folder that is broken is reported, not skipped
    os.remove(tmp_path / 'Rain100H' / 'norain-001.png')
    write(tmp_path / 'Rain100H' / 'norain' / 'norain-002.png', img(8))
    with pytest.raises(MissingFileError, match='rain-001.png'):
        find_test_sets(tmp_path)


def test_pair_size_mismatch_is_center_cropped_or_reported(tmp_path):
    root = tmp_path / 'SOTS' / 'indoor'
    write(root / 'hazy/1400_1.png', img(1, 10, 12))
    gt = write(root / 'gt/1400.png', img(2, 14, 16))
    s = SingleTestSet('sots-indoor', tmp_path)[0]
    assert s['input'].shape == s['target'].shape == (3, 10, 12)
    np.testing.assert_array_equal(to_u8(s['target']), gt[2:12, 2:14])
    write(root / 'gt/1400.png', img(2, 200, 200))
    with pytest.raises(DatasetError, match='1400.png'):
        SingleTestSet('sots-indoor', tmp_path)[0]


# ----------------------------------------------------------------------------- augmentation

def _gradient_pair(tmp_path, h=20, w=24):
    root = tmp_path / 'snow'
    x = np.zeros((h, w, 3), np.uint8)
    x[..., 0] = (np.arange(w) * 10)[None, :]
    x[..., 1] = (np.arange(h) * 10)[:, None]
    x[..., 2] = 7
    write(root / 'input/a.png', x)
    write(root / 'gt/a.png', x)           # target == input, so aligned crops stay equal
    for i in range(5):
        write(root / f'input/b{i}.png', img(i, h, w))
        write(root / f'gt/b{i}.png', img(i, h, w))
    return root, x


def test_crop_flip_deterministic_and_aligned(tmp_path):
    root, x = _gradient_pair(tmp_path)
    a = PairedFolderDataset(root, crop_size=8, seed=3)
    b = PairedFolderDataset(root, crop_size=8, seed=3)
    assert a.flip is True
    for i in range(len(a)):
        sa, sb = a[i], b[i]
        assert sa['input'].shape == (3, 8, 8)
        assert torch.equal(sa['input'], sb['input']) and torch.equal(sa['input'], a[i]['input'])
        assert torch.equal(sa['input'], sa['target'])          # same crop and flip for both
    other = PairedFolderDataset(root, crop_size=8, seed=4)
    assert any(not torch.equal(a[i]['input'], other[i]['input']) for i in range(len(a)))
    before = [a[i]['input'] for i in range(len(a))]
    a.set_epoch(1)
    assert any(not torch.equal(before[i], a[i]['input']) for i in range(len(a)))
    # crops are real sub-windows of the image (possibly flipped)
    crop = to_u8(PairedFolderDataset(root, crop_size=(6, 9), seed=0, flip=False)[0]['input'])
    y, x0 = crop[0, 0, 1] // 10, crop[0, 0, 0] // 10
    np.testing.assert_array_equal(crop, x[y:y + 6, x0:x0 + 9])


def test_flip_uses_same_offsets_and_happens_half_the_time(tmp_path):
    root, x = _gradient_pair(tmp_path)
    plain = PairedFolderDataset(root, crop_size=8, seed=1, flip=False)
    flip = PairedFolderDataset(root, crop_size=8, seed=1, flip=True)
    flipped = 0
    for epoch in range(8):
        plain.set_epoch(epoch)
        flip.set_epoch(epoch)
        p, f = plain[0]['input'], flip[0]['input']
        if torch.equal(p, f):
            continue
        assert torch.equal(p.flip(-1), f)
        flipped += 1
    assert 0 < flipped < 8


def test_small_images_are_padded_to_crop(tmp_path):
    root, _ = _gradient_pair(tmp_path, h=5, w=7)
    s = PairedFolderDataset(root, crop_size=(16, 12), seed=0)[0]
    assert s['input'].shape == (3, 16, 12) and torch.equal(s['input'], s['target'])
    full = PairedFolderDataset(root)[0]
    assert full['input'].shape == (3, 5, 7)


def test_loader_same_batches_with_and_without_workers(tmp_path):
    root, _ = _gradient_pair(tmp_path)
    ds = PairedFolderDataset(root, crop_size=8, seed=5)
    l0 = make_loader(ds, batch_size=2, shuffle=True, seed=11, num_workers=0)
    l2 = make_loader(ds, batch_size=2, shuffle=True, seed=11, num_workers=2)
    b0, b2 = list(l0), list(l2)
    assert len(b0) == len(b2) == 3                       # 6 samples, drop_last
    for x, y in zip(b0, b2):
        assert x['name'] == y['name'] and torch.equal(x['input'], y['input'])
        assert x['label'].tolist() == [lab('snow')] * 2
    # new epoch: new order and new crops, again reproducible
    set_epoch(l0, 1)
    e1 = list(l0)
    set_epoch(l0, 0)
    assert [b['name'] for b in list(l0)] == [b['name'] for b in b0]
    set_epoch(l0, 1)
    assert [b['name'] for b in e1] == [b['name'] for b in list(l0)]
    assert ds.epoch == 1


def test_make_loader_order_and_distributed_flag(tmp_path):
    root, _ = _gradient_pair(tmp_path)
    ds = PairedFolderDataset(root)
    names = [b['name'][0] for b in make_loader(ds, 1, shuffle=False)]
    assert names == [s.name for s in ds.samples]
    shuffled = [[b['name'][0] for b in make_loader(ds, 1, shuffle=True, seed=s)] for s in (0, 1)]
    assert sorted(shuffled[0]) == sorted(names) and len(shuffled[0]) == len(names)
    orders = {tuple(o) for o in shuffled} | {tuple(names)}
    assert len(orders) > 1
    with pytest.raises(RuntimeError, match='distributed'):
        make_loader(ds, 1, distributed=True)
    tiny = make_loader(ds, batch_size=len(ds) + 3, shuffle=True)   # never an empty epoch
    assert [len(b['name']) for b in tiny] == [len(ds)]


# ----------------------------------------------------------------------------- synthetic

def _fake_synth(calls):
    """A stand-in for weather_restore_ros.synth (being written elsewhere)."""
    mod = types.ModuleType('weather_restore_ros.synth')

    def random_weather(image, rng, classes=('rain', 'snow'), severity_range=(0.0, 1.0)):
        calls.append((image.shape, tuple(classes), tuple(severity_range)))
        assert image.dtype == np.uint8 and image.flags['C_CONTIGUOUS']
        label = classes[int(rng.integers(len(classes)))]
        sev = float(rng.uniform(*severity_range))
        out = np.clip(image.astype(np.float32) / 255 * 0.5 + 0.5 * sev, 0, 1)   # float output
        return out, label, {'severity': sev}

    mod.random_weather = random_weather
    return mod


def test_synthetic_dataset_with_stand_in_synth(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setitem(sys.modules, 'weather_restore_ros.synth', _fake_synth(calls))
    photos = [img(1, 40, 50), img(2, 30, 30)]
    ds = SyntheticWeatherDataset(photos, crop_size=16, length=6, seed=7, classes=('snow', 'fog'),
                                 severity_range=(0.2, 0.4))
    assert len(ds) == 6
    s = ds[3]
    assert s['input'].shape == s['target'].shape == (3, 16, 16)
    assert s['label'] in (lab('snow'), lab('fog')) and s['name'] == 'image1#3'
    assert calls[-1] == ((16, 16, 3), ('snow', 'fog'), (0.2, 0.4))   # only the crop is degraded
    # the target is a crop of the clean photo; the input is its degraded version
    d = s['input'].numpy() - 0.5 * s['target'].numpy()
    assert np.ptp(d) < 1e-5 and 0.1 - 1e-6 <= d.mean() <= 0.2 + 1e-6
    again = SyntheticWeatherDataset(photos, crop_size=16, length=6, seed=7, classes=('snow', 'fog'),
                                    severity_range=(0.2, 0.4))
    for i in range(6):
        a, b = ds[i], again[i]
        assert torch.equal(a['input'], b['input']) and a['label'] == b['label']
    labels = {ds[i]['label'] for i in range(6)} | {again[i]['label'] for i in range(6)}
    assert labels <= {lab('snow'), lab('fog')}
    # a small photo is padded to the crop; a folder works as the source
    write(tmp_path / 'clean/sub/p.png', img(3, 10, 10))
    fs = SyntheticWeatherDataset(tmp_path / 'clean', crop_size=12, seed=0)
    f0 = fs[0]
    assert len(fs) == 1 and f0['input'].shape == (3, 12, 12) and f0['name'] == 'sub/p.png#0'
    assert calls[-1][1:] == (('rain', 'snow'), (0.0, 1.0))   # synth defaults when not given
    with pytest.raises(DatasetError, match='hail'):
        SyntheticWeatherDataset(photos, classes=('hail',))
    with pytest.raises(DatasetError, match='uint8'):
        SyntheticWeatherDataset([np.zeros((4, 4), np.float32)])


def test_synthetic_dataset_explicit_degrade_callable():
    def degrade(image, rng, **kw):
        return image[::-1].copy(), 'clear', {}    # uint8 output
    ds = SyntheticWeatherDataset([img(1, 20, 20)], crop_size=8, length=2, seed=0,
                                 degrade=degrade, with_params=True)
    s = ds[1]
    assert torch.equal(s['input'], s['target'].flip(1)) and s['label'] == lab('clear')
    assert s['params'] == {}


def test_synthetic_dataset_with_real_synth_module():
    pytest.importorskip('weather_restore_ros.synth')
    photos = [img(1, 48, 40)]
    ds = SyntheticWeatherDataset(photos, crop_size=32, length=4, seed=2,
                                 classes=('rain', 'snow+fog', 'clear'))
    again = SyntheticWeatherDataset(photos, crop_size=32, length=4, seed=2,
                                    classes=('rain', 'snow+fog', 'clear'))
    for i in range(len(ds)):
        s = ds[i]
        assert s['input'].shape == s['target'].shape == (3, 32, 32)
        assert s['label'] in (lab('rain'), lab('snow'), lab('clear'))
        if s['label'] == lab('clear'):
            assert torch.equal(s['input'], s['target'])
        assert torch.equal(s['input'], again[i]['input'])


def test_synthetic_augment_is_deterministic_and_changes_the_clean_crop():
    """augment=True jitters the clean photo (before the weather): same seed, same bytes."""
    photo = np.random.default_rng(0).integers(0, 256, (120, 160, 3), np.uint8)
    kw = dict(crop_size=64, length=4, seed=5, classes=('clear',))
    plain = SyntheticWeatherDataset([photo], **kw)
    aug_a = SyntheticWeatherDataset([photo], augment=True, **kw)
    aug_b = SyntheticWeatherDataset([photo], augment=True, **kw)
    for i in range(4):
        a, b = aug_a[i], aug_b[i]
        assert torch.equal(a['target'], b['target']) and torch.equal(a['input'], b['input'])
        assert a['target'].shape == plain[i]['target'].shape == (3, 64, 64)
        # 'clear': the degraded input is the (jittered) clean crop itself
        assert torch.equal(a['input'], a['target'])
    assert any(not torch.equal(aug_a[i]['target'], plain[i]['target']) for i in range(4))


def test_zoom_out_sets_how_far_a_photo_is_scaled_down_before_the_crop():
    """``zoom_out``: the lower end of the random scale. A 400 px photo for 64 px crops: at 1 it
    is never scaled; at 0.3 it comes out 120-400 px wide, some draws under half (the scene
    packed into fewer pixels, as on 481x321 benchmark frames); outside (0, 1] is refused."""
    from weather_restore_ros.data.synthetic import _rescale
    photo = np.random.default_rng(1).integers(0, 256, (400, 400, 3), np.uint8)
    rng = np.random.default_rng(0)
    assert all(_rescale(photo, rng, 64, zoom_out=1.0) is photo for _ in range(5))
    widths = {_rescale(photo, rng, 64, zoom_out=0.3).shape[1] for _ in range(20)}
    assert min(widths) < 200 and min(widths) >= 120 and max(widths) <= 400
    ds = SyntheticWeatherDataset([photo], crop_size=64, length=4, augment=True, zoom_out=0.3,
                                 classes=('clear',))
    assert ds[0]['target'].shape == (3, 64, 64)
    for bad in (0.0, 1.5):
        with pytest.raises(DatasetError, match='zoom_out'):
            SyntheticWeatherDataset([photo], crop_size=64, zoom_out=bad)


def test_pattern_scenes_replace_photos_and_are_weathered_like_them():
    """``patterns=1``: every clean target is a flat colour, blocks or a gradient (few distinct
    colours or a smooth ramp, nothing like the photo), deterministic by seed; ``clear`` keeps
    input == target, other weather goes on top."""
    photo = (np.random.default_rng(0).random((96, 128, 3)) * 255).astype(np.uint8)  # noise
    kw = dict(crop_size=64, length=24, seed=5, classes=('clear',))
    ds = SyntheticWeatherDataset([photo], patterns=1.0, **kw)
    saturated = 0
    for i in range(len(ds)):
        s = ds[i]
        t = (s['target'] * 255).round()
        assert torch.equal(s['input'], s['target'])
        assert torch.equal(s['target'], SyntheticWeatherDataset([photo], patterns=1.0, **kw)[i]
                           ['target'])
        dx = (t[:, :, 1:] - t[:, :, :-1]).abs()
        # a pattern is piecewise flat or a ramp: almost no pixel differs from its neighbour
        # by more than a few grey levels (the noise photo: most do)
        assert (dx > 8).float().mean() < 0.05, i
        saturated += bool(((t == 0) | (t == 255)).all(0).float().mean() > 0.5)
    assert saturated >= 4                      # saturated RGB-cube corners are common
    photos = SyntheticWeatherDataset([photo], **kw)[0]['target'] * 255
    assert ((photos[:, :, 1:] - photos[:, :, :-1]).abs() > 8).float().mean() > 0.5
    rain = SyntheticWeatherDataset([photo], patterns=1.0, **{**kw, 'classes': ('rain',)})[0]
    assert not torch.equal(rain['input'], rain['target'])
    with pytest.raises(DatasetError, match='patterns'):
        SyntheticWeatherDataset([photo], patterns=2.0, **kw)


def test_scene_haze_makes_the_clean_target_hazy_towards_the_top():
    """scene_haze hazes the *clean* image (target and the input built from it), top first."""
    dark = np.full((96, 128, 3), 20, np.uint8)
    kw = dict(crop_size=64, length=6, seed=2, classes=('clear',))
    plain = SyntheticWeatherDataset([dark], **kw)
    hazy = SyntheticWeatherDataset([dark], scene_haze=1.0, **kw)
    for i in range(6):
        t = hazy[i]['target'].mean(dim=(0, 2))          # per row
        assert torch.equal(hazy[i]['input'], hazy[i]['target'])           # 'clear'
        assert torch.equal(hazy[i]['target'], SyntheticWeatherDataset(
            [dark], scene_haze=1.0, **kw)[i]['target'])                     # deterministic
        assert t[0] > t[-1] + 0.05 and t[-1] < 30 / 255                   # fades downwards
        assert torch.equal(plain[i]['target'], torch.full_like(plain[i]['target'], 20 / 255))
    rain = SyntheticWeatherDataset([dark], scene_haze=1.0, **{**kw, 'classes': ('rain',)})[0]
    assert not torch.equal(rain['input'], rain['target'])    # the weather goes on top of it
    with pytest.raises(DatasetError, match='scene_haze'):
        SyntheticWeatherDataset([dark], scene_haze=1.5, **kw)


def test_structures_draw_thin_lines_into_the_clean_target():
    """structures draws wires, poles or a facade grid into the *clean* image: in the target and
    the input alike, thin (most pixels untouched), long or gridded, reproducible."""
    from weather_restore_ros.data.structures import thin_structures
    grey = np.full((160, 160, 3), 128, np.uint8)
    kw = dict(crop_size=160, length=8, seed=3, classes=('clear',))
    drawn = SyntheticWeatherDataset([grey], structures=1.0, **kw)
    for i in range(8):
        s = drawn[i]
        assert torch.equal(s['input'], s['target'])                        # 'clear'
        assert torch.equal(s['target'], SyntheticWeatherDataset(
            [grey], structures=1.0, **kw)[i]['target'])                    # deterministic
        changed = (s['target'] * 255 - 128).abs().amax(0) > 8
        assert 0.003 < changed.float().mean() < 0.6, i
        rows, cols = changed.any(1), changed.any(0)
        # long or gridded: what is drawn spans at least a third of the crop one way
        assert max(rows.float().mean(), cols.float().mean()) > 1 / 3, i
    assert torch.equal(SyntheticWeatherDataset([grey], **kw)[0]['target'],
                       torch.full((3, 160, 160), 128 / 255))
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    out = thin_structures(photo, np.random.default_rng(1))
    assert out.shape == photo.shape and out.dtype == np.uint8
    assert np.array_equal(out, thin_structures(photo, np.random.default_rng(1)))
    rain = SyntheticWeatherDataset([grey], structures=1.0, **{**kw, 'classes': ('rain',)})[0]
    assert not torch.equal(rain['input'], rain['target'])
    with pytest.raises(DatasetError, match='structures'):
        SyntheticWeatherDataset([grey], structures=-0.1, **kw)
