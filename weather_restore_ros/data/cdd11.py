"""CDD-11 (OneRestore, Guo et al. ECCV 2024): 11 composite degradations of the same scenes.

Layout (OneRestore README)::

    root/<split>/clear/000001.png          the target of every degraded version
    root/<split>/<degradation>/000001.png  same file name, one folder per degradation

``<split>`` is ``train``/``test``; the released archive names them ``CDD-11_train``/
``CDD-11_test`` (sometimes nested twice): those are found too, and ``root`` may also be the split
folder itself.
"""
from __future__ import annotations

import os
from typing import Sequence

from .. import DEFAULT_WEATHER_CLASSES
from .common import (DatasetError, MissingFileError, PairedImageDataset, PairSample, _StemIndex,
                     label_index, list_images)

#: CDD-11 degradation folder -> our weather class. Fog is CDD-11's ``haze``. A combination is
#: labelled by its precipitation when it has one (``haze_rain`` -> rain, like Outdoor-Rain's
#: rain+fog), else by haze. Low light is not a weather: ``low`` alone is labelled ``clear``
#: (the scene's weather is clear; the target is still the normally lit clear image, so the
#: restorer learns brightening under the clear label) and ``low_*`` take their weather
#: component. Pass ``mapping=`` to change any entry, e.g. ``{'low': 'low_light'}`` together with
#: a ``class_names`` that has that class, or ``degradations=`` to leave low light out.
CDD11_WEATHER = {
    'low': 'clear',
    'haze': 'fog',
    'rain': 'rain',
    'snow': 'snow',
    'low_haze': 'fog',
    'low_rain': 'rain',
    'low_snow': 'snow',
    'haze_rain': 'rain',
    'haze_snow': 'snow',
    'low_haze_rain': 'rain',
    'low_haze_snow': 'snow',
}
CDD11_DEGRADATIONS = tuple(CDD11_WEATHER)
CDD11_GT = 'clear'


def find_cdd11_split(root: str, split: str) -> str:
    """The folder holding ``clear/`` and the degradation folders for ``split``."""
    cands = [os.path.join(root, split), os.path.join(root, f'CDD-11_{split}'),
             os.path.join(root, f'CDD-11_{split}', f'CDD-11_{split}'),
             os.path.join(root, f'CDD11_{split}'), os.path.join(root, f'cdd-11_{split}'), root]
    for c in cands:
        if os.path.isdir(os.path.join(c, CDD11_GT)):
            return c
    raise MissingFileError(f'no CDD-11 {split!r} split under {root}: expected '
                           f'{os.path.join(root, split, CDD11_GT)} (or CDD-11_{split}/{CDD11_GT})')


class CDD11Dataset(PairedImageDataset):
    """CDD-11 pairs (degraded, clear) with labels from :data:`CDD11_WEATHER`.

    ``degradations``: which folders to use (default all eleven that exist; listing one that does
    not exist is an error). ``include_clear``: also yield (clear, clear) identity pairs labelled
    ``clear`` (teaches the restorer to leave clean frames alone). Names are
    ``<degradation>/<file>``. A degraded file without a ``clear/`` counterpart is an error.
    """

    def __init__(self, root: str | os.PathLike, split: str = 'train',
                 class_names: Sequence[str] = DEFAULT_WEATHER_CLASSES, crop_size=None,
                 flip: bool | None = None, seed: int = 0,
                 degradations: Sequence[str] | None = None, include_clear: bool = False,
                 mapping: dict[str, str] | None = None):
        root = os.path.abspath(os.fspath(root))
        self.root = root
        self.split_dir = find_cdd11_split(root, split)
        self.mapping = dict(CDD11_WEATHER, **(mapping or {}))
        gt_dir = os.path.join(self.split_dir, CDD11_GT)
        gt_index = _StemIndex(gt_dir)
        if degradations is None:
            degradations = [d for d in CDD11_DEGRADATIONS
                            if os.path.isdir(os.path.join(self.split_dir, d))]
            if not degradations:
                raise DatasetError(f'{self.split_dir} has {CDD11_GT}/ but none of the CDD-11 '
                                   f'degradation folders {CDD11_DEGRADATIONS}')
        samples = []
        for deg in degradations:
            if deg not in self.mapping:
                raise DatasetError(f'unknown CDD-11 degradation {deg!r}; known: '
                                   f'{tuple(self.mapping)} (extend with mapping=)')
            d = os.path.join(self.split_dir, deg)
            if not os.path.isdir(d):
                raise MissingFileError(f'CDD-11 degradation folder not found: {d}')
            label = label_index(self.mapping[deg], class_names, where=f'CDD-11 {deg!r}')
            for rel in list_images(d, recursive=True):
                tgt = gt_index.find(rel)
                if tgt is None:
                    raise MissingFileError(f'CDD-11: no {os.path.join(gt_dir, rel)} for '
                                           f'{os.path.join(d, rel)}')
                samples.append(PairSample(os.path.join(d, rel), tgt, label,
                                          f'{deg}/{rel.replace(os.sep, "/")}'))
        if include_clear:
            label = label_index('clear', class_names, where='CDD-11 clear')
            for rel in list_images(gt_dir, recursive=True):
                p = os.path.join(gt_dir, rel)
                samples.append(PairSample(p, p, label, f'{CDD11_GT}/{rel.replace(os.sep, "/")}'))
        if not samples:
            raise DatasetError(f'no CDD-11 images under {self.split_dir}')
        super().__init__(samples, class_names, crop_size, flip, seed)
