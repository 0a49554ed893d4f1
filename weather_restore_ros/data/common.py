"""Shared pieces of the dataset classes: image reading, weather labels, crops, the base Dataset.

Every dataset in this package returns the same sample dict so that datasets can be mixed with
``torch.utils.data.ConcatDataset`` and batched with the default collate function::

    {'input':  float32 Tensor [3, H, W] in [0, 1]   (the degraded image, RGB)
     'target': float32 Tensor [3, H, W] in [0, 1]   (the clean image, RGB)
     'label':  int                                  (index into ``class_names``)
     'name':   str}                                 (a stable id, e.g. the input's relative path)

Augmentation is deterministic: the random crop offset and the flip of sample ``index`` come from
``numpy.random.default_rng([seed, epoch, index])`` so a DataLoader gives the same samples whatever
the number of workers and whichever worker reads the index. Call ``dataset.set_epoch(epoch)`` (or
:func:`weather_restore_ros.data.set_epoch` on the loader) to draw new crops each epoch.
"""
from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from .. import DEFAULT_WEATHER_CLASSES
from ..file_frames import IMAGE_EXTENSIONS


class DatasetError(ValueError):
    """A dataset's layout, list or labels are not what the loader expects (message says why)."""


class MissingFileError(DatasetError, FileNotFoundError):
    """A file that the dataset's layout or list refers to does not exist."""


class ImageReadError(DatasetError, OSError):
    """An image file exists but cannot be decoded."""


# ----------------------------------------------------------------------------- images

def is_image_file(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


def list_images(folder: str | os.PathLike, recursive: bool = False) -> list[str]:
    """Image files under ``folder`` as sorted paths relative to it (hidden files skipped)."""
    folder = str(folder)
    out = []
    if recursive:
        for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith('.'))
            rel_dir = os.path.relpath(dirpath, folder)
            for f in filenames:
                if not f.startswith('.') and is_image_file(f):
                    out.append(f if rel_dir == '.' else os.path.join(rel_dir, f))
    else:
        with os.scandir(folder) as it:
            for e in it:
                if not e.name.startswith('.') and is_image_file(e.name) and e.is_file():
                    out.append(e.name)
    return sorted(out)


def photo_paths(roots) -> list[Path]:
    """Every image below the given folders (or the files themselves), sorted per folder;
    FileNotFoundError naming a root that does not exist."""
    out = []
    for root in roots:
        root = Path(root).expanduser()
        if root.is_dir():
            out += [root / rel for rel in list_images(root, recursive=True)]
        elif root.is_file():
            out.append(root)
        else:
            raise FileNotFoundError(f'no such photo folder or file: {root}')
    return out


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as HxWx3 uint8 RGB (grey is expanded, alpha dropped, 16 bit scaled).

    Raises :class:`MissingFileError` or :class:`ImageReadError`, both naming the file.
    """
    path = str(path)
    if not os.path.isfile(path):
        raise MissingFileError(f'image file not found: {path}')
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        # cv2.imread does not accept every path (e.g. some non-UTF-8 names): try a byte read.
        try:
            buf = np.fromfile(path, dtype=np.uint8)
            img = cv2.imdecode(buf, cv2.IMREAD_COLOR) if buf.size else None
        except OSError:
            img = None
    if img is None:
        raise ImageReadError(f'cannot decode image file {path} (not an image, or corrupt)')
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 (or float in [0,1]) -> float32 [3,H,W] in [0,1]."""
    if rgb.dtype == np.uint8:
        t = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float().div_(255.0)
    else:
        t = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32))
        t = t.clamp_(0.0, 1.0)
    return t


# ----------------------------------------------------------------------------- weather labels

#: Other spellings accepted wherever a weather name is given (labels.csv, ``weather=``, lists).
WEATHER_ALIASES = {
    'clean': 'clear', 'sunny': 'clear', 'none': 'clear', 'gt': 'clear',
    'rainy': 'rain', 'rainstreak': 'rain', 'rain_streak': 'rain', 'streak': 'rain',
    'derain': 'rain',
    'snowy': 'snow', 'desnow': 'snow',
    'haze': 'fog', 'hazy': 'fog', 'foggy': 'fog', 'mist': 'fog', 'dehaze': 'fog',
    'rain_drop': 'raindrop', 'rain-drop': 'raindrop', 'raindrops': 'raindrop', 'drop': 'raindrop',
}


def canonical_weather(name: str) -> str:
    key = str(name).strip().lower().replace(' ', '_')
    return WEATHER_ALIASES.get(key, key)


