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
==================  ========  ===========================================================

Targets with the same name as the input (the TransWeather/WeatherDiffusion re-packaging) are
found as well: the rename rules are only tried when the same name does not exist.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Sequence

from .. import DEFAULT_WEATHER_CLASSES
from .common import DatasetError, MissingFileError, PairedImageDataset, PairSample, label_index
from .paired import find_two_folder_pairs


@dataclass(frozen=True)
class EvalSetLayout:
    weather: str
    input_dirs: tuple[str, ...]
    gt_dirs: tuple[str, ...]
    #: where the set's folder may be relative to ``root`` ('' = root itself), tried in order
    subdirs: tuple[str, ...]
    description: str = ''


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
}

TEST_SET_ALIASES = {
    'snow100ks': 'snow100k-s', 'snows': 'snow100k-s',
    'snow100kl': 'snow100k-l', 'snowl': 'snow100k-l', 'snowtest100kl': 'snow100k-l',
    'test1': 'outdoor-rain-test1', 'outdoorrain': 'outdoor-rain-test1',
    'outdoorraintest1': 'outdoor-rain-test1', 'rainfog': 'outdoor-rain-test1',
    'raindrop': 'raindrop-test-a', 'raindropa': 'raindrop-test-a',
    'raindroptesta': 'raindrop-test-a', 'testa': 'raindrop-test-a',
    'sots': 'sots-outdoor', 'sotsoutdoor': 'sots-outdoor', 'sotsindoor': 'sots-indoor',
}


def canonical_test_set(name: str) -> str:
    key = re.sub(r'[^a-z0-9]', '', str(name).lower())
    for canon in TEST_SETS:
        if re.sub(r'[^a-z0-9]', '', canon) == key:
            return canon
    if key in TEST_SET_ALIASES:
        return TEST_SET_ALIASES[key]
    raise DatasetError(f'unknown test set {name!r}; known: {", ".join(TEST_SETS)}')


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


class SingleTestSet(PairedImageDataset):
    """One standard test set (see :data:`TEST_SETS`); full images by default (``crop_size=None``).

    ``strict``: an input without a target is an error (False: skipped, see ``self.skipped``).
    """

    def __init__(self, name: str, root: str | os.PathLike,
                 class_names: Sequence[str] = DEFAULT_WEATHER_CLASSES, crop_size=None,
                 flip: bool | None = None, seed: int = 0, strict: bool = True):
        self.name = canonical_test_set(name)
        self.layout = TEST_SETS[self.name]
        root = os.path.abspath(os.fspath(root))
        if not os.path.isdir(root):
            raise MissingFileError(f'{self.name}: folder not found: {root}')
        found, where = None, None
        for sub in self.layout.subdirs:
            d = _subdir(root, sub)
            if d is None:
                continue
            found = find_two_folder_pairs(d, self.layout.input_dirs, self.layout.gt_dirs,
                                          strict=strict)
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
