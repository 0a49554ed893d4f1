"""Evaluation with the tiny checkpoint: the per-class table of model vs. input and classical
baselines (Markdown and JSON agree), the PNG sheet, and ``weather-restore eval --paired``;
the two Y conventions, the worst-case listing, the harm count, real photos and the suite (on
tiny synthetic folders in the public sets' layouts; also on /work/shared/data when present)."""
import json
import math
import os
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from weather_restore_ros.cli import main
from weather_restore_ros.engine import RestorationEngine
from weather_restore_ros.training.evaluation import evaluate, speckle_of, write_report
from weather_restore_ros.training.metrics import psnr, ssim
from weather_restore_ros.training.suite import SuiteReport, evaluate_photos, write_photo_report
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
    assert header.startswith('| class (Y video range) | n | input PSNR | input SSIM | '
                             'dark_channel PSNR')
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


# ----------------------------------------------------------------------------- Y conventions

def test_y_conventions_on_a_hand_computed_pair():
    """Green +20 on every pixel: full-range Y moves by 0.587 * 20, video-range Y by
    128.553 / 255 * 20; PSNR = 20 log10(255 / |dY|) in both (the papers' video range reads
    20 log10(255 / 219) = 1.32 dB higher)."""
    clean = np.full((16, 16, 3), 100, np.uint8)
    pred = clean.copy()
    pred[..., 1] += 20
    full = 20 * math.log10(255 / (0.587 * 20))              # 26.7379 dB
    video = 20 * math.log10(255 / (128.553 / 255 * 20))     # 28.0605 dB
    assert psnr(pred, clean, on='y_full') == pytest.approx(full, abs=1e-9)
    assert psnr(pred, clean, on='y') == pytest.approx(video, abs=1e-9)
    assert video - full == pytest.approx(20 * math.log10(255 / 219), abs=1e-9)
    # the same as OpenCV's YCrCb Y (which rounds to bytes) on a random pair, to rounding
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-30, 31, a.shape), 0, 255).astype(np.uint8)
    ya, yb = (cv2.cvtColor(x, cv2.COLOR_RGB2YCrCb)[..., 0].astype(float) for x in (a, b))
    cv_psnr = 10 * math.log10(255 ** 2 / np.mean((ya - yb) ** 2))
    assert psnr(a, b, on='y_full') == pytest.approx(cv_psnr, abs=0.05)
    assert psnr(a, b, on='y') - psnr(a, b, on='y_full') == pytest.approx(1.3226, abs=1e-3)
    assert ssim(a, b, on='y_full') != ssim(a, b, on='y')


def fake_restore(outputs: dict, scores: dict | None = None):
    """A restorer that returns the output (and class scores) prepared for each input."""
    def restore(rgb):
        key = rgb.tobytes()
        label = (scores or {}).get(key, 'rain')
        return outputs[key], {c: float(c == label) for c in
                              ('clear', 'rain', 'snow', 'fog', 'raindrop')}
    return restore


CLASSES = ('clear', 'rain', 'snow', 'fog', 'raindrop')


def noisy(img, sigma, seed):
    n = np.random.default_rng(seed).normal(0, sigma, img.shape)
    return np.clip(img.astype(float) + n, 0, 255).round().astype(np.uint8)