def label_index(weather: str, class_names: Sequence[str], where: str = '') -> int:
    """Index of ``weather`` (aliases accepted) in ``class_names``; DatasetError if absent."""
    w = canonical_weather(weather)
    names = [canonical_weather(c) for c in class_names]
    if w in names:
        return names.index(w)
    if str(weather) in class_names:
        return list(class_names).index(str(weather))
    raise DatasetError(f'weather {weather!r}{" for " + where if where else ""} is not one of '
                       f'the classes {tuple(class_names)}')


_RAIN_FALSE_FRIENDS = {'train', 'terrain', 'brain', 'drain', 'grain', 'strain', 'retrain',
                       'pretrain', 'constrain', 'restrain'}
_FOG_TOKENS = {'fog', 'foggy', 'haze', 'hazy', 'mist', 'misty', 'sots', 'reside', 'ots', 'rtts',
               'dehaze', 'dehazing', 'ohaze', 'ihaze', 'nhhaze', 'densehaze'}
#: RainDrop (Qian et al. 2018) names its inputs ``<n>_rain.png`` and targets ``<n>_clean.png``.
_RAINDROP_NAME = re.compile(r'(^|[/\\])\d+_rain\.[a-z]+$', re.IGNORECASE)
#: Outdoor-Rain (Li et al. 2019) inputs: ``im_0001_s80_a04.png`` (streak + atmospheric params).
_OUTDOOR_RAIN_NAME = re.compile(r'(^|[/\\])im_\d+_s\d+_a\d+\.[a-z]+$', re.IGNORECASE)


def infer_weather(path: str | os.PathLike) -> str | None:
    """Guess the weather class from a path's words, or None when nothing matches.

    The path is split into lower-case letter-only words (``Snow100K-L`` -> ``snow``, ``k``,
    ``l``); rules in priority order over all words:

    1. ``raindrop``: a word containing ``raindrop``, a ``rain*`` word together with ``drop``/
       ``drops``, or a RainDrop-style file name ``<digits>_rain.<ext>``;
    2. ``snow``: a word starting with ``snow``;
    3. ``rain``: a word starting with ``rain`` or ending with it (``derain``, ``outdoorrain``;
       not ``train``/``terrain``/...), or an Outdoor-Rain file name ``im_<n>_s<n>_a<n>.<ext>``
       (Outdoor-Rain is rain + fog and is labelled rain, like CDD-11's ``haze_rain``);
    4. ``fog``: ``haze``/``hazy``/``fog``/``mist`` words, words containing ``haze``, and the
       haze benchmark names ``SOTS``/``RESIDE``/``OTS``/``RTTS``/``O-HAZE``... (not ``ITS``:
       too common a word);
    5. ``clear``: a ``clear`` word.

    Pass the part of the path that describes the data (datasets pass the path relative to their
    root plus the root's last three folder names), not a home directory that might say "rain".
    """
    s = str(path).replace('\\', '/')
    words = [w for w in re.split(r'[^a-z]+', s.lower()) if w]
    wset = set(words)
    rainy = [w for w in words if (w.startswith('rain') or w.endswith('rain'))
             and w not in _RAIN_FALSE_FRIENDS]
    if any('raindrop' in w for w in words) or (rainy and wset & {'drop', 'drops'}) \
            or _RAINDROP_NAME.search(s):
        return 'raindrop'
    if any(w.startswith('snow') for w in words):
        return 'snow'
    if rainy or _OUTDOOR_RAIN_NAME.search(s):
        return 'rain'
    if wset & _FOG_TOKENS or any('haze' in w or w.startswith('fog') for w in words):
        return 'fog'
    if 'clear' in wset:
        return 'clear'
    return None


def inference_context(root: str | os.PathLike, rel: str, parents: int = 3) -> str:
    """``rel`` prefixed by the last ``parents`` folder names of ``root`` (for infer_weather)."""
    parts = Path(os.path.abspath(str(root))).parts[1:]
    return '/'.join(list(parts[-parents:]) + [rel.replace(os.sep, '/')])


