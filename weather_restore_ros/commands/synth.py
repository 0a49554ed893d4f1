"""``weather-restore synth``: clean photos -> paired weather training data (AllWeather layout,
written by :func:`weather_restore_ros.synth.pairs.write_pairs`)."""
from __future__ import annotations

import argparse
import sys

from ..file_frames import IMAGE_EXTENSIONS

DEFAULT_WEATHERS = 'rain,snow,fog,raindrop,rain+fog'
SHEET_MAX_ROWS = 8


def severity_range_arg(text: str) -> tuple[float, float]:
    """argparse type of a ``--severity LO:HI`` (or one value): the pair, checked."""
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
    p.add_argument('--severity', type=severity_range_arg, default=(0.3, 1.0), metavar='LO:HI',
                   help='severity range in [0, 1], or one value (default: 0.3:1.0)')
    p.add_argument('--seed', type=int, default=0, help='base seed (default: 0)')
    p.add_argument('--max-side', type=_int_at_least(0), default=0, metavar='PX',
                   help='downscale images whose longer side exceeds PX first (default: keep)')
    p.add_argument('--contact-sheet', action='store_true',
                   help=f'also write OUT_DIR/contact_sheet.png (first {SHEET_MAX_ROWS} images)')
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from ..synth import parse_weather
    from ..synth.pairs import clean_images, write_pairs

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
    files = clean_images(clean_dir)
    if not files:
        print(f'synth: error: no images ({", ".join(IMAGE_EXTENSIONS)}) in {clean_dir}',
              file=sys.stderr)
        return 1
    done = write_pairs(files, out_dir, weathers, per_image=args.per_image,
                       severity=args.severity, seed=args.seed, max_side=args.max_side,
                       sheet_rows=SHEET_MAX_ROWS if args.contact_sheet else 0)
    print(f'synth: {len(done.rows)} pairs from {len(files)} file(s) in {out_dir}'
          + (f'; {done.failed} failure(s)' if done.failed else ''))
    return 1 if done.failed else 0