def speckled(img, dots=20, colour=(255, 0, 255)):
    """``img`` with isolated one-pixel dots of saturated colour, 6 px apart."""
    out = img.copy()
    h, w = img.shape[:2]
    for k in range(dots):
        out[3 + 6 * (k // 8) % (h - 3), 3 + 6 * (k % 8) % (w - 3)] = colour
    return out


@pytest.fixture(scope='module')
def crafted():
    """Four grey-gradient 48x64 frames with their rainy inputs and crafted model outputs:
    'good' (the clean image), 'same' (the input), 'worse' (more noise: about -6 dB),
    'slightly' (a little noise: above -0.5 dB) and 'speckle' (the input with magenta dots)."""
    base = np.tile(np.linspace(40, 200, 64)[None, :, None], (48, 1, 3)).astype(np.uint8)
    frames = {}
    for i, name in enumerate(('good', 'same', 'worse', 'slightly', 'speckle')):
        clean = np.ascontiguousarray(np.roll(base, 7 * i, axis=1))
        degraded = noisy(clean, 8, i)
        out = {'good': clean, 'same': degraded, 'worse': noisy(degraded, 14, 10 + i),
               'slightly': noisy(degraded, 1.5, 20 + i), 'speckle': speckled(degraded)}[name]
        frames[name] = (degraded, clean, out)
    return frames


def test_worst_cases_below_input_and_harm_on_crafted_outputs(crafted, tmp_path):
    samples = [(n, d, c, 'rain') for n, (d, c, _) in crafted.items()]
    restore = fake_restore({d.tobytes(): o for d, _, o in crafted.values()})
    report = evaluate(samples, restore, CLASSES, worst=3, baselines=False)
    delta = {r['name']: r['delta_psnr'] for r in report.images}
    assert delta['same'] == 0 and delta['good'] > 5
    assert delta['worse'] < -3 and -0.5 < delta['slightly'] < 0 and delta['speckle'] < -0.5
    # worst first, by model - input, with their names
    assert [r['name'] for r in report.worst()] == sorted(
        delta, key=delta.get)[:3] == ['worse', 'speckle', 'slightly']
    assert report.below_input() == {'rain': 2, 'all': 2}        # 'worse' and 'speckle'
    # harm: the speckled output is counted, the clean/noisy ones are not
    assert [r['name'] for r in report.harmed()] == ['speckle']
    assert speckle_of(crafted['speckle'][0], crafted['speckle'][2]) > 5e-4
    assert speckle_of(crafted['good'][0], crafted['good'][0].copy()) == 0
    # the other Y convention, per image and in the table
    rec = next(r for r in report.images if r['name'] == 'worse')
    assert rec['psnr_y_full']['input'] == pytest.approx(rec['psnr']['input'] - 1.3226, abs=1e-3)

    md = report.to_markdown()
    assert 'Below the input: 2 of 5 images are more than 0.5 dB below their input' in md
    assert '1 of 5 images harmed' in md
    rows = [line for line in md.splitlines() if line.startswith('| worse |')
            or line.startswith('| speckle |') or line.startswith('| slightly |')]
    assert [r.split(' | ')[0][2:] for r in rows] == ['worse', 'speckle', 'slightly']
    assert f'{delta["worse"]:+.2f}' in rows[0]
    assert 'Cross-check: PSNR (dB) on Y channel (BT.601 full range' in md
    d = json.loads(json.dumps(report.to_dict()))
    assert [w['name'] for w in d['worst']] == ['worse', 'speckle', 'slightly']
    assert d['harm']['harmed'] == 1 and d['below_input']['counts']['all'] == 2

    paths = write_report(report, tmp_path)
    worst = cv2.imread(str(paths['worst_sheet']))
    harmed = cv2.imread(str(paths['harmed_sheet']))
    # worst.png: 3 rows of input | model | ground truth (320 px tiles: 240 px high + padding)
    assert worst.shape[1] > 3 * 320 and worst.shape[0] > 3 * 240
    assert harmed.shape[0] < 2 * 240                                # only the speckled one


def test_full_range_y_everywhere_when_asked(crafted):
    samples = [(n, d, c, 'rain') for n, (d, c, _) in crafted.items()]
    restore = fake_restore({d.tobytes(): o for d, _, o in crafted.values()})
    report = evaluate(samples, restore, CLASSES, on='y_full', baselines=False)
    md = report.to_markdown()
    assert md.startswith('PSNR (dB) / SSIM on Y channel (BT.601 full range 0-255')
    assert '| class (Y full range) |' in md and '| class (Y video range) |' in md  # cross-check
    rec = next(r for r in report.images if r['name'] == 'same')
    d, c, _ = crafted['same']
    assert rec['psnr']['input'] == pytest.approx(psnr(d, c, on='y_full'))
    assert rec['psnr_y']['input'] == pytest.approx(psnr(d, c, on='y'))


def test_real_photo_recall_harm_and_suite(crafted, tmp_path):
    """Four real-rain photos called rain, rain, fog, clear and two real-fog photos called fog and
    rain: recall 0.5 and 0.5, balanced accuracy 0.5; the speckled photo is the one harmed."""
    photos = [(f'r{i}.jpg', crafted[n][0], 'rain') for i, n in
              enumerate(('good', 'same', 'worse', 'speckle'))]
    fog = [('f0.jpg', crafted['slightly'][0], 'fog'), ('f1.jpg', crafted['good'][1], 'fog')]
    outputs = {p.tobytes(): p for _, p, _ in photos + fog}
    outputs[crafted['speckle'][0].tobytes()] = crafted['speckle'][2]
    calls = dict(zip([p.tobytes() for _, p, _ in photos + fog],
                     ['rain', 'rain', 'fog', 'clear', 'fog', 'rain']))
    rain_rep = evaluate_photos(photos, fake_restore(outputs, calls), CLASSES, worst=2)
    fog_rep = evaluate_photos(fog, fake_restore(outputs, calls), CLASSES)
    assert rain_rep.confusion.recall()['rain'] == 0.5
    assert [r['name'] for r in rain_rep.harmed()] == ['r3.jpg'] and not fog_rep.harmed()
    assert rain_rep.images[0]['change_psnr'] == 100.0               # unchanged photo: the cap
    md = rain_rep.to_markdown()
    assert '| rain | 1 | 2 | 0 | 1 | 0 | 4 | 0.500 |' in md          # the confusion row
    assert '1 of 4 images harmed' in md

    suite = SuiteReport([('real-rain', rain_rep), ('real-fog', fog_rep)], CLASSES)
    cm = suite.photo_confusion()
    assert cm.recall()['rain'] == 0.5 and cm.recall()['fog'] == 0.5
    smd = suite.to_markdown()
    assert 'Balanced accuracy over the classes tested (rain, fog): 0.500' in smd
    assert '| real-rain | 4 | 1 | r3.jpg ' in smd
    d = suite.to_dict()
    assert d['real_photo_classification']['balanced_accuracy'] == 0.5
    assert d['real_photo_classification']['classes_tested'] == ['rain', 'fog']

    paths = write_photo_report(rain_rep, tmp_path)
    sheet = cv2.imread(str(paths['worst_sheet']))            # 2 rows: input | model
    assert sheet.shape[1] < 3 * 320 and sheet.shape[0] > 2 * 240
    assert json.loads(paths['json'].read_text())['harm']['worst'] == ['r3.jpg']


def _write(path, rgb):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def test_eval_suite_cli_on_the_public_layouts(tiny_checkpoint, samples, tmp_path, capsys):
    """``eval --suite ROOT`` finds Rain100L (input/ + gt/), Rain100H (PReNet's rainy/ +
    norain-NNN.png), real rain and real fog photos, and writes one combined report."""
    root = tmp_path / 'data'
    rain = [s for s in samples if s[3] == 'rain']
    for i, (_, degraded, clean, _) in enumerate(rain):
        _write(root / 'rain100l_test' / 'input' / f'{i + 1:03d}.png', degraded)
        _write(root / 'rain100l_test' / 'gt' / f'{i + 1:03d}.png', clean)
        _write(root / 'Rain100H' / 'rainy' / f'rain-{i + 1:03d}.png', degraded)
        _write(root / 'Rain100H' / f'norain-{i + 1:03d}.png', clean)
    _write(root / 'real_photos' / 'real_rain' / 'a.png', rain[0][1])
    _write(root / 'real_photos' / 'dawn_fog' / 'foggy-001.png', samples[2][1])
    out = tmp_path / 'report'
    rc = main(['eval', '--suite', str(root), '--checkpoint', str(tiny_checkpoint), '-o', str(out),
               '--device', 'cpu', '--worst', '1'])
    printed = capsys.readouterr().out
    assert rc == 0
    d = json.loads((out / 'suite.json').read_text())
    assert list(d['sets']) == ['rain100l', 'rain100h', 'real-rain', 'real-fog']
    assert d['meta']['sets']['rain100h'] == {'root': str(root / 'Rain100H'), 'samples': 2}
    assert d['meta']['harm_guard'] in (False, None)              # the raw model by default
    assert d['meta']['metric_space'] == 'y'
    # the same images in two layouts give the same numbers
    assert d['sets']['rain100l']['methods'] == d['sets']['rain100h']['methods']
    assert d['sets']['rain100l']['below_input']['n'] == 2
    assert d['sets']['real-fog']['n'] == 1
    cls = d['real_photo_classification']
    assert cls['classes_tested'] == ['rain', 'fog'] and cls['total'] == 2
    md = (out / 'suite.md').read_text()
    assert md == printed.split('\n\nrain100l/markdown:')[0] + '\n'
    assert '| set | n | input PSNR (Y video range) | model PSNR (Y video range) |' in md
    assert 'Balanced accuracy over the classes tested (rain, fog)' in md
    for name in ('rain100l', 'rain100h'):
        assert cv2.imread(str(out / name / 'worst.png')) is not None
        per = json.loads((out / name / 'eval.json').read_text())
        assert len(per['per_image']) == 2 and len(per['worst']) == 1
    for name in ('real-rain', 'real-fog'):
        assert cv2.imread(str(out / name / 'worst.png')) is not None

    # one set by name, the other Y convention, and a real-photo set on its own
    rc = main(['eval', '--test-set', f'rain100l:{root / "rain100l_test"}', '--checkpoint',
               str(tiny_checkpoint), '-o', str(tmp_path / 'r2'), '--device', 'cpu',
               '--y', 'full', '--no-baselines'])
    assert rc == 0
    r2 = json.loads((tmp_path / 'r2' / 'eval.json').read_text())
    assert r2['metric_space'] == 'y_full' and list(r2['cross_check']) == ['y']
    assert r2['methods']['input']['all']['psnr'] == pytest.approx(
        np.mean([psnr(dg, c, on='y_full') for _, dg, c, _ in rain]))
    rc = main(['eval', '--test-set', f'real-fog:{root / "real_photos"}', '--checkpoint',
               str(tiny_checkpoint), '-o', str(tmp_path / 'r3'), '--device', 'cpu'])
    assert rc == 0
    r3 = json.loads((tmp_path / 'r3' / 'eval.json').read_text())
    assert r3['kind'] == 'photos'
    assert r3['meta']['data'] == f'test_set: real-fog:{root / "real_photos"}'
    capsys.readouterr()
    # a set's own folder is not a suite (its input/ and gt/ are no set names)
    assert main(['eval', '--suite', str(root / 'rain100l_test'), '--checkpoint',
                 str(tiny_checkpoint), '-o', str(tmp_path / 'r4'), '--device', 'cpu']) == 2
    assert 'no known test set' in capsys.readouterr().err


def test_holdout_with_structures(tiny_checkpoint, tmp_path, capsys):
    """eval --holdout --structures P draws wires, poles or a facade into a share P of the
    held-out frames: other targets than without, recorded in the report; P outside [0, 1] is
    a clear error."""
    base = ['eval', '--holdout', '--limit', '3', '--no-baselines', '--checkpoint',
            str(tiny_checkpoint), '--device', 'cpu', '-o']
    assert main(base + [str(tmp_path / 'plain')]) == 0
    assert main(base + [str(tmp_path / 'lines'), '--structures', '1']) == 0
    plain, lines = (json.loads((tmp_path / d / 'eval.json').read_text())
                    for d in ('plain', 'lines'))
    assert plain['meta']['holdout_structures'] == 0 and lines['meta']['holdout_structures'] == 1
    assert (plain['methods']['input']['all']['psnr'] != lines['methods']['input']['all']['psnr'])
    capsys.readouterr()
    assert main(base + [str(tmp_path / 'bad'), '--structures', '1.5']) == 2
    assert 'structures must be in [0, 1]' in capsys.readouterr().err


def test_holdout_with_chosen_weathers(tiny_checkpoint, tmp_path, capsys):
    """eval --holdout --weather rain:light draws only light rain over the held-out photo (every
    frame labelled rain, recorded in the report); an unknown style is a clear error before any
    frame is restored."""
    base = ['eval', '--holdout', '--limit', '4', '--no-baselines', '--checkpoint',
            str(tiny_checkpoint), '--device', 'cpu', '-o']
    assert main(base + [str(tmp_path / 'light'), '--weather', 'rain:light']) == 0
    light = json.loads((tmp_path / 'light' / 'eval.json').read_text())
    assert light['meta']['holdout_weathers'] == ['rain:light']
    assert light['meta']['holdout_severity'] == [0.3, 1.0]   # synth's default
    assert light['meta']['samples'] == 4
    assert set(light['methods']['input']['groups']) == {'rain'}
    assert main(base + [str(tmp_path / 'faint'), '--weather', 'rain:light',
                        '--severity', '0:0.1']) == 0
    faint = json.loads((tmp_path / 'faint' / 'eval.json').read_text())
    assert faint['meta']['holdout_severity'] == [0.0, 0.1]
    # the same frames and streak seeds, fewer streaks: the input is closer to the truth
    assert (faint['methods']['input']['all']['psnr'] > light['methods']['input']['all']['psnr'])
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(base + [str(tmp_path / 'bad'), '--severity', '0.5:0.2'])
    assert 'severity must satisfy' in capsys.readouterr().err
    assert main(base + [str(tmp_path / 'bad'), '--weather', 'rain:bogus']) == 2
    assert "unknown weather 'rain:bogus'" in capsys.readouterr().err


def test_harm_guard_off_by_default(tiny_checkpoint):
    """Evaluation measures the raw model: the engine eval builds has its harm guard off unless
    --harm-guard, where the commands that publish restore with it on."""
    from weather_restore_ros.cli import build_parser
    from weather_restore_ros.engine import RestorationEngine
    from weather_restore_ros.engine_settings import settings_from_args

    parser = build_parser()
    argv = ['eval', '--holdout', '-o', 'x', '--checkpoint', str(tiny_checkpoint),
            '--device', 'cpu']
    for extra, guard in (([], False), (['--harm-guard'], True)):
        settings = settings_from_args(parser.parse_args(argv + extra))
        assert settings.harm_guard is guard
        assert RestorationEngine.from_settings(settings).harm_guard is guard
    assert settings_from_args(parser.parse_args(['restore', 'a.png', '-o', 'x'])).harm_guard


def test_help_names_every_known_set():
    from weather_restore_ros.commands.evaluate import SET_NAMES
    from weather_restore_ros.data import REAL_PHOTO_SETS, TEST_SETS
    assert re.findall(r'[a-z0-9-]+(?=[,;]|$)', SET_NAMES) == [*TEST_SETS, *REAL_PHOTO_SETS]


SHARED = Path('/work/shared/data')


@pytest.mark.skipif(not (SHARED / 'rain100l_test').is_dir(), reason='no shared public data')
def test_public_sets_when_present():
    """On the shared public data (read in place, never copied): every set is found, and the
    degraded Rain100L/H inputs measure what the data's README says on full-range Y (25.58 /
    12.23 dB) and 1.32 dB more on the papers' video-range Y."""
    from weather_restore_ros.data import find_test_sets
    from weather_restore_ros.training.metrics import to_uint8
    sets = {s.name: s for s in find_test_sets(SHARED)}
    assert {k: len(v) for k, v in sets.items()} == {'rain100l': 100, 'rain100h': 100,
                                                    'real-rain': 98, 'real-fog': 200}
    for name, full in (('rain100l', 25.58), ('rain100h', 12.23)):
        vals = {'y_full': [], 'y': []}
        for i in range(len(sets[name])):
            s = sets[name][i]
            a, b = (to_uint8(s[k].permute(1, 2, 0).numpy()) for k in ('input', 'target'))
            for sp in vals:
                vals[sp].append(psnr(a, b, on=sp))
        assert np.mean(vals['y_full']) == pytest.approx(full, abs=0.005)
        assert np.mean(vals['y']) == pytest.approx(full + 1.32, abs=0.01)
