"""Evaluation: PSNR/SSIM per weather class for the model *and* its references.

Every number gets a reference in the same table: the degraded input itself and two classical
methods (dark-channel-prior dehazing, median/guided-filter deraining), computed on the same
frames. Metrics are on the Y channel of BT.601 YCbCr by default, as the all-weather papers
(TransWeather, WeatherDiffusion) report them: video range (16-235, MATLAB's ``rgb2ycbcr``);
``on='y_full'`` is OpenCV's full-range Y (1.32 dB lower PSNR on the same images), ``on='rgb'``
RGB. PSNR on the other Y convention is reported beside as a cross-check.

Per image, for the worst cases a mean hides: model - input PSNR (the worst images by name, and
how many are more than ``margin`` dB below their input), and the do-no-harm speckle measure of
:mod:`weather_restore_ros.harm` (output against input: how many frames are harmed).
:mod:`.suite` does the same for real photos without ground truth (harm, weather
classification) and joins several sets into one report.
"""
from __future__ import annotations

import heapq
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from .baselines import BASELINES
from ..harm import HARM_FRACTION, speckle_fraction
from .metrics import METRIC_SPACES, ConfusionMatrix, MetricTable, psnr, ssim, to_uint8

#: The other Y convention, reported beside the main one as a cross-check.
OTHER_Y = {'y': 'y_full', 'y_full': 'y'}
#: A frame is counted "below its input" when model - input PSNR is below minus this (dB).
BELOW_INPUT_MARGIN = 0.5
#: How many worst images are listed and shown in the worst-case sheets.
WORST_N = 8


