"""TransWeather / WeatherDiffusion style list files (``allweather.txt``, ``test1.txt``, ...).

Convention of those code bases (TransWeather ``train_data_functions.py``/``val_data_functions.py``,
WeatherDiffusion ``datasets/allweather.py``): each line is the path of one *input* image relative
to the data folder (``./allweather/input/im_0402_s90_a06.png``, ``input/city_read_14216.jpg``), and
the target path is the same line with ``input`` replaced by ``gt``. The images are opened as
``os.path.join(data_dir, line)``, where ``data_dir`` is the folder that holds the list.

The downloads that go with those lists name the target like the input. Lists written for the
original datasets need a rename, so when ``.../gt/<same name>`` does not exist these are tried
(and the first that exists is used):

* RainDrop: ``0_rain.png`` -> ``0_clean.png`` (Qian et al. 2018 ``test_a``);
* Outdoor-Rain / Test1: ``im_0001_s80_a04.png`` -> ``im_0001.png`` (Li et al. 2019);
* SOTS: ``0001_0.8_0.2.jpg`` -> ``0001.png`` (RESIDE);
* any image extension for the target.

Lines may also carry the target and/or the weather explicitly (whitespace separated):
``input``; ``input gt``; ``input weather``; ``input gt weather``. A line that is an existing path
as a whole is never split (paths with spaces).

Labels: the weather column, else ``labels_csv`` (``file,weather`` keyed by the list's path, file
name or stem), else ``weather=``, else inferred from the line's path words and file name
(:func:`~weather_restore_ros.data.common.infer_weather`). TransWeather's ``allweather.txt``
mixes three sources in one folder without weather words: Outdoor-Rain (``im_XXXX_sNN_aNN``) and
RainDrop (``<n>_rain``) names are recognised; the Snow100K files have ordinary names
(``city_read_14216.jpg``), so ``default_weather`` (the label when nothing else gives one) is
``'snow'`` for a list named ``allweather*.txt`` and None (an error) otherwise.
"""
from __future__ import annotations

import os
import re
from typing import Sequence

from .. import DEFAULT_WEATHER_CLASSES
from .common import (IMAGE_EXTENSIONS, DatasetError, MissingFileError, PairedImageDataset,
                     PairSample, canonical_weather, gt_stem_candidates, infer_weather,
                     label_index, lookup_label, read_labels_csv)


def _swap_input_for_gt(line: str) -> list[str]:
    """``input`` -> ``gt``: the path's ``input`` folder first, then TransWeather's plain replace."""
    parts = line.replace('\\', '/').split('/')
    out = []
    for i in range(len(parts) - 2, -1, -1):          # the innermost folder called input
        if parts[i].lower() == 'input':
            p = list(parts)
            p[i] = 'gt'
            out.append('/'.join(p))
            break
    out.append(line.replace('input', 'gt'))
    return list(dict.fromkeys(out))


def gt_path_candidates(input_line: str) -> list[str]:
    """Target paths (same relative base as the line) to try for one list line, in order."""
    out = []
    for g in _swap_input_for_gt(input_line):
        d, base = os.path.split(g)
        stem, ext = os.path.splitext(base)
        for s in gt_stem_candidates(stem):
            out.append(os.path.join(d, s + ext))
            for e in IMAGE_EXTENSIONS:
                if e != ext.lower():
                    out.append(os.path.join(d, s + e))
    return list(dict.fromkeys(out))


