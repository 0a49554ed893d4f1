"""The CUDA paths, on a machine with a GPU (CI has none: every test here skips without one).

What the CPU suite cannot see: the pinned, non-blocking upload (a reused staging buffer that
is rewritten too early corrupts the *next* frame, not this one), fp16/bf16 numerics of the
shipped model, tiling and multi-camera batching on the device, AMP training, and the node on
``device: cuda``.
"""
import cv2
import numpy as np
import pytest
import torch

from weather_restore_ros.engine import RestorationEngine
from weather_restore_ros.prior_cache import RefreshPolicy
from weather_restore_ros.synth.compose import synthesize
from weather_restore_ros.synth.samples import sample_images

from test_training import photos  # noqa: F401  (fixture: the CPU training tests' photo folder)

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')

EVERY_FRAME = RefreshPolicy(every_n_frames=1)   # each frame gets its own prior: no history


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float('inf') if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


@pytest.fixture(scope='module')
def frames():
    """Six weather frames (480x640) from the packaged photos: real content, real weather."""
    out = []
    for i, (_, img) in enumerate(sample_images(['china', 'rocket', 'chelsea'])):
        img = cv2.resize(img, (640, 480), interpolation=cv2.INTER_AREA)
        for weather in ('rain', 'fog'):
            out.append(synthesize(img, weather, rng=i)[0])
    return out


@pytest.fixture(scope='module')
def cpu_reference(frames):
    engine = RestorationEngine.from_checkpoint(None, device='cpu', refresh=EVERY_FRAME,
                                               warmup=False)
    return [engine.restore(f, f's{i}') for i, f in enumerate(frames)]


@pytest.mark.parametrize('precision,min_db', [('fp32', 45.0), ('fp16', 38.0), ('bf16', 30.0)])
def test_shipped_model_on_cuda_matches_cpu(frames, cpu_reference, precision, min_db):
    engine = RestorationEngine.from_checkpoint(None, device='cuda', precision=precision,
                                               refresh=EVERY_FRAME)
    assert engine.warmup_ms > 0
    for i, (f, ref) in enumerate(zip(frames, cpu_reference)):
        r = engine.restore(f, f's{i}')
        assert r.image.dtype == np.uint8 and r.image.shape == f.shape
        assert psnr(r.image, ref.image) > min_db, (precision, i, psnr(r.image, ref.image))
        assert psnr(r.mask, ref.mask) > min_db - 10
        assert r.label == ref.label or max(ref.scores.values()) < 0.6
        assert r.scores == pytest.approx(ref.scores, abs=0.05)


def test_reused_pinned_buffer_never_leaks_into_the_next_frame(frames):
    """One stream, frames back to back (each upload reuses the stream's pinned buffer while the
    previous copy may still run): every result equals that frame restored on its own."""
    engine = RestorationEngine.from_checkpoint(None, device='cuda', precision='fp32',
                                               refresh=EVERY_FRAME)
    alone = [engine.restore(f, f'alone{i}').image for i, f in enumerate(frames)]
    for _ in range(3):
        seq = [engine.restore(f, 'cam').image for f in frames]
        for i, (a, b) in enumerate(zip(seq, alone)):
            assert psnr(a, b) > 50, (i, psnr(a, b))


def test_cameras_batched_on_cuda_equal_one_at_a_time(frames):
    engine = RestorationEngine.from_checkpoint(None, device='cuda', refresh=EVERY_FRAME)
    batch = engine.restore_batch([(f'cam{i}', f) for i, f in enumerate(frames[:4])])
    for i, (f, r) in enumerate(zip(frames, batch)):
        single = engine.restore(f, f'single{i}')
        assert psnr(r.image, single.image) > 40 and r.label == single.label


def test_oversize_frame_tiled_on_cuda_matches_untiled(frames):
    big = cv2.resize(frames[0], (1280, 960), interpolation=cv2.INTER_CUBIC)
    full = RestorationEngine.from_checkpoint(None, device='cuda', precision='fp32',
                                             refresh=EVERY_FRAME).restore(big)
    tiled_engine = RestorationEngine.from_checkpoint(
        None, device='cuda', precision='fp32', refresh=EVERY_FRAME, max_pixels=512 * 512)
    tiled = tiled_engine.restore(big)
    assert len(tiled_engine.tile_layout(960, 1280)[2]) > 1
    assert psnr(tiled.image, full.image) > 35 and tiled.label == full.label


def test_amp_training_steps_reduce_the_loss_and_load_on_cpu(tmp_path, photos):
    from test_training import losses, tiny_config   # same tiny run as the CPU test
    from weather_restore_ros.training.config import TrainConfig
    from weather_restore_ros.training.trainer import Trainer

    cfg = TrainConfig(**tiny_config(tmp_path / 'run', photos, steps=30, ckpt_every=30))
    trainer = Trainer(cfg, device='cuda')
    assert trainer.amp and trainer.scaler.is_enabled()
    trainer.train(progress=False)
    trainer.close()
    total = losses(trainer.out)
    assert np.mean([total[s] for s in range(21, 31)]) < 0.75 * np.mean(
        [total[s] for s in range(1, 6)])
    engine = RestorationEngine.from_checkpoint(str(trainer.out / 'last.safetensors'),
                                               device='cpu', warmup=False)
    assert engine.restore(np.full((32, 48, 3), 100, np.uint8)).image.shape == (32, 48, 3)
