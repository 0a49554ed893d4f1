"""Evaluation: PSNR/SSIM per weather class for the model *and* its references.

Every number gets a reference in the same table: the degraded input itself and two classical
methods (dark-channel-prior dehazing, median/guided-filter deraining), computed on the same
frames. Metrics are on the Y channel of BT.601 YCbCr by default, as the all-weather papers
(TransWeather, WeatherDiffusion) report them; ``on='rgb'`` is available.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from .baselines import BASELINES
from .metrics import ConfusionMatrix, MetricTable, psnr, ssim


@dataclass
class EvalReport:
    methods: dict[str, MetricTable]       # method name -> per-class table
    confusion: ConfusionMatrix
    on: str
    samples: list[tuple[str, list[np.ndarray], list[str]]]  # for the PNG sheet
    clear_psnr: float | None = None       # model output vs. an already clean input
    clear_count: int = 0

    def to_dict(self) -> dict:
        return {
            'metric_space': self.on,
            'methods': {m: t.to_dict() for m, t in self.methods.items()},
            'weather_classification': self.confusion.to_dict(),
            'clear_frames': {'n': self.clear_count, 'model_psnr': self.clear_psnr},
        }

    def to_markdown(self) -> str:
        space = 'Y channel (BT.601)' if self.on == 'y' else 'RGB'
        lines = [f'PSNR (dB) / SSIM on {space}, per weather class.', '']
        header = '| class | n | ' + ' | '.join(f'{m} PSNR | {m} SSIM' for m in self.methods) + ' |'
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
        lines += ['', f'Weather classification: accuracy {_fmt(self.confusion.accuracy(), 3)} '
                      f'(chance {1 / len(self.confusion.class_names):.3f}), balanced accuracy '
                      f'{_fmt(self.confusion.balanced_accuracy(), 3)}', '',
                  self.confusion.to_markdown()]
        return '\n'.join(lines)


def evaluate(samples: Iterable[tuple[str, np.ndarray, np.ndarray, str]],
             restore: Callable[[np.ndarray], tuple[np.ndarray, dict[str, float]]],
             class_names: tuple[str, ...], on: str = 'y', baselines: bool = True,
             sheet_samples: int = 6) -> EvalReport:
    """Score ``restore`` (RGB uint8 -> (restored RGB uint8, class scores)) on
    ``(name, degraded, clean, weather)`` samples.

    Weather frames go into per-class PSNR/SSIM tables for the model and the references
    (``input``, and with ``baselines`` the classical ``dark_channel`` and ``median_guided``);
    'clear' frames (input == target) only into ``clear_psnr`` (how much the model alters a clean
    frame). Every frame counts for the weather-classification confusion matrix (arg-max of
    the scores). ``sheet_samples`` frames, spread over the classes, are kept for the PNG sheet.
    """
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
        if weather == 'clear':
            # Input == target: PSNR is unbounded for the input, so clear frames are scored
            # apart, as how much the model alters an already clean image.
            clear_psnr.append(psnr(restored, clean, on=on))
            continue
        outputs = {m: BASELINES[m](degraded) for m in methods}
        outputs['model'] = restored
        for m, img in outputs.items():
            tables[m].add(weather, psnr=psnr(img, clean, on=on), ssim=ssim(img, clean, on=on))
        if per_class_shown.get(weather, 0) < max(1, sheet_samples // len(class_names)) and \
                len(sheet) < sheet_samples:
            per_class_shown[weather] = per_class_shown.get(weather, 0) + 1
            sheet.append((name, [degraded] + [outputs[m] for m in methods[1:]] +
                          [restored, clean],
                          [f'{weather}: input'] + methods[1:] + [f'model ({predicted})', 'clean']))
    return EvalReport(methods=tables, confusion=confusion, on=on, samples=sheet,
                      clear_psnr=float(np.mean(clear_psnr)) if clear_psnr else None,
                      clear_count=len(clear_psnr))


def write_report(report: EvalReport, out_dir: str | Path,
                 meta: dict | None = None) -> dict[str, Path]:
    """``eval.md``, ``eval.json`` and ``samples.png`` (input | baselines | model | clean; only
    when there are weather frames). ``meta`` (checkpoint, data set...) goes into the JSON."""
    import cv2

    from .synth.contact_sheet import contact_sheet
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
    return paths


def _fmt(v: float | None, digits: int) -> str:
    return '-' if v is None or np.isnan(v) else f'{v:.{digits}f}'