class AllWeatherListDataset(PairedImageDataset):
    """Pairs from a TransWeather/WeatherDiffusion list file (see the module docstring).

    ``root``: the folder the list's paths are relative to; default the list's folder, and when a
    line is not found there, that folder's parent (``data/allweather/allweather.txt`` listing
    ``./allweather/input/x.png``). Absolute paths in the list are used as they are.
    Every input and target is checked at construction (``os.path`` only, no decoding); a miss is a
    :class:`MissingFileError` naming the list file, the line number and the file.
    """

    def __init__(self, list_file: str | os.PathLike, root: str | os.PathLike | None = None,
                 weather: str | None = None, class_names: Sequence[str] = DEFAULT_WEATHER_CLASSES,
                 crop_size=None, flip: bool | None = None, seed: int = 0,
                 labels_csv: str | os.PathLike | None = None, default_weather: str | None = ''):
        list_file = os.path.abspath(os.fspath(list_file))
        if not os.path.isfile(list_file):
            raise MissingFileError(f'list file not found: {list_file}')
        self.list_file = list_file
        list_dir = os.path.dirname(list_file)
        roots = [os.path.abspath(os.fspath(root))] if root is not None else \
            [list_dir, os.path.dirname(list_dir)]
        self.root = roots[0]
        if default_weather == '':
            is_allweather = os.path.basename(list_file).lower().startswith('allweather')
            default_weather = 'snow' if is_allweather else None
        self.default_weather = default_weather
        labels = read_labels_csv(labels_csv) if labels_csv is not None else None
        known = {canonical_weather(c) for c in class_names} | set(DEFAULT_WEATHER_CLASSES)

        samples = []
        with open(list_file, encoding='utf-8-sig') as f:
            lines = f.read().splitlines()
        for lineno, raw in enumerate(lines, start=1):
            line = raw.strip()
            if not line or line.startswith('#'):
                continue
            where = f'{list_file} line {lineno}'
            inp_rel, gt_rel, w = self._split(line, roots, known)
            found = self._resolve(inp_rel, roots)
            if found is None:
                looked = inp_rel if os.path.isabs(inp_rel) else \
                    ', '.join(os.path.join(r, inp_rel) for r in roots)
                raise MissingFileError(f'{where}: input image not found: {inp_rel!r} '
                                       f'(looked for {looked})')
            inp, base = found
            if gt_rel is not None:
                found = self._resolve(gt_rel, [base] if base else roots)
                if found is None:
                    raise MissingFileError(f'{where}: target image not found: {gt_rel!r}')
                tgt = found[0]
            else:
                tried = gt_path_candidates(inp_rel)
                tgt = next((p for p in (os.path.normpath(os.path.join(base, c)) for c in tried)
                            if os.path.isfile(p)), None)
                if tgt is None:
                    raise MissingFileError(
                        f'{where}: no target image for input {inp_rel!r}; tried '
                        f'{", ".join(repr(c) for c in tried[:3])}, ... (relative to '
                        f'{base or "/"})')
            rel_key = os.path.normpath(inp_rel).replace(os.sep, '/')
            if w is None and labels:
                w = lookup_label(labels, rel_key, inp_rel)
            if w is None:
                w = weather
            if w is None:
                w = infer_weather(inp_rel) or infer_weather(
                    '/'.join(os.path.normpath(list_dir).split(os.sep)[-2:] + [inp_rel]))
            if w is None:
                w = self.default_weather
            if w is None:
                raise DatasetError(f'{where}: cannot tell the weather of {inp_rel!r}; give '
                                   f'weather=..., default_weather=..., labels_csv=... or a '
                                   f'weather column in the list')
            samples.append(PairSample(inp, tgt, label_index(w, class_names, where), rel_key))
        if not samples:
            raise DatasetError(f'list file {list_file} lists no images')
        super().__init__(samples, class_names, crop_size, flip, seed)

    @staticmethod
    def _resolve(rel: str, roots: Sequence[str]) -> tuple[str, str] | None:
        """(path, the root it was found under ('' for an absolute path)) or None."""
        if os.path.isabs(rel):
            return (rel, '') if os.path.isfile(rel) else None
        for r in roots:
            p = os.path.normpath(os.path.join(r, rel))
            if os.path.isfile(p):
                return p, r
        return None

    @classmethod
    def _split(cls, line: str, roots: Sequence[str], known: set[str]
               ) -> tuple[str, str | None, str | None]:
        if cls._resolve(line, roots) is not None:
            return line, None, None
        fields = re.split(r'\s+', line)
        if len(fields) == 1:
            return line, None, None
        if len(fields) == 2:
            if canonical_weather(fields[1]) in known:
                return fields[0], None, fields[1]
            return fields[0], fields[1], None
        if len(fields) == 3:
            return fields[0], fields[1], fields[2]
        return line, None, None     # a path with spaces that does not exist: reported as such
