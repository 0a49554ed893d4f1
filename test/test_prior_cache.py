"""PriorCache refresh policy with a fake clock; numpy and torch values alike."""
import subprocess
import sys
import threading

import numpy as np
import pytest

from weather_restore_ros.prior_cache import (
    PriorCache, RefreshPolicy, scene_thumbnail, thumbnail_distance)


class FakeClock:
    def __init__(self, t=100.0):
        self.t = t

    def __call__(self):
        return self.t

    def advance(self, dt):
        self.t += dt


def run(cache, thumbs, clock=None, dt=0.0, embed=lambda i: np.full(4, float(i))):
    """Feed frames; store a new prior whenever the cache asks. Returns the reasons."""
    reasons = []
    for i, th in enumerate(thumbs):
        r = cache.check(th)
        if r is not None:
            cache.store(embed(i), th)
        reasons.append(r)
        if clock is not None:
            clock.advance(dt)
    return reasons


STATIC = np.full((16, 16), 0.5, np.float32)


# ---------------------------------------------------------------------- policy
def test_policy_defaults_and_validation():
    p = RefreshPolicy()
    assert (p.every_n_frames, p.max_age_s, p.scene_cut_threshold, p.ema) == (30, 2.0, 0.12, 0.0)
    assert p.enabled_triggers == ('frames', 'age', 'scene')
    assert RefreshPolicy(0, 0, 0).enabled_triggers == ()
    for bad in (dict(every_n_frames=-1), dict(max_age_s=-0.1), dict(scene_cut_threshold=-1),
                dict(ema=-0.5), dict(ema=1.0), dict(max_age_s=float('nan')),
                dict(every_n_frames=2.5), dict(max_age_s='2')):
        with pytest.raises(ValueError):
            RefreshPolicy(**bad)


# ---------------------------------------------------------------------- triggers
def test_empty_then_every_n_frames():
    cache = PriorCache(RefreshPolicy(every_n_frames=10, max_age_s=0, scene_cut_threshold=0),
                       clock=FakeClock())
    reasons = run(cache, [STATIC] * 100)
    assert reasons[0] == 'empty'
    assert [i for i, r in enumerate(reasons) if r] == list(range(0, 100, 10))
    assert set(reasons[1:]) == {None, 'frames'}
    s = cache.stats()
    assert s['frames'] == 100 and s['refreshes'] == 10
    assert s['reasons'] == {'empty': 1, 'frames': 9, 'age': 0, 'scene': 0}
    assert s['frames_since_refresh'] == 9


def test_max_age():
    clock = FakeClock()
    cache = PriorCache(RefreshPolicy(every_n_frames=0, max_age_s=1.0, scene_cut_threshold=0),
                       clock=clock)
    reasons = run(cache, [STATIC] * 40, clock=clock, dt=0.25)  # 4 fps for 10 s
    assert [i for i, r in enumerate(reasons) if r] == list(range(0, 40, 4))
    assert cache.stats()['reasons'] == {'empty': 1, 'frames': 0, 'age': 9, 'scene': 0}
    clock.advance(0.25)  # last refresh at frame 36 (t=109), now t=110.25
    assert cache.age_s == pytest.approx(1.25)
    assert cache.stats()['age_s'] == pytest.approx(1.25)


def test_scene_cut_only_static_frames_never_refresh():
    cache = PriorCache(RefreshPolicy(every_n_frames=0, max_age_s=0, scene_cut_threshold=0.1),
                       clock=FakeClock())
    reasons = run(cache, [STATIC] * 500)
    assert reasons.count('empty') == 1 and reasons.count(None) == 499
    assert cache.stats()['refreshes'] == 1


def test_scene_cut_detected_and_reference_follows():
    cache = PriorCache(RefreshPolicy(every_n_frames=0, max_age_s=0, scene_cut_threshold=0.1),
                       clock=FakeClock())
    dark = np.full((16, 16), 0.1, np.float32)
    slightly = dark + 0.05                              # below threshold
    bright = np.full((16, 16), 0.8, np.float32)
    reasons = run(cache, [dark, slightly, dark, bright, bright, dark])
    assert reasons == ['empty', None, None, 'scene', None, 'scene']
    assert cache.stats()['reasons']['scene'] == 2
    # Slow drift: each step small, but it adds up against the reference thumbnail.
    cache.reset()
    drift = [np.full((16, 16), 0.1 + 0.03 * i, np.float32) for i in range(8)]
    reasons = run(cache, drift)
    assert reasons[0] == 'empty' and 'scene' in reasons[1:]
    # A thumbnail of another shape counts as a cut.
    assert cache.check(np.zeros((8, 8), np.float32)) == 'scene'


