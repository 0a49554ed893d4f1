"""The onnxruntime backend behind the engine: the same restore_batch contract as torch -- prior
cache, batching, tiling, downscaling, skip-when-clear, the invalid-output and harm guards --
and the same frames (real forward passes of both; the bound is 1 grey level mean)."""
import numpy as np
import pytest
import torch

from onnx_helpers import require_onnxruntime
from tiny_model import make_provoked_checkpoint, make_tiny_checkpoint, speckle_frame

require_onnxruntime()

from weather_restore_ros.backends.onnx_export import MANIFEST, read_manifest  # noqa: E402
from weather_restore_ros.backends.ort_backend import choose_providers  # noqa: E402
from weather_restore_ros.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from weather_restore_ros.engine import EngineError, RestorationEngine  # noqa: E402
from weather_restore_ros.prior_cache import RefreshPolicy  # noqa: E402

pytestmark = pytest.mark.usefixtures('one_torch_thread')
NO_AUTO_REFRESH = RefreshPolicy(every_n_frames=0, max_age_s=0, scene_cut_threshold=0)


@pytest.fixture(scope='module')
def visible(tmp_path_factory):
    """A tiny checkpoint whose network visibly changes frames, and a folder for its graphs."""
    root = tmp_path_factory.mktemp('ort')
    return make_tiny_checkpoint(root / 'visible.safetensors', head_std=0.1), root / 'onnx'


def pair(ckpt, onnx_dir, **kw):
    kw.setdefault('device', 'cpu')
    kw.setdefault('warmup', False)
    return (RestorationEngine.from_checkpoint(str(ckpt), **kw),
            RestorationEngine.from_checkpoint(str(ckpt), backend='onnxruntime',
                                              onnx_dir=str(onnx_dir), threads=1, **kw))


