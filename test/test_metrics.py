"""weather_restore_ros.training.metrics and weather_restore_ros.training.baselines."""
import json
import math

import cv2
import numpy as np
import pytest
import torch

from weather_restore_ros import DEFAULT_WEATHER_CLASSES
from weather_restore_ros.training.baselines import (BASELINES, dark_channel_dehaze, guided_filter,
                                           median_derain)
from weather_restore_ros.training.metrics import (PSNR_CAP, ConfusionMatrix, MetricTable, psnr, rgb_to_y,
                                         ssim, to_uint8)


def rand_img(seed, h=24, w=27):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# ----------------------------------------------------------------------------- Y channel

@pytest.mark.parametrize('rgb,y', [
    ((0, 0, 0), 16.0), ((255, 255, 255), 235.0), ((255, 0, 0), 81.481),
    ((0, 255, 0), 144.553), ((0, 0, 255), 40.966),
    ((128, 64, 32), 16 + (65.481 * 128 + 128.553 * 64 + 24.966 * 32) / 255),
])
def test_rgb_to_y_bt601_values(rgb, y):
    px = np.array(rgb, np.uint8).reshape(1, 1, 3)
    assert rgb_to_y(px)[0, 0, 0] == pytest.approx(y, abs=1e-9)
    assert rgb_to_y(px.astype(np.float64) / 255, data_range=1.0)[0, 0, 0] == pytest.approx(y / 255)


# ----------------------------------------------------------------------------- PSNR

def test_psnr_identical_is_capped_or_inf():
    x = rand_img(0)
    assert psnr(x, x) == PSNR_CAP == 100.0
    assert psnr(x, x, cap=None) == math.inf
    assert psnr(x, x, on='rgb', cap=None) == math.inf


def test_psnr_constant_offset_known_values():
    t = np.full((8, 9, 3), 0.5)
    p = t + 0.1
    assert psnr(p, t, on='rgb') == pytest.approx(20.0)                # 20 log10(1 / 0.1)
    y_gain = (65.481 + 128.553 + 24.966) / 255       # Y offset per unit RGB offset
    assert psnr(p, t, on='y') == pytest.approx(20 * math.log10(1 / (0.1 * y_gain)))
    assert psnr(p * 255, t * 255, data_range=255, on='rgb') == pytest.approx(20.0)
    u = np.full((8, 9, 3), 100, np.uint8)
    assert psnr(u + 5, u, on='rgb') == pytest.approx(20 * math.log10(255 / 5))
    # float [0,1] and uint8 agree on the same quantised images
    a, b = rand_img(1), rand_img(2)
    assert psnr(a, b) == pytest.approx(psnr(a / 255.0, b / 255.0))
    assert psnr(a, b, on='rgb') == pytest.approx(psnr(a / 255.0, b / 255.0, on='rgb'))


def test_psnr_matches_direct_formula_on_random_images():
    a, b = rand_img(3), rand_img(4)
    ya = 16 + (a.astype(float) @ [65.481, 128.553, 24.966]) / 255
    yb = 16 + (b.astype(float) @ [65.481, 128.553, 24.966]) / 255
    assert psnr(a, b) == pytest.approx(10 * math.log10(255 ** 2 / np.mean((ya - yb) ** 2)))


def test_metric_input_checks_and_tensors():
    a, b = rand_img(5), rand_img(6)
    with pytest.raises(ValueError, match='differ'):
        psnr(a, b[:-1])
    with pytest.raises(ValueError, match='255'):
        psnr(a, b, data_range=1.0)
    with pytest.raises(ValueError, match='11x11'):
        ssim(a[:10], b[:10])
    with pytest.raises(ValueError, match="'y_full' or 'rgb'"):
        psnr(a, b, on='lab')
    ta = torch.from_numpy(a).permute(2, 0, 1).float() / 255
    tb = torch.from_numpy(b).permute(2, 0, 1).float() / 255
    assert psnr(ta, tb) == pytest.approx(psnr(a, b), abs=1e-4)
    assert ssim(ta[None], tb[None]) == pytest.approx(ssim(a, b), abs=1e-5)
    np.testing.assert_array_equal(to_uint8(ta), a)


# ----------------------------------------------------------------------------- SSIM

def brute_force_ssim(x, y, peak=255.0):
    """Wang et al. 2004 straight from the definition: every valid 11x11 window, Gaussian
    weights sigma 1.5, weighted (population) statistics, mean of the map."""
    k = np.arange(11) - 5
    g = np.exp(-k ** 2 / (2 * 1.5 ** 2))
    w = np.outer(g, g)
    w /= w.sum()
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    vals = []
    for i in range(x.shape[0] - 10):
        for j in range(x.shape[1] - 10):
            px, py = x[i:i + 11, j:j + 11], y[i:i + 11, j:j + 11]
            mx, my = (w * px).sum(), (w * py).sum()
            vx, vy = (w * (px - mx) ** 2).sum(), (w * (py - my) ** 2).sum()
            cxy = (w * (px - mx) * (py - my)).sum()
            num = (2 * mx * my + c1) * (2 * cxy + c2)
            vals.append(num / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2)))
    return float(np.mean(vals))