def read_labels_csv(path: str | os.PathLike) -> dict[str, str]:
    """``labels.csv`` -> {file: weather}. Columns ``file,weather[,...]``; a header row is optional
    (detected by a first cell of file/filename/name/path/image/input or a ``weather`` cell); with
    a header the columns named ``file`` (or those aliases) and ``weather`` (or label/class) are
    used wherever they are. Blank lines and lines starting with ``#`` are skipped.
    """
    path = str(path)
    rows = []  # (line number, cells)
    with open(path, newline='', encoding='utf-8-sig') as f:
        for n, row in enumerate(csv.reader(f), start=1):
            if row and any(c.strip() for c in row) and not row[0].lstrip().startswith('#'):
                rows.append((n, [c.strip() for c in row]))
    if not rows:
        return {}
    fcol, wcol = 0, 1
    head = [c.lower() for c in rows[0][1]]
    file_keys = ('file', 'filename', 'name', 'path', 'image', 'input')
    if head[0] in file_keys or 'weather' in head:
        fcol = next((i for i, c in enumerate(head) if c in file_keys), 0)
        wcol = next((i for i, c in enumerate(head) if c in ('weather', 'label', 'class')), 1)
        rows = rows[1:]
    out = {}
    for n, row in rows:
        if len(row) <= max(fcol, wcol) or not row[wcol]:
            raise DatasetError(f'{path}: line {n} has no weather column: {row}')
        out[row[fcol].replace('\\', '/')] = row[wcol]
    return out


def lookup_label(labels: dict[str, str], *keys: str) -> str | None:
    """First of ``keys`` (relative path, base name, stem...) present in a labels.csv mapping."""
    for k in keys:
        if k is None:
            continue
        k = k.replace('\\', '/')
        for cand in (k, os.path.basename(k), os.path.splitext(k)[0],
                     os.path.splitext(os.path.basename(k))[0]):
            if cand in labels:
                return labels[cand]
    return None


# ----------------------------------------------------------------------------- gt name rules

#: Suffix pairs for one-folder layouts, tried in this order: ``<stem><in><ext>`` is the input and
#: ``<stem><gt><ext'>`` its target (any image extension).
PAIR_SUFFIXES = (
    ('_in', '_gt'), ('_input', '_gt'), ('_input', '_target'), ('_lq', '_gt'), ('_lq', '_hq'),
    ('_rain', '_clean'), ('_rainy', '_clean'), ('_degraded', '_clean'), ('_hazy', '_clear'),
    ('_haze', '_clear'), ('_snow', '_clean'), ('_in', '_out'),
)


def gt_stem_candidates(stem: str) -> list[str]:
    """Target file stems to look for, in order, for an input file stem.

    1. the same stem (TransWeather/WeatherDiffusion: same name in ``gt/``);
    2. suffix swaps from :data:`PAIR_SUFFIXES` (RainDrop ``0_rain`` -> ``0_clean``);
    3. ever shorter ``_``-prefixes of the stem (Outdoor-Rain ``im_0001_s80_a04`` -> ``im_0001``;
       SOTS ``0001_0.8_0.2`` -> ``0001``), longest first.
    """
    out = [stem]
    for a, b in PAIR_SUFFIXES:
        if stem.endswith(a) and len(stem) > len(a):
            out.append(stem[:-len(a)] + b)
    parts = stem.split('_')
    for k in range(len(parts) - 1, 0, -1):
        out.append('_'.join(parts[:k]))
    seen, uniq = set(), []
    for s in out:
        if s and s not in seen:
            seen.add(s)
            uniq.append(s)
    return uniq


class _StemIndex:
    """Image files of one folder (recursive) indexed by relative path without extension."""

    def __init__(self, folder: str):
        self.folder = folder
        self.by_stem: dict[str, str] = {}
        for rel in list_images(folder, recursive=True):
            key = os.path.splitext(rel)[0].replace(os.sep, '/')
            # Prefer .png over other extensions when both exist (deterministic).
            if key not in self.by_stem or rel.lower().endswith('.png'):
                self.by_stem[key] = rel

    def find(self, rel_input: str) -> str | None:
        rel_input = rel_input.replace(os.sep, '/')
        d, base = os.path.split(rel_input)
        stem = os.path.splitext(base)[0]
        for cand in gt_stem_candidates(stem):
            key = f'{d}/{cand}' if d else cand
            if key in self.by_stem:
                return os.path.join(self.folder, self.by_stem[key])
        return None


# ----------------------------------------------------------------------------- crops

def _as_hw(crop_size) -> tuple[int, int] | None:
    if crop_size is None:
        return None
    if isinstance(crop_size, (int, np.integer)):
        return int(crop_size), int(crop_size)
    h, w = crop_size
    return int(h), int(w)


def pad_to(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """Pad (bottom/right, mirror without repeating the edge, repeated as needed) to >= h x w."""
    ph, pw = max(0, h - img.shape[0]), max(0, w - img.shape[1])
    if ph == 0 and pw == 0:
        return img
    mode = 'reflect' if min(img.shape[:2]) > 1 else 'edge'
    return np.pad(img, ((0, ph), (0, pw), (0, 0)), mode=mode)


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The per-sample generator: a function of (seed, epoch, index) only."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch) & 0xFFFFFFFF,
                                  int(index) & 0xFFFFFFFF, 0x57EA])


