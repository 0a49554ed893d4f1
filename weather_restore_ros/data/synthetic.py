"""On-the-fly synthetic weather: random crops of clean photos degraded by ``synth.random_weather``.

The crop is taken first and only the crop is degraded, so a sample costs a crop-sized synthesis
whatever the photo's size. The degradation draws from the same per-sample generator as the crop
(``numpy.random.default_rng([seed, epoch, index])``), so samples are reproducible across runs
and DataLoader worker counts.
"""
from __future__ import annotations

import importlib
import os
from typing import Callable, Sequence

import numpy as np
from torch.utils.data import Dataset

from .. import DEFAULT_WEATHER_CLASSES
from .common import (DatasetError, MissingFileError, _as_hw, label_index, list_images,
                     random_crop_flip, read_rgb, sample_rng, to_tensor)
from ..synth.compose import parse_weather
from .structures import thin_structures


def _default_degrade() -> Callable:
    # Looked up through sys.modules each call so that tests (and users) can swap the module.
    return importlib.import_module('weather_restore_ros.synth').random_weather


class SyntheticWeatherDataset(Dataset):
    """Clean photos -> (degraded crop, clean crop, weather label).

    ``clean_images``: a folder (searched recursively; images read per sample), or a list whose
    items are HxWx3 uint8 RGB arrays or image paths.
    ``length``: samples per epoch (default: the number of photos); sample ``i`` uses photo
    ``i % n_photos`` so every photo is used equally often, with a fresh random crop per epoch.
    ``classes``/``severity_range``: passed to ``random_weather`` (omitted when None, so the
    synthesis module's defaults apply); combinations such as ``'rain+fog'`` are allowed and are
    labelled by their first component. ``class_names``: the label index space.
    Styles made to look like the public benchmark families are classes too, labelled by their
    effect (``synth.compose``): ``rain:light`` (Rain100L), ``rain:heavy`` (Rain100H),
    ``rain:veil`` (Outdoor-Rain), ``snow:small`` / ``snow:medium`` / ``snow:large``
    (Snow100K-S/M/L), ``raindrop:focused`` / ``raindrop:defocused`` (RainDrop), also in
    combinations (``rain:light+raindrop``). A data config enables them through ``classes``
    (a class listed twice is drawn twice as often), e.g.
    ``{type: synthetic, clean: [.build/photos, samples], crop_size: 160, augment: true,
    classes: [clear, rain, rain:light, rain:light, rain:heavy, rain:veil, snow, snow:small,
    snow:medium, snow:large, fog, raindrop, raindrop:focused, raindrop:defocused]}``.
    Their streak and particle sizes are in pixels of a ~480x320 frame, whatever the crop size.
    ``degrade``: a ``random_weather``-compatible callable
    ``f(image_uint8_rgb, rng, classes=..., severity_range=...) -> (degraded, label_str, params)``;
    default ``weather_restore_ros.synth.random_weather``, imported when first needed. It must
    be picklable (a module-level function) for DataLoader workers.
    ``with_params``: also return the synthesis ``params`` (under ``'params'``; breaks the default
    collate when their structure varies between samples).
    ``scene_haze``: share of samples whose *clean* image first gets clear-day aerial haze
    (:func:`aerial_haze`), so the target itself is hazy: bright, low-contrast distant scenery
    and skies are then not evidence of weather, and only haze *added on top* is removed.
    ``patterns``: share of samples whose clean image is a :func:`pattern_scene` (flat colours,
    saturated blocks, gradients) instead of a photo, weathered like any other. Photos never
    show them; a camera facing a painted wall or a truck's side does, and a network trained
    only on photos is free to amplify them until it overflows
    (``weather_restore_ros.training.stress``).
    ``zoom_out``: with ``augment``, each photo is first scaled by a random factor in
    [``zoom_out``, 1] (never below the crop).
    ``structures``: share of samples whose clean image gets thin man-made structures (wires,
    poles, a facade grid: :func:`.structures.thin_structures`), often parallel to the rain, so
    that a thin line is not taken for a streak.
    """

    def __init__(self, clean_images: str | os.PathLike | Sequence, crop_size=256,
                 length: int | None = None, seed: int = 0, classes: Sequence[str] | None = None,
                 severity_range: tuple[float, float] | None = None,
                 class_names: Sequence[str] = DEFAULT_WEATHER_CLASSES, flip: bool = True,
                 degrade: Callable | None = None, with_params: bool = False,
                 augment: bool = False, scene_haze: float = 0.0, patterns: float = 0.0,
                 zoom_out: float = 0.5, structures: float = 0.0):
        if isinstance(clean_images, (str, os.PathLike)):
            root = os.path.abspath(os.fspath(clean_images))
            if not os.path.isdir(root):
                raise MissingFileError(f'clean image folder not found: {root}')
            self.sources = [os.path.join(root, r) for r in list_images(root, recursive=True)]
            self.names = [os.path.relpath(p, root).replace(os.sep, '/') for p in self.sources]
            if not self.sources:
                raise DatasetError(f'no images in {root}')
        else:
            self.sources = list(clean_images)
            if not self.sources:
                raise DatasetError('clean_images is empty')
            self.names = []
            for i, s in enumerate(self.sources):
                if isinstance(s, np.ndarray):
                    if s.ndim != 3 or s.shape[2] != 3 or s.dtype != np.uint8:
                        raise DatasetError(f'clean_images[{i}] must be HxWx3 uint8 RGB, got '
                                           f'{s.dtype} {s.shape}')
                    self.names.append(f'image{i}')
                else:
                    self.names.append(os.path.basename(os.fspath(s)))
        self.crop_size = _as_hw(crop_size)
        self.length = len(self.sources) if length is None else int(length)
        self.seed = int(seed)
        self.epoch = 0
        self.classes = None if classes is None else tuple(classes)
        self.severity_range = None if severity_range is None else tuple(severity_range)
        self.class_names = tuple(class_names)
        self.flip = bool(flip)
        self.degrade = degrade
        self.with_params = with_params
        self.augment = bool(augment)
        self.scene_haze = float(scene_haze)
        if not 0.0 <= self.scene_haze <= 1.0:
            raise DatasetError(f'scene_haze must be in [0, 1], got {scene_haze}')
        self.patterns = float(patterns)
        if not 0.0 <= self.patterns <= 1.0:
            raise DatasetError(f'patterns must be in [0, 1], got {patterns}')
        self.zoom_out = float(zoom_out)
        if not 0.0 < self.zoom_out <= 1.0:
            raise DatasetError(f'zoom_out must be in (0, 1], got {zoom_out}')
        self.structures = float(structures)
        if not 0.0 <= self.structures <= 1.0:
            raise DatasetError(f'structures must be in [0, 1], got {structures}')
        for c in self.classes or ():    # 'rain+fog', 'rain:heavy+fog': labelled 'rain'
            label_index(str(c).split('+')[0].split(':')[0].strip(), self.class_names,
                        where=f'classes ({c})')
            if degrade is None:         # an unknown style fails here, not in a worker
                try:
                    parse_weather(str(c))
                except ValueError as exc:
                    raise DatasetError(f'classes: {exc}') from exc

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def _image(self, k: int) -> np.ndarray:
        s = self.sources[k]
        return s if isinstance(s, np.ndarray) else read_rgb(s)

    def _clean_crop(self, k: int, crop_hw, rng: np.random.Generator) -> np.ndarray:
        photo = self._image(k)
        if self.augment:
            photo = _rescale(photo, rng, crop_hw, self.zoom_out)
        (clean,) = random_crop_flip((photo,), crop_hw, self.flip, rng)
        clean = np.ascontiguousarray(clean)
        return photometric_jitter(clean, rng) if self.augment else clean

    def _mosaic(self, k: int, rng: np.random.Generator) -> np.ndarray:
        """A 2x2 mosaic of jittered crops of random photos: a new "scene" whose overall
        brightness and colour say nothing about its weather, so the network has to look at
        the weather itself (few photos otherwise let it memorise each photo's appearance)."""
        ch, cw = self.crop_size
        y = int(rng.integers(ch // 4, 3 * ch // 4 + 1))
        x = int(rng.integers(cw // 4, 3 * cw // 4 + 1))
        out = np.empty((ch, cw, 3), np.uint8)
        for (y0, y1), (x0, x1) in [((0, y), (0, x)), ((0, y), (x, cw)), ((y, ch), (0, x)),
                                   ((y, ch), (x, cw))]:
            src = k if (y0, x0) == (0, 0) else int(rng.integers(len(self.sources)))
            out[y0:y1, x0:x1] = self._clean_crop(src, (y1 - y0, x1 - x0), rng)
        return out

    def __getitem__(self, index: int) -> dict:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        k = index % len(self.sources)
        rng = sample_rng(self.seed, self.epoch, index)
        if self.patterns > 0 and rng.random() < self.patterns:
            ch, cw = self.crop_size or self._image(k).shape[:2]
            clean = pattern_scene(ch, cw, rng)
        elif self.augment and self.crop_size is not None and rng.random() < MOSAIC_P:
            clean = self._mosaic(k, rng)
        else:
            clean = self._clean_crop(k, self.crop_size, rng)
        if self.scene_haze > 0 and rng.random() < self.scene_haze:
            clean = aerial_haze(clean, rng)
        if self.structures > 0 and rng.random() < self.structures:
            clean = thin_structures(clean, rng)
        fn = self.degrade if self.degrade is not None else _default_degrade()
        kwargs = {}
        if self.classes is not None:
            kwargs['classes'] = self.classes
        if self.severity_range is not None:
            kwargs['severity_range'] = self.severity_range
        degraded, weather, params = fn(clean.copy(), rng, **kwargs)
        degraded = np.asarray(degraded)
        if degraded.shape != clean.shape:
            raise DatasetError(f'synthesis returned shape {degraded.shape} for a {clean.shape} '
                               f'crop ({weather})')
        out = {'input': to_tensor(degraded), 'target': to_tensor(clean),
               'label': label_index(weather, self.class_names, where='synthesised sample'),
               'name': f'{self.names[k]}#{index}'}
        if self.with_params:
            out['params'] = params
        return out

    def __repr__(self) -> str:
        return (f'SyntheticWeatherDataset(augment={self.augment}, photos={len(self.sources)}, '
                f'length={self.length}, '
                f'crop_size={self.crop_size}, classes={self.classes}, seed={self.seed})')


MOSAIC_P = 0.5   # share of augmented samples built as a 2x2 mosaic of several photos


def pattern_scene(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A man-made-looking clean scene, HxWx3 uint8: a flat colour (half of them a saturated
    corner of the RGB cube, e.g. pure yellow), a few rectangles of such colours on one, or a
    linear gradient between two colours."""
    def colour():
        if rng.random() < 0.5:
            return rng.choice([0, 255], 3).astype(np.float32)
        return rng.uniform(0, 255, 3).astype(np.float32)

    kind = rng.integers(3)
    out = np.empty((h, w, 3), np.float32)
    out[:] = colour()
    if kind == 1:
        for _ in range(int(rng.integers(1, 6))):
            y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
            bh = int(rng.integers(h // 8 + 1, h // 2 + 2))
            bw = int(rng.integers(w // 8 + 1, w // 2 + 2))
            out[y:y + bh, x:x + bw] = colour()
    elif kind == 2:
        angle = rng.uniform(0, 2 * np.pi)
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        t = xs * np.cos(angle) + ys * np.sin(angle)
        t = (t - t.min()) / max(float(t.max() - t.min()), 1.0)
        out = out + (colour() - out) * t[..., None]
    return (out + 0.5).astype(np.uint8)


def _rescale(photo: np.ndarray, rng: np.random.Generator, crop_size,
             zoom_out: float) -> np.ndarray:
    """Random zoom out (``zoom_out``-1x, never below the crop): more scene per crop, varied
    scales. The training photos are 1024 px wide; the benchmark frames (Rain100L/H: 481x321) pack
    a scene's fine texture into a third as many pixels, so going down to 0.3x shows the network
    window grids and branches as dense as theirs (at 0.5x it smoothed them away as rain)."""
    import cv2
    h, w = photo.shape[:2]
    ch, cw = (crop_size, crop_size) if isinstance(crop_size, int) else (crop_size or (h, w))
    lo = min(1.0, max(zoom_out, ch / h, cw / w))
    f = float(rng.uniform(lo, 1.0))
    if f >= 0.99:
        return photo
    return cv2.resize(photo, (max(cw, round(w * f)), max(ch, round(h * f))),
                      interpolation=cv2.INTER_AREA)


def aerial_haze(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Clear-day aerial perspective on a clean image: ``I t(y) + A (1 - t(y))`` in linear light,
    thickest at the top (far away, sky) and fading towards the bottom (near ground).

    Landscape photos taken in clear weather are hazy in the distance and have bright, flat skies;
    without examples of that among the clean targets, a model trained on close-up photos
    "dehazes" every bright sky (measured: the held-out landscape's sky came out grey, -12 to -18
    grey levels on rain and raindrop frames).
    """
    from ..synth._common import to_linear, to_srgb_uint8
    h = rgb.shape[0]
    top = float(rng.uniform(0.1, 0.5))                      # haze share at the top row
    power = float(rng.uniform(0.6, 2.0))                    # how fast it fades downwards
    ramp = (1.0 - np.linspace(0.0, 1.0, h, dtype=np.float32)) ** power
    haze = (top * ramp)[:, None, None]
    airlight = float(rng.uniform(0.6, 1.0)) * rng.uniform(0.95, 1.05, 3).astype(np.float32)
    lin = to_linear(np.ascontiguousarray(rgb))
    return to_srgb_uint8(lin * (1.0 - haze) + airlight * haze)


def photometric_jitter(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random channel order, gamma, gain and saturation of the *clean* crop.

    With a handful of training photos, colour and brightness identify the photo, and a model
    learns "this photo -> this weather". Jittering the clean image (before the weather is added,
    so the physics stays right) breaks that shortcut.
    """
    x = rgb.astype(np.float32) / 255.0
    x = x[..., rng.permutation(3)]
    grey = x.mean(axis=2, keepdims=True)
    x = grey + (x - grey) * float(rng.uniform(0.6, 1.3))          # saturation
    x = np.clip(x, 0, 1) ** float(np.exp(rng.uniform(-0.4, 0.4)))  # gamma
    x = x * float(rng.uniform(0.75, 1.15))                         # exposure
    return (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)
