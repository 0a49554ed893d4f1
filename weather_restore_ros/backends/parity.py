"""ONNX Runtime against PyTorch on real photos: the numerical check of an export.

Each photo goes through both chains end to end -- encoder, then restorer fed that chain's own
embedding -- the way the engine runs them, so the figure includes both graphs' error. The
restored images are compared as the uint8 frames the engine would publish: maximum and mean
absolute difference in grey levels. An export passes when every photo's mean is within
:data:`MEAN_BOUND` (1 grey level); the maximum is printed, not bounded (one pixel rounding
the other way is 1, a clamp edge a few).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

MEAN_BOUND = 1.0
MAX_PIXELS = 1280 * 720       # larger photos are shrunk first (the check is per pixel anyway)


def verification_images(photos=(), weather: tuple[str, ...] = ('rain', 'fog'),
                        max_pixels: int = MAX_PIXELS):
    """[(name, HxWx3 uint8 RGB)]: the shipped photos at their own size (odd sizes: the
    padding is checked too), each also with synthetic ``weather`` (the network then changes
    the frame a lot), and every image below the ``photos`` folders; images over
    ``max_pixels`` are shrunk first."""
    import cv2

    from ..data.common import photo_paths
    from ..synth import sample_images, synthesize

    def fit(rgb):
        h, w = rgb.shape[:2]
        if h * w <= max_pixels:
            return rgb
        s = (max_pixels / (h * w)) ** 0.5
        return cv2.resize(rgb, (max(1, int(w * s)), max(1, int(h * s))),
                          interpolation=cv2.INTER_AREA)

    out = []
    for name, rgb in sample_images():
        rgb = fit(rgb)
        out.append((name, rgb))
        out += [(f'{name}+{w}', synthesize(rgb, w, rng=i, severity=0.6)[0])
                for i, w in enumerate(weather)]
    for path in photo_paths(photos):
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise OSError(f'cannot decode image {path}')
        out.append((Path(path).name, fit(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))))
    return out


@torch.inference_mode()
def compare(reference, candidate, images) -> list[dict]:
    """One row per image: both backends (``restore``/``embed``) on it, end to end."""
    rows = []
    for name, rgb in images:
        x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 255
        chains = []
        for backend in (reference, candidate):
            emb = backend.embed(x)
            image, mask, logits = backend.restore(x, emb)
            chains.append((emb.float(), _grey(image), _grey(mask), logits.float()))
        (e0, i0, m0, l0), (e1, i1, m1, l1) = chains
        d = (i0 - i1).abs()
        rows.append({'image': name, 'size': f'{rgb.shape[1]}x{rgb.shape[0]}',
                     'grey_max': int(d.max()), 'grey_mean': round(float(d.float().mean()), 4),
                     'mask_max': int((m0 - m1).abs().max()),
                     'embedding_max': float((e0 - e1).abs().max()),
                     'logits_max': float((l0 - l1).abs().max()),
                     'same_label': bool(l0.argmax() == l1.argmax())})
    return rows


def summary(rows: list[dict], bound: float = MEAN_BOUND) -> dict:
    worst = max(rows, key=lambda r: r['grey_mean'])
    return {'images': len(rows), 'grey_max': max(r['grey_max'] for r in rows),
            'grey_mean_worst': worst['grey_mean'], 'worst_image': worst['image'],
            'grey_mean_all': round(float(np.mean([r['grey_mean'] for r in rows])), 4),
            'labels_agree': sum(r['same_label'] for r in rows), 'bound_mean': bound,
            'passed': all(r['grey_mean'] <= bound for r in rows)}


def table(rows: list[dict]) -> str:
    head = (f'{"image":22} {"size":>9} {"grey max":>8} {"grey mean":>9} {"mask max":>8} '
            f'{"emb max":>9} {"logit max":>9} label')
    lines = [head]
    for r in rows:
        lines.append(f'{r["image"][:22]:22} {r["size"]:>9} {r["grey_max"]:8d} '
                     f'{r["grey_mean"]:9.4f} {r["mask_max"]:8d} {r["embedding_max"]:9.2e} '
                     f'{r["logits_max"]:9.2e} {"same" if r["same_label"] else "DIFFERS"}')
    return '\n'.join(lines)


def _grey(t: torch.Tensor) -> torch.Tensor:
    return (t.float().clamp(0, 1) * 255).round().to(torch.int16)