def smooth_frame(h, w, seed=0):
    import cv2
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.integers(0, 256, (max(2, h // 6), max(2, w // 6), 3), np.uint8),
                      (w, h), interpolation=cv2.INTER_CUBIC).astype(int)
    return (base + rng.integers(-20, 21, base.shape)).clip(0, 255).astype(np.uint8)


def diff(a, b):
    d = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return int(d.max()), float(d.mean())


def assert_same(r_torch, r_ort, frame=None):
    max_d, mean_d = diff(r_torch.image, r_ort.image)
    assert mean_d <= 1.0 and max_d <= 2, (max_d, mean_d)
    assert diff(r_torch.mask, r_ort.mask)[0] <= 2
    assert r_torch.label == r_ort.label
    assert r_ort.scores == pytest.approx(r_torch.scores, abs=1e-4)
    for flag in ('prior_refreshed', 'skipped', 'invalid_output', 'unsafe_output'):
        assert getattr(r_torch, flag) == getattr(r_ort, flag), flag
    if frame is not None:   # the comparison is not between two identities
        assert diff(r_ort.image, frame)[1] > 2


def test_backend_choice_threads_and_graph_reuse(visible, caplog):
    ckpt, onnx_dir = visible
    logs = []
    engine = RestorationEngine.from_checkpoint(str(ckpt), device='cpu', warmup=False,
                                               backend='onnxruntime', onnx_dir=str(onnx_dir),
                                               threads=1, log=logs.append)
    assert engine.backend.name == 'onnxruntime' and engine.backend.providers == [
        'CPUExecutionProvider']
    session = engine.backend._restorer.session
    assert session.get_session_options().intra_op_num_threads == 1
    assert any('exporting' in line for line in logs)              # first use: exported
    assert any('CPUExecutionProvider; 1 thread' in line for line in logs)
    stamp = (onnx_dir / MANIFEST).stat().st_mtime_ns
    logs.clear()
    again = RestorationEngine.from_checkpoint(str(ckpt), device='cpu', warmup=False,
                                              backend='onnxruntime', onnx_dir=str(onnx_dir),
                                              threads=2, log=logs.append)
    assert not any('exporting' in line for line in logs)           # reused as they are
    assert (onnx_dir / MANIFEST).stat().st_mtime_ns == stamp
    assert again.backend._restorer.session.get_session_options().intra_op_num_threads == 2
    assert RestorationEngine.from_checkpoint(str(ckpt), device='cpu', warmup=False
                                             ).backend.name == 'torch'     # the default
    # providers: TensorRT -> CUDA -> CPU as available, GPU ones only for a CUDA engine
    every = ['CPUExecutionProvider', 'CUDAExecutionProvider', 'TensorrtExecutionProvider']
    cuda = torch.device('cuda', 0)
    assert choose_providers(every, cuda) == ['TensorrtExecutionProvider',
                                             'CUDAExecutionProvider', 'CPUExecutionProvider']
    assert choose_providers(every[:2], cuda) == ['CUDAExecutionProvider', 'CPUExecutionProvider']
    assert choose_providers(['CPUExecutionProvider'], cuda) == ['CPUExecutionProvider']
    assert choose_providers(every, torch.device('cpu')) == ['CPUExecutionProvider']


def test_default_cache_folder_is_keyed_by_the_weights(visible, tmp_path, monkeypatch):
    monkeypatch.setenv('WEATHER_RESTORE_ONNX_CACHE', str(tmp_path))
    ckpt, _ = visible
    engine = RestorationEngine.from_checkpoint(str(ckpt), device='cpu', warmup=False,
                                               backend='onnxruntime')
    folders = list(tmp_path.iterdir())
    assert [engine.backend.directory] == folders
    manifest = read_manifest(folders[0])
    assert folders[0].name == manifest['source']['weights_sha256'][:16]
    other = make_tiny_checkpoint(tmp_path.parent / 'other.safetensors', seed=5)
    RestorationEngine.from_checkpoint(str(other), device='cpu', warmup=False,
                                      backend='onnxruntime')
    assert len(list(tmp_path.iterdir())) == 2                      # other weights, other folder


def test_a_folder_of_other_weights_is_refused_not_overwritten(visible, tmp_path):
    ckpt, onnx_dir = visible
    RestorationEngine.from_checkpoint(str(ckpt), device='cpu', warmup=False,
                                      backend='onnxruntime', onnx_dir=str(onnx_dir))
    other = make_tiny_checkpoint(tmp_path / 'other.safetensors', seed=7)
    before = (onnx_dir / MANIFEST).read_bytes()
    with pytest.raises(EngineError, match='exported from other weights'):
        RestorationEngine.from_checkpoint(str(other), device='cpu', warmup=False,
                                          backend='onnxruntime', onnx_dir=str(onnx_dir))
    assert (onnx_dir / MANIFEST).read_bytes() == before
    with pytest.raises(EngineError, match='fp32 or fp16'):
        RestorationEngine.from_checkpoint(str(ckpt), device='cpu', warmup=False,
                                          precision='bf16', backend='onnxruntime',
                                          onnx_dir=str(onnx_dir))
    with pytest.raises(EngineError, match='backend must be one of'):
        RestorationEngine.from_checkpoint(str(ckpt), device='cpu', backend='tensorflow')


def test_batches_odd_sizes_tiles_and_downscaling_match_torch(visible):
    ckpt, onnx_dir = visible
    t, o = pair(ckpt, onnx_dir, refresh=NO_AUTO_REFRESH)
    # a batch of three cameras at a size that is not a multiple of the stride (padding)
    frames = [(f'c{i}', smooth_frame(45, 67, i)) for i in range(3)]
    for a, b, (_, f) in zip(t.restore_batch(frames), o.restore_batch(frames), frames):
        assert_same(a, b, f)
    assert torch.allclose(t.cache('c1').embedding, o.cache('c1').embedding, atol=1e-5)
    # grey and RGBA frames are converted before the backend sees them
    grey = frames[0][1][..., 1].copy()
    assert_same(t.restore(grey, 'g'), o.restore(grey, 'g'))
    big = smooth_frame(150, 200, 4)
    tiled = pair(ckpt, onnx_dir, refresh=NO_AUTO_REFRESH, max_pixels=64 * 64, tile_size=64,
                 tile_overlap=24)
    assert len(tiled[1].tile_layout(150, 200)[2]) > 1
    assert_same(tiled[0].restore(big, 's'), tiled[1].restore(big, 's'), big)
    small = pair(ckpt, onnx_dir, refresh=NO_AUTO_REFRESH, max_pixels=40 * 30,
                 oversize='downscale')
    assert_same(small[0].restore(big, 's'), small[1].restore(big, 's'), big)
    # a batch over max_pixels is split into passes, the same way on both
    split = pair(ckpt, onnx_dir, refresh=NO_AUTO_REFRESH, max_pixels=2 * 45 * 67)
    for a, b in zip(split[0].restore_batch(frames), split[1].restore_batch(frames)):
        assert_same(a, b)


def test_prior_refresh_and_skip_when_clear_follow_the_same_frames(visible):
    ckpt, onnx_dir = visible
    policy = RefreshPolicy(every_n_frames=3, max_age_s=0, scene_cut_threshold=0.05)
    t, o = pair(ckpt, onnx_dir, refresh=policy, skip_clear_threshold=1e-6)
    frames = [smooth_frame(32, 48, i // 2) for i in range(8)]   # pairs, then scene cuts
    skipped = []
    for frame in frames:
        a, b = t.restore(frame, 'cam'), o.restore(frame, 'cam')
        assert_same(a, b)
        skipped.append(b.skipped)
        if b.skipped:
            assert np.array_equal(b.image, frame) and not b.mask.any()
    assert any(skipped) and not all(skipped)
    stats = [{k: v for k, v in e.cache('cam').stats().items() if k != 'age_s'} for e in (t, o)]
    assert stats[0] == stats[1] and stats[1]['reasons']['scene'] > 0
    assert o.classify_cached('cam')[0] == t.classify_cached('cam')[0]


def test_a_network_that_gives_nan_passes_the_frame_through(tmp_path):
    """NaN in an encoder weight, as a blown-up fine-tune has: both backends publish the
    input, flagged invalid, with uniform scores."""
    ckpt = load_checkpoint(make_tiny_checkpoint(tmp_path / 'nan.safetensors'))
    key = next(k for k, v in ckpt.restorer_state.items()
               if k.startswith('encoder') and v.dim() == 4)
    ckpt.restorer_state[key][0].fill_(float('nan'))
    path = save_checkpoint(tmp_path / 'nan.safetensors', ckpt)
    frame = smooth_frame(40, 56, 1)
    for engine in pair(path, tmp_path / 'onnx'):
        r = engine.restore(frame, 's')
        assert r.invalid_output and np.array_equal(r.image, frame) and not r.mask.any()
        assert r.scores == pytest.approx({c: 0.2 for c in engine.class_names})


def test_the_harm_guard_catches_the_same_speckle(tmp_path):
    path = make_provoked_checkpoint(tmp_path / 'blown.safetensors')
    frame = speckle_frame()
    t, o = pair(path, tmp_path / 'onnx')
    a, b = t.restore(frame, 's'), o.restore(frame, 's')
    assert a.unsafe_output and b.unsafe_output
    assert b.replaced_fraction == pytest.approx(a.replaced_fraction, abs=0.02)
    assert diff(a.image, b.image)[1] <= 1.0
    t.harm_guard = o.harm_guard = False
    for e in (t, o):
        e.forget_stream('s')
    assert not o.restore(frame, 's').unsafe_output
