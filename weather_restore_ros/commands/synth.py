"""``weather-restore synth``: clean photos -> paired weather training data (AllWeather layout).

    OUT_DIR/input/<name>_<weather>_<k>.png   degraded
    OUT_DIR/gt/<name>_<weather>_<k>.png      the clean image, same file name
    OUT_DIR/labels.csv                       file,weather,severity,seed
    OUT_DIR/contact_sheet.png                with --contact-sheet

Every sample is reproducible on its own:
``synthesize(gt, weather, rng=seed, severity=severity)`` with the values from labels.csv.
"""
from __future__ import annotations

import argparse
import sys

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm')
DEFAULT_WEATHERS = 'rain,snow,fog,raindrop,rain+fog'
SHEET_MAX_ROWS = 8
SHEET_TILE_WIDTH = 256


def _severity_range(text: str) -> tuple[float, float]:
    try:
        parts = [float(p) for p in text.split(':')]
    except ValueError:
        raise argparse.ArgumentTypeError(f'severity must be LO:HI or a number, got {text!r}')
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or not 0.0 <= parts[0] <= parts[1] <= 1.0:
        raise argparse.ArgumentTypeError(f'severity must satisfy 0 <= LO <= HI <= 1, got {text!r}')
    return parts[0], parts[1]


def _int_at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f'expected an integer >= {minimum}, got {text!r}')
        return value
    return parse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        'synth', help='make paired training data: add rain, snow, fog, raindrops to clean photos',
        description='Degrade every image in CLEAN_DIR with synthetic weather and write the '
                    'AllWeather-style paired layout OUT_DIR/input/, OUT_DIR/gt/ (same file '
                    'names) and OUT_DIR/labels.csv (file,weather,severity,seed). The label of a '
                    'combination such as rain+fog is its first component.')
    p.add_argument('clean_dir', metavar='CLEAN_DIR', help='folder of clean images (not recursive)')
    p.add_argument('out_dir', metavar='OUT_DIR', help='output folder (created)')
    p.add_argument('--weathers', default=DEFAULT_WEATHERS,
                   help='comma-separated effects or +combinations, from rain, snow, fog, '
                        f'raindrop, clear (default: {DEFAULT_WEATHERS})')
    p.add_argument('--per-image', type=_int_at_least(1), default=1, metavar='N',
                   help='samples per image and weather (default: 1)')
    p.add_argument('--severity', type=_severity_range, default=(0.3, 1.0), metavar='LO:HI',
                   help='severity range in [0, 1], or one value (default: 0.3:1.0)')
    p.add_argument('--seed', type=int, default=0, help='base seed (default: 0)')
    p.add_argument('--max-side', type=_int_at_least(0), default=0, metavar='PX',
                   help='downscale images whose longer side exceeds PX first (default: keep)')
    p.add_argument('--contact-sheet', action='store_true',
                   help=f'also write OUT_DIR/contact_sheet.png (first {SHEET_MAX_ROWS} images)')
    p.set_defaults(func=run)


def _sample_seeds(base: int, file_name: str, weather: str, k: int) -> tuple[int, int]:
    """(effect seed, severity seed): stable per (base seed, file name, weather, k), so adding
    or removing other files does not change a sample."""
    import zlib

    import numpy as np
    key = [base & 0xFFFFFFFF, zlib.crc32(file_name.encode()), zlib.crc32(weather.encode()), k]
    effect_seed, severity_seed = np.random.SeedSequence(key).generate_state(2)
    return int(effect_seed), int(severity_seed)


def run(args) -> int:
    import csv
    from pathlib import Path

    import cv2
    import numpy as np

    from ..synth import contact_sheet, parse_weather, synthesize

    weathers = [w.strip() for w in args.weathers.split(',') if w.strip()]
    try:
        if not weathers:
            raise ValueError('no weathers given')
        weathers = ['+'.join(parse_weather(w)) for w in weathers]
    except (ValueError, TypeError) as exc:
        print(f'synth: error: {exc}', file=sys.stderr)
        return 2
    clean_dir, out_dir = Path(args.clean_dir), Path(args.out_dir)
    if not clean_dir.is_dir():
        print(f'synth: error: not a folder: {clean_dir}', file=sys.stderr)
        return 2
    files = sorted(p for p in clean_dir.iterdir()
                   if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        print(f'synth: error: no images ({", ".join(IMAGE_EXTENSIONS)}) in {clean_dir}',
              file=sys.stderr)
        return 1
    (out_dir / 'input').mkdir(parents=True, exist_ok=True)
    (out_dir / 'gt').mkdir(parents=True, exist_ok=True)

    stems = [f.stem for f in files]
    lo, hi = args.severity
    failed, rows, sheet_rows, sheet_labels = 0, [], [], []
    for f in files:
        # a.png and a.jpg would collide: keep the extension in the name then.
        stem = f.stem if stems.count(f.stem) == 1 else f'{f.stem}_{f.suffix.lstrip(".").lower()}'
        bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if bgr is None:
            print(f'synth: error: cannot read image {f}', file=sys.stderr)
            failed += 1
            continue
        if args.max_side and max(bgr.shape[:2]) > args.max_side:
            s = args.max_side / max(bgr.shape[:2])
            size = (max(1, round(bgr.shape[1] * s)), max(1, round(bgr.shape[0] * s)))
            bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        sheet_row, sheet_label = [rgb], [f.name]
        for weather in weathers:
            for k in range(args.per_image):
                seed, sev_seed = _sample_seeds(args.seed, f.name, weather, k)
                severity = round(float(np.random.default_rng(sev_seed).uniform(lo, hi)), 4)
                degraded, _ = synthesize(rgb, weather, seed, severity)
                name = f'{stem}_{weather}_{k}.png'
                ok = cv2.imwrite(str(out_dir / 'input' / name),
                                 cv2.cvtColor(degraded, cv2.COLOR_RGB2BGR))
                ok = ok and cv2.imwrite(str(out_dir / 'gt' / name), bgr)
                if not ok:
                    print(f'synth: error: cannot write {name} under {out_dir}', file=sys.stderr)
                    failed += 1
                    continue
                rows.append((name, weather, f'{severity:.4f}', seed))
                if k == 0 and args.contact_sheet and len(sheet_rows) < SHEET_MAX_ROWS:
                    sheet_row.append(degraded)
                    sheet_label.append(f'{weather} s={severity:.2f}')
        if args.contact_sheet and len(sheet_rows) < SHEET_MAX_ROWS:
            sheet_rows.append(sheet_row)
            sheet_labels.append(sheet_label)

    with open(out_dir / 'labels.csv', 'w', newline='') as fh:
        writer = csv.writer(fh)
        writer.writerow(('file', 'weather', 'severity', 'seed'))
        writer.writerows(rows)
    if args.contact_sheet and sheet_rows:
        sheet = contact_sheet(sheet_rows, sheet_labels, tile_width=SHEET_TILE_WIDTH)
        sheet_path = out_dir / 'contact_sheet.png'
        if not cv2.imwrite(str(sheet_path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
            print(f'synth: error: cannot write {sheet_path}', file=sys.stderr)
            failed += 1
    print(f'synth: {len(rows)} pairs from {len(files)} file(s) in {out_dir}'
          + (f'; {failed} failure(s)' if failed else ''))
    return 1 if failed else 0
