#!/usr/bin/env python3
"""How often the do-no-harm measure (``weather_restore_ros/harm.py``) fires, on outputs that are
good and on the shipped model's: the numbers behind its thresholds.

    python tools/harm_calibration.py /data/weather            # the evaluation data root
    python tools/harm_calibration.py /data/weather --sheet /tmp/harm_sheet.png

``ROOT`` holds ``rain100l_test/{input,gt}/NNN.png``, ``rain100h_test/{input,gt}/NNN.png`` and
``real_photos/{dawn_fog,real_rain}/*.jpg`` (what is missing is skipped). Rows:

* ``ground truth``: Rain100L/H with the clean image as the output -- the perfect derainer, which
  must never be flagged (removing a streak over a coloured object is a legitimate change);
* ``dark_channel`` / ``median_guided``: the classical baselines of ``baselines.py`` on the real
  photos (a dark-channel dehazer amplifies noise and saturates lights: good-faith outputs);
* ``model (guard off)``: the shipped model (or ``--checkpoint``) on the real photos, the raw
  network output -- known to spray speckle over about a quarter of the DAWN fog photos.

Columns: ``harmed`` = frames with speckle on more than ``harm.HARM_FRACTION`` of the pixels
(``harm.harmed``, what evaluation reports); ``guarded`` = frames the run-time guard changes
(``harm.guard``: some 32x32 block over the bound), with the share of those frames given back
to the input (mean, max); ``speckle px`` and the ``worst block`` count; and the same two frame
counts *without the colour condition* (``harm.isolated_new_chroma``, the measure before it),
which is why the condition is there. Photos wider than ``--max-width`` (640) are resized to it
(INTER_AREA) first, as a camera stream would be.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from weather_restore_ros import harm
from weather_restore_ros.training.baselines import dark_channel_dehaze, median_derain


def _read(path: Path, max_width: int) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise OSError(f'cannot read {path}')
    h, w = bgr.shape[:2]
    if max_width and w > max_width:
        bgr = cv2.resize(bgr, (max_width, round(h * max_width / w)), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(bgr[..., ::-1])


def _t(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None]


class Row:
    """Counters for one (set, output) pair."""

    def __init__(self, name: str, output: str):
        self.name, self.output = name, output
        self.frames = self.harmed = self.guarded = self.speckle_px = self.worst_block = 0
        self.replaced: list[float] = []
        self.harmed_plain = self.guarded_plain = 0
        self.flagged: list[tuple[float, str]] = []   # (replaced share, file) of guarded frames

    def add(self, name: str, inp: np.ndarray, out: np.ndarray) -> None:
        i, o = _t(inp), _t(out)
        mask = harm.speckle_mask(i, o)
        plain = harm.isolated_new_chroma(i, o)
        g = harm.guard(i, o)
        self.frames += 1
        self.harmed += bool(mask.float().mean() > harm.HARM_FRACTION)
        self.speckle_px += int(mask.sum())
        self.worst_block = max(self.worst_block, int(harm.block_counts(mask).max()))
        if bool(g.unsafe[0]):
            self.guarded += 1
            self.replaced.append(float(g.replaced[0]))
            self.flagged.append((float(g.replaced[0]), name))
        self.harmed_plain += bool(plain.float().mean() > harm.HARM_FRACTION)
        self.guarded_plain += bool(harm.unsafe_blocks(plain).any())

    def cells(self) -> list[str]:
        rep = (f'{100 * np.mean(self.replaced):.0f} / {100 * max(self.replaced):.0f} %'
               if self.replaced else '-')
        return [self.name, self.output, str(self.frames), str(self.harmed), str(self.guarded),
                rep, str(self.speckle_px), str(self.worst_block),
                f'{self.harmed_plain} / {self.guarded_plain}']

    def to_dict(self) -> dict:
        return {'set': self.name, 'output': self.output, 'frames': self.frames,
                'harmed': self.harmed, 'guarded': self.guarded,
                'replaced_mean': float(np.mean(self.replaced)) if self.replaced else 0.0,
                'replaced_max': max(self.replaced, default=0.0),
                'speckle_px': self.speckle_px, 'worst_block': self.worst_block,
                'without_colour_condition': {'harmed': self.harmed_plain,
                                             'guarded': self.guarded_plain},
                'guarded_files': [f for _, f in sorted(self.flagged, reverse=True)]}


HEAD = ['set', 'output', 'frames', 'harmed', 'guarded', 'replaced mean/max', 'speckle px',
        'worst block', 'no colour cond. harmed/guarded']


def table(rows: list[Row]) -> str:
    cells = [HEAD] + [r.cells() for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEAD))]
    lines = ['  '.join(c.ljust(w) if i < 2 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(row, widths))) for row in cells]
    lines.insert(1, '  '.join('-' * w for w in widths))
    return '\n'.join(lines)


def sheet(engine, files: list[Path], path: Path, max_width: int, tile: int = 420) -> None:
    """input | raw model | guarded | speckle (cyan) and unsafe blocks (red), one row each."""
    rows = []
    for f in files:
        rgb = _read(f, max_width)
        engine.forget_stream('sheet')
        raw = engine.restore(rgb, 'sheet').image
        i, o = _t(rgb), _t(raw)
        g = harm.guard(i, o)
        guarded = g.images[0].permute(1, 2, 0).numpy()
        marks = raw.copy()
        marks[harm.speckle_mask(i, o)[0, 0].numpy()] = (0, 255, 255)
        bad = harm.unsafe_blocks(harm.speckle_mask(i, o), grow=0)[0, 0].numpy()
        for by, bx in zip(*np.nonzero(bad)):
            cv2.rectangle(marks, (int(bx) * harm.BLOCK, int(by) * harm.BLOCK),
                          (int(bx + 1) * harm.BLOCK - 1, int(by + 1) * harm.BLOCK - 1),
                          (255, 0, 0), 1)
        panels = []
        for img, label in ((rgb, f'input {f.name}'), (raw, 'raw model (guard off)'),
                           (guarded, f'guarded: {100 * float(g.replaced[0]):.0f} % input'),
                           (marks, 'speckle (cyan), blocks over bound (red)')):
            scale = tile / img.shape[1]
            p = cv2.resize(img, (tile, round(img.shape[0] * scale)),
                           interpolation=cv2.INTER_NEAREST if scale > 1 else cv2.INTER_AREA)
            p = np.ascontiguousarray(p)
            cv2.putText(p, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 0), 1,
                        cv2.LINE_AA)
            panels.append(p)
        h = max(p.shape[0] for p in panels)
        rows.append(np.concatenate([np.pad(p, ((0, h - p.shape[0]), (0, 0), (0, 0)))
                                    for p in panels], 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(rows, 0), cv2.COLOR_RGB2BGR))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('root', type=Path, help='data root (rain100l_test/, rain100h_test/, '
                    'real_photos/)')
    ap.add_argument('--max-width', type=int, default=640,
                    help='resize wider photos to this width (0 = never; default 640)')
    ap.add_argument('--limit', type=int, default=0, help='at most N images per set (0 = all)')
    ap.add_argument('--checkpoint', help='model to measure (default: the shipped one)')
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--no-model', action='store_true', help='skip the model rows')
    ap.add_argument('--no-baselines', action='store_true', help='skip the baseline rows')
    ap.add_argument('--sheet', type=Path,
                    help='write a contact sheet of guarded DAWN fog photos (model) here')
    ap.add_argument('--sheet-n', type=int, default=3)
    ap.add_argument('--json', type=Path, help='also write the numbers as JSON here')
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    limit = (lambda xs: xs[:args.limit]) if args.limit else (lambda xs: xs)
    rows: list[Row] = []

    for name in ('rain100l_test', 'rain100h_test'):
        inputs = limit(sorted((args.root / name / 'input').glob('*.png')))
        if not inputs:
            print(f'note: no {args.root / name}/input/*.png, skipped', file=sys.stderr)
            continue
        row = Row(name, 'ground truth')
        for f in inputs:
            row.add(f.name, _read(f, 0), _read(f.parent.parent / 'gt' / f.name, 0))
        rows.append(row)

    photos = {d: limit(sorted((args.root / 'real_photos' / d).glob('*.jpg')))
              for d in ('dawn_fog', 'real_rain')}
    for d, files in photos.items():
        if not files:
            print(f'note: no {args.root}/real_photos/{d}/*.jpg, skipped', file=sys.stderr)
    if not args.no_baselines:
        for d, files in photos.items():
            for label, fn in (('dark_channel', dark_channel_dehaze),
                              ('median_guided', median_derain)):
                if files:
                    row = Row(d, label)
                    for f in files:
                        rgb = _read(f, args.max_width)
                        row.add(f.name, rgb, fn(rgb))
                    rows.append(row)

    engine, model_rows = None, {}
    if not args.no_model and any(photos.values()):
        from weather_restore_ros.engine import RestorationEngine
        torch.set_num_threads(max(1, torch.get_num_threads()))
        engine = RestorationEngine.from_checkpoint(args.checkpoint, device=args.device,
                                                   warmup=False, harm_guard=False)
        for d, files in photos.items():
            if files:
                row = model_rows[d] = Row(d, 'model (guard off)')
                for f in files:
                    rgb = _read(f, args.max_width)
                    engine.forget_stream('calib')   # every photo its own scene: a fresh prior
                    row.add(f.name, rgb, engine.restore(rgb, 'calib').image)
                rows.append(row)

    print(table(rows))
    print(f'\nharm.py: speckle = high-pass out > {harm.SPECKLE_OUT}, in < {harm.SPECKLE_IN}, '
          f'unexplained chroma > {harm.SPECKLE_HUE} (gain <= {harm.MAX_GAIN:g}); harmed > '
          f'{100 * harm.HARM_FRACTION:g} % of the frame; guard: {harm.BLOCK}x{harm.BLOCK} '
          f'blocks with > {harm.BLOCK_BOUND} speckle px (+ neighbours). '
          + (f'Photos resized to <= {args.max_width} px wide. ' if args.max_width
             else 'Photos at their own size. ')
          + f'{time.perf_counter() - t0:.0f} s.')
    if args.json:
        args.json.write_text(json.dumps([r.to_dict() for r in rows], indent=2) + '\n')
    if args.sheet:
        row = model_rows.get('dawn_fog')
        if row is None or not row.flagged:
            print('note: no guarded DAWN fog photo for the sheet', file=sys.stderr)
        else:
            ranked = sorted(row.flagged, reverse=True)
            n = min(args.sheet_n, len(ranked))
            picks = [ranked[round(k * (len(ranked) - 1) / max(1, n - 1))][1] for k in range(n)]
            sheet(engine, [args.root / 'real_photos' / 'dawn_fog' / p for p in picks],
                  args.sheet, args.max_width)
            print(f'sheet: {args.sheet} ({", ".join(picks)}: most, middle and least replaced)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