def test_no_thumbnail_skips_scene_test():
    cache = PriorCache(RefreshPolicy(every_n_frames=0, max_age_s=0, scene_cut_threshold=0.01))
    assert cache.check(None) == 'empty'
    cache.store(np.ones(3), None)
    assert [cache.check(None) for _ in range(5)] == [None] * 5


def test_policy_settable_at_runtime():
    cache = PriorCache(RefreshPolicy(every_n_frames=0, max_age_s=0, scene_cut_threshold=0),
                       clock=FakeClock())
    assert run(cache, [STATIC] * 5) == ['empty'] + [None] * 4
    cache.policy = RefreshPolicy(every_n_frames=2, max_age_s=0, scene_cut_threshold=0)
    assert cache.embedding is not None  # the prior survives a policy change
    assert run(cache, [STATIC] * 4) == ['frames', None, 'frames', None]
    with pytest.raises(TypeError):
        cache.policy = {'every_n_frames': 3}


# ---------------------------------------------------------------------- store / EMA
def test_ema_math_numpy():
    cache = PriorCache(RefreshPolicy(every_n_frames=1, max_age_s=0, scene_cut_threshold=0,
                                     ema=0.75), clock=FakeClock())
    assert cache.check(STATIC) == 'empty'
    cache.store(np.array([1.0, 0.0]), STATIC)
    np.testing.assert_allclose(cache.embedding, [1.0, 0.0])   # empty: replaced
    assert cache.check(STATIC) == 'frames'
    cache.store(np.array([0.0, 1.0]), STATIC)
    np.testing.assert_allclose(cache.embedding, [0.75, 0.25])  # 0.75*old + 0.25*new
    assert cache.check(STATIC) == 'frames'
    cache.store(np.array([0.0, 1.0]), STATIC)
    np.testing.assert_allclose(cache.embedding, [0.5625, 0.4375])


def test_ema_replaces_on_scene_cut():
    cache = PriorCache(RefreshPolicy(every_n_frames=0, max_age_s=0, scene_cut_threshold=0.1,
                                     ema=0.9))
    cache.check(STATIC)
    cache.store(np.array([1.0, 0.0]), STATIC)
    bright = STATIC + 0.4
    assert cache.check(bright) == 'scene'
    cache.store(np.array([0.0, 1.0]), bright)
    np.testing.assert_allclose(cache.embedding, [0.0, 1.0])


def test_ema_math_torch():
    torch = pytest.importorskip('torch')
    cache = PriorCache(RefreshPolicy(every_n_frames=1, max_age_s=0, scene_cut_threshold=0,
                                     ema=0.5))
    cache.check(None)
    cache.store(torch.tensor([2.0, 0.0]), None)
    cache.check(None)
    cache.store(torch.tensor([0.0, 2.0]), None)
    assert isinstance(cache.embedding, torch.Tensor)
    torch.testing.assert_close(cache.embedding, torch.tensor([1.0, 1.0]))


def test_probs_and_stats_and_reset():
    clock = FakeClock()
    cache = PriorCache(RefreshPolicy(every_n_frames=3, max_age_s=0, scene_cut_threshold=0),
                       clock=clock)
    s = cache.stats()
    assert s == {'frames': 0, 'refreshes': 0,
                 'reasons': {'empty': 0, 'frames': 0, 'age': 0, 'scene': 0},
                 'age_s': None, 'frames_since_refresh': 0}
    assert cache.probs is None and cache.embedding is None
    cache.check(STATIC)
    cache.store(np.ones(2), STATIC)
    assert cache.probs is None                     # nothing computed from this frame yet
    cache.probs = np.array([0.1, 0.9])             # the engine's verdict on the refresh frame
    assert cache.probs.tolist() == [0.1, 0.9]
    clock.advance(0.5)
    cache.check(STATIC)
    s = cache.stats()
    assert s['frames'] == 2 and s['refreshes'] == 1 and s['frames_since_refresh'] == 1
    assert s['age_s'] == pytest.approx(0.5)
    cache.check(STATIC)
    assert cache.check(STATIC) == 'frames'
    cache.store(np.ones(2), STATIC)
    assert cache.probs is None                     # a new prior: the old verdict is gone
    cache.probs = np.array([0.5, 0.5])
    cache.invalidate()
    assert cache.embedding is None and cache.probs is None
    assert cache.stats()['refreshes'] == 2
    assert cache.check(STATIC) == 'empty'
    cache.reset()
    assert cache.stats()['frames'] == 0 and cache.embedding is None