def test_ssim_identity_is_one():
    x = rand_img(7)
    assert ssim(x, x) == pytest.approx(1.0, abs=1e-12)
    assert ssim(x, x, on='rgb') == pytest.approx(1.0, abs=1e-12)
    f = x / 255.0
    assert ssim(f, f) == pytest.approx(1.0, abs=1e-12)


def test_ssim_matches_brute_force_reference():
    rng = np.random.default_rng(8)
    clean = cv2.GaussianBlur(rand_img(9, 22, 25), (0, 0), 1.2)
    noisy = np.clip(clean.astype(float) + rng.normal(0, 12, clean.shape), 0, 255).astype(np.uint8)
    c, n = clean.astype(float), noisy.astype(float)
    ref_rgb = np.mean([brute_force_ssim(c[..., k], n[..., k]) for k in range(3)])
    assert ssim(noisy, clean, on='rgb') == pytest.approx(ref_rgb, abs=1e-10)
    yc = 16 + (c @ [65.481, 128.553, 24.966]) / 255
    yn = 16 + (n @ [65.481, 128.553, 24.966]) / 255
    ref_y = brute_force_ssim(yn, yc)
    assert ssim(noisy, clean) == pytest.approx(ref_y, abs=1e-10)
    assert 0.2 < ref_y < 0.99                      # a real, non-trivial value
    assert ssim(clean, noisy) == pytest.approx(ssim(noisy, clean), abs=1e-12)   # symmetric
    # grey input works the same as a one-channel image
    assert ssim(yn / 255, yc / 255) == pytest.approx(ref_y, abs=1e-10)


# ----------------------------------------------------------------------------- confusion matrix

def test_confusion_matrix_counts_accuracy_recall():
    cm = ConfusionMatrix(DEFAULT_WEATHER_CLASSES)
    cm.update(pred=[0, 1, 1, 2, 3], target=[0, 1, 2, 2, 3])
    cm.update('fog', 'fog')
    cm.update(torch.tensor([[0.1, 0.7, 0.0, 0.1, 0.1]]), torch.tensor([4]))   # scores -> argmax
    assert cm.total == 7
    assert cm.matrix[2, 1] == 1 and cm.matrix[3, 3] == 2 and cm.matrix[4, 1] == 1
    assert cm.accuracy() == pytest.approx(5 / 7)
    rec = cm.recall()
    assert rec['clear'] == 1.0 and rec['snow'] == 0.5 and rec['raindrop'] == 0.0
    assert cm.precision()['rain'] == pytest.approx(1 / 3)
    assert cm.balanced_accuracy() == pytest.approx((1 + 1 + 0.5 + 1 + 0) / 5)
    md = cm.to_markdown()
    assert '| true \\ pred | clear | rain | snow | fog | raindrop | n | recall |' in md
    assert '| snow | 0 | 1 | 1 | 0 | 0 | 2 | 0.500 |' in md
    assert 'accuracy: 0.714 (5/7)' in md
    d = json.loads(json.dumps(cm.to_dict()))
    assert d['matrix'][3][3] == 2 and d['accuracy'] == pytest.approx(5 / 7)
    with pytest.raises(ValueError, match='hail'):
        cm.update(['hail'], ['rain'])
    with pytest.raises(ValueError, match='index'):
        cm.update([7], [0])
    with pytest.raises(ValueError, match='2 labels'):
        cm.update([0, 1], [0])
    empty = ConfusionMatrix(('a', 'b'))
    assert math.isnan(empty.accuracy()) and empty.to_dict()['accuracy'] is None
    cm.reset()
    assert cm.total == 0


# ----------------------------------------------------------------------------- metric table

def test_metric_table_means_markdown_and_dict():
    t = MetricTable()
    t.add('snow', psnr=30.0, ssim=0.90)
    t.add('snow', psnr=32.0, ssim=0.94)
    t.add('rain', psnr=26.0, ssim=0.80)
    gm = t.group_means()
    assert list(gm) == ['snow', 'rain']
    assert gm['snow'] == {'psnr': pytest.approx(31.0), 'ssim': pytest.approx(0.92)}
    assert t.overall()['psnr'] == pytest.approx(88 / 3)
    assert t.macro()['psnr'] == pytest.approx(28.5)
    md = t.to_markdown('weather')
    assert md.splitlines()[0] == '| weather | n | psnr | ssim |'
    assert '| snow | 2 | 31.00 | 0.9200 |' in md
    assert '| **all** | 3 | 29.33 | 0.8800 |' in md
    assert '| **mean of groups** | 3 | 28.50 | 0.8600 |' in md
    d = json.loads(json.dumps(t.to_dict()))
    assert d['groups']['rain'] == {'n': 1, 'psnr': 26.0, 'ssim': 0.8}
    assert d['all']['n'] == 3 and d['mean_of_groups']['psnr'] == pytest.approx(28.5)
    t2 = MetricTable(metrics=['psnr', 'ssim'], groups=['clear', 'fog'])
    t2.add('fog', psnr=float('inf'))
    assert t2.to_dict()['groups']['fog']['psnr'] is None            # non-finite -> null
    assert t2.to_dict()['groups']['clear'] == {'n': 0, 'psnr': None, 'ssim': None}
    assert '| clear | 0 | - | - |' in t2.to_markdown()


