"""RestorationEngine on CPU with the tiny checkpoint: batching, tiling, prior cache, skipping,
input checks, settings errors, memory, timings."""
import gc
import tracemalloc

import numpy as np
import pytest
import torch

from weather_restore_ros.checkpoint import load_checkpoint
from weather_restore_ros.engine import (STAGES, EngineError, RestorationEngine,
                                        resolve_device, resolve_precision)
from weather_restore_ros.factory import encoder_from_checkpoint
from weather_restore_ros.model.restorer import WeatherRestorer
from weather_restore_ros.prior_cache import RefreshPolicy

NO_AUTO_REFRESH = RefreshPolicy(every_n_frames=0, max_age_s=0, scene_cut_threshold=0)


pytestmark = pytest.mark.usefixtures('one_torch_thread')


@pytest.fixture(scope='module')
def ckpt(tiny_checkpoint):
    return load_checkpoint(tiny_checkpoint)


@pytest.fixture
def make_engine(ckpt):
    """An engine whose network visibly changes the image (the random-init head is ~identity)."""
    def make(**kw):
        model = WeatherRestorer(ckpt.config)
        model.load_state_dict(ckpt.restorer_state)
        torch.nn.init.normal_(model.head[-1].weight, std=0.1,
                              generator=torch.Generator().manual_seed(1))
        kw.setdefault('device', 'cpu')
        kw.setdefault('warmup', False)
        return RestorationEngine(model, encoder_from_checkpoint(ckpt), ckpt.class_names, **kw)
    return make


