"""Numerical stress test of a restorer: does it stay finite on frames unlike its training data?

The blocks have no normalisation layers (``model/blocks.py``) and SimpleGate multiplies two
activations, so a block can square its input's scale. Trained weights usually keep that in
check, but a fine-tune can leave a path where, for some input, activations grow block after
block until they overflow -- measured on a raindrop fine-tune: flat yellow went 25 -> 214 ->
8.3e3 -> 1.6e8 -> NaN through the encoder, while every held-out weather photo was fine. PSNR on
validation photos cannot see this; a camera pointed at a yellow truck would. ``ship_model.py``
refuses a checkpoint that fails here, and the tests hold the shipped model to it.

Remedies in the model and the trainer: ``ModelConfig.block_norm`` (a LayerNorm per block),
``ModelConfig.gate_bound`` (SimpleGate's factors clamped: finite, though not necessarily
sensible), and training on pattern scenes (``data.train.patterns``) with the ``act`` loss, which
penalises SimpleGate inputs beyond ``act_threshold`` -- the reconstruction loss alone cannot see
the runaway, because the output clamp to [0, 1] hides any residual on a saturated colour.
"""
from __future__ import annotations

import numpy as np
import torch

#: Flat colours: the saturated corners of the RGB cube, black, white, grey.
FLAT_COLOURS = {'red': (255, 0, 0), 'green': (0, 255, 0), 'blue': (0, 0, 255),
                'yellow': (255, 255, 0), 'cyan': (0, 255, 255), 'magenta': (255, 0, 255),
                'black': (0, 0, 0), 'white': (255, 255, 255), 'grey': (128, 128, 128)}
#: |logit| above this means the features have run away (a healthy head stays below ~30).
MAX_ABS_LOGIT = 100.0


def stress_frames(size: int = 160, blocks: int = 24, seed: int = 0) -> dict[str, np.ndarray]:
    """Flat colours, random saturated colour blocks and random binary noise, ``size`` px."""
    rng = np.random.default_rng(seed)
    frames = {}
    for name, rgb in FLAT_COLOURS.items():
        frames[f'flat {name}'] = np.full((size, size, 3), rgb, np.uint8)
    for i in range(blocks):
        img = np.zeros((size, size, 3), np.uint8)
        for _ in range(4):
            y, x = rng.integers(0, size - size // 8, 2)
            h, w = rng.integers(size // 8, size // 2, 2)
            img[y:y + h, x:x + w] = rng.choice([0, 255], 3)
        frames[f'blocks {i}'] = img
    frames['binary noise'] = rng.choice([0, 255], (size, size, 3)).astype(np.uint8)
    return frames


@torch.inference_mode()
def numeric_health(model, clip, device: str | torch.device = 'cpu', **frame_kw) -> dict:
    """Run the restorer (and its CLIP prior) on :func:`stress_frames`, one at a time.

    Returns ``{'frames': n, 'failed': [names with a non-finite output or |logit| >
    MAX_ABS_LOGIT], 'max_abs_logit': worst finite |logit|}``. ``healthy`` is ``not failed``.
    """
    failed, worst = [], 0.0
    frames = stress_frames(**frame_kw)
    dtype = next(model.parameters()).dtype
    for name, img in frames.items():
        x = torch.from_numpy(img).to(device).permute(2, 0, 1)[None].to(dtype) / 255
        out = model(x, clip.encode(x).embedding.to(dtype))
        logit = float(out.logits.float().abs().max())
        finite = bool(torch.isfinite(out.image).all()) and np.isfinite(logit)
        if finite:
            worst = max(worst, logit)
        if not finite or logit > MAX_ABS_LOGIT:
            failed.append(name)
    return {'frames': len(frames), 'failed': failed, 'max_abs_logit': round(worst, 2),
            'healthy': not failed}


#: What ``tools/ship_model.py`` (and the shipped model's test) check: the default frames, and
#: larger frames with other blocks -- a fine-tune that passed the first ran away on one 320 px
#: block frame.
SHIP_SETTINGS = ({'size': 160, 'seed': 0}, {'size': 320, 'seed': 1})


def ship_health(model, clip, device: str | torch.device = 'cpu') -> dict:
    """:func:`numeric_health` over :data:`SHIP_SETTINGS`, merged (failed names say which)."""
    reports = [(kw, numeric_health(model, clip, device, **kw)) for kw in SHIP_SETTINGS]
    failed = [f'{name} ({kw["size"]} px, seed {kw["seed"]})'
              for kw, r in reports for name in r['failed']]
    return {'frames': sum(r['frames'] for _, r in reports), 'failed': failed,
            'max_abs_logit': max(r['max_abs_logit'] for _, r in reports), 'healthy': not failed}
