#!/usr/bin/env python3
"""Install a trained checkpoint as the package's shipped model and write its model card.

    python tools/ship_model.py runs/shipped_small_joint/last.safetensors \
        --compare runs/shipped_small_frozen/last.safetensors

Refuses a checkpoint that fails the numerical stress test (``weather_restore_ros.stress``:
inf/NaN or runaway logits on flat colours and saturated blocks). Then copies the checkpoint to
weather_restore_ros/models/weather_small.safetensors (+ .json), runs the held-out evaluation
(``weather-restore eval --holdout``) on it — and on the ``--compare`` checkpoints, for the
joint-vs-frozen CLIP question — and writes MODEL_CARD.md with the numbers.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from fetch_training_photos import MATE_PHOTOS, PHOTOS  # tools/, on sys.path as a script
from weather_restore_ros.model import ModelConfig, WeatherRestorer
from weather_restore_ros.model.profile import count_parameters, gflops

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / 'weather_restore_ros' / 'models'
TARGET = MODELS / 'weather_small.safetensors'


def evaluate(ckpt: Path, out: Path) -> dict:
    subprocess.run([sys.executable, '-m', 'weather_restore_ros.cli', 'eval', '--holdout',
                    '--checkpoint', str(ckpt), '--output', str(out), '--device', 'cpu'],
                   check=True, stdout=subprocess.DEVNULL)
    return {'json': json.loads((out / 'eval.json').read_text()),
            'markdown': (out / 'eval.md').read_text()}


def stress_check(ckpt: Path) -> dict:
    from weather_restore_ros.engine import RestorationEngine
    from weather_restore_ros.stress import ship_health
    engine = RestorationEngine.from_checkpoint(str(ckpt), device='cpu', warmup=False)
    return ship_health(engine.model, engine.clip)


def summary_line(name: str, report: dict) -> str:
    model = report['json']['methods']['model']
    acc = report['json']['weather_classification']['accuracy']
    return (f'| {name} | {model["all"]["psnr"]:.2f} | {model["all"]["ssim"]:.4f} | '
            f'{acc:.3f} |')


def run_name(ckpt: Path) -> str:
    """``runs/x/last.safetensors`` -> ``x``; ``runs/y.safetensors`` -> ``y``."""
    return ckpt.parent.name if ckpt.stem == 'last' else ckpt.stem


def architecture(cfg: ModelConfig) -> str:
    parts = ['SAR encoder', 'CWP cross-attention']
    if cfg.channel_attention:
        parts.append('channel attention')
    if cfg.mask_head:
        parts.append('a mask head')
    if cfg.block_norm:
        parts.append('a LayerNorm per block')
    if cfg.gate_bound:
        parts.append(f'SimpleGate factors clamped to ±{cfg.gate_bound:g}')
    return ' + '.join(parts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('checkpoint', type=Path)
    ap.add_argument('--compare', type=Path, nargs='*', default=[],
                    help='other checkpoints to evaluate beside it (e.g. the frozen-CLIP run)')
    ap.add_argument('--card-notes', type=Path, help='Markdown to include in the card')
    args = ap.parse_args()

    health = stress_check(args.checkpoint)
    if not health['healthy']:
        print(f'refusing {args.checkpoint}: non-finite or runaway output on {health["failed"]} '
              '(weather_restore_ros.stress)', file=sys.stderr)
        return 1
    MODELS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(args.checkpoint, TARGET)
    shutil.copyfile(args.checkpoint.with_suffix('.json'), TARGET.with_suffix('.json'))
    meta = json.loads(TARGET.with_suffix('.json').read_text())
    training = meta.get('training', {})
    cfg = ModelConfig.from_dict(meta['model_config'])
    ema_note = (f'Shipped weights: the exponential moving average (decay {training["ema_decay"]})'
                ' of the training weights. ' if training.get('ema_decay') else '')
    eval_dir = ROOT / 'runs' / 'ship_eval'
    shipped = evaluate(TARGET, eval_dir / 'shipped')
    shutil.copyfile(eval_dir / 'shipped' / 'samples.png', MODELS / 'holdout_samples.png')
    rows = [summary_line(f'shipped ({run_name(args.checkpoint)})', shipped)]
    for other in args.compare:
        rows.append(summary_line(run_name(other), evaluate(other, eval_dir / run_name(other))))

    size_mb = TARGET.stat().st_size / 1e6
    card = [
        '# weather_small: the model shipped with weather_restore_ros', '',
        f'`{TARGET.name}` ({size_mb:.1f} MB, safetensors + JSON metadata) — loaded by the '
        'engine, the CLI and the node when no checkpoint is configured.', '',
        '## What it is',
        f'- Restorer: the `{cfg.name}` config, {architecture(cfg)}, '
        f'{count_parameters(WeatherRestorer(cfg), inference_only=True) / 1e6:.2f} M parameters, '
        f'{gflops(cfg, 480, 640):.1f} GFLOPs per 640x480 frame.',
        f'- Prior encoder: `{meta["clip"]["model_name"]}`, a small CLIP-style ViT image tower '
        f'(embedding {meta["clip"]["embed_dim"]}) with **random initial weights**, '
        f'{"fine-tuned with the restorer" if training.get("clip_trainable") else "kept frozen"}'
        ', stored in the checkpoint. No pretrained CLIP can be downloaded on the '
        'machines this was trained on, so it has no text tower (weather comes from the trained '
        'weather head, `classifier: head`).',
        '- CLIP-SRD: **off** (`loss.srd: 0`). SRD distils a *pretrained* CLIP\'s knowledge of '
        'weather; a randomly initialised tower has none to give. Train with '
        '`configs/allweather_base.yaml` (frozen ViT-B-32 `openai`) to use it.', '',
        '## Data',
        f'- Clean photos ({len(PHOTOS) + len(MATE_PHOTOS) + 3}, fetched by '
        '`tools/fetch_training_photos.py`, never installed): '
        f'{len(PHOTOS)} public-domain / CC0 photos from the scikit-image 0.26.0 wheel on PyPI '
        f'({", ".join(Path(n).stem for n in PHOTOS)}); {len(MATE_PHOTOS)} GPL-2+ photos from the '
        'Debian package mate-backgrounds 1.26.0-1, `nature/` folder, scaled to 1024 px '
        f'({", ".join(f"{Path(n).stem}: {lic}" for n, lic in MATE_PHOTOS.items())}); and the '
        'shipped `camera`, `chelsea`, `rocket` (weather_restore_ros/assets/LICENSES.md).',
        '- Weather: synthesised on the fly (`weather_restore_ros.synth`): rain, snow, fog, lens '
        'raindrops, rain+fog, snow+fog, rain+raindrop and clear, severity 0.3-1.0, on 160 px crops '
        'with zoom, photometric jitter of the clean crop and 2x2 mosaics of several photos; '
        f'data config of its last stage: `{json.dumps(training.get("data", {}).get("train"))}`.',
        '- Held-out validation: the shipped `china.jpg` (CC BY 2.0, danielbuechele), never '
        'trained on: 60 fixed synthetic samples (`weather-restore eval --holdout`, seed 1234).', '',
        '## Training',
        f'- Last stage (this checkpoint): {training.get("steps")} steps, batch '
        f'{training.get("batch_size")}, AdamW, warm-up + '
        f'cosine, on the CPU of a 2-core machine, wall time '
        f'{training.get("wall_time_s", 0) / 60:.0f} min. Losses: {training.get("losses")}. '
        f'{ema_note}CLIP tower trainable: {training.get("clip_trainable")}.',
        f'- Started from: `{training.get("init_from") or "random initialisation"}`.',
        '- Reproduce: `configs/shipped_small/README.md` (every stage, in order).', '',
        '## Compared runs (held-out set, `weather-restore eval --holdout`)', '',
        '| run | model PSNR (Y, weather frames) | SSIM | weather accuracy |',
        '|---|---:|---:|---:|', *rows, '',
        '## Held-out results of the shipped model (`weather-restore eval --holdout`)', '',
        shipped['markdown'], '',
        '![held-out samples](holdout_samples.png)', '',
    ]
    if args.card_notes:
        card += [args.card_notes.read_text(), '']
    (MODELS / 'MODEL_CARD.md').write_text('\n'.join(card))
    print(f'shipped {TARGET} ({size_mb:.1f} MB); card: {MODELS / "MODEL_CARD.md"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