def test_thread_safety_counts():
    cache = PriorCache(RefreshPolicy(every_n_frames=5, max_age_s=0, scene_cut_threshold=0))
    cache.check(STATIC)
    cache.store(np.zeros(2), STATIC)

    def worker():
        for _ in range(500):
            cache.check(STATIC)
            cache.stats()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cache.stats()['frames'] == 2001


# ---------------------------------------------------------------------- thumbnails
def test_scene_thumbnail_numpy():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    th = scene_thumbnail(frame)
    assert th.shape == (16, 16) and th.dtype == np.float32
    assert 0.0 <= th.min() and th.max() <= 1.0
    assert abs(float(th.mean()) - frame.mean() / 255) < 0.01
    # Channel order does not matter; grey, 4-channel and float inputs work.
    np.testing.assert_allclose(scene_thumbnail(frame[:, :, ::-1]), th, atol=1e-6)
    assert scene_thumbnail(frame[:, :, 0]).shape == (16, 16)
    assert scene_thumbnail(np.dstack([frame, frame[:, :, :1]])).shape == (16, 16)
    np.testing.assert_allclose(scene_thumbnail(frame.astype(np.float32) / 255), th,
                               atol=1 / 255)  # uint8 resize rounds
    assert scene_thumbnail(np.stack([frame, frame])).shape == (2, 16, 16)
    assert thumbnail_distance(th, th) == 0.0
    with pytest.raises(ValueError):
        scene_thumbnail(np.zeros((4,), np.uint8))


def test_scene_thumbnail_torch_matches_numpy():
    torch = pytest.importorskip('torch')
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)   # divisible: both are exact
    ref = scene_thumbnail(frame)
    t = torch.from_numpy(frame).permute(2, 0, 1).float() / 255
    th = scene_thumbnail(t)
    assert isinstance(th, torch.Tensor) and th.shape == (16, 16)
    assert th.dtype == torch.float32 and th.device == t.device
    np.testing.assert_allclose(th.numpy(), ref, atol=1 / 255)  # cv2 rounds uint8 output
    batch = scene_thumbnail(torch.stack([t, t.flip(-1)]))
    assert batch.shape == (2, 16, 16)
    torch.testing.assert_close(batch[0], th)
    torch.testing.assert_close(scene_thumbnail(t[None])[0], th)
    u8 = scene_thumbnail(torch.from_numpy(frame).permute(2, 0, 1))
    torch.testing.assert_close(u8, th)
    # Torch thumbnails drive the cache the same way.
    cache = PriorCache(RefreshPolicy(every_n_frames=0, max_age_s=0, scene_cut_threshold=0.1))
    assert cache.check(th) == 'empty'
    cache.store(torch.zeros(4), th)
    assert cache.check(th.clone()) is None
    assert cache.check(torch.ones(16, 16)) == 'scene'
    assert cache.check(ref) == 'scene'  # numpy vs torch reference: counts as a cut


def test_module_imports_no_torch_or_cv2():
    code = ('import sys; import weather_restore_ros.prior_cache as m; '
            'assert "torch" not in sys.modules, "torch"; assert "cv2" not in sys.modules, "cv2"; '
            'import numpy as np; c = m.PriorCache(m.RefreshPolicy()); '
            'th = m.scene_thumbnail(np.zeros((8, 8, 3), np.uint8)); '
            'assert c.check(th) == "empty"; assert "torch" not in sys.modules')
    subprocess.run([sys.executable, '-c', code], check=True, timeout=60)
