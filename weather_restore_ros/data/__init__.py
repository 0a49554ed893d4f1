"""Training/evaluation datasets (torch; training machines only).

Every dataset yields ``{'input': [3,H,W] float in [0,1], 'target': same, 'label': int,
'name': str}`` with labels indexing ``class_names`` (default
``weather_restore_ros.DEFAULT_WEATHER_CLASSES``), so they mix with ``ConcatDataset``.

- ``PairedFolderDataset``: ``root/input`` + ``root/gt``, or ``x_in``/``x_gt`` files in one
  folder; labels from ``labels.csv``, ``weather=`` or the path;
- ``AllWeatherListDataset``: TransWeather/WeatherDiffusion list files (``allweather.txt``);
- ``CDD11Dataset``: OneRestore's CDD-11, labels via ``CDD11_WEATHER``;
- ``SingleTestSet``: Snow100K-S/L, Outdoor-Rain Test1, RainDrop test_a, SOTS, Rain100L/H
  (``TEST_SETS``); ``RealPhotoSet``: real rain/fog photos without ground truth
  (``REAL_PHOTO_SETS``; items have no ``'target'``); ``open_test_set``/``find_test_sets``;
- ``SyntheticWeatherDataset``: clean photos degraded on the fly by ``synth.random_weather``;
- ``make_loader``/``set_epoch``: reproducible (and DDP) DataLoaders.
"""
from .cdd11 import CDD11_DEGRADATIONS, CDD11_WEATHER, CDD11Dataset
from .common import (IMAGE_EXTENSIONS, PAIR_SUFFIXES, WEATHER_ALIASES, DatasetError,
                     ImageReadError, MissingFileError, PairedImageDataset, PairSample,
                     canonical_weather, gt_stem_candidates, infer_weather, label_index,
                     read_labels_csv, read_rgb, sample_rng)
from .lists import AllWeatherListDataset, gt_path_candidates
from .loader import SeededShuffleSampler, make_loader, set_epoch
from .paired import GT_DIR_NAMES, INPUT_DIR_NAMES, PairedFolderDataset
from .synthetic import SyntheticWeatherDataset
from .testsets import (REAL_PHOTO_SETS, TEST_SETS, EvalSetLayout, RealPhotoSet, SingleTestSet,
                       canonical_test_set, find_rain100_pairs, find_test_sets, open_test_set)

__all__ = [
    'AllWeatherListDataset', 'CDD11Dataset', 'CDD11_DEGRADATIONS', 'CDD11_WEATHER',
    'DatasetError', 'EvalSetLayout', 'GT_DIR_NAMES', 'IMAGE_EXTENSIONS', 'INPUT_DIR_NAMES',
    'ImageReadError', 'MissingFileError', 'PAIR_SUFFIXES', 'PairSample', 'PairedFolderDataset',
    'PairedImageDataset', 'REAL_PHOTO_SETS', 'RealPhotoSet', 'SeededShuffleSampler',
    'SingleTestSet', 'SyntheticWeatherDataset', 'TEST_SETS', 'WEATHER_ALIASES',
    'canonical_test_set', 'canonical_weather', 'find_rain100_pairs', 'find_test_sets',
    'gt_path_candidates', 'gt_stem_candidates', 'infer_weather', 'label_index', 'make_loader',
    'read_labels_csv', 'read_rgb', 'sample_rng', 'set_epoch',
]