def smooth_frame(h, w, seed=0, noise=20):
    """A natural-ish frame: upscaled random colours plus noise."""
    import cv2
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.integers(0, 256, (max(2, h // 6), max(2, w // 6), 3), np.uint8),
                      (w, h), interpolation=cv2.INTER_CUBIC).astype(int)
    return (base + rng.integers(-noise, noise + 1, base.shape)).clip(0, 255).astype(np.uint8)


def diff(a, b):
    d = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return int(d.max()), float(d.mean())


# ----------------------------------------------------------------------------- results
def test_result_fields_and_timings(tiny_checkpoint):
    engine = RestorationEngine.from_checkpoint(str(tiny_checkpoint), device='cpu',
                                               warmup_shape=(32, 48))
    assert engine.warmup_ms > 0 and engine.streams() == []   # warm-up stream is dropped
    assert engine.device == torch.device('cpu') and engine.dtype == torch.float32
    assert engine.precision == 'fp32'
    frame = smooth_frame(40, 56)
    r = engine.restore(frame, 'cam')
    assert r.image.shape == (40, 56, 3) and r.image.dtype == np.uint8
    assert r.image.flags['C_CONTIGUOUS']
    assert r.mask.shape == (40, 56) and r.mask.dtype == np.uint8
    assert r.label in engine.class_names and list(r.scores) == list(engine.class_names)
    assert r.scores[r.label] == max(r.scores.values())
    assert sum(r.scores.values()) == pytest.approx(1.0, abs=1e-5)
    assert r.prior_refreshed == 'empty' and not r.skipped
    assert set(r.timings_ms) == set(STAGES)
    assert all(v >= 0 for v in r.timings_ms.values())
    assert r.timings_ms['total'] == pytest.approx(
        sum(v for k, v in r.timings_ms.items() if k != 'total'))
    assert engine.classify_cached('cam') == (r.label, pytest.approx(r.scores))
    assert engine.classify_cached('other') is None
    assert engine.restore_batch([]) == []


# ----------------------------------------------------------------------------- batching
def test_batch_equals_per_frame(make_engine):
    policy = RefreshPolicy(every_n_frames=3, max_age_s=0, scene_cut_threshold=0.05)
    batched, single = make_engine(refresh=policy), make_engine(refresh=policy)
    base_b, base_c = smooth_frame(40, 56, 2), smooth_frame(24, 40, 3)
    rng = np.random.default_rng(9)

    def jitter(f):
        return (f.astype(int) + rng.integers(-3, 4, f.shape)).clip(0, 255).astype(np.uint8)

    reasons = []
    for k in range(7):
        base_a = smooth_frame(40, 56, 1 if k < 5 else 7)  # a scene cut on stream a only
        frames = [('a', jitter(base_a)), ('c', jitter(base_c)), ('b', jitter(base_b))]
        got = batched.restore_batch(frames)
        want = [single.restore(f, s) for s, f in frames]
        for g, w in zip(got, want):
            assert g.prior_refreshed == w.prior_refreshed
            assert np.array_equal(g.image, w.image)
            assert np.array_equal(g.mask, w.mask)
            assert g.label == w.label
            assert g.scores == pytest.approx(w.scores, abs=1e-6)
        reasons.append([g.prior_refreshed for g in got])
    assert reasons[0] == ['empty'] * 3
    assert reasons[3] == ['frames'] * 3
    assert reasons[5] == ['scene', None, None]
    assert reasons[6] == [None, 'frames', 'frames']
    assert [r for row in reasons for r in row].count(None) == 21 - 9
    for name in 'abc':
        got, want = batched.cache(name).stats(), single.cache(name).stats()
        got.pop('age_s'), want.pop('age_s')
        assert got == want


def test_one_frame_per_stream_per_batch(make_engine):
    engine = make_engine()
    with pytest.raises(EngineError, match='one frame per stream'):
        engine.restore_batch([('a', smooth_frame(16, 16)), ('a', smooth_frame(16, 16))])


def nan_for(model, bad_frames):
    """Make ``model`` return NaN (image and logits) for the given batch rows, as a blown-up
    network does."""
    forward = model.forward

    def patched(x, emb):
        out = forward(x, emb)
        image, logits = out.image.clone(), out.logits.clone()
        rows = [i for i in bad_frames if i < len(image)]
        image[rows, :, :4, :4] = float('nan')
        logits[rows] = float('nan')
        return out._replace(image=image, logits=logits)
    model.forward = patched


def test_non_finite_output_passes_that_frame_through_and_says_so(make_engine):
    engine = make_engine(refresh=NO_AUTO_REFRESH)
    frames = [smooth_frame(40, 56, seed) for seed in (1, 2, 3)]
    clean = engine.restore_batch([(f'c{i}', f) for i, f in enumerate(frames)])
    nan_for(engine.model, [1])
    out = engine.restore_batch([(f'c{i}', f) for i, f in enumerate(frames)])
    assert [r.invalid_output for r in out] == [False, True, False]
    assert np.array_equal(out[1].image, frames[1])          # the input, bit for bit
    assert not out[1].mask.any()
    assert out[1].scores == pytest.approx({c: 1 / len(engine.class_names)
                                           for c in engine.class_names})
    for i in (0, 2):                                         # its batch mates are unaffected
        assert np.array_equal(out[i].image, clean[i].image) and not clean[i].invalid_output


def test_batch_over_max_pixels_is_split(make_engine):
    frames = [(f's{i}', smooth_frame(32, 32, i)) for i in range(3)]
    whole = make_engine().restore_batch(frames)
    split = make_engine(max_pixels=2 * 32 * 32).restore_batch(frames)  # 2 frames per pass
    for a, b in zip(whole, split):
        assert np.array_equal(a.image, b.image) and a.scores == pytest.approx(b.scores)


# ----------------------------------------------------------------------------- oversize
def test_tiled_matches_untiled(make_engine):
    frame = smooth_frame(150, 200, 4)
    full = make_engine(refresh=NO_AUTO_REFRESH).restore(frame, 's')
    assert diff(full.image, frame)[1] > 2     # the network really changes the image
    tiled_engine = make_engine(refresh=NO_AUTO_REFRESH, max_pixels=64 * 64, tile_size=64,
                               tile_overlap=24)
    t, ov, rows, cols = tiled_engine.tile_layout(150, 200)
    assert (t, ov) == (64, 24) and len(rows) * len(cols) == 20
    assert all(y0 % tiled_engine.model.stride == 0 for y0, _ in rows)
    tiled = tiled_engine.restore(frame, 's')
    assert tiled.image.shape == frame.shape and tiled.mask.shape == frame.shape[:2]
    # Measured: max 1, mean ~1e-5 grey levels (float: max ~5e-7): the tiny network's receptive
    # field (~6 px) fits in the zero-weight quarter (6 px) of the 24 px overlap.
    max_d, mean_d = diff(tiled.image, full.image)
    assert max_d <= 1 and mean_d < 1e-3, (max_d, mean_d)
    assert diff(tiled.mask, full.mask)[0] <= 1
    assert tiled.label == full.label  # logits are averaged over the tiles
    # A small overlap still gives seam-free output close to the untiled one.
    small = make_engine(refresh=NO_AUTO_REFRESH, max_pixels=48 * 48, tile_size=48,
                        tile_overlap=8).restore(frame, 's')
    max_d, mean_d = diff(small.image, full.image)
    assert max_d <= 3 and mean_d < 0.1, (max_d, mean_d)


def test_tile_layout_respects_max_pixels_and_stride(make_engine):
    engine = make_engine(max_pixels=1000, tile_size=512, tile_overlap=64)
    t, ov, rows, cols = engine.tile_layout(100, 90)
    assert t * t <= 1000 and t % engine.model.stride == 0
    assert 2 * ov < t and ov % engine.model.stride == 0
    for spans, n in ((rows, 100), (cols, 90)):
        assert spans[0][0] == 0 and spans[-1][1] == n
        assert all(b[0] < a[1] for a, b in zip(spans, spans[1:]))  # they overlap
    out = engine.restore(smooth_frame(100, 90), 's')
    assert out.image.shape == (100, 90, 3)
    engine.max_pixels = 10 ** 6      # runtime change: no tiling any more
    assert engine.restore(smooth_frame(100, 90), 's').image.shape == (100, 90, 3)


def test_downscale_mode(make_engine):
    frame = smooth_frame(120, 160, 5)
    engine = make_engine(max_pixels=40 * 30, oversize='downscale')
    r = engine.restore(frame, 's')
    assert r.image.shape == frame.shape and r.image.dtype == np.uint8
    assert r.mask.shape == frame.shape[:2]
    assert 0 <= r.image.min() and r.image.max() <= 255 and r.mask.max() <= 255
    max_d, mean_d = diff(r.image, frame)
    assert 0 < mean_d < 40  # restored, and the full-resolution detail is kept
    # Extreme aspect ratio: the small side never reaches 0 pixels.
    thin = engine.restore(smooth_frame(3, 2000, 6), 't')
    assert thin.image.shape == (3, 2000, 3)


def test_oversize_setting_is_validated(make_engine):
    engine = make_engine()
    with pytest.raises(EngineError, match='oversize'):
        engine.oversize = 'crop'
    with pytest.raises(EngineError, match='max_pixels'):
        engine.max_pixels = 0
    with pytest.raises(EngineError, match='oversize'):
        make_engine(oversize='crop')
    with pytest.raises(EngineError, match='tile_size'):
        make_engine(tile_size=64, tile_overlap=32)


# ----------------------------------------------------------------------------- prior cache
def test_prior_cache_is_per_stream(make_engine):
    engine = make_engine(refresh=RefreshPolicy(every_n_frames=2, max_age_s=0,
                                               scene_cut_threshold=0.05))
    fa, fb = smooth_frame(32, 48, 1), smooth_frame(32, 48, 2)
    assert engine.restore(fa, 'A').prior_refreshed == 'empty'
    assert engine.restore(fb, 'B').prior_refreshed == 'empty'
    emb_b = engine.cache('B').embedding.clone()
    # A: a scene cut, then the frame counter -> two refreshes; B is untouched by them.
    assert engine.restore(smooth_frame(32, 48, 3), 'A').prior_refreshed == 'scene'
    assert engine.restore(smooth_frame(32, 48, 3), 'A').prior_refreshed is None
    assert engine.restore(smooth_frame(32, 48, 3), 'A').prior_refreshed == 'frames'
    assert engine.cache('B').stats()['refreshes'] == 1
    assert engine.cache('B').stats()['frames'] == 1
    assert torch.equal(engine.cache('B').embedding, emb_b)
    assert engine.restore(fb, 'B').prior_refreshed is None
    assert engine.cache('A').stats()['reasons'] == {'empty': 1, 'frames': 1, 'age': 0,
                                                    'scene': 1}
    # The setter reaches the caches of existing streams (and new ones).
    every = RefreshPolicy(every_n_frames=1, max_age_s=0, scene_cut_threshold=0)
    engine.refresh_policy = every
    assert engine.cache('A').policy is every and engine.cache('B').policy is every
    assert engine.cache('new').policy is every
    assert engine.restore(fb, 'B').prior_refreshed == 'frames'
    with pytest.raises(TypeError):
        engine.refresh_policy = {'every_n_frames': 1}
    engine.forget_stream('A')
    assert 'A' not in engine.streams()
    assert engine.restore(fa, 'A').prior_refreshed == 'empty'


# ----------------------------------------------------------------------------- skip when clear
def test_skip_when_clear(make_engine):
    engine = make_engine(refresh=RefreshPolicy(every_n_frames=3, max_age_s=0,
                                               scene_cut_threshold=0),
                         skip_clear_threshold=1e-6)   # any 'clear' score counts as clear
    frames = [smooth_frame(32, 48, i) for i in range(4)]
    first = engine.restore(frames[0], 's')
    assert first.prior_refreshed == 'empty' and not first.skipped   # refresh frames always run
    assert diff(first.image, frames[0])[1] > 1
    second = engine.restore(frames[1], 's')
    assert second.skipped and second.prior_refreshed is None
    assert np.array_equal(second.image, frames[1])            # passed through, bit for bit
    assert not second.mask.any()
    assert second.label == first.label and second.scores == pytest.approx(first.scores)
    assert engine.restore(frames[2], 's').skipped
    third = engine.restore(frames[3], 's')
    assert third.prior_refreshed == 'frames' and not third.skipped

    # Forced probabilities: clear above the threshold skips, below runs; a batch mixes both.
    engine.skip_clear_threshold = 0.9
    clear = torch.tensor([0.95, 0.05, 0, 0, 0])
    engine.cache('s').probs = clear
    engine.restore(frames[0], 'rainy')
    engine.cache('rainy').probs = torch.tensor([0.1, 0.9, 0, 0, 0])
    r_s, r_rainy = engine.restore_batch([('s', frames[1]), ('rainy', frames[2])])
    assert r_s.skipped and r_s.label == 'clear' and np.array_equal(r_s.image, frames[1])
    assert not r_rainy.skipped and r_rainy.label in engine.class_names
    # A network failure on the frame that runs leaves the skipped one alone.
    nan_for(engine.model, [0])          # row 0 of the network's batch: 'rainy'
    r_s, r_rainy = engine.restore_batch([('s', frames[1]), ('rainy', frames[2])])
    assert r_s.skipped and not r_s.invalid_output and np.array_equal(r_s.image, frames[1])
    assert r_rainy.invalid_output and np.array_equal(r_rainy.image, frames[2])
    engine.skip_clear_threshold = 0.0   # 0 disables skipping
    assert not engine.restore(frames[1], 's').skipped


# ----------------------------------------------------------------------------- input checks
def test_grey_and_rgba_inputs(make_engine):
    engine = make_engine()
    rgb = smooth_frame(32, 48)
    grey = rgb[..., 1].copy()
    want_grey = engine.restore(np.repeat(grey[..., None], 3, axis=2), 'g3')
    for i, g in enumerate((grey, grey[..., None])):
        r = engine.restore(g, f'g{i}')
        assert r.image.shape == (32, 48, 3)
        assert np.array_equal(r.image, want_grey.image)
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)])
    assert np.array_equal(engine.restore(rgba, 'rgba').image, engine.restore(rgb, 'rgb').image)
    # Non-contiguous and read-only views (zero-copy message buffers) are fine.
    bgr_view = rgb[:, ::-1]
    engine.restore(bgr_view, 'view')
    ro = rgb.copy()
    ro.flags.writeable = False
    engine.restore(ro, 'ro')


