"""Numerical stress test of a restorer: does it stay finite on frames unlike its training data,
and does it keep real photos free of coloured speckle (:func:`photo_health`)?

SimpleGate multiplies two activations, so a block without normalisation can square its
input's scale. Trained weights usually keep that in check, but a fine-tune can leave a path
where, for some input, activations grow block after block until they overflow -- measured on a
raindrop fine-tune: flat yellow went 25 -> 214 -> 8.3e3 -> 1.6e8 -> NaN through the encoder,
while every held-out weather photo was fine -- or, held finite by a clamp (``gate_bound``),
spray coloured speckle over a car in a foggy road photo. PSNR on validation photos sees
neither; a camera pointed at a yellow truck would. ``ship_model.py`` refuses a checkpoint that
fails here, and the tests hold the shipped model to it.

The remedy is in the architecture: ``ModelConfig.block_norm`` puts a LayerNorm in front of
every block and SAR unit (NAFNet's layout), so a block's output scale no longer follows its
input's; the shipped model has it and no clamp.
"""
from __future__ import annotations

import numpy as np
import torch

from ..data.common import photo_paths  # what --photos names (and tools/ship_model.py takes)

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
    MAX_ABS_LOGIT], 'nonfinite': [those of them with inf/NaN], 'max_abs_logit': worst finite
    |logit|, 'healthy': not failed, 'psnr_vs_input': {name: dB}}``. The last says how much each frame is *changed* (PSNR on Y
    of the output against the input; these frames are clean, so high is right): not a pass/fail
    criterion -- a model may legitimately brighten a flat grey it takes for fog -- but the
    number that shows speckle or a colour shift where a runaway was only nearly contained.
    """
    from .metrics import psnr
    failed, nonfinite, worst, changed = [], [], 0.0, {}
    frames = stress_frames(**frame_kw)
    dtype = next(model.parameters()).dtype
    for name, img in frames.items():
        x = torch.from_numpy(img).to(device).permute(2, 0, 1)[None].to(dtype) / 255
        out = model(x, clip.encode(x).embedding.to(dtype))
        logit = float(out.logits.float().abs().max())
        finite = bool(torch.isfinite(out.image).all()) and np.isfinite(logit)
        if finite:
            worst = max(worst, logit)
            restored = out.image[0].permute(1, 2, 0).float().cpu().numpy()
            changed[name] = round(psnr(restored, img.astype(np.float32) / 255), 2)
        else:
            nonfinite.append(name)
        if not finite or logit > MAX_ABS_LOGIT:
            failed.append(name)
    return {'frames': len(frames), 'failed': failed, 'nonfinite': nonfinite,
            'max_abs_logit': round(worst, 2), 'healthy': not failed, 'psnr_vs_input': changed}


#: What ``tools/ship_model.py`` (and the shipped model's test) check: the default frames, and
#: larger frames with other blocks -- a fine-tune that passed the first ran away on one 320 px
#: block frame.
SHIP_SETTINGS = ({'size': 160, 'seed': 0}, {'size': 320, 'seed': 1})


def _over(settings, model, clip, device) -> tuple[int, list, float, dict]:
    """:func:`numeric_health` per setting, frame names tagged with their setting."""
    frames, failed, worst, changed = 0, [], 0.0, {}
    for kw in settings:
        r = numeric_health(model, clip, device, **kw)
        tag = f'{kw["size"]} px, seed {kw["seed"]}'
        frames += r['frames']
        failed += [f'{n} ({tag})' for n in r['failed']]
        worst = max(worst, r['max_abs_logit'])
        changed.update({f'{n} ({tag})': v for n, v in r['psnr_vs_input'].items()})
    return frames, failed, worst, changed


def ship_health(model, clip, device: str | torch.device = 'cpu') -> dict:
    """:func:`numeric_health` over :data:`SHIP_SETTINGS`, merged (failed names say which)."""
    frames, failed, worst, _ = _over(SHIP_SETTINGS, model, clip, device)
    return {'frames': frames, 'failed': failed, 'max_abs_logit': worst, 'healthy': not failed}


#: A wider sweep than :data:`SHIP_SETTINGS` (sizes 96 to 640 px, other block layouts): what the
#: model card reports, ``python -m weather_restore_ros.training.stress CHECKPOINT``.
SWEEP_SETTINGS = SHIP_SETTINGS + ({'size': 96, 'seed': 2}, {'size': 240, 'seed': 3},
                                  {'size': 480, 'seed': 4}, {'size': 160, 'seed': 5},
                                  {'size': 320, 'seed': 6}, {'size': 640, 'seed': 7})


def sweep(model, clip, device: str | torch.device = 'cpu', changed_below: float = 30.0) -> dict:
    """:data:`SWEEP_SETTINGS` summarised: failures, the largest |logit|, the median PSNR of
    output against input and the frames changed below ``changed_below`` dB (worst first)."""
    frames, failed, worst, changed = _over(SWEEP_SETTINGS, model, clip, device)
    low = dict(sorted(((n, v) for n, v in changed.items() if v < changed_below),
                      key=lambda t: t[1]))
    return {'frames': frames, 'failed': failed, 'max_abs_logit': worst,
            'median_psnr_vs_input': round(float(np.median(list(changed.values()))), 1),
            f'changed_below_{changed_below:g}_db': low}


@torch.inference_mode()
def photo_health(model, clip, photos, device: str | torch.device = 'cpu',
                 max_side: int = 1024) -> dict:
    """Local blow-ups on real photos: each photo through the raw network (no run-time guard),
    its output checked for non-finite values and for coloured speckle against the input
    (:func:`weather_restore_ros.harm.speckle_fraction`; harmed above ``HARM_FRACTION``).

    The flat-colour frames above catch a runaway that overflows; a runaway held finite shows
    only as speckle over a compact region of an ordinary photo (a car, a pedestrian), which is
    what this catches. Photos are scaled to at most ``max_side`` px (the cost of one pass).
    Also the cell grid of the change (:func:`weather_restore_ros.harm.grid_artifact`) and the
    detail pushed into black (:func:`weather_restore_ros.harm.crushed_fraction`), which the
    speckle measure does not see: reported, not judged (``healthy`` is speckle only).
    Returns ``{'photos': n, 'harmed': [(path, fraction)], 'nonfinite': [paths],
    'max_speckle': worst fraction, 'healthy': bool, 'grid': {'max', 'mean', 'worst': path},
    'crushed': {'max', 'mean', 'over_5pct': photos, 'worst': path}}``.
    """
    import cv2

    from ..data.common import read_rgb
    from ..harm import HARM_FRACTION, crushed_fraction, grid_artifact, speckle_fraction
    dtype = next(model.parameters()).dtype
    harmed, nonfinite, worst, grids, crushed = [], [], 0.0, {}, {}
    for path in photos:
        img = read_rgb(path)
        scale = max_side / max(img.shape[:2])
        if scale < 1:
            img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        x = torch.from_numpy(np.ascontiguousarray(img)).to(device).permute(2, 0, 1)[None]
        xf = x.to(dtype) / 255
        out = model(xf, clip.encode(xf).embedding.to(dtype)).image
        if not bool(torch.isfinite(out).all()):
            nonfinite.append(str(path))
            continue
        frac = float(speckle_fraction(x, out)[0])
        grids[str(path)] = float(grid_artifact(x, out)[0])
        crushed[str(path)] = float(crushed_fraction(x, out)[0])
        worst = max(worst, frac)
        if frac > HARM_FRACTION:
            harmed.append((str(path), round(frac, 5)))
    harmed.sort(key=lambda t: -t[1])
    crush = _summary(crushed, 4)
    if crush:
        crush['over_5pct'] = sum(v > 0.05 for v in crushed.values())
    return {'photos': len(photos), 'harmed': harmed, 'nonfinite': nonfinite,
            'max_speckle': round(worst, 5), 'healthy': not harmed and not nonfinite,
            'grid': _summary(grids, 3), 'crushed': crush}


def _summary(scores: dict, digits: int) -> dict:
    """``{'max', 'mean', 'worst': key}`` of per-photo scores ({} for none)."""
    if not scores:
        return {}
    return {'max': round(max(scores.values()), digits),
            'mean': round(float(np.mean(list(scores.values()))), digits),
            'worst': max(scores, key=scores.get)}


def main(argv=None) -> int:
    import argparse
    import json
    ap = argparse.ArgumentParser(prog='python -m weather_restore_ros.training.stress',
                                 description='Numerical stress sweep of a checkpoint '
                                             '(flat colours, colour blocks, binary noise).')
    ap.add_argument('checkpoint', nargs='?', default=None,
                    help='a .safetensors checkpoint (default: the shipped model)')
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--photos', nargs='+', metavar='DIR',
                    help='also check every photo below these folders for speckle (local '
                         'blow-ups held finite) and non-finite output')
    args = ap.parse_args(argv)
    from ..engine import RestorationEngine
    engine = RestorationEngine.from_checkpoint(args.checkpoint, device=args.device,
                                               precision='fp32', warmup=False)
    report = sweep(engine.model, engine.clip, engine.device)
    ok = not report['failed']
    if args.photos:
        report['photos'] = photo_health(engine.model, engine.clip, photo_paths(args.photos),
                                        engine.device)
        ok = ok and report['photos']['healthy']
    print(json.dumps(report, indent=1))
    return 0 if ok else 1


if __name__ == '__main__':
    raise SystemExit(main())