@dataclass
class EvalReport:
    methods: dict[str, MetricTable]       # method name -> per-class table
    confusion: ConfusionMatrix
    on: str
    samples: list[tuple[str, list[np.ndarray], list[str]]]  # for the PNG sheet
    clear_psnr: float | None = None       # model output vs. an already clean input
    clear_count: int = 0
    #: one record per frame: name, weather, predicted, speckle, harmed; weather frames also
    #: psnr/ssim per method, delta_psnr (model - input), psnr_<space> {input, model} for each
    #: cross-check space
    images: list[dict] = field(default_factory=list)
    cross_check: tuple[str, ...] = ()
    #: the worst frames by model - input PSNR, and the harmed frames with most speckle, with
    #: their images (input | model | clean) for the sheets, worst first
    worst_sheet: list[tuple[str, list[np.ndarray], list[str]]] = field(default_factory=list)
    harmed_sheet: list[tuple[str, list[np.ndarray], list[str]]] = field(default_factory=list)
    worst_n: int = WORST_N
    margin: float = BELOW_INPUT_MARGIN
    harm_fraction: float = HARM_FRACTION

    def weather_images(self) -> list[dict]:
        return [r for r in self.images if r['weather'] != 'clear']

    def worst(self, n: int | None = None) -> list[dict]:
        """The ``n`` weather frames where model - input PSNR is lowest, worst first."""
        n = self.worst_n if n is None else n
        return sorted(self.weather_images(), key=lambda r: (r['delta_psnr'], r['name']))[:n]

    def below_input(self, margin: float | None = None) -> dict[str, int]:
        """Per weather class and ``'all'``: frames more than ``margin`` dB below their input."""
        margin = self.margin if margin is None else margin
        out: dict[str, int] = {}
        for r in self.weather_images():
            out[r['weather']] = out.get(r['weather'], 0) + int(r['delta_psnr'] < -margin)
        out[MetricTable.ALL] = sum(out.values())
        return out

    def harmed(self) -> list[dict]:
        """The harmed frames (clear ones too), most speckle first."""
        return _harmed(self.images)

    def cross_means(self, space: str) -> dict[str, dict[str, float | None]]:
        """{each class, 'all': {'input': mean PSNR, 'model': mean PSNR}} on ``space``."""
        groups: dict[str, list[dict]] = {}
        for r in self.weather_images():
            groups.setdefault(r['weather'], []).append(r)
        groups[MetricTable.ALL] = self.weather_images()
        key = f'psnr_{space}'
        return {g: {m: (float(np.mean([r[key][m] for r in rs])) if rs else None)
                    for m in ('input', 'model')} for g, rs in groups.items()}

    def to_dict(self) -> dict:
        return {
            'metric_space': self.on,
            'metric_space_name': METRIC_SPACES[self.on],
            'methods': {m: t.to_dict() for m, t in self.methods.items()},
            'cross_check': {sp: {'metric_space_name': METRIC_SPACES[sp],
                                 'psnr': self.cross_means(sp)} for sp in self.cross_check},
            'weather_classification': self.confusion.to_dict(),
            'clear_frames': {'n': self.clear_count, 'model_psnr': self.clear_psnr},
            'below_input': {'margin_db': self.margin, 'n': len(self.weather_images()),
                            'counts': self.below_input()},
            'harm': {'fraction': self.harm_fraction, 'n': len(self.images),
                     'harmed': len(self.harmed()),
                     'worst': [r['name'] for r in self.harmed()[:self.worst_n]]},
            'worst': [{'name': r['name'], 'delta_psnr': r['delta_psnr']} for r in self.worst()],
            'per_image': self.images,
        }

    def to_markdown(self) -> str:
        lines = [f'PSNR (dB) / SSIM on {METRIC_SPACES[self.on]}, per weather class.', '']
        header = f'| class ({short_space(self.on)}) | n | ' + \
            ' | '.join(f'{m} PSNR | {m} SSIM' for m in self.methods) + ' |'
        lines += [header, '|---|---:|' + '---:|---:|' * len(self.methods)]
        first = next(iter(self.methods.values()))
        for name, n, _ in first.rows():
            cells = []
            for table in self.methods.values():
                row = {r[0]: r[2] for r in table.rows()}.get(name, {})
                cells.append(f'{_fmt(row.get("psnr"), 2)} | {_fmt(row.get("ssim"), 4)}')
            label = f'**{name}**' if name in (MetricTable.ALL, MetricTable.MACRO) else name
            lines.append(f'| {label} | {n} | ' + ' | '.join(cells) + ' |')
        if self.clear_count:
            lines += ['', f'Clear frames ({self.clear_count}): the model changes them by '
                          f'{self.clear_psnr:.2f} dB PSNR (higher = less alteration).']
        lines += self._cross_check_markdown() + self._worst_markdown()
        if self.images:
            lines += _harm_lines(self.images, self.harm_fraction, self.worst_n)
        lines += ['', f'Weather classification: accuracy {_fmt(self.confusion.accuracy(), 3)} '
                      f'(chance {1 / len(self.confusion.class_names):.3f}), balanced accuracy '
                      f'{_fmt(self.confusion.balanced_accuracy(), 3)}', '',
                  self.confusion.to_markdown()]
        return '\n'.join(lines)

    def _cross_check_markdown(self) -> list[str]:
        if not self.weather_images():
            return []
        lines = []
        for sp in self.cross_check:
            lines += ['', f'Cross-check: PSNR (dB) on {METRIC_SPACES[sp]}.', '',
                      f'| class ({short_space(sp)}) | input PSNR | model PSNR |',
                      '|---|---:|---:|']
            for g, v in self.cross_means(sp).items():
                label = f'**{g}**' if g == MetricTable.ALL else g
                lines.append(f'| {label} | {_fmt(v["input"], 2)} | {_fmt(v["model"], 2)} |')
        return lines

    def _worst_markdown(self) -> list[str]:
        rows = self.worst()
        if not rows:
            return []
        below = self.below_input()
        per_class = ', '.join(f'{w} {c}' for w, c in below.items() if w != MetricTable.ALL)
        lines = ['', f'Below the input: {below[MetricTable.ALL]} of {len(self.weather_images())} '
                     f'images are more than {self.margin:g} dB below their input (model - input '
                     f'PSNR on {short_space(self.on)}; {per_class}).', '',
                 f'Worst {len(rows)} by model - input PSNR ({short_space(self.on)}):', '',
                 '| image | weather | input PSNR | model PSNR | model - input | speckle % | '
                 'predicted |', '|---|---|---:|---:|---:|---:|---|']
        for r in rows:
            lines.append(f'| {r["name"]} | {r["weather"]} | {r["psnr"]["input"]:.2f} | '
                         f'{r["psnr"]["model"]:.2f} | {r["delta_psnr"]:+.2f} | '
                         f'{100 * r["speckle"]:.3f} | {r["predicted"]} |')
        return lines


