"""Image-quality and classification metrics, computed the way the weather-removal papers report.

PSNR/SSIM default to the **Y channel of YCbCr** (ITU-R BT.601, studio range:
``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` for R, G, B in [0, 1], so Y is in [16, 235] on the
8-bit scale) -- the ``calculate_psnr``/``calculate_ssim(test_y_channel=True)`` code that
WeatherDiffusion's ``calculate_psnr_ssim.py`` uses (from SwinIR/BasicSR). ``on='rgb'`` computes
over the RGB channels instead (PSNR over all values; SSIM averaged over the channels), which is
what TransWeather's training-time validation ``to_psnr`` reports (its test scripts take Y with
OpenCV's full-range JPEG conversion instead, which differs slightly from BT.601 studio range).
Numbers on Y are typically 1-2 dB higher than on RGB for the same images; say which one a table
uses.

``on='y_full'`` is the other Y convention: BT.601 *full* range, ``Y = 0.299 R + 0.587 G + 0.114 B``
(0..255, no offset), what OpenCV's ``cv2.COLOR_RGB2YCrCb``/``COLOR_BGR2YCrCb`` computes (OpenCV
also rounds Y to a byte; this does not, as ``'y'`` does not). Since video-range Y spans only
219/255 of the scale, the same images read ``20 log10(255/219)`` = 1.32 dB higher on ``'y'``
than on ``'y_full'`` (exactly, for PSNR; SSIM differs slightly through its constants). The
degraded Rain100L/Rain100H test inputs measure 26.90/13.55 dB on ``'y'`` and 25.58/12.23 dB on
``'y_full'``. :data:`METRIC_SPACES` names each convention for table headers.

SSIM is Wang et al. 2004: an 11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, population
(not sample) covariances, mean of the SSIM map over the *valid* region (the 5-pixel border where
the window leaves the image is excluded). This equals the MATLAB reference ``ssim_index.m``,
BasicSR's ``calculate_ssim`` and skimage's ``structural_similarity(gaussian_weights=True,
sigma=1.5, use_sample_covariance=False, data_range=...)``.

Inputs: numpy arrays HxWx3 RGB (uint8, or float in ``[0, data_range]``), HxW or HxWx1 grey, or
torch tensors [3,H,W] / [1,3,H,W] (moved to the CPU). uint8 input always uses data range 255.
The channel order must be RGB for ``on='y'`` (``cv2.imread`` gives BGR: convert first).
For numbers comparable with published tables, quantise restored images to uint8 first
(:func:`to_uint8`), as the papers evaluate saved 8-bit images.

Identical images: PSNR is infinite; :func:`psnr` returns ``cap`` (default 100 dB) instead so that
means over a test set stay finite (``cap=None`` returns ``inf``).
"""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Iterable, Mapping, Sequence

import cv2
import numpy as np

__all__ = ['rgb_to_y', 'rgb_to_y_full', 'to_uint8', 'psnr', 'ssim', 'ConfusionMatrix',
           'MetricTable', 'PSNR_CAP', 'METRIC_SPACES']

PSNR_CAP = 100.0
#: BT.601 luma coefficients for R, G, B in [0, 1] -> Y on the 8-bit scale (plus 16).
_Y_COEFFS = np.array([65.481, 128.553, 24.966])
#: BT.601 full-range luma (OpenCV's YCrCb): R, G, B on any scale -> Y on the same scale.
_Y_FULL_COEFFS = np.array([0.299, 0.587, 0.114])

#: ``on=`` value -> how a table header names it.
METRIC_SPACES = {
    'y': 'Y channel (BT.601 video range 16-235, as MATLAB rgb2ycbcr; the papers\' convention)',
    'y_full': 'Y channel (BT.601 full range 0-255, as OpenCV COLOR_RGB2YCrCb)',
    'rgb': 'RGB',
}


def _as_hwc(x, name: str) -> np.ndarray:
    if hasattr(x, 'detach') and hasattr(x, 'cpu'):      # torch tensor, CHW or 1CHW
        t = x.detach().cpu()
        if t.ndim == 4:
            if t.shape[0] != 1:
                raise ValueError(f'{name}: a batch of {t.shape[0]} images; pass one at a time')
            t = t[0]
        if t.ndim == 3:
            t = t.permute(1, 2, 0)
        x = t.float().numpy() if str(t.dtype).startswith('torch.bfloat') else t.numpy()
    a = np.asarray(x)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 3):
        raise ValueError(f'{name}: expected HxW, HxWx1 or HxWx3 (or a [3,H,W] tensor), got '
                         f'shape {a.shape}')
    return a