@pytest.mark.parametrize('bad', [
    np.zeros((8, 8, 3), np.float32), np.zeros((8, 8, 3), np.uint16), np.zeros((8, 8, 3), bool),
    [[0, 1], [2, 3]], np.zeros((8, 8, 2), np.uint8), np.zeros((8, 8, 3, 1), np.uint8),
    np.zeros((8,), np.uint8), np.zeros((0, 0, 3), np.uint8), np.zeros((0, 5), np.uint8),
])
def test_invalid_frames_raise_engine_error(make_engine, bad):
    engine = make_engine()
    with pytest.raises(EngineError):
        engine.restore(bad, 'x')
    assert 'x' not in engine.streams()   # a bad frame does not touch the stream's prior


# ----------------------------------------------------------------------------- settings
def test_device_and_precision_errors(tiny_checkpoint, make_engine):
    with pytest.raises(EngineError, match='fp16 runs only on CUDA'):
        resolve_precision('fp16', torch.device('cpu'))
    with pytest.raises(EngineError, match='fp16 runs only on CUDA'):
        RestorationEngine.from_checkpoint(str(tiny_checkpoint), device='cpu', precision='fp16')
    with pytest.raises(EngineError, match='precision must be one of'):
        make_engine(precision='fp64')
    with pytest.raises(EngineError, match='device must be'):
        resolve_device('gpu')
    with pytest.raises(EngineError, match='device must be'):
        resolve_device('meta')
    assert resolve_device('cpu') == torch.device('cpu')
    if not torch.cuda.is_available():
        assert resolve_device('auto') == torch.device('cpu')
        for dev in ('cuda', 'cuda:1'):
            with pytest.raises(EngineError, match='CUDA is not available'):
                RestorationEngine.from_checkpoint(str(tiny_checkpoint), device=dev)
    with pytest.raises(EngineError, match='zero_shot'):   # the tiny CLIP has no text tower
        make_engine(classifier='zero_shot')
    with pytest.raises(EngineError, match='classifier'):
        make_engine(classifier='knn')


