"""Paired folders: ``root/input/`` + ``root/gt/``, or ``*_in``/``*_gt`` files in one folder."""
from __future__ import annotations

import os
from typing import Sequence

from .. import DEFAULT_WEATHER_CLASSES
from .common import (PAIR_SUFFIXES, DatasetError, MissingFileError, PairedImageDataset,
                     PairSample, _StemIndex, list_images, read_labels_csv, resolve_label)

#: Folder names accepted for the two-folder layout, tried in this order.
INPUT_DIR_NAMES = ('input', 'inputs', 'in', 'lq', 'degraded', 'data', 'synthetic', 'hazy',
                   'rainy', 'rain', 'snow')
GT_DIR_NAMES = ('gt', 'target', 'targets', 'groundtruth', 'ground_truth', 'clean', 'clear',
                'hq', 'norain')


def _find_dir(root: str, names: Sequence[str]) -> str | None:
    entries = {e.lower(): e for e in os.listdir(root) if os.path.isdir(os.path.join(root, e))}
    for n in names:
        if n in entries:
            return os.path.join(root, entries[n])
    return None


def find_two_folder_pairs(root: str, input_dirs: Sequence[str] = INPUT_DIR_NAMES,
                          gt_dirs: Sequence[str] = GT_DIR_NAMES, strict: bool = True
                          ) -> tuple[list[tuple[str, str, str]], list[str]] | None:
    """[(input path, target path, input path relative to root)], unmatched inputs; or None when
    ``root`` has no input+gt folder pair. Targets are matched by
    :func:`~weather_restore_ros.data.common.gt_stem_candidates` (same name first)."""
    in_dir, gt_dir = _find_dir(root, input_dirs), _find_dir(root, gt_dirs)
    if in_dir is None or gt_dir is None or in_dir == gt_dir:
        return None
    index = _StemIndex(gt_dir)
    pairs, missing = [], []
    for rel in list_images(in_dir, recursive=True):
        tgt = index.find(rel)
        rel_root = os.path.relpath(os.path.join(in_dir, rel), root)
        if tgt is None:
            missing.append(os.path.join(in_dir, rel))
        else:
            pairs.append((os.path.join(in_dir, rel), tgt, rel_root))
    if missing and strict:
        more = f' (and {len(missing) - 5} more)' if len(missing) > 5 else ''
        raise MissingFileError(f'no target in {gt_dir} for {len(missing)} input(s): '
                               f'{", ".join(missing[:5])}{more}; pass strict=False to skip them')
    return pairs, missing


def find_suffix_pairs(folder: str, root: str) -> list[tuple[str, str, str]]:
    """Pairs in one folder by the suffix pairs of ``PAIR_SUFFIXES`` (``x_in.png``/``x_gt.png``)."""
    files = list_images(folder, recursive=False)
    by_stem: dict[str, str] = {}
    for f in files:
        by_stem.setdefault(os.path.splitext(f)[0], f)
    pairs, used = [], set()
    for f in files:
        stem = os.path.splitext(f)[0]
        if f in used:
            continue
        for a, b in PAIR_SUFFIXES:
            if stem.endswith(a) and len(stem) > len(a):
                g = by_stem.get(stem[:-len(a)] + b)
                if g is not None and g != f and g not in used:
                    used.update((f, g))
                    p = os.path.join(folder, f)
                    pairs.append((p, os.path.join(folder, g), os.path.relpath(p, root)))
                    break
    return pairs


class PairedFolderDataset(PairedImageDataset):
    """Degraded/clean pairs from a folder.

    Layouts, tried in this order:

    1. two folders ``root/<input>/`` and ``root/<gt>/`` (names from :data:`INPUT_DIR_NAMES` and
       :data:`GT_DIR_NAMES`, e.g. ``input``/``gt``, ``data``/``gt``, ``hazy``/``clear``); inputs
       may sit in subfolders mirrored under the gt folder; a target has the input's name (any
       image extension), else a suffix swap (``0_rain`` -> ``0_clean``), else the input's
       ``_``-prefix (``im_0001_s80_a04`` -> ``im_0001``, ``0001_0.8_0.2`` -> ``0001``);
    2. one folder (``root`` itself) whose files pair by suffix: ``x_in``/``x_gt``,
       ``x_input``/``x_target``, ``x_rain``/``x_clean``, ``x_lq``/``x_gt``, ``x_hazy``/``x_clear``
       ... (:data:`~weather_restore_ros.data.common.PAIR_SUFFIXES`).

    Labels: ``root/labels.csv`` (``file,weather``; file = the input's path relative to root, its
    file name or stem) when present, else the fixed ``weather``, else inferred from the path
    (:func:`~weather_restore_ros.data.common.infer_weather`).
    ``strict``: a two-folder input without a target is an error (False: skipped, listed in
    ``self.skipped``).
    """

    def __init__(self, root: str | os.PathLike, weather: str | None = None,
                 class_names: Sequence[str] = DEFAULT_WEATHER_CLASSES, crop_size=None,
                 flip: bool | None = None, seed: int = 0,
                 labels_csv: str | os.PathLike | None = None, strict: bool = True,
                 input_dirs: Sequence[str] = INPUT_DIR_NAMES,
                 gt_dirs: Sequence[str] = GT_DIR_NAMES):
        root = os.path.abspath(os.fspath(root))
        if not os.path.isdir(root):
            raise MissingFileError(f'dataset folder not found: {root}')
        self.root = root
        found = find_two_folder_pairs(root, input_dirs, gt_dirs, strict=strict)
        if found is not None:
            pairs, self.skipped = found
            self.layout = 'folders'
        else:
            pairs, self.skipped = find_suffix_pairs(root, root), []
            self.layout = 'suffix'
        if not pairs:
            raise DatasetError(
                f'no image pairs in {root}: expected input/ + gt/ folders (any of '
                f'{INPUT_DIR_NAMES} with any of {GT_DIR_NAMES}) or files named x_in.png + '
                f'x_gt.png (or _input/_target, _rain/_clean, _lq/_gt, _hazy/_clear) in one folder')
        csv_path = labels_csv if labels_csv is not None else os.path.join(root, 'labels.csv')
        if labels_csv is not None and not os.path.isfile(csv_path):
            raise MissingFileError(f'labels file not found: {csv_path}')
        labels = read_labels_csv(csv_path) if os.path.isfile(csv_path) else None
        samples = []
        for inp, tgt, rel in pairs:
            rel_in = os.path.basename(inp)
            label = resolve_label(rel=rel, root=root, labels=labels, weather=weather,
                                  class_names=class_names, keys=(rel_in,))
            samples.append(PairSample(inp, tgt, label, rel.replace(os.sep, '/')))
        super().__init__(samples, class_names, crop_size, flip, seed)
