"""Real photos without ground truth (:func:`evaluate_photos`: do-no-harm and weather
classification against the folder's weather) and the suite report that joins several sets,
paired (:class:`~.evaluation.EvalReport`) and real photos, into one table
(``weather-restore eval --suite``). It formats with :mod:`.evaluation`'s helpers, so that a
paired set and a photo set read alike.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from ..harm import HARM_FRACTION
from .evaluation import (WORST_N, EvalReport, _finite, _fmt, _harm_lines, _harmed, _sheet_row,
                         _Worst, _write_sheet, short_space, speckle_of, write_report)
from .metrics import METRIC_SPACES, ConfusionMatrix, MetricTable, psnr


@dataclass
class PhotoReport:
    """Real photos without ground truth: do-no-harm and weather classification."""
    confusion: ConfusionMatrix
    images: list[dict]      # name, weather, predicted, speckle, harmed, change_psnr
    on: str = 'y'
    worst_sheet: list[tuple[str, list[np.ndarray], list[str]]] = field(default_factory=list)
    worst_n: int = WORST_N
    harm_fraction: float = HARM_FRACTION

    def harmed(self) -> list[dict]:
        """The harmed photos, most speckle first."""
        return _harmed(self.images)

    def weathers(self) -> list[str]:
        """The weathers of the photos (their folders'), in first-seen order."""
        return list(dict.fromkeys(r['weather'] for r in self.images))

    def most_speckle(self) -> dict | None:
        return min(self.images, key=lambda r: (-r['speckle'], r['name']), default=None)

    def median_change(self) -> float:
        """Median PSNR of the output against its photo (how much the model changes a photo)."""
        return float(np.median([r['change_psnr'] for r in self.images])) if self.images \
            else math.nan

    def to_dict(self) -> dict:
        return {
            'kind': 'photos', 'n': len(self.images),
            'harm': {'fraction': self.harm_fraction, 'harmed': len(self.harmed()),
                     'worst': [r['name'] for r in self.harmed()[:self.worst_n]]},
            'weather_classification': self.confusion.to_dict(),
            'change': {'metric_space': self.on, 'median_psnr': _finite(self.median_change())},
            'per_image': self.images,
        }

    def to_markdown(self) -> str:
        rec = self.confusion.recall()
        lines = [f'Real photos without ground truth: {len(self.images)} images '
                 f'({", ".join(self.weathers())}).']
        lines += _harm_lines(self.images, self.harm_fraction, self.worst_n)
        if self.images:
            low = min(self.images, key=lambda r: r['change_psnr'])
            lines += ['', f'How much the model changes a photo: PSNR of its output against the '
                          f'photo on {short_space(self.on)}, median {self.median_change():.2f} '
                          f'dB (most changed: {low["name"]}, {low["change_psnr"]:.2f} dB).']
        lines += ['', "Weather classification (rows: the folder's weather):", '',
                  confusion_rows(self.confusion, self.weathers()), '',
                  'Recall: ' + ', '.join(f'{w} {_fmt(rec[w], 3)}' for w in self.weathers())]
        return '\n'.join(lines)


def evaluate_photos(samples: Iterable[tuple[str, np.ndarray, str]],
                    restore: Callable[[np.ndarray], tuple[np.ndarray, dict[str, float]]],
                    class_names: tuple[str, ...], worst: int = WORST_N,
                    on: str = 'y') -> PhotoReport:
    """Score ``restore`` on real ``(name, photo, weather)`` samples without ground truth: the
    speckle measure of each output against its photo (harmed count; the ``worst`` most speckled
    keep their images for the sheet), how much the output differs from the photo (PSNR on
    ``on``) and the weather classification against the folder's weather."""
    confusion = ConfusionMatrix(class_names)
    records = []
    rows = _Worst(worst)
    for name, photo, weather in samples:
        restored, scores = restore(photo)
        predicted = max(scores, key=scores.get)
        confusion.update(predicted, weather)
        sp = speckle_of(photo, restored)
        records.append({'name': name, 'weather': weather, 'predicted': predicted,
                        'speckle': sp, 'harmed': sp > HARM_FRACTION,
                        'change_psnr': psnr(restored, photo, on=on)})
        rows.push(sp, name, lambda: _sheet_row(name, weather, predicted,
                                               f'speckle {100 * sp:.3f} %', photo, restored))
    return PhotoReport(confusion=confusion, images=records, on=on, worst_sheet=rows.rows(),
                       worst_n=worst)


def confusion_rows(cm: ConfusionMatrix, rows: Sequence[str]) -> str:
    """The confusion matrix's rows for the classes ``rows`` only (those tested), with recall."""
    rec = cm.recall()
    lines = ['| true \\ pred | ' + ' | '.join(cm.class_names) + ' | n | recall |',
             '|---|' + '---:|' * (len(cm.class_names) + 2)]
    for w in rows:
        i = cm.class_names.index(w)
        lines.append(f'| {w} | ' + ' | '.join(str(int(v)) for v in cm.matrix[i]) +
                     f' | {int(cm.matrix[i].sum())} | {_fmt(rec[w], 3)} |')
    return '\n'.join(lines)


def write_photo_report(report: PhotoReport, out_dir: str | Path,
                       meta: dict | None = None) -> dict[str, Path]:
    """``eval.md``, ``eval.json`` and ``worst.png`` (input | model, most speckle first)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {'markdown': out / 'eval.md', 'json': out / 'eval.json'}
    paths['markdown'].write_text(report.to_markdown() + '\n')
    d = report.to_dict()
    paths['json'].write_text(json.dumps({'meta': meta, **d} if meta else d, indent=2) + '\n')
    if report.worst_sheet:
        paths['worst_sheet'] = _write_sheet(report.worst_sheet, out / 'worst.png')
    return paths


@dataclass
class SuiteReport:
    """Several sets by name, each an :class:`EvalReport` (paired) or a :class:`PhotoReport`."""
    sets: list[tuple[str, 'EvalReport | PhotoReport']]
    class_names: tuple[str, ...]

    def paired(self) -> list[tuple[str, EvalReport]]:
        return [(n, r) for n, r in self.sets if isinstance(r, EvalReport)]

    def photos(self) -> list[tuple[str, PhotoReport]]:
        return [(n, r) for n, r in self.sets if isinstance(r, PhotoReport)]

    def photo_confusion(self) -> ConfusionMatrix:
        """The real-photo sets' confusion matrices added up."""
        cm = ConfusionMatrix(self.class_names)
        for _, r in self.photos():
            cm.matrix += r.confusion.matrix
        return cm

    def photo_weathers(self) -> list[str]:
        return list(dict.fromkeys(w for _, r in self.photos() for w in r.weathers()))

    def to_dict(self) -> dict:
        out: dict = {'sets': {}, 'real_photo_classification': None}
        for name, r in self.sets:
            out['sets'][name] = {k: v for k, v in r.to_dict().items() if k != 'per_image'}
        cm = self.photo_confusion()
        if cm.total:
            out['real_photo_classification'] = {
                **cm.to_dict(), 'classes_tested': self.photo_weathers(),
                'balanced_accuracy': _finite(cm.balanced_accuracy())}
        return out

    def to_markdown(self) -> str:
        lines = ['# Evaluation suite']
        paired = self.paired()
        if paired:
            lines += self._paired_markdown(paired)
        if self.photos():
            lines += self._photos_markdown()
        return '\n'.join(lines)

    def _paired_markdown(self, paired) -> list[str]:
        spaces = list(dict.fromkeys(r.on for _, r in paired))
        sp = short_space(spaces[0]) if len(spaces) == 1 else 'see each set'
        margin = paired[0][1].margin
        lines = ['', '## Paired sets', '',
                 'PSNR (dB) / SSIM on ' + '; '.join(METRIC_SPACES[s] for s in spaces) +
                 '. Mean over the images of each set.', '',
                 f'| set | n | input PSNR ({sp}) | model PSNR ({sp}) | model - input | '
                 f'input SSIM | model SSIM | dark_channel PSNR | median_guided PSNR | '
                 f'below input by > {margin:g} dB | harmed | weather recall |',
                 '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|']
        for name, r in paired:
            a = {m: t.overall() for m, t in r.methods.items()}
            rec = r.confusion.recall()
            weathers = list(dict.fromkeys(x['weather'] for x in r.weather_images()))

            def cell(m, k, d):
                return _fmt(a[m][k], d) if m in a else '-'
            lines.append(
                f'| {name} | {len(r.weather_images())} | {cell("input", "psnr", 2)} | '
                f'{cell("model", "psnr", 2)} | {_fmt(a["model"]["psnr"] - a["input"]["psnr"], 2)} '
                f'| {cell("input", "ssim", 4)} | {cell("model", "ssim", 4)} | '
                f'{cell("dark_channel", "psnr", 2)} | {cell("median_guided", "psnr", 2)} | '
                f'{r.below_input()[MetricTable.ALL]} | {len(r.harmed())} | '
                + (', '.join(f'{w} {_fmt(rec[w], 3)}' for w in weathers) or '-') + ' |')
        cross = [(n, r, c) for n, r in paired for c in r.cross_check]
        if cross:
            lines += ['', 'Cross-check, the same images on the other Y convention:', '',
                      '| set | Y | input PSNR | model PSNR |', '|---|---|---:|---:|']
            for name, r, c in cross:
                v = r.cross_means(c)[MetricTable.ALL]
                lines.append(f'| {name} | {short_space(c)} | {_fmt(v["input"], 2)} | '
                             f'{_fmt(v["model"], 2)} |')
        for name, r in paired:
            worst = r.worst()
            if worst:
                lines += ['', f'{name}: worst {len(worst)} by model - input PSNR: ' + ', '.join(
                    f'{w["name"]} {w["delta_psnr"]:+.2f} dB' for w in worst) +
                    f' (sheet: {name}/worst.png).']
        return lines

    def _photos_markdown(self) -> list[str]:
        lines = ['', '## Real photos (no ground truth)', '',
                 '| set | n | harmed | most speckle | output vs photo PSNR, median | '
                 'recall of its weather |', '|---|---:|---:|---|---:|---|']
        for name, r in self.photos():
            rec = r.confusion.recall()
            top = r.most_speckle()
            most = '-' if top is None else f'{top["name"]} {100 * top["speckle"]:.3f} %'
            lines.append(f'| {name} | {len(r.images)} | {len(r.harmed())} | {most} | '
                         f'{_fmt(r.median_change(), 2)} | ' +
                         ', '.join(f'{w} {_fmt(rec[w], 3)}' for w in r.weathers()) + ' |')
        cm = self.photo_confusion()
        tested = self.photo_weathers()
        lines += ['', "Weather classification on the real photos (rows: the folder's weather; "
                      "sheets of the most speckled outputs: <set>/worst.png):", '',
                  confusion_rows(cm, tested), '',
                  f'Balanced accuracy over the classes tested ({", ".join(tested)}): '
                  f'{_fmt(cm.balanced_accuracy(), 3)}']
        return lines


def write_suite_report(suite: SuiteReport, out_dir: str | Path,
                       meta: dict | None = None) -> dict[str, Path]:
    """Each set's report in ``out_dir/<set>/``, and ``suite.md`` + ``suite.json`` beside."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, r in suite.sets:
        writer = write_report if isinstance(r, EvalReport) else write_photo_report
        for k, v in writer(r, out / name).items():
            paths[f'{name}/{k}'] = v
    paths['markdown'], paths['json'] = out / 'suite.md', out / 'suite.json'
    paths['markdown'].write_text(suite.to_markdown() + '\n')
    d = suite.to_dict()
    paths['json'].write_text(json.dumps({'meta': meta, **d} if meta else d, indent=2) + '\n')
    return paths