def test_bf16_on_cpu_runs(make_engine):
    frame = smooth_frame(32, 48)
    r = make_engine(precision='bf16').restore(frame)
    ref = make_engine().restore(frame)
    assert r.image.dtype == np.uint8 and diff(r.image, ref.image)[1] < 2


# ----------------------------------------------------------------------------- memory
def test_memory_is_flat_over_repeated_calls(make_engine):
    engine = make_engine(refresh=RefreshPolicy(every_n_frames=10, max_age_s=0,
                                               scene_cut_threshold=0))
    frame = smooth_frame(96, 128)   # one leaked uint8 result = 37 KB, one float image 147 KB

    def rss_mb():
        with open('/proc/self/statm') as f:
            return int(f.read().split()[1]) * 4096 / 2 ** 20

    for _ in range(10):
        engine.restore(frame, 'cam')
    gc.collect()
    rss0 = rss_mb()
    tracemalloc.start()
    try:
        traced0 = tracemalloc.get_traced_memory()[0]
        for _ in range(30):
            engine.restore(frame, 'cam')
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - traced0
    finally:
        tracemalloc.stop()
    rss_grown = rss_mb() - rss0
    # Measured: ~10 KB of torch-internal caches that level off; RSS < 1 MB.
    assert grown < 64 * 1024, grown
    assert rss_grown < 16, rss_grown