def evaluate(samples: Iterable[tuple[str, np.ndarray, np.ndarray, str]],
             restore: Callable[[np.ndarray], tuple[np.ndarray, dict[str, float]]],
             class_names: tuple[str, ...], on: str = 'y', baselines: bool = True,
             sheet_samples: int = 6, worst: int = WORST_N,
             cross_check: Sequence[str] | None = None,
             margin: float = BELOW_INPUT_MARGIN) -> EvalReport:
    """Score ``restore`` (RGB uint8 -> (restored RGB uint8, class scores)) on
    ``(name, degraded, clean, weather)`` samples.

    Weather frames go into per-class PSNR/SSIM tables for the model and the references
    (``input``, and with ``baselines`` the classical ``dark_channel`` and ``median_guided``);
    'clear' frames (input == target) only into ``clear_psnr`` (how much the model alters a clean
    frame). Every frame counts for the weather-classification confusion matrix (arg-max of
    the scores). ``sheet_samples`` frames, spread over the classes, are kept for the PNG sheet.

    Per frame (``report.images``): model - input PSNR, input and model PSNR on every
    ``cross_check`` space (default: the other Y convention), and the speckle fraction of the
    model's output against its input (:func:`~weather_restore_ros.harm.speckle_fraction`;
    harmed above :data:`~weather_restore_ros.harm.HARM_FRACTION`). The ``worst`` frames by
    model - input PSNR, and the ``worst`` harmed frames with most speckle, keep their images for
    the worst-case sheets; ``margin``: "below the input" means by more than this (dB).
    """
    if cross_check is None:
        cross_check = (OTHER_Y[on],) if on in OTHER_Y else ()
    worst_rows = _Worst(worst)      # key: -(model - input PSNR)
    harmed_rows = _Worst(worst)     # key: speckle fraction, harmed frames only
    records: list[dict] = []
    methods = ['input', 'dark_channel', 'median_guided'] if baselines else ['input']
    tables = {m: MetricTable(['psnr', 'ssim']) for m in methods + ['model']}
    confusion = ConfusionMatrix(class_names)
    sheet = []
    per_class_shown: dict[str, int] = {}
    clear_psnr: list[float] = []
    for name, degraded, clean, weather in samples:
        restored, scores = restore(degraded)
        predicted = max(scores, key=scores.get)
        confusion.update(predicted, weather)
        speckle = speckle_of(degraded, restored)
        rec = {'name': name, 'weather': weather, 'predicted': predicted, 'speckle': speckle,
               'harmed': speckle > HARM_FRACTION}
        records.append(rec)
        if rec['harmed']:
            harmed_rows.push(speckle, name, lambda: _sheet_row(
                name, weather, predicted, f'speckle {100 * speckle:.2f} %',
                degraded, restored, clean))
        if weather == 'clear':
            # Input == target: PSNR is unbounded for the input, so clear frames are scored
            # apart, as how much the model alters an already clean image.
            clear_psnr.append(psnr(restored, clean, on=on))
            rec['psnr'] = {'model': clear_psnr[-1]}
            continue
        outputs = {m: BASELINES[m](degraded) for m in methods}
        outputs['model'] = restored
        rec['psnr'], rec['ssim'] = {}, {}
        for m, img in outputs.items():
            rec['psnr'][m], rec['ssim'][m] = psnr(img, clean, on=on), ssim(img, clean, on=on)
            tables[m].add(weather, psnr=rec['psnr'][m], ssim=rec['ssim'][m])
        delta = rec['delta_psnr'] = rec['psnr']['model'] - rec['psnr']['input']
        for sp in cross_check:
            rec[f'psnr_{sp}'] = {'input': psnr(degraded, clean, on=sp),
                                 'model': psnr(restored, clean, on=sp)}
        worst_rows.push(-delta, name, lambda: _sheet_row(
            name, weather, predicted, f'{rec["psnr"]["model"]:.2f} dB ({delta:+.2f} vs input)',
            degraded, restored, clean))
        if per_class_shown.get(weather, 0) < max(1, sheet_samples // len(class_names)) and \
                len(sheet) < sheet_samples:
            per_class_shown[weather] = per_class_shown.get(weather, 0) + 1
            sheet.append((name, [degraded] + [outputs[m] for m in methods[1:]] +
                          [restored, clean],
                          [f'{weather}: input'] + methods[1:] + [f'model ({predicted})', 'clean']))
    return EvalReport(methods=tables, confusion=confusion, on=on, samples=sheet,
                      clear_psnr=float(np.mean(clear_psnr)) if clear_psnr else None,
                      clear_count=len(clear_psnr), images=records, cross_check=tuple(cross_check),
                      worst_sheet=worst_rows.rows(), harmed_sheet=harmed_rows.rows(),
                      worst_n=worst, margin=margin)


def dataset_samples(ds, n: int, class_names: Sequence[str], desc: str | None = None,
                    target: bool = True):
    """The first ``n`` samples of a ``data`` set as ``(name, input, target, weather)`` (HxWx3
    uint8, what :func:`evaluate` takes), or without ``target`` ``(name, input, weather)`` for
    real photos (:func:`.suite.evaluate_photos`); a progress bar from 10 samples on."""
    from tqdm import tqdm
    for i in tqdm(range(n), unit='img', desc=desc, disable=n < 10 or None):
        s = ds[i]
        if target:
            yield (s['name'], to_uint8(s['input'].permute(1, 2, 0).numpy()),
                   to_uint8(s['target'].permute(1, 2, 0).numpy()), class_names[int(s['label'])])
        else:
            yield (s['name'], to_uint8(s['input'].permute(1, 2, 0).numpy()),
                   class_names[int(s['label'])])


def speckle_of(inp: np.ndarray, out: np.ndarray) -> float:
    """:func:`~weather_restore_ros.harm.speckle_fraction` of one HxWx3 uint8 output."""
    def t(a):
        return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None]
    return float(speckle_fraction(t(inp), t(out))[0])


