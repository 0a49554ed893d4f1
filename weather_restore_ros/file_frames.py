"""Camera frames from files: images, folders of them and videos, as RGB uint8 (``weather-restore
restore``), and the image file endings every reader of photo folders uses (``data``, ``synth``).

Bad files are an ``OSError`` naming the file, so a caller can report and skip it. cv2 and numpy
are imported when a file is read: command-line parsers import this module for its endings.
"""
from __future__ import annotations

from pathlib import Path

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm')
VIDEO_EXTENSIONS = ('.mp4', '.avi', '.mov', '.mkv', '.webm', '.m4v')


def collect_inputs(inputs: list[str], exclude: Path | None = None) -> list[tuple[Path, Path]]:
    """(file, output path without suffix) pairs; folders keep their relative layout.

    Files under ``exclude`` (the output folder, when it lies inside an input folder) are left
    out. Two inputs that would write the same output (``a.jpg`` and ``a.png``) get the input's
    suffix appended to the second name (``a_png``).
    """
    exclude = exclude.resolve() if exclude is not None else None
    out: list[tuple[Path, Path]] = []
    for item in map(Path, inputs):
        if item.is_dir():
            for f in sorted(item.rglob('*')):
                if (f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS + VIDEO_EXTENSIONS
                        and not (exclude and exclude in f.resolve().parents)):
                    out.append((f, f.relative_to(item).with_suffix('')))
        else:
            out.append((item, Path(item.stem)))
    used: set[Path] = set()
    unique = []
    for f, rel in out:
        if rel in used:
            base = rel.with_name(f'{rel.name}_{f.suffix.lstrip(".").lower()}')
            rel, n = base, 1
            while rel in used:
                n += 1
                rel = base.with_name(f'{base.name}{n}')
        used.add(rel)
        unique.append((f, rel))
    return unique


def iter_frames(path: Path, every: int = 1):
    """Yield (frame name or None, RGB uint8) for an image, or for each kept frame of a video."""
    import cv2
    import numpy as np
    if not path.is_file():
        raise OSError(f'no such file: {path}')
    if path.suffix.lower() in VIDEO_EXTENSIONS:
        cap = cv2.VideoCapture(str(path))
        if not cap.isOpened():
            raise OSError(f'cannot open video {path}')
        i = 0
        try:
            while True:
                ok, bgr = cap.read()
                if not ok:
                    break
                if i % every == 0:
                    yield f'{i:06d}', cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                i += 1
        finally:
            cap.release()
        if i == 0:
            raise OSError(f'no frame could be decoded from {path}')
        return
    img = cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise OSError(f'cannot decode image {path}')
    if img.dtype != np.uint8:  # 16-bit PNG/TIFF: keep the top 8 bits; float: stretch
        img = (img >> 8).astype(np.uint8) if img.dtype == np.uint16 else \
            cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    else:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    yield None, img
