"""Paired training data from a folder of clean photos, in the AllWeather layout
(``weather-restore synth``)::

    OUT_DIR/input/<name>_<weather>_<k>.png   degraded
    OUT_DIR/gt/<name>_<weather>_<k>.png      the clean image, same file name
    OUT_DIR/labels.csv                       file,weather,severity,seed
    OUT_DIR/contact_sheet.png                with sheet_rows > 0

Every sample is reproducible on its own:
``synthesize(gt, weather, rng=seed, severity=severity)`` with the values from labels.csv.
"""
from __future__ import annotations

import csv
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..file_frames import IMAGE_EXTENSIONS

SHEET_TILE_WIDTH = 256


@dataclass
class PairsWritten:
    rows: list = field(default_factory=list)   # (file, weather, severity text, seed) per pair
    failed: int = 0                            # images not read, files not written


def clean_images(clean_dir: Path) -> list[Path]:
    """The image files directly in ``clean_dir`` (not recursive), sorted."""
    return sorted(p for p in clean_dir.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def sample_seeds(base: int, file_name: str, weather: str, k: int) -> tuple[int, int]:
    """(effect seed, severity seed): stable per (base seed, file name, weather, k), so adding
    or removing other files does not change a sample."""
    import zlib

    import numpy as np
    key = [base & 0xFFFFFFFF, zlib.crc32(file_name.encode()), zlib.crc32(weather.encode()), k]
    effect_seed, severity_seed = np.random.SeedSequence(key).generate_state(2)
    return int(effect_seed), int(severity_seed)


def _error(message: str) -> None:
    print(f'synth: error: {message}', file=sys.stderr)


def write_pairs(files: list[Path], out_dir: Path, weathers: list[str], *, per_image: int = 1,
                severity: tuple[float, float] = (0.3, 1.0), seed: int = 0, max_side: int = 0,
                sheet_rows: int = 0, error: Callable[[str], None] = _error) -> PairsWritten:
    """Degrade every file with every weather ``per_image`` times and write the layout above.

    ``weathers``: canonical names (``compose.parse_weather``). Images longer than ``max_side``
    (0 = keep) are shrunk first. ``sheet_rows`` > 0: a contact sheet of the first that many
    images. A file that cannot be read or written is reported through ``error`` and counted,
    and the rest goes on.
    """
    import cv2
    import numpy as np

    from .compose import synthesize
    from .contact_sheet import contact_sheet
    (out_dir / 'input').mkdir(parents=True, exist_ok=True)
    (out_dir / 'gt').mkdir(parents=True, exist_ok=True)

    stems = [f.stem for f in files]
    lo, hi = severity
    done = PairsWritten()
    rows_shown, sheet_labels = [], []
    for f in files:
        # a.png and a.jpg would collide: keep the extension in the name then.
        stem = f.stem if stems.count(f.stem) == 1 else f'{f.stem}_{f.suffix.lstrip(".").lower()}'
        bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if bgr is None:
            error(f'cannot read image {f}')
            done.failed += 1
            continue
        if max_side and max(bgr.shape[:2]) > max_side:
            s = max_side / max(bgr.shape[:2])
            size = (max(1, round(bgr.shape[1] * s)), max(1, round(bgr.shape[0] * s)))
            bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        sheet_row, sheet_label = [rgb], [f.name]
        for weather in weathers:
            for k in range(per_image):
                effect_seed, sev_seed = sample_seeds(seed, f.name, weather, k)
                sev = round(float(np.random.default_rng(sev_seed).uniform(lo, hi)), 4)
                degraded, _ = synthesize(rgb, weather, effect_seed, sev)
                name = f'{stem}_{weather}_{k}.png'
                ok = cv2.imwrite(str(out_dir / 'input' / name),
                                 cv2.cvtColor(degraded, cv2.COLOR_RGB2BGR))
                ok = ok and cv2.imwrite(str(out_dir / 'gt' / name), bgr)
                if not ok:
                    error(f'cannot write {name} under {out_dir}')
                    done.failed += 1
                    continue
                done.rows.append((name, weather, f'{sev:.4f}', effect_seed))
                if k == 0 and len(rows_shown) < sheet_rows:
                    sheet_row.append(degraded)
                    sheet_label.append(f'{weather} s={sev:.2f}')
        if len(rows_shown) < sheet_rows:
            rows_shown.append(sheet_row)
            sheet_labels.append(sheet_label)

    with open(out_dir / 'labels.csv', 'w', newline='') as fh:
        writer = csv.writer(fh)
        writer.writerow(('file', 'weather', 'severity', 'seed'))
        writer.writerows(done.rows)
    if rows_shown:
        image = contact_sheet(rows_shown, sheet_labels, tile_width=SHEET_TILE_WIDTH)
        sheet_path = out_dir / 'contact_sheet.png'
        if not cv2.imwrite(str(sheet_path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
            error(f'cannot write {sheet_path}')
            done.failed += 1
    return done