class _Worst:
    """The ``n`` items with the largest key (ties: the first name alphabetically); their sheet
    rows are built only when kept."""

    def __init__(self, n: int):
        self.n = n
        self._heap: list = []   # min-heap of ((key, name), count, row): the root drops first
        self._count = 0

    def push(self, key: float, name: str, make_row: Callable[[], tuple]) -> None:
        if self.n <= 0:
            return
        item = (key, _Reversed(name))
        self._count += 1
        if len(self._heap) < self.n:
            heapq.heappush(self._heap, (item, self._count, make_row()))
        elif item > self._heap[0][0]:
            heapq.heapreplace(self._heap, (item, self._count, make_row()))

    def rows(self) -> list:
        return [e[2] for e in sorted(self._heap, key=lambda e: e[:2], reverse=True)]


class _Reversed(str):
    """A string that sorts in reverse order."""

    def __lt__(self, other):
        return str.__gt__(self, other)

    def __gt__(self, other):
        return str.__lt__(self, other)


def _sheet_row(name, weather, predicted, what, inp, out, clean=None):
    imgs = [inp, out] + ([] if clean is None else [clean])
    labels = [f'{name} ({weather}): input', f'model ({predicted}): {what}']
    if clean is not None:
        labels.append('ground truth')
    return name, [np.array(i, copy=True) for i in imgs], labels


def short_space(on: str) -> str:
    """A metric space's short name for table headers: 'Y video range', 'Y full range', 'RGB'."""
    return {'y': 'Y video range', 'y_full': 'Y full range', 'rgb': 'RGB'}[on]


def _harmed(images: list[dict]) -> list[dict]:
    return sorted((r for r in images if r['harmed']), key=lambda r: (-r['speckle'], r['name']))


def _harm_lines(images: list[dict], fraction: float, n: int) -> list[str]:
    harmed = _harmed(images)
    lines = ['', f'Do-no-harm (harm.py speckle: new isolated colour in the model\'s output that '
                 f'its input had not): {len(harmed)} of {len(images)} images harmed (speckle on '
                 f'more than {100 * fraction:g} % of the pixels).']
    top = [r for r in sorted(images, key=lambda r: (-r['speckle'], r['name']))[:n]
           if r['speckle'] > 0]
    if top:
        lines += ['', 'Most speckle: ' + ', '.join(
            f'{r["name"]} {100 * r["speckle"]:.3f} %' for r in top) + '.']
    return lines


def _write_sheet(rows, path: Path, tile_width: int = 320) -> Path:
    import cv2

    from ..synth.contact_sheet import contact_sheet
    sheet = contact_sheet([imgs for _, imgs, _ in rows], [labels for _, _, labels in rows],
                          tile_width=tile_width)
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    return path


def _finite(v):
    return None if v is None or not math.isfinite(v) else float(v)


def write_report(report: EvalReport, out_dir: str | Path,
                 meta: dict | None = None) -> dict[str, Path]:
    """``eval.md``, ``eval.json`` and ``samples.png`` (input | baselines | model | clean; only
    when there are weather frames), ``worst.png`` (input | model | clean of the worst frames by
    model - input PSNR, worst first) and, when a frame is harmed, ``harmed.png`` (the most
    speckled). ``meta`` (checkpoint, data set...) goes into the JSON."""
    import cv2

    from ..synth.contact_sheet import contact_sheet
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {'markdown': out / 'eval.md', 'json': out / 'eval.json', 'sheet': out / 'samples.png'}
    paths['markdown'].write_text(report.to_markdown() + '\n')
    d = report.to_dict()
    if meta:
        d = {'meta': meta, **d}
    paths['json'].write_text(json.dumps(d, indent=2) + '\n')
    if report.samples:
        sheet = contact_sheet([imgs for _, imgs, _ in report.samples],
                              [labels for _, _, labels in report.samples], tile_width=224)
        cv2.imwrite(str(paths['sheet']), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    else:
        del paths['sheet']
    if report.worst_sheet:
        paths['worst_sheet'] = _write_sheet(report.worst_sheet, out / 'worst.png')
    if report.harmed_sheet:
        paths['harmed_sheet'] = _write_sheet(report.harmed_sheet, out / 'harmed.png')
    return paths


def _fmt(v: float | None, digits: int) -> str:
    return '-' if v is None or np.isnan(v) else f'{v:.{digits}f}'
