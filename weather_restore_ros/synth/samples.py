"""Clean sample photos shipped with the package (sources and licences in assets/LICENSES.md)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

ASSETS_DIR = Path(__file__).resolve().parent.parent / 'assets'

# name -> file in ASSETS_DIR, outdoor scenes first.
SAMPLE_FILES = {
    'china': 'china.jpg',      # CC BY 2.0, danielbuechele (via scikit-learn)
    'rocket': 'rocket.jpg',    # public domain, SpaceX (via scikit-image)
    'camera': 'camera.jpg',    # CC0, Lav Varshney (via scikit-image), greyscale
    'chelsea': 'chelsea.jpg',  # CC0, Stefan van der Walt (via scikit-image)
}


def sample_images(names=None) -> list[tuple[str, np.ndarray]]:
    """[(name, HxWx3 uint8 RGB)] for the shipped photos (all, or the given names, in order).

    Greyscale photos are returned as 3 equal channels. Raises FileNotFoundError when the
    assets are missing (e.g. a broken install) and KeyError for an unknown name.
    """
    chosen = list(SAMPLE_FILES) if names is None else list(names)
    out = []
    for name in chosen:
        path = ASSETS_DIR / SAMPLE_FILES[name]
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(f'sample image {name!r} missing or unreadable: {path}')
        out.append((name, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
    return out
