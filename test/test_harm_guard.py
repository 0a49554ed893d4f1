"""The do-no-harm guard: the speckle measure (harm.py) and the engine putting the input back
where a network sprayed colour speckle (a real forward pass of a provoked tiny restorer).

The node's and the bag tool's side are in test_node.py and test_bag.py.
"""
import numpy as np
import pytest
import torch

from tiny_model import make_provoked_checkpoint, make_tiny_checkpoint, speckle_frame
from weather_restore_ros import harm
from weather_restore_ros.engine import RestorationEngine

H, W = 96, 128


def _t(*frames):
    """HxWx3 uint8 numpy frames -> [B,3,H,W] uint8 tensor."""
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)


def _scene(seed=0):
    """A smooth, slightly tinted scene with mild noise: what a camera sees through fog."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    base = 120 + 40 * np.sin(x / 17) * np.cos(y / 23)
    img = np.stack([base + 12, base + 4 + y / 8, base - 10 + x / 16], -1)
    img += rng.normal(0, 2, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _dehaze(img, airlight=200.0, t=0.4):
    """The fog model inverted: (I - A) / t + A -- colour comes back smoothly, hue kept."""
    return np.clip((img.astype(np.float32) - airlight) / t + airlight, 0, 255).astype(np.uint8)


def _sprinkle(img, box, density=0.1, seed=1):
    """Isolated saturated magenta/green/white dots at ``density`` inside box (y0, y1, x0, x1)."""
    rng = np.random.default_rng(seed)
    out = img.copy()
    y0, y1, x0, x1 = box
    colours = np.array([[255, 0, 255], [0, 255, 0], [255, 255, 255], [0, 0, 255]], np.uint8)
    ys, xs = np.nonzero(rng.random((y1 - y0, x1 - x0)) < density)
    out[ys + y0, xs + x0] = colours[rng.integers(0, len(colours), len(ys))]
    return out


# ------------------------------------------------------------------ the measure
def test_clean_copy_smooth_colour_boost_and_saturated_areas_are_not_speckle():
    scene = _scene()
    flat = scene.copy()
    flat[10:40, 10:50] = (255, 0, 255)      # saturated flat areas in the input ...
    flat[50:80, 70:120] = (0, 255, 0)
    painted = scene.copy()
    painted[20:36, 30:46] = (255, 0, 255)   # ... and a saturated flat area only the output has
    for inp, out in [(scene, scene), (flat, flat), (scene, _dehaze(scene)),
                     (flat, _dehaze(flat)), (scene, painted)]:
        i, o = _t(inp), _t(out)
        assert not harm.speckle_mask(i, o).any()
        assert not harm.harmed(i, o).any()
        g = harm.guard(i, o)
        assert not g.unsafe.any() and float(g.replaced[0]) == 0
        assert torch.equal(g.images, o)                     # bit for bit


def test_isolated_new_colour_is_speckle_and_harms_the_frame():
    scene = _scene()
    speckled = _sprinkle(scene, (32, 64, 32, 64))
    i, o = _t(scene), _t(speckled)
    mask = harm.speckle_mask(i, o)[0, 0].numpy()
    changed = (speckled != scene).any(-1)
    coloured = changed & (np.ptp(speckled.astype(int), axis=-1) > 200)   # white dots: no chroma
    assert mask.sum() >= 0.9 * coloured.sum()               # the coloured dots counted ...
    assert not mask[~changed].any()                         # ... and nothing else
    assert harm.harmed(i, o).tolist() == [True]
    assert float(harm.speckle_fraction(i, o)[0]) == pytest.approx(mask.mean())


def test_a_dehazed_light_is_not_speckle():
    """Lights in fog: pale blobs that a dehazer turns into small saturated dots of their own
    colour. Isolated new chroma, but the input's hue made stronger: not speckle (without the
    colour condition the dark-channel baseline was flagged on DAWN photos for this)."""
    inp = np.full((H, W, 3), 170, np.uint8)
    out = np.full((H, W, 3), 70, np.uint8)
    for k in range(40):   # 40 lights, 2x2 px, in a 64x64 region (blocks would be unsafe)
        y, x = 16 + 8 * (k // 8), 16 + 8 * (k % 8)
        inp[y:y + 2, x:x + 2] = (190, 182, 172)   # nearly white in the fog (chroma 18)
        out[y:y + 2, x:x + 2] = (180, 108, 18)    # the same hue, 9 times as strong
    i, o = _t(inp), _t(out)
    assert harm.isolated_new_chroma(i, o).sum() >= 4 * 40    # what the high-pass alone sees
    assert not harm.speckle_mask(i, o).any()
    assert not harm.guard(i, o).unsafe.any()
    assert float(harm.unexplained_chroma(i, o).max()) < 1


def test_guard_puts_the_input_back_in_speckled_blocks_only():
    scene = _scene()
    box = (32, 64, 32, 64)                                   # exactly block (1, 1)
    speckled = _sprinkle(scene, box)
    i, o = _t(scene, scene), _t(scene, speckled)             # frame 0 clean, frame 1 speckled
    g = harm.guard(i, o)
    assert g.unsafe.tolist() == [False, True]
    assert torch.equal(g.images[0], o[0]) and float(g.replaced[0]) == 0
    img, w = g.images[1].permute(1, 2, 0).numpy(), g.weights[1, 0].numpy()
    # the unsafe block (1, 1) and its neighbours are the input where they meet each other
    y0, y1, x0, x1 = box
    assert (img[y0:y1, x0:x1] == scene[y0:y1, x0:x1]).all() and (w[y0:y1, x0:x1] == 0).all()
    # feathered: the weight ramps from 0 to 1 over a block, the output where it is 1
    assert 0 < w[48, 100] < 1 and w[48, 127] == 1 and w[48, 0] == 0
    keep = w == 1
    assert keep.any() and (img[keep] == speckled[keep]).all()
    assert float(g.replaced[1]) == pytest.approx(1 - w.mean())
    # the same decision per block, as the evaluation reads it
    assert harm.unsafe_blocks(harm.speckle_mask(i, o), grow=0)[1, 0].nonzero().tolist() == [
        [1, 1]]


def test_guard_is_the_same_on_the_cpu_shortcut_and_the_dense_path(monkeypatch):
    """On a CPU frames that cannot hold an unsafe block skip the rest; a batch with one that
    can takes the dense path for all: both give the same clean frame."""
    scene = _scene()
    alone = harm.guard(_t(scene), _t(_dehaze(scene)))
    batch = harm.guard(_t(scene, scene), _t(_dehaze(scene), _sprinkle(scene, (32, 64, 32, 64))))
    assert torch.equal(alone.images[0], batch.images[0])
    assert torch.equal(alone.weights[0], batch.weights[0])


# ------------------------------------------------------------------ the engine
@pytest.fixture(scope='module')
def provoked(tmp_path_factory, one_torch_thread):
    path = make_provoked_checkpoint(tmp_path_factory.mktemp('provoked') / 'blown.safetensors')
    return RestorationEngine.from_checkpoint(str(path), device='cpu', warmup=False)


@pytest.fixture(scope='module')
def healthy(tmp_path_factory, one_torch_thread):
    path = make_tiny_checkpoint(tmp_path_factory.mktemp('healthy') / 'tiny.safetensors')
    return RestorationEngine.from_checkpoint(str(path), device='cpu', warmup=False)


def _raw_and_guarded(engine, frame, stream='s'):
    out = {}
    for on in (False, True):
        engine.harm_guard = on
        engine.forget_stream(stream)
        out[on] = engine.restore(frame, stream)
    return out[False], out[True]


def test_engine_publishes_the_input_where_the_provoked_model_speckles(provoked):
    frame = speckle_frame()
    raw, guarded = _raw_and_guarded(provoked, frame)
    assert not raw.invalid_output and not guarded.invalid_output   # finite: the NaN guard is blind
    i, o = _t(frame), _t(raw.image)
    assert harm.harmed(i, o).tolist() == [True]                # the raw output is speckled
    assert not raw.unsafe_output and raw.replaced_fraction == 0  # guard off: raw, not counted
    assert guarded.unsafe_output and 0.2 < guarded.replaced_fraction < 0.8
    # every block over the bound is the input; where the weight is 1, the raw output
    bad = harm.unsafe_blocks(harm.speckle_mask(i, o), grow=0)[0, 0].numpy()
    assert bad.any()
    for by, bx in zip(*np.nonzero(bad)):
        sl = np.s_[by * 32:(by + 1) * 32, bx * 32:(bx + 1) * 32]
        assert (guarded.image[sl] == frame[sl]).all(), (by, bx)
        assert (guarded.mask[sl] == 0).all()                    # no degradation claimed there
    ref = harm.guard(i, o)
    assert (guarded.image == ref.images[0].permute(1, 2, 0).numpy()).all()  # one definition
    keep = ref.weights[0, 0].numpy() == 1
    assert keep.mean() > 0.2 and (guarded.image[keep] == raw.image[keep]).all()
    assert not harm.harmed(i, _t(guarded.image)).any()         # what goes out is not harmed


def test_engine_leaves_a_healthy_restoration_untouched(healthy):
    from ros_helpers import pattern_image
    for frame in (speckle_frame(), pattern_image(H, W, 3, seed=3), _scene()):
        raw, guarded = _raw_and_guarded(healthy, frame)
        assert not guarded.unsafe_output and guarded.replaced_fraction == 0
        assert (guarded.image == raw.image).all() and (guarded.mask == raw.mask).all()


def test_skipped_frames_and_a_mixed_batch(provoked):
    """A batch where one camera's frame is skipped (skip-when-clear) and the other's is
    restored: only the restored one is checked and guarded; the skipped one is the input."""
    frame = speckle_frame()
    provoked.harm_guard = True
    provoked.skip_clear_threshold = 1e-6       # any cached "clear" score skips
    try:
        for s in ('a', 'b'):
            provoked.forget_stream(s)
        provoked.restore(frame, 'a')           # a's prior is cached: its next frame is skipped
        a, b = provoked.restore_batch([('a', frame), ('b', frame)])
        assert a.skipped and not a.unsafe_output and (a.image == frame).all()
        assert not b.skipped and b.unsafe_output and b.replaced_fraction > 0.2
        alone = provoked.restore(frame, 'c')   # b restored alone (fresh stream) is the same
        assert (b.image == alone.image).all() and b.replaced_fraction == alone.replaced_fraction
    finally:
        provoked.skip_clear_threshold = 0.0
        for s in ('a', 'b', 'c'):
            provoked.forget_stream(s)


def test_invalid_output_is_not_also_unsafe(provoked):
    """A network giving NaN: the invalid-output guard publishes the input; the harm guard
    finds nothing left to do."""
    model = provoked.model
    forward = model.forward
    model.forward = lambda x, emb: forward(x, emb)._replace(
        image=torch.full_like(x, float('nan')))
    try:
        provoked.harm_guard = True
        provoked.forget_stream('n')
        r = provoked.restore(speckle_frame(), 'n')
        assert r.invalid_output and not r.unsafe_output and (r.image == speckle_frame()).all()
    finally:
        del model.forward


def test_harm_guard_is_a_constructor_argument(tmp_path):
    path = make_tiny_checkpoint(tmp_path / 'tiny.safetensors')
    engine = RestorationEngine.from_checkpoint(str(path), device='cpu', warmup=False,
                                               harm_guard=False)
    assert engine.harm_guard is False


def test_restore_cli_no_harm_guard(tmp_path):
    """``weather-restore restore``: guarded by default (weather.jsonl says so),
    ``--no-harm-guard`` writes the raw output."""
    import json

    import cv2

    from weather_restore_ros.cli import main
    ckpt = make_provoked_checkpoint(tmp_path / 'blown.safetensors')
    frame = speckle_frame()
    cv2.imwrite(str(tmp_path / 'in.png'), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    outs = {}
    for flag in ([], ['--no-harm-guard']):
        out = tmp_path / ('raw' if flag else 'guarded')
        assert main(['restore', str(tmp_path / 'in.png'), '-o', str(out), '--checkpoint',
                     str(ckpt), '--device', 'cpu', *flag]) == 0
        entry = json.loads((out / 'weather.jsonl').read_text())
        outs[bool(flag)] = (cv2.imread(str(out / 'in.png'))[..., ::-1], entry)
    (raw, raw_entry), (guarded, entry) = outs[True], outs[False]
    assert entry['unsafe_output'] and entry['replaced_fraction'] > 0.2
    assert 'unsafe_output' not in raw_entry
    assert harm.harmed(_t(frame), _t(np.ascontiguousarray(raw))).tolist() == [True]
    assert not harm.harmed(_t(frame), _t(np.ascontiguousarray(guarded))).any()


def _cell_change(cell_values, smooth: bool):
    """A change over the H x W frame made of one value per 16 px cell: pasted (a pixel-shuffle
    decoder's cells) or interpolated bilinearly (a bilinear decoder)."""
    import cv2
    interp = cv2.INTER_LINEAR if smooth else cv2.INTER_NEAREST
    return cv2.resize(cell_values.astype(np.float32), (W, H), interpolation=interp)[..., None]


def test_grid_artifact_sees_a_change_tiled_in_cells_and_not_a_smooth_one():
    scene = _scene().astype(np.float32)
    cells = np.random.default_rng(3).uniform(-30, 30, (H // 16, W // 16))
    tiled = np.clip(scene + _cell_change(cells, smooth=False), 0, 255).astype(np.uint8)
    smooth = np.clip(scene + _cell_change(cells, smooth=True), 0, 255).astype(np.uint8)
    dehazed = _dehaze(_scene())        # a strong change with no grid at all
    scores = harm.grid_artifact(_t(_scene(), _scene(), _scene()), _t(tiled, smooth, dehazed))
    assert scores[0] > 1.0
    assert abs(float(scores[1])) < 0.15 and abs(float(scores[2])) < 0.15


def test_grid_artifact_does_not_count_8px_jpeg_blocks_as_cells():
    """JPEG's 8 x 8 blocks, amplified by a dehazer, step on every 8th column: the half-cell
    reference columns step as much as the cell edges, so the score stays near 0."""
    scene = _scene()
    out = scene.astype(np.float32)
    out[:, 7::8] += 20
    out[7::8, :] += 20
    score = float(harm.grid_artifact(_t(scene), _t(np.clip(out, 0, 255).astype(np.uint8)))[0])
    assert abs(score) < 0.15
    assert float(harm.grid_artifact(_t(scene[:20, :20]), _t(scene[:20, :20]))[0]) == 0


def test_crushed_fraction_counts_detail_pushed_into_black_not_a_dark_object_dehazed():
    """harm.crushed_fraction: a dark, textured object seen through fog (I = t J + (1 - t) A)
    and restored exactly is dark with *more* contrast than its foggy input: not crushed. The
    same region taken down to a flat near-black is; so is half a frame darkened tenfold."""
    rng = np.random.default_rng(4)
    dark = np.repeat(rng.uniform(5, 35, (H, W, 1)), 3, -1).astype(np.float32)   # J
    foggy = (0.4 * dark + 0.6 * 200).astype(np.uint8)
    restored = dark.astype(np.uint8)
    flat = np.full_like(restored, 10)
    half = _scene()
    darkened = half.copy()
    darkened[:H // 2] = (darkened[:H // 2] * 0.1).astype(np.uint8)
    scores = harm.crushed_fraction(_t(foggy, foggy, half, half),
                                   _t(restored, flat, darkened, half))
    assert float(scores[0]) == 0.0 and float(scores[3]) == 0.0
    assert float(scores[1]) == 1.0
    assert 0.4 < float(scores[2]) <= 0.5
    assert float(harm.crushed_fraction(_t(half[:8, :8]), _t(half[:8, :8]))[0]) == 0
