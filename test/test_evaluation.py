"""Evaluation with the tiny checkpoint: the per-class table of model vs. input and classical
baselines (Markdown and JSON agree), the PNG sheet, and ``weather-restore eval --paired``."""
import json
import re

import cv2
import numpy as np
import pytest

from weather_restore_ros.cli import main
from weather_restore_ros.engine import RestorationEngine
from weather_restore_ros.evaluation import evaluate, write_report
from weather_restore_ros.metrics import psnr
from weather_restore_ros.synth import synthesize
from weather_restore_ros.synth.samples import sample_images

WEATHERS = ('rain', 'snow', 'fog', 'raindrop')
METHODS = ('input', 'dark_channel', 'median_guided', 'model')


pytestmark = pytest.mark.usefixtures('one_torch_thread')


@pytest.fixture(scope='module')
def samples():
    """Two 48x64 crops per weather class plus one clear frame: (name, degraded, clean, weather)."""
    photo = sample_images(['china'])[0][1]
    out = []
    for i, weather in enumerate(WEATHERS * 2 + ('clear',)):
        clean = np.ascontiguousarray(photo[60 + 20 * i:108 + 20 * i, 100 + 30 * i:164 + 30 * i])
        degraded, _ = synthesize(clean, weather, i, severity=0.7)
        out.append((f'{weather}{i}', degraded, clean, weather))
    return out


@pytest.fixture(scope='module')
def engine(tiny_checkpoint):
    return RestorationEngine.from_checkpoint(str(tiny_checkpoint), device='cpu', warmup=False)


def restorer(engine):
    def restore(rgb):
        engine.forget_stream('eval')
        r = engine.restore(rgb, stream='eval')
        return r.image, r.scores
    return restore


def table_rows(markdown: str) -> dict[str, list[str]]:
    """The PSNR/SSIM table's rows: first cell (bold stripped) -> the other cells."""
    rows = {}
    for line in markdown.splitlines():
        if line.startswith('| ') and ' PSNR | ' not in line and 'true \\ pred' not in line:
            cells = [c.strip() for c in line.strip('|').split('|')]
            if len(cells) == 2 + 2 * len(METHODS):
                rows[cells[0].strip('*')] = cells[1:]
    return rows


def test_eval_table_on_a_tiny_set(engine, samples, tmp_path):
    report = evaluate(samples, restorer(engine), engine.class_names)
    md, d = report.to_markdown(), report.to_dict()
    assert list(report.methods) == list(METHODS)
    header = next(line for line in md.splitlines() if line.startswith('| class'))
    assert header.startswith('| class | n | input PSNR | input SSIM | dark_channel PSNR')
    assert header.endswith('model PSNR | model SSIM |')

    rows = table_rows(md)
    assert list(rows) == list(WEATHERS) + ['all', 'mean of groups']   # clear is scored apart
    for name, cells in rows.items():
        assert cells[0] == ('8' if name in ('all', 'mean of groups') else '2')
        for j, method in enumerate(METHODS):
            key = {'all': 'all', 'mean of groups': 'mean_of_groups'}.get(name)
            vals = d['methods'][method]['groups'][name] if key is None else \
                d['methods'][method][key]
            assert cells[1 + 2 * j] == f'{vals["psnr"]:.2f}', (name, method)
            assert cells[2 + 2 * j] == f'{vals["ssim"]:.4f}', (name, method)
    # The "input" row is the degraded frame itself.
    rain = [(deg, clean) for _, deg, clean, w in samples if w == 'rain']
    assert d['methods']['input']['groups']['rain']['psnr'] == pytest.approx(
        np.mean([psnr(deg, clean) for deg, clean in rain]))
    assert d['metric_space'] == 'y'
    assert d['clear_frames']['n'] == 1 and d['clear_frames']['model_psnr'] > 20
    assert 'Clear frames (1)' in md
    assert d['weather_classification']['total'] == len(samples)

    paths = write_report(report, tmp_path / 'report', meta={'checkpoint': 'tiny'})
    assert paths['markdown'].read_text() == md + '\n'
    on_disk = json.loads(paths['json'].read_text())
    assert on_disk['meta'] == {'checkpoint': 'tiny'}
    assert on_disk['methods'] == json.loads(json.dumps(d['methods']))
    sheet = cv2.imread(str(paths['sheet']))
    # One row per weather class shown: input | 2 baselines | model | clean, 224 px tiles.
    assert sheet is not None and sheet.shape[1] > 5 * 224 and len(report.samples) == 4


def test_eval_without_baselines_and_without_weather_frames(engine, samples, tmp_path):
    report = evaluate(samples[:2], restorer(engine), engine.class_names, baselines=False)
    assert list(report.methods) == ['input', 'model']
    assert all(len(imgs) == 3 for _, imgs, _ in report.samples)     # input | model | clean

    clear_only = [s for s in samples if s[3] == 'clear']
    report = evaluate(clear_only, restorer(engine), engine.class_names)
    paths = write_report(report, tmp_path)
    assert 'sheet' not in paths and not (tmp_path / 'samples.png').exists()
    assert '| **all** | 0 | - | - |' in report.to_markdown()


def test_eval_cli_on_a_paired_folder(tiny_checkpoint, samples, tmp_path, capsys):
    root = tmp_path / 'set'
    (root / 'input').mkdir(parents=True)
    (root / 'gt').mkdir()
    lines = ['file,weather']
    for name, degraded, clean, weather in samples[:4] + samples[-1:]:
        cv2.imwrite(str(root / 'input' / f'{name}.png'), cv2.cvtColor(degraded, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(root / 'gt' / f'{name}.png'), cv2.cvtColor(clean, cv2.COLOR_RGB2BGR))
        lines.append(f'{name}.png,{weather}')
    (root / 'labels.csv').write_text('\n'.join(lines) + '\n')

    out = tmp_path / 'report'
    rc = main(['eval', '--paired', str(root), '--checkpoint', str(tiny_checkpoint), '-o', str(out),
               '--device', 'cpu'])
    printed = capsys.readouterr().out
    assert rc == 0
    assert re.search(r'^\| rain \| 1 \| ', printed, re.M) and 'Weather classification' in printed
    d = json.loads((out / 'eval.json').read_text())
    assert d['meta']['samples'] == 5 and d['meta']['data'] == f'paired: {root}'
    assert d['meta']['checkpoint'] == str(tiny_checkpoint)
    model = d['methods']['model']['groups']
    assert {k: v['n'] for k, v in model.items()} == {w: 1 for w in WEATHERS}
    assert d['clear_frames']['n'] == 1
    assert set(d['methods']) == set(METHODS)
    assert (out / 'eval.md').read_text().startswith('PSNR (dB) / SSIM on Y channel')
    assert cv2.imread(str(out / 'samples.png')) is not None

    # --limit and --no-baselines
    rc = main(['eval', '--paired', str(root), '--checkpoint', str(tiny_checkpoint), '-o',
               str(tmp_path / 'r2'), '--device', 'cpu', '--limit', '2', '--no-baselines',
               '--on', 'rgb'])
    assert rc == 0
    d = json.loads((tmp_path / 'r2' / 'eval.json').read_text())
    assert d['meta']['samples'] == 2 and set(d['methods']) == {'input', 'model'}
    assert d['metric_space'] == 'rgb'
