"""Contact sheets: a labelled grid of images, for synth previews, evaluation and demo sheets."""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from ._common import as_rgb_uint8

_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _tile(image, tile_width: int) -> np.ndarray:
    rgb = as_rgb_uint8(image)
    h, w = rgb.shape[:2]
    th = max(1, int(round(h * tile_width / w)))
    interp = cv2.INTER_AREA if tile_width < w else cv2.INTER_LINEAR
    return cv2.resize(rgb, (tile_width, th), interpolation=interp)


def _label(tile: np.ndarray, text: str) -> None:
    """Draw ``text`` top-left on ``tile`` in place: white on a dark box, shrunk to fit."""
    if not text:
        return
    w = tile.shape[1]
    scale = max(0.3, min(0.6, w / 420.0))
    thick = 1
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, thick)
    if tw > w - 6:
        scale = max(0.25, scale * (w - 6) / tw)
        (tw, th), base = cv2.getTextSize(text, _FONT, scale, thick)
    box_h = th + base + 6
    region = tile[:box_h, :tw + 8]
    region[:] = (region.astype(np.uint16) * 2 // 7).astype(np.uint8)  # darken for contrast
    cv2.putText(tile, text, (4, th + 3), _FONT, scale, (255, 255, 255), thick, cv2.LINE_AA)


def contact_sheet(rows: Sequence[Sequence[np.ndarray | None]], labels=None, tile_width: int = 256,
                  pad: int = 4, background: tuple[int, int, int] = (24, 24, 24)) -> np.ndarray:
    """Grid of images with text labels -> HxWx3 uint8 RGB.

    rows: list of rows, each a list of images (any size; grey, RGBA, uint16 or float images are
        converted; None leaves an empty cell). Each image is resized to ``tile_width`` wide,
        keeping its aspect; a row is as tall as its tallest tile.
    labels: None; a list of strings, one per column (repeated on every row); or a list of lists
        of strings, one per tile (missing entries / '' / None draw nothing).
    """
    if tile_width < 8:
        raise ValueError('tile_width must be at least 8')
    n_cols = max((len(r) for r in rows), default=0)
    if not rows or n_cols == 0:
        return np.full((2 * pad + 1, 2 * pad + 1, 3), background, np.uint8)
    per_tile = labels is not None and len(labels) > 0 and not isinstance(labels[0], str) \
        and labels[0] is not None
    row_imgs = []
    for i, row in enumerate(rows):
        tiles = []
        for j, img in enumerate(row):
            tile = None if img is None else _tile(img, tile_width)
            if tile is not None and labels is not None:
                if per_tile:
                    text = labels[i][j] if i < len(labels) and labels[i] is not None \
                        and j < len(labels[i]) else None
                else:
                    text = labels[j] if j < len(labels) else None
                _label(tile, str(text) if text else '')
            tiles.append(tile)
        height = max((t.shape[0] for t in tiles if t is not None), default=tile_width // 2)
        strip = np.empty((height, n_cols * (tile_width + pad) + pad, 3), np.uint8)
        strip[:] = background
        for j, tile in enumerate(tiles):
            if tile is not None:
                x = pad + j * (tile_width + pad)
                strip[:tile.shape[0], x:x + tile_width] = tile
        row_imgs.append(strip)
    width = row_imgs[0].shape[1]
    sep = np.empty((pad, width, 3), np.uint8)
    sep[:] = background
    parts = [sep]
    for strip in row_imgs:
        parts += [strip, sep]
    return np.concatenate(parts, axis=0)