def _prepare(pred, target, data_range, on: str) -> tuple[np.ndarray, np.ndarray, float]:
    """Both images as float64 on the 8-bit scale [0, 255] (Y or RGB), plus that scale (255)."""
    a, b = _as_hwc(pred, 'pred'), _as_hwc(target, 'target')
    if a.shape != b.shape:
        raise ValueError(f'pred and target shapes differ: {a.shape} vs {b.shape}')
    if on not in METRIC_SPACES:
        raise ValueError(f"on must be 'y', 'y_full' or 'rgb', not {on!r}")

    def scale(x):
        if x.dtype == np.uint8:
            if data_range not in (None, 255, 255.0):
                raise ValueError(f'uint8 images have data range 255, got data_range={data_range}')
            return x.astype(np.float64)
        if np.issubdtype(x.dtype, np.integer):
            raise ValueError(f'integer images other than uint8 need converting ({x.dtype})')
        dr = 1.0 if data_range is None else float(data_range)
        return x.astype(np.float64) * (255.0 / dr)

    a, b = scale(a), scale(b)
    if on == 'y' and a.shape[2] == 3:
        a, b = rgb_to_y(a), rgb_to_y(b)
    elif on == 'y_full' and a.shape[2] == 3:
        a, b = rgb_to_y_full(a), rgb_to_y_full(b)
    return a, b, 255.0


def rgb_to_y(rgb: np.ndarray, data_range: float = 255.0) -> np.ndarray:
    """BT.601 studio-range luma of an HxWx3 **RGB** image, float64 HxWx1, no rounding.

    On the 8-bit scale (``data_range=255``, also used for uint8 input): black -> 16, white -> 235,
    pure red -> 81.481, green -> 144.553, blue -> 40.966. For float images in [0, 1] pass
    ``data_range=1`` (the result is on the same [0, 1] scale: 16/255 ... 235/255).
    """
    x = np.asarray(rgb)
    if x.ndim != 3 or x.shape[2] != 3:
        raise ValueError(f'rgb_to_y expects HxWx3, got {x.shape}')
    dr = 255.0 if x.dtype == np.uint8 else float(data_range)
    x = x.astype(np.float64) / dr
    y = x @ _Y_COEFFS + 16.0
    return (y * (dr / 255.0))[:, :, None]


def rgb_to_y_full(rgb: np.ndarray) -> np.ndarray:
    """BT.601 full-range luma ``0.299 R + 0.587 G + 0.114 B`` of an HxWx3 **RGB** image, float64
    HxWx1 on the input's scale, no rounding (black -> 0, white -> 255 for uint8; OpenCV's
    ``COLOR_RGB2YCrCb`` gives the same value rounded to a byte)."""
    x = np.asarray(rgb)
    if x.ndim != 3 or x.shape[2] != 3:
        raise ValueError(f'rgb_to_y_full expects HxWx3, got {x.shape}')
    return (x.astype(np.float64) @ _Y_FULL_COEFFS)[:, :, None]