# ----------------------------------------------------------------------------- baselines

def test_guided_filter_properties():
    rng = np.random.default_rng(0)
    guide = rng.random((30, 40))
    const = np.full((30, 40), 0.3)
    np.testing.assert_allclose(guided_filter(guide, const, 3, 1e-3), 0.3, atol=1e-9)
    # p == I with tiny eps: edge-preserving identity (a ~ 1, b ~ 0)
    step = np.zeros((30, 40))
    step[:, 20:] = 1.0
    np.testing.assert_allclose(guided_filter(step, step, 4, 1e-6), step, atol=1e-3)
    # huge eps: a -> 0, output -> box mean of box mean of p
    p = rng.random((30, 40))
    box = lambda x: cv2.boxFilter(x, cv2.CV_64F, (7, 7), borderType=cv2.BORDER_REFLECT)
    np.testing.assert_allclose(guided_filter(guide, p, 3, 1e9), box(box(p)), atol=1e-6)
    # colour guide: noise on p is smoothed while the guide's edge survives
    col = np.repeat(step[:, :, None], 3, axis=2) * np.array([1.0, 0.5, 0.2])
    noisy = step + rng.normal(0, 0.05, step.shape)
    out = guided_filter(col, noisy, 4, 1e-4)
    assert out.shape == step.shape
    assert np.abs(out - step).mean() < 0.5 * np.abs(noisy - step).mean()
    assert guided_filter(guide, np.dstack([p, p]), 3, 1e-3).shape == (30, 40, 2)


def _scene(h=96, w=128, seed=0):
    """Colourful blocks (each with a dark channel, as outdoor haze-free scenes have) + texture."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (6, 8, 3)).astype(np.float64)
    blocks[..., 0] *= rng.random((6, 8)) < 0.5
    j = cv2.resize(blocks, (w, h), interpolation=cv2.INTER_NEAREST)
    j = cv2.GaussianBlur(j, (0, 0), 2) + rng.normal(0, 6, j.shape)
    return np.clip(j, 0, 255).round().astype(np.uint8)


def test_dark_channel_dehaze_improves_psnr_on_scattering_model_haze():
    clean = _scene()
    J = clean.astype(np.float64) / 255
    h, w = J.shape[:2]
    depth = 0.3 + 1.5 * np.arange(w)[None, :] / w * np.ones((h, 1))
    t = np.exp(-depth)                                   # transmission 0.74 ... 0.17
    A = np.array([0.85, 0.87, 0.9])
    hazy = (J * t[..., None] + A * (1 - t[..., None])) * 255
    hazy = np.clip(hazy.round(), 0, 255).astype(np.uint8)
    out, t_est = dark_channel_dehaze(hazy, return_transmission=True)
    assert out.dtype == np.uint8 and out.shape == hazy.shape
    p_in, p_out = psnr(hazy, clean), psnr(out, clean)
    assert p_out > p_in + 5.0, (p_in, p_out)
    assert ssim(out, clean) > ssim(hazy, clean) + 0.1
    assert np.abs(t_est - t).mean() < 0.1


def test_median_derain_removes_thin_bright_streaks():
    rng = np.random.default_rng(1)
    clean = cv2.GaussianBlur(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8), (0, 0), 3)
    mask = np.zeros(clean.shape[:2], np.uint8)
    for _ in range(40):
        x0, y0 = int(rng.integers(0, 128)), int(rng.integers(-20, 96))
        length = int(rng.integers(8, 20))
        cv2.line(mask, (x0, y0), (int(x0 + 0.3 * length), y0 + length), 255, 1)
    rainy = np.clip(clean + (mask[..., None] / 255.0) * 120, 0, 255).astype(np.uint8)
    out = median_derain(rainy)
    assert out.dtype == np.uint8 and out.shape == rainy.shape
    streak = mask > 0
    err_in = np.abs(rainy.astype(float) - clean)[streak].mean()
    err_out = np.abs(out.astype(float) - clean)[streak].mean()
    assert err_out < 0.2 * err_in, (err_in, err_out)
    assert psnr(out, clean) > psnr(rainy, clean) + 10
    # a clean image passes almost unchanged (detail restored, not median-blurred)
    assert psnr(median_derain(clean), clean) > psnr(cv2.medianBlur(clean, 5), clean) + 5
    with pytest.raises(ValueError, match='odd'):
        median_derain(rainy, ksize=4)


def test_baselines_registry():
    x = _scene(40, 50)
    assert set(BASELINES) == {'input', 'dark_channel', 'median_guided'}
    for name, fn in BASELINES.items():
        y = fn(x)
        assert y.shape == x.shape and y.dtype == np.uint8, name
    ident = BASELINES['input'](x)
    assert np.array_equal(ident, x) and ident is not x