@pytest.mark.parametrize('max_pixels', [None, 64 * 64])    # one pass / tiled
def test_mask_head_checkpoint_publishes_its_mask(ckpt, max_pixels):
    """A network with a mask head changes only where its mask is open, and the engine returns
    that mask (not the SAR gate): shut everywhere, the frame comes back bit-exact."""
    cfg = ckpt.config.replace(mask_head=True)
    model = WeatherRestorer(cfg)
    model.load_state_dict(ckpt.restorer_state, strict=False)
    torch.nn.init.normal_(model.head[-1].weight, std=0.1,
                          generator=torch.Generator().manual_seed(1))
    kw = {'max_pixels': max_pixels, 'tile_size': 64, 'tile_overlap': 24} if max_pixels else {}
    engine = RestorationEngine(model, encoder_from_checkpoint(ckpt), ckpt.class_names,
                               device='cpu', warmup=False, refresh=NO_AUTO_REFRESH, **kw)
    frame = smooth_frame(150, 200, 4)
    opened = engine.restore(frame, 's')
    assert diff(opened.image, frame)[1] > 2 and opened.mask.min() >= 240   # starts open
    with torch.no_grad():
        model.mask_head.bias.fill_(-30.0)
    shut = engine.restore(frame, 's')
    assert np.array_equal(shut.image, frame) and shut.mask.max() == 0