def to_uint8(x) -> np.ndarray:
    """A float image in [0, 1] (HxWxC array or [3,H,W] tensor) as rounded HxWxC uint8."""
    a = _as_hwc(x, 'image')
    if a.dtype == np.uint8:
        return a
    return np.clip(np.round(a.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)


def psnr(pred, target, data_range: float | None = None, on: str = 'y',
         cap: float | None = PSNR_CAP) -> float:
    """Peak signal-to-noise ratio in dB, ``10 log10(range^2 / MSE)``.

    ``data_range``: the range of float inputs (default 1.0; uint8 is always 255). ``on``: ``'y'``
    (default: video-range Y, as the papers report), ``'y_full'`` (OpenCV's full-range Y) or
    ``'rgb'``. Identical images give ``cap`` (100 dB; None:
    ``inf``); any result above ``cap`` is capped.
    """
    a, b, peak = _prepare(pred, target, data_range, on)
    mse = float(np.mean((a - b) ** 2))
    value = math.inf if mse == 0 else 10.0 * math.log10(peak * peak / mse)
    return value if cap is None else min(value, float(cap))


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    k = cv2.getGaussianKernel(size, sigma, cv2.CV_64F)
    return k @ k.T


def _ssim_channel(a: np.ndarray, b: np.ndarray, peak: float, window: np.ndarray) -> float:
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    r = window.shape[0] // 2

    def filt(x):   # correlation, then keep the valid region only: borders never matter
        return cv2.filter2D(x, cv2.CV_64F, window, borderType=cv2.BORDER_REFLECT)[r:-r, r:-r]

    mu_a, mu_b = filt(a), filt(b)
    var_a = filt(a * a) - mu_a ** 2
    var_b = filt(b * b) - mu_b ** 2
    cov = filt(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2)
    return float(np.mean(num / den))


def ssim(pred, target, data_range: float | None = None, on: str = 'y') -> float:
    """Structural similarity (Wang et al. 2004; see the module docstring for the exact variant).

    Images must be at least 11x11. ``on='rgb'`` averages the per-channel SSIMs.
    """
    a, b, peak = _prepare(pred, target, data_range, on)
    if min(a.shape[:2]) < 11:
        raise ValueError(f'ssim needs images of at least 11x11, got {a.shape[1]}x{a.shape[0]}')
    w = _gaussian_window()
    vals = [_ssim_channel(np.ascontiguousarray(a[:, :, c]), np.ascontiguousarray(b[:, :, c]),
                          peak, w) for c in range(a.shape[2])]
    return float(np.mean(vals))


# ----------------------------------------------------------------------------- classification

class ConfusionMatrix:
    """Counts of (true class, predicted class); rows are the truth, columns the prediction.

    ``update(pred, target)`` takes one label or a sequence/array/tensor of labels, each an int
    index or a class name; ``pred`` may also be [N, C] scores (arg-max is taken).
    """

    def __init__(self, class_names: Sequence[str]):
        self.class_names = tuple(class_names)
        n = len(self.class_names)
        if n == 0:
            raise ValueError('ConfusionMatrix needs at least one class')
        self.matrix = np.zeros((n, n), dtype=np.int64)

    def _indices(self, labels, what: str) -> np.ndarray:
        if hasattr(labels, 'detach'):
            labels = labels.detach().cpu().numpy()
        if isinstance(labels, (str, int, np.integer)):
            labels = [labels]
        arr = np.asarray(labels)
        if arr.ndim == 2 and arr.dtype.kind == 'f':
            arr = arr.argmax(axis=1)
        if arr.ndim == 0:
            arr = arr[None]
        if arr.ndim != 1:
            raise ValueError(f'{what}: expected a label or a 1-D sequence of labels, got shape '
                             f'{arr.shape}')
        out = np.empty(len(arr), dtype=np.int64)
        for i, v in enumerate(arr.tolist()):
            if isinstance(v, str):
                if v not in self.class_names:
                    raise ValueError(f'{what}: unknown class {v!r}; classes: {self.class_names}')
                out[i] = self.class_names.index(v)
            else:
                if float(v) != int(v) or not 0 <= int(v) < len(self.class_names):
                    raise ValueError(f'{what}: label {v} is not a class index '
                                     f'0..{len(self.class_names) - 1}')
                out[i] = int(v)
        return out

    def update(self, pred, target) -> None:
        p, t = self._indices(pred, 'pred'), self._indices(target, 'target')
        if p.shape != t.shape:
            raise ValueError(f'pred has {len(p)} labels but target has {len(t)}')
        np.add.at(self.matrix, (t, p), 1)

    def reset(self) -> None:
        self.matrix[:] = 0

    @property
    def total(self) -> int:
        return int(self.matrix.sum())

    def accuracy(self) -> float:
        """Fraction of correct predictions (NaN when empty)."""
        return float(np.trace(self.matrix) / self.total) if self.total else math.nan

    def recall(self) -> dict[str, float]:
        """Per class: correct / samples of that class (NaN for a class with no samples)."""
        support = self.matrix.sum(axis=1)
        return {c: (float(self.matrix[i, i] / support[i]) if support[i] else math.nan)
                for i, c in enumerate(self.class_names)}

    def precision(self) -> dict[str, float]:
        """Per class: correct / predictions of that class (NaN when never predicted)."""
        predicted = self.matrix.sum(axis=0)
        return {c: (float(self.matrix[i, i] / predicted[i]) if predicted[i] else math.nan)
                for i, c in enumerate(self.class_names)}

    def balanced_accuracy(self) -> float:
        """Mean recall over the classes that have samples."""
        vals = [v for v in self.recall().values() if not math.isnan(v)]
        return float(np.mean(vals)) if vals else math.nan

    def to_markdown(self, digits: int = 3) -> str:
        """The matrix (rows true, columns predicted) with per-class recall, then accuracy."""
        rec = self.recall()
        head = '| true \\ pred | ' + ' | '.join(self.class_names) + ' | n | recall |'
        sep = '|---|' + '---:|' * (len(self.class_names) + 2)
        lines = [head, sep]
        for i, c in enumerate(self.class_names):
            cells = ' | '.join(str(int(v)) for v in self.matrix[i])
            r = rec[c]
            lines.append(f'| {c} | {cells} | {int(self.matrix[i].sum())} | '
                         f'{"-" if math.isnan(r) else f"{r:.{digits}f}"} |')
        acc = self.accuracy()
        lines.append('')
        lines.append(f'accuracy: {"-" if math.isnan(acc) else f"{acc:.{digits}f}"} '
                     f'({int(np.trace(self.matrix))}/{self.total})')
        return '\n'.join(lines)

    def to_dict(self) -> dict:
        """JSON-ready (NaN -> None)."""
        return {'class_names': list(self.class_names), 'matrix': self.matrix.tolist(),
                'total': self.total, 'accuracy': _finite_or_none(self.accuracy()),
                'recall': {k: _finite_or_none(v) for k, v in self.recall().items()},
                'precision': {k: _finite_or_none(v) for k, v in self.precision().items()}}


# ----------------------------------------------------------------------------- tables

def _finite_or_none(v):
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


class MetricTable:
    """Per-sample metric values grouped (e.g. by weather class or test set), then averaged.

    ``add('snow', psnr=31.2, ssim=0.93)`` records one sample. Rows of the summary: each group's
    mean (in first-seen order, or ``groups`` order), ``all`` (mean over every sample) and, with
    more than one group, ``mean of groups`` (the unweighted mean of the group means).
    ``to_markdown()`` renders it; ``to_dict()`` gives JSON-ready values (non-finite -> None).
    """

    ALL = 'all'
    MACRO = 'mean of groups'

    def __init__(self, metrics: Sequence[str] | None = None, groups: Sequence[str] | None = None,
                 digits: Mapping[str, int] | None = None):
        self.metrics: list[str] = list(metrics) if metrics else []
        self._values: 'OrderedDict[str, dict[str, list[float]]]' = OrderedDict(
            (g, {}) for g in (groups or ()))
        self._counts: dict[str, int] = {g: 0 for g in (groups or ())}
        self.digits = {'psnr': 2, 'ssim': 4}
        self.digits.update(digits or {})

    def add(self, group: str, **values: float) -> None:
        group = str(group)
        if group not in self._values:
            self._values[group] = {}
            self._counts[group] = 0
        self._counts[group] += 1
        for k, v in values.items():
            if k not in self.metrics:
                self.metrics.append(k)
            self._values[group].setdefault(k, []).append(float(v))

    def extend(self, rows: Iterable[tuple[str, Mapping[str, float]]]) -> None:
        for g, vals in rows:
            self.add(g, **vals)

    @property
    def groups(self) -> list[str]:
        return list(self._values)

    def count(self, group: str | None = None) -> int:
        return sum(self._counts.values()) if group is None else self._counts.get(group, 0)

    def group_means(self) -> 'OrderedDict[str, dict[str, float]]':
        out = OrderedDict()
        for g, vals in self._values.items():
            out[g] = {m: (float(np.mean(vals[m])) if vals.get(m) else math.nan)
                      for m in self.metrics}
        return out

    def overall(self) -> dict[str, float]:
        """Mean over all samples (each sample weighs the same)."""
        out = {}
        for m in self.metrics:
            allv = [v for vals in self._values.values() for v in vals.get(m, [])]
            out[m] = float(np.mean(allv)) if allv else math.nan
        return out

    def macro(self) -> dict[str, float]:
        """Unweighted mean of the group means (each group weighs the same)."""
        gm = self.group_means()
        out = {}
        for m in self.metrics:
            vals = [r[m] for r in gm.values() if not math.isnan(r[m])]
            out[m] = float(np.mean(vals)) if vals else math.nan
        return out

    def rows(self) -> list[tuple[str, int, dict[str, float]]]:
        rows = [(g, self._counts[g], r) for g, r in self.group_means().items()]
        rows.append((self.ALL, self.count(), self.overall()))
        if len(self._values) > 1:
            rows.append((self.MACRO, self.count(), self.macro()))
        return rows

    def _fmt(self, metric: str, v: float) -> str:
        if math.isnan(v):
            return '-'
        return f'{v:.{self.digits.get(metric, 4)}f}'

    def to_markdown(self, title: str = 'group') -> str:
        head = f'| {title} | n | ' + ' | '.join(self.metrics) + ' |'
        sep = '|---|---:|' + '---:|' * len(self.metrics)
        lines = [head, sep]
        for name, n, vals in self.rows():
            label = f'**{name}**' if name in (self.ALL, self.MACRO) else name
            lines.append(f'| {label} | {n} | ' +
                         ' | '.join(self._fmt(m, vals[m]) for m in self.metrics) + ' |')
        return '\n'.join(lines)

    def to_dict(self) -> dict:
        return {
            'metrics': list(self.metrics),
            'groups': {g: {'n': self._counts[g], **{m: _finite_or_none(v) for m, v in r.items()}}
                       for g, r in self.group_means().items()},
            'all': {'n': self.count(),
                    **{m: _finite_or_none(v) for m, v in self.overall().items()}},
            'mean_of_groups': {m: _finite_or_none(v) for m, v in self.macro().items()},
        }
