"""The standard all-weather test sets in their usual (as-downloaded) folder layouts.

``TEST_SETS`` maps a name to the layout (input folder names, target folder names, where the set
may sit below ``root``) and the weather label of every image in it. ``root`` may be the set's own
folder (the one with the input and target folders) or one of the listed parents.

==================  ========  ===========================================================
name                weather   layout (input -> target)
==================  ========  ===========================================================
snow100k-s          snow      ``Snow100K-S/synthetic/x.jpg`` -> ``Snow100K-S/gt/x.jpg``
snow100k-l          snow      ``Snow100K-L/synthetic/x.jpg`` -> ``Snow100K-L/gt/x.jpg``
outdoor-rain-test1  rain      ``test1/input/im_0001_s80_a04.png`` -> ``test1/gt/im_0001.png``
raindrop-test-a     raindrop  ``test_a/data/0_rain.png`` -> ``test_a/gt/0_clean.png``
sots-outdoor        fog       ``SOTS/outdoor/hazy/0001_0.8_0.2.jpg`` -> ``.../gt/0001.png``
sots-indoor         fog       ``SOTS/indoor/hazy/1400_1.png`` -> ``.../gt/1400.png`` (the
                              target's 10 px border is center-cropped to the hazy size)
rain100l            rain      ``Rain100L/input/001.png`` -> ``Rain100L/gt/001.png`` (or
                              ``target/``), and the other layouts it is downloaded in:
                              ``rainy/rain-001.png`` -> ``norain-001.png`` beside ``rainy/``
                              (PReNet), ``rain-001.png`` + ``norain-001.png`` in one folder,
                              ``rain/`` + ``norain/`` folders (:func:`find_rain100_pairs`)
rain100h            rain      the same layouts as rain100l
==================  ========  ===========================================================

Targets with the same name as the input (the TransWeather/WeatherDiffusion re-packaging) are
found as well: the rename rules are only tried when the same name does not exist.

Unpaired real photos (no ground truth; :class:`RealPhotoSet`, :data:`REAL_PHOTO_SETS`), labelled
by their folder: ``real-rain`` (``real_rain/*.jpg``: Wei et al. 2019's real rainy photos) and
``real-fog`` (``dawn_fog/*.jpg``: the Fog split of DAWN). :func:`open_test_set` opens either
kind by name; :func:`find_test_sets` lists every set found in the subfolders of a root.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Sequence

from torch.utils.data import Dataset

from .. import DEFAULT_WEATHER_CLASSES
from .common import (DatasetError, MissingFileError, PairedImageDataset, PairSample, label_index,
                     list_images, read_rgb, to_tensor)
from .paired import _find_dir, find_two_folder_pairs


@dataclass(frozen=True)
class EvalSetLayout:
    weather: str
    input_dirs: tuple[str, ...]
    gt_dirs: tuple[str, ...]
    #: where the set's folder may be relative to ``root`` ('' = root itself), tried in order
    subdirs: tuple[str, ...]
    description: str = ''
    #: how inputs find their targets: 'folders' (:func:`find_two_folder_pairs`) or 'rain100'
    #: (:func:`find_rain100_pairs`)
    pairing: str = 'folders'


_RAIN100_INPUT_DIRS = ('input', 'rainy', 'rain', 'in', 'data')
_RAIN100_GT_DIRS = ('gt', 'target', 'norain', 'groundtruth', 'clean')


def _rain100_subdirs(name: str) -> tuple[str, ...]:
    return ('', f'{name}_test', name, f'test/{name}', f'{name}/test', f'datasets/test/{name}',
            f'Datasets/test/{name}')


TEST_SETS: dict[str, EvalSetLayout] = {
    'snow100k-s': EvalSetLayout(
        'snow', ('synthetic', 'input'), ('gt',),
        ('', 'Snow100K-S', 'test/Snow100K-S', 'Snow100K/test/Snow100K-S'),
        'Snow100K test, small snow (Liu et al. 2018)'),
    'snow100k-l': EvalSetLayout(
        'snow', ('synthetic', 'input'), ('gt',),
        ('', 'Snow100K-L', 'test/Snow100K-L', 'Snow100K/test/Snow100K-L'),
        'Snow100K test, large snow (Liu et al. 2018)'),
    'outdoor-rain-test1': EvalSetLayout(
        'rain', ('input', 'in', 'rain'), ('gt', 'clean'),
        ('', 'test1', 'Test1', 'outdoor-rain/test1', 'Outdoor-Rain/test1'),
        'Outdoor-Rain Test1, rain streaks + fog (Li et al. 2019), labelled rain'),
    'raindrop-test-a': EvalSetLayout(
        'raindrop', ('data', 'input'), ('gt',),
        ('', 'test_a', 'raindrop/test_a', 'RainDrop/test_a'),
        'RainDrop test_a (Qian et al. 2018)'),
    'sots-outdoor': EvalSetLayout(
        'fog', ('hazy', 'input'), ('gt', 'clear'),
        ('', 'outdoor', 'SOTS/outdoor', 'sots/outdoor', 'RESIDE/SOTS/outdoor'),
        'RESIDE SOTS outdoor (Li et al. 2019)'),
    'sots-indoor': EvalSetLayout(
        'fog', ('hazy', 'input'), ('gt', 'clear'),
        ('', 'indoor', 'SOTS/indoor', 'sots/indoor', 'RESIDE/SOTS/indoor'),
        'RESIDE SOTS indoor (Li et al. 2019)'),
    'rain100l': EvalSetLayout(
        'rain', _RAIN100_INPUT_DIRS, _RAIN100_GT_DIRS, _rain100_subdirs('Rain100L'),
        'Rain100L test, light synthetic rain streaks (Yang et al. 2017)', pairing='rain100'),
    'rain100h': EvalSetLayout(
        'rain', _RAIN100_INPUT_DIRS, _RAIN100_GT_DIRS, _rain100_subdirs('Rain100H'),
        'Rain100H test, heavy synthetic rain streaks (Yang et al. 2017)', pairing='rain100'),
}


@dataclass(frozen=True)
class RealPhotoLayout:
    weather: str
    #: where the photo folder may be relative to ``root`` ('' = root itself), tried in order
    subdirs: tuple[str, ...]
    description: str = ''


#: Unpaired real photos: the weather of every photo is its folder's.
REAL_PHOTO_SETS: dict[str, RealPhotoLayout] = {
    'real-rain': RealPhotoLayout(
        'rain', ('', 'real_rain', 'real_photos/real_rain', 'real-rain', 'RealRain'),
        'real rainy photos, no ground truth (Wei et al. 2019, SIRR)'),
    'real-fog': RealPhotoLayout(
        'fog', ('', 'dawn_fog', 'real_photos/dawn_fog', 'real_fog', 'real_photos/real_fog',
                'DAWN/Fog'),
        'real foggy road scenes, no ground truth (DAWN Fog, Kenk & Hassaballah 2020)'),
}

TEST_SET_ALIASES = {
    'snow100ks': 'snow100k-s', 'snows': 'snow100k-s',
    'snow100kl': 'snow100k-l', 'snowl': 'snow100k-l', 'snowtest100kl': 'snow100k-l',
    'test1': 'outdoor-rain-test1', 'outdoorrain': 'outdoor-rain-test1',
    'outdoorraintest1': 'outdoor-rain-test1', 'rainfog': 'outdoor-rain-test1',
    'raindrop': 'raindrop-test-a', 'raindropa': 'raindrop-test-a',
    'raindroptesta': 'raindrop-test-a', 'testa': 'raindrop-test-a',
    'sots': 'sots-outdoor', 'sotsoutdoor': 'sots-outdoor', 'sotsindoor': 'sots-indoor',
    'rain100ltest': 'rain100l', 'rainl': 'rain100l', 'rain100htest': 'rain100h',
    'rainh': 'rain100h',
    'realrainphotos': 'real-rain', 'sirr': 'real-rain',
    'dawnfog': 'real-fog', 'dawn': 'real-fog', 'realfogphotos': 'real-fog',
}


def canonical_test_set(name: str) -> str:
    key = re.sub(r'[^a-z0-9]', '', str(name).lower())
    for canon in (*TEST_SETS, *REAL_PHOTO_SETS):
        if re.sub(r'[^a-z0-9]', '', canon) == key:
            return canon
    if key in TEST_SET_ALIASES:
        return TEST_SET_ALIASES[key]
    raise DatasetError(f'unknown test set {name!r}; known: '
                       f'{", ".join((*TEST_SETS, *REAL_PHOTO_SETS))}')


def _subdir(root: str, rel: str) -> str | None:
    """``root/rel`` matching folder names case-insensitively."""
    cur = root
    for part in [p for p in rel.split('/') if p]:
        if not os.path.isdir(cur):
            return None
        match = next((e for e in sorted(os.listdir(cur)) if e.lower() == part.lower()
                      and os.path.isdir(os.path.join(cur, e))), None)
        if match is None:
            return None
        cur = os.path.join(cur, match)
    return cur


def _stems(folder: str) -> dict[str, str]:
    """Lower-case stem -> file name of the images directly in ``folder`` (.png preferred)."""
    out: dict[str, str] = {}
    for f in list_images(folder):
        key = os.path.splitext(f)[0].lower()
        if key not in out or f.lower().endswith('.png'):
            out[key] = f
    return out


def _rain_stem(stem: str) -> bool:
    return stem.lower().startswith('rain')


def _norain_stem(stem: str) -> bool:
    return stem.lower().startswith('norain')


def find_rain100_pairs(root: str, input_dirs: Sequence[str] = _RAIN100_INPUT_DIRS,
                       gt_dirs: Sequence[str] = _RAIN100_GT_DIRS, strict: bool = True
                       ) -> tuple[list[tuple[str, str, str]], list[str]] | None:
    """Rain100L/H pairs in ``root`` in any of the layouts they are distributed in, tried in order:

    1. an input folder (``input``, ``rainy``, ``rain``...) and a target folder (``gt``,
       ``target``, ``norain``...): ``input/001.png`` -> ``gt/001.png`` (Restormer/MPRNet and
       most re-packagings), or ``rainy/rain-001.png`` -> ``norain/norain-001.png``;
    2. an input folder with the targets beside it (PReNet's ``Rain100H/rainy/rain-001.png`` ->
       ``Rain100H/norain-001.png``);
    3. ``rain-001.png`` and ``norain-001.png`` in ``root`` itself (the original release).

    A target has the input's name, else ``no`` + the input's name (``rain-001`` ->
    ``norain-001``). Returns ([(input, target, input relative to root)], unmatched inputs), or
    None when ``root`` holds none of these layouts. ``strict``: an unmatched input is an error.
    """
    in_dir, gt_dir = _find_dir(root, input_dirs), _find_dir(root, gt_dirs)
    if in_dir is None or gt_dir is None or in_dir == gt_dir:
        root_stems = _stems(root)
        if in_dir is not None and any(_norain_stem(s) for s in root_stems):
            gt_dir = root
        elif any(_norain_stem(s) for s in root_stems) and \
                any(_rain_stem(s) for s in root_stems):
            in_dir = gt_dir = root
        else:
            return None
    same = in_dir == gt_dir
    targets = _stems(gt_dir)
    pairs, missing = [], []
    for f in list_images(in_dir):
        stem = os.path.splitext(f)[0]
        if same and not _rain_stem(stem):
            continue                    # the targets (norain-*) and anything else in the folder
        cands = ([] if same else [stem.lower()]) + (['no' + stem.lower()] if _rain_stem(stem)
                                                    else [])
        tgt = next((targets[c] for c in cands if c in targets), None)
        path = os.path.join(in_dir, f)
        if tgt is None:
            missing.append(path)
        else:
            pairs.append((path, os.path.join(gt_dir, tgt), os.path.relpath(path, root)))
    if missing and strict:
        more = f' (and {len(missing) - 5} more)' if len(missing) > 5 else ''
        raise MissingFileError(f'no target in {gt_dir} for {len(missing)} input(s): '
                               f'{", ".join(missing[:5])}{more}; pass strict=False to skip them')
    return pairs, missing


_PAIRINGS = {'folders': find_two_folder_pairs, 'rain100': find_rain100_pairs}


class SingleTestSet(PairedImageDataset):
    """One standard test set (see :data:`TEST_SETS`); full images by default (``crop_size=None``).

    ``strict``: an input without a target is an error (False: skipped, see ``self.skipped``).
    """

    def __init__(self, name: str, root: str | os.PathLike,
                 class_names: Sequence[str] = DEFAULT_WEATHER_CLASSES, crop_size=None,
                 flip: bool | None = None, seed: int = 0, strict: bool = True):
        self.name = canonical_test_set(name)
        if self.name not in TEST_SETS:
            raise DatasetError(f'{self.name} is a set of real photos without ground truth: '
                               f'open it with RealPhotoSet (or open_test_set)')
        self.layout = TEST_SETS[self.name]
        root = os.path.abspath(os.fspath(root))
        if not os.path.isdir(root):
            raise MissingFileError(f'{self.name}: folder not found: {root}')
        found, where = None, None
        for sub in self.layout.subdirs:
            d = _subdir(root, sub)
            if d is None:
                continue
            found = _PAIRINGS[self.layout.pairing](d, self.layout.input_dirs,
                                                   self.layout.gt_dirs, strict=strict)
            if found is not None:
                where = d
                break
        if found is None:
            raise MissingFileError(
                f'{self.name}: no {"/".join(self.layout.input_dirs)} + '
                f'{"/".join(self.layout.gt_dirs)} folders in {root} or its subfolders '
                f'{", ".join(s for s in self.layout.subdirs if s)}')
        pairs, self.skipped = found
        if not pairs:
            raise DatasetError(f'{self.name}: no images in {where}')
        self.root = where
        label = label_index(self.layout.weather, class_names, where=self.name)
        samples = [PairSample(i, t, label, rel.replace(os.sep, '/')) for i, t, rel in pairs]
        super().__init__(samples, class_names, crop_size, flip, seed)


@dataclass(frozen=True)
class PhotoSample:
    path: str
    label: int
    name: str


class RealPhotoSet(Dataset):
    """Real photos of one weather without ground truth (see :data:`REAL_PHOTO_SETS`), every
    photo labelled with its folder's weather.

    Items are ``{'input': float32 [3,H,W] in [0,1], 'label': int, 'name': str}`` -- no
    ``'target'``: these sets measure weather classification and do-no-harm, not fidelity.
    ``root``: the photo folder itself or a parent it sits in (``real_photos/real_rain``...).
    """

    def __init__(self, name: str, root: str | os.PathLike,
                 class_names: Sequence[str] = DEFAULT_WEATHER_CLASSES, subdirs=None):
        self.name = canonical_test_set(name)
        if self.name not in REAL_PHOTO_SETS:
            raise DatasetError(f'{self.name} is a paired test set: open it with SingleTestSet')
        self.layout = REAL_PHOTO_SETS[self.name]
        self.class_names = tuple(class_names)
        root = os.path.abspath(os.fspath(root))
        if not os.path.isdir(root):
            raise MissingFileError(f'{self.name}: folder not found: {root}')
        for sub in (self.layout.subdirs if subdirs is None else subdirs):
            d = _subdir(root, sub)
            if d is not None and list_images(d):
                break
        else:
            raise MissingFileError(
                f'{self.name}: no photos in {root} or its subfolders '
                f'{", ".join(s for s in self.layout.subdirs if s)}')
        self.root = d
        label = label_index(self.layout.weather, class_names, where=self.name)
        self.samples = [PhotoSample(os.path.join(d, f), label, f) for f in list_images(d)]

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def labels(self) -> list[int]:
        return [s.label for s in self.samples]

    def __getitem__(self, index: int) -> dict:
        s = self.samples[index]
        return {'input': to_tensor(read_rgb(s.path)), 'label': s.label, 'name': s.name}

    def __repr__(self) -> str:
        return f'RealPhotoSet({self.name!r}, n={len(self)}, root={self.root!r})'


def open_test_set(name: str, root: str | os.PathLike,
                  class_names: Sequence[str] = DEFAULT_WEATHER_CLASSES,
                  **kwargs) -> 'SingleTestSet | RealPhotoSet':
    """A paired (:class:`SingleTestSet`) or real-photo (:class:`RealPhotoSet`) set by name."""
    if canonical_test_set(name) in REAL_PHOTO_SETS:
        return RealPhotoSet(name, root, class_names, **kwargs)
    return SingleTestSet(name, root, class_names, **kwargs)


def _has_layout(layout: EvalSetLayout, root: str) -> bool:
    for sub in layout.subdirs:
        d = _subdir(root, sub)
        if d is not None and _PAIRINGS[layout.pairing](d, layout.input_dirs, layout.gt_dirs,
                                                       strict=False) is not None:
            return True
    return False


def find_test_sets(root: str | os.PathLike, class_names: Sequence[str] = DEFAULT_WEATHER_CLASSES
                   ) -> 'list[SingleTestSet | RealPhotoSet]':
    """Every known set (:data:`TEST_SETS`, then :data:`REAL_PHOTO_SETS`) found in a *subfolder*
    of ``root`` (``root/rain100l_test``, ``root/real_photos/dawn_fog``...), in registry order.

    ``root`` itself is not taken as a set (any input+gt folder would fit several layouts);
    pass it to :func:`open_test_set` by name for that. A folder that has a set's layout but is
    broken (an input without its target) raises; one without the layout is not a set.
    """
    root = os.path.abspath(os.fspath(root))
    if not os.path.isdir(root):
        raise MissingFileError(f'folder not found: {root}')
    found = []
    for name, layout in (*TEST_SETS.items(), *REAL_PHOTO_SETS.items()):
        for sub in layout.subdirs:
            if not sub:
                continue
            d = _subdir(root, sub)
            if d is None:
                continue
            if name in REAL_PHOTO_SETS:
                if not list_images(d):
                    continue
                found.append(RealPhotoSet(name, d, class_names, subdirs=('',)))
            else:
                if not _has_layout(layout, d):
                    continue
                found.append(SingleTestSet(name, d, class_names))
            break
    return found
