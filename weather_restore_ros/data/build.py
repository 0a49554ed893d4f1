"""A dataset from a training config's ``data`` entry (``{type: synthetic | paired | allweather |
cdd11 | test, ...}``): what ``train_configs/*.yaml`` name, built for the trainer."""
from __future__ import annotations

from .cdd11 import CDD11Dataset
from .holdout import holdout_dataset, training_photo_sources
from .lists import AllWeatherListDataset
from .paired import PairedFolderDataset
from .synthetic import SyntheticWeatherDataset
from .testsets import SingleTestSet


def build_dataset(spec: dict, class_names, seed: int, train: bool):
    """A dataset from a config entry: ``type`` is synthetic | paired | allweather | cdd11 | test.

    ``crop_size`` (default 256 for training, full images for validation) and ``seed`` (default:
    the run's) apply to all; the other keys go to the dataset class. ``synthetic`` takes
    ``clean`` (photo folders/files and/or ``samples``: :func:`holdout.training_photo_sources`),
    ``length``, ``classes``, ``severity_range``; ``{type: synthetic, holdout: true}`` is the
    held-out validation set (:func:`holdout.holdout_dataset`: ``length``, ``seed``).
    """
    spec = dict(spec)
    kind = spec.pop('type', 'paired')
    crop = spec.pop('crop_size', 256 if train else None)
    if kind == 'synthetic' and spec.pop('holdout', False):
        # The frames of ``weather-restore eval --holdout`` (its seed 1234 unless ``seed`` given).
        return holdout_dataset(class_names, **spec)
    common = dict(crop_size=crop, class_names=class_names, seed=spec.pop('seed', seed))
    if kind == 'synthetic':
        clean = training_photo_sources(spec.pop('clean', 'samples'))
        return SyntheticWeatherDataset(clean, length=spec.pop('length', 10_000), **common,
                                         **spec)
    if kind == 'paired':
        return PairedFolderDataset(spec.pop('root'), **common, **spec)
    if kind == 'allweather':
        return AllWeatherListDataset(spec.pop('list'), **common, **spec)
    if kind == 'cdd11':
        return CDD11Dataset(spec.pop('root'), **common, **spec)
    if kind == 'test':
        return SingleTestSet(spec.pop('name'), spec.pop('root'), **common, **spec)
    raise ValueError(f'unknown dataset type {kind!r} (synthetic, paired, allweather, cdd11, '
                     'test)')