def random_crop_flip(images: Sequence[np.ndarray], crop_hw: tuple[int, int] | None, flip: bool,
                     rng: np.random.Generator) -> list[np.ndarray]:
    """The same random crop (padding first if smaller) and horizontal flip for every image."""
    out = list(images)
    if crop_hw is not None:
        ch, cw = crop_hw
        out = [pad_to(im, ch, cw) for im in out]
        H, W = out[0].shape[:2]
        y = int(rng.integers(0, H - ch + 1))
        x = int(rng.integers(0, W - cw + 1))
        out = [im[y:y + ch, x:x + cw] for im in out]
    if flip and rng.random() < 0.5:
        out = [im[:, ::-1] for im in out]
    return out


def align_pair(inp: np.ndarray, tgt: np.ndarray, names: tuple[str, str],
               max_diff: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Center-crop the larger of a pair to the common size when they differ by <= max_diff px
    per side length (SOTS-indoor targets carry a 10 px border the hazy images lack); a bigger
    mismatch is a DatasetError naming both files."""
    if inp.shape[:2] == tgt.shape[:2]:
        return inp, tgt
    (h1, w1), (h2, w2) = inp.shape[:2], tgt.shape[:2]
    if abs(h1 - h2) > max_diff or abs(w1 - w2) > max_diff:
        raise DatasetError(f'input {names[0]} is {w1}x{h1} but target {names[1]} is {w2}x{h2}')
    h, w = min(h1, h2), min(w1, w2)

    def cc(im):
        y, x = (im.shape[0] - h) // 2, (im.shape[1] - w) // 2
        return im[y:y + h, x:x + w]
    return cc(inp), cc(tgt)


# ----------------------------------------------------------------------------- base dataset

@dataclass(frozen=True)
class PairSample:
    input_path: str
    target_path: str
    label: int
    name: str


class PairedImageDataset(Dataset):
    """Base of the file-backed datasets: a list of :class:`PairSample` plus augmentation.

    ``crop_size``: int or (h, w) for random crops (images smaller than the crop are padded by
    mirroring), ``None`` for full images (evaluation; use batch_size=1 unless sizes agree).
    ``flip``: random horizontal flips; ``None`` means "when cropping".
    """

    def __init__(self, samples: Sequence[PairSample],
                 class_names: Sequence[str] = DEFAULT_WEATHER_CLASSES, crop_size=None,
                 flip: bool | None = None, seed: int = 0):
        self.samples = list(samples)
        self.class_names = tuple(class_names)
        self.crop_size = _as_hw(crop_size)
        self.flip = (self.crop_size is not None) if flip is None else bool(flip)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def labels(self) -> list[int]:
        return [s.label for s in self.samples]

    def label_counts(self) -> dict[str, int]:
        counts = {c: 0 for c in self.class_names}
        for s in self.samples:
            counts[self.class_names[s.label]] += 1
        return counts

    def __getitem__(self, index: int) -> dict:
        if index < 0:
            index += len(self)
        s = self.samples[index]
        inp, tgt = align_pair(read_rgb(s.input_path), read_rgb(s.target_path),
                              (s.input_path, s.target_path))
        rng = sample_rng(self.seed, self.epoch, index)
        inp, tgt = random_crop_flip((inp, tgt), self.crop_size, self.flip, rng)
        return {'input': to_tensor(inp), 'target': to_tensor(tgt), 'label': s.label,
                'name': s.name}

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(n={len(self)}, crop_size={self.crop_size}, '
                f'flip={self.flip}, seed={self.seed}, labels={self.label_counts()})')


def resolve_label(*, rel: str, root: str, labels: dict[str, str] | None, weather: str | None,
                  class_names: Sequence[str], keys: Iterable[str] = ()) -> int:
    """labels.csv entry, else the fixed ``weather``, else :func:`infer_weather`; else an error."""
    w = lookup_label(labels, rel, *keys) if labels else None
    if w is None:
        w = weather
    if w is None:
        w = infer_weather(inference_context(root, rel))
    if w is None:
        raise DatasetError(
            f'cannot tell the weather of {os.path.join(root, rel)}: give weather=..., a '
            f'labels.csv (file,weather) or a folder/file name that says it (snow, rain, fog/haze, '
            f'raindrop, clear)')
    return label_index(w, class_names, where=os.path.join(root, rel))
