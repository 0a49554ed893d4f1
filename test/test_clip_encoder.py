"""ClipEncoder on a tiny random-weight open_clip model: no network, no downloads, fast."""
import copy
import json
import time

import numpy as np
import pytest
import torch

from weather_restore_ros import DEFAULT_WEATHER_CLASSES
from weather_restore_ros.encoders import (
    DEFAULT_PROMPTS, TINY_CLIP_CONFIG, ClipEncoder, ClipFeatures, MissingWeightsError,
    build_open_clip_from_config, make_tiny_clip)

open_clip = pytest.importorskip('open_clip')


@pytest.fixture(scope='module')
def prior():
    return make_tiny_clip(seed=0)


def _smooth_image(h, w, seed=0):
    """A natural-ish image: random low-frequency colour field plus mild noise, uint8."""
    import cv2
    rng = np.random.default_rng(seed)
    base = rng.uniform(0, 255, (6, 7, 3)).astype(np.float32)
    img = cv2.resize(base, (w, h), interpolation=cv2.INTER_CUBIC)
    img += rng.normal(0, 4, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def _to_tensor01(a):
    return torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255.0


# ---------------------------------------------------------------------- shapes & features
def test_attributes(prior):
    assert prior.embed_dim == 32
    assert prior.token_dim == 64
    assert prior.image_size == 64
    assert prior.grid == (4, 4)
    assert prior.class_names == DEFAULT_WEATHER_CLASSES
    assert prior.model_name == 'tiny' and prior.pretrained is None
    assert prior.has_text_tower and prior.supports_tokens
    assert prior.text_embeddings.shape == (5, 32)
    assert not any(p.requires_grad for p in prior.parameters())
    assert not prior.visual.training


def test_encode_embedding_and_tokens(prior):
    x = torch.rand(3, 3, 90, 120)
    feats = prior.encode(x, with_tokens=True)
    assert isinstance(feats, ClipFeatures)
    assert feats.embedding.shape == (3, 32) and feats.embedding.dtype == torch.float32
    torch.testing.assert_close(feats.embedding.norm(dim=-1), torch.ones(3))
    assert feats.tokens.shape == (3, 16, 64)
    assert feats.grid == (4, 4)
    assert not feats.embedding.requires_grad

    plain = prior.encode(x)
    assert plain.tokens is None
    torch.testing.assert_close(plain.embedding, feats.embedding)

    # Same as open_clip's own encode_image on the same preprocessed input.
    ref = prior.visual(prior.preprocess(x))[0]
    torch.testing.assert_close(feats.embedding, torch.nn.functional.normalize(ref, dim=-1))


def test_tokens_are_post_ln_patch_tokens(prior):
    x = torch.rand(1, 3, 64, 64)
    feats = prior.encode(x, with_tokens=True)
    v = prior.visual
    with torch.no_grad():
        h = v.transformer(v._embeds(prior.preprocess(x)))
        expected = v.ln_post(h)[:, 1:]
    torch.testing.assert_close(feats.tokens, expected)


def test_input_forms(prior):
    a = _smooth_image(50, 70)
    as_float = prior.encode(_to_tensor01(a)).embedding
    as_uint8 = prior.encode(torch.from_numpy(a).permute(2, 0, 1)[None]).embedding
    as_3d = prior.encode(_to_tensor01(a)[0]).embedding
    torch.testing.assert_close(as_uint8, as_float)
    torch.testing.assert_close(as_3d, as_float)
    with pytest.raises(ValueError, match=r'\[B,3,H,W\]'):
        prior.preprocess(torch.rand(1, 4, 10, 10))


# ---------------------------------------------------------------------- preprocessing
@pytest.mark.parametrize('resize_mode', ['shortest', 'squash', 'longest'])
@pytest.mark.parametrize('hw', [(120, 90), (47, 53), (200, 333)])
def test_preprocess_matches_open_clip_pil_transform(prior, resize_mode, hw):
    from PIL import Image
    from open_clip.transform import PreprocessCfg, image_transform_v2

    p = copy.copy(prior)  # shares the tower; own preprocess_cfg
    p.preprocess_cfg = dict(p.preprocess_cfg, resize_mode=resize_mode)
    reference = image_transform_v2(PreprocessCfg(**p.preprocess_cfg), is_train=False)
    a = _smooth_image(*hw, seed=hw[0])
    ref = reference(Image.fromarray(a))
    out = p.preprocess(_to_tensor01(a))[0]
    assert out.shape == ref.shape == (3, 64, 64)
    diff = (out - ref).abs()
    # PIL works in uint8 (rounding: ~0.5/255 / std ~ 0.007 after normalisation).
    assert float(diff.mean()) < 0.01
    assert float(diff.max()) < 0.05


def test_preprocess_sharp_edges_close_to_pil(prior):
    """Random noise (worst case for bicubic overshoot) still matches PIL closely."""
    from PIL import Image
    from open_clip.transform import PreprocessCfg, image_transform_v2

    reference = image_transform_v2(PreprocessCfg(**prior.preprocess_cfg), is_train=False)
    a = np.random.default_rng(3).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    diff = (prior.preprocess(_to_tensor01(a))[0] - reference(Image.fromarray(a))).abs()
    assert float(diff.mean()) < 0.01
    assert float(diff.max()) < 0.05


def test_preprocess_stays_on_device_and_float32(prior):
    x = torch.rand(2, 3, 30, 40, dtype=torch.float64)
    out = prior.preprocess(x)
    assert out.device == x.device and out.dtype == torch.float32 and out.shape == (2, 3, 64, 64)


# ---------------------------------------------------------------------- zero-shot
def test_zero_shot_probabilities(prior):
    emb = prior.encode(torch.rand(4, 3, 64, 80)).embedding
    probs = prior.zero_shot(emb)
    assert probs.shape == (4, 5)
    torch.testing.assert_close(probs.sum(-1), torch.ones(4))
    assert (probs >= 0).all()
    single = prior.zero_shot(emb[0])
    assert single.shape == (5,)
    torch.testing.assert_close(single, probs[0])


def test_zero_shot_matches_manual_computation(prior):
    """Prompt ensemble = mean of normalised text features, renormalised; temperature from
    logit_scale."""
    tok = open_clip.get_tokenizer('ViT-B-32')  # the same CLIP BPE tokenizer
    text_model = prior.text_model
    with torch.no_grad():
        rows = []
        for name in DEFAULT_WEATHER_CLASSES:
            f = text_model.encode_text(tok(list(DEFAULT_PROMPTS[name])), normalize=True)
            rows.append(torch.nn.functional.normalize(f.mean(0), dim=-1))
        text = torch.stack(rows)
    torch.testing.assert_close(prior.text_embeddings, text)
    emb = prior.encode(torch.rand(2, 3, 64, 64)).embedding
    scale = text_model.logit_scale.exp()
    torch.testing.assert_close(prior.zero_shot(emb), (scale * emb @ text.t()).softmax(-1))


def test_text_embeddings_computed_once():
    model = build_open_clip_from_config(TINY_CLIP_CONFIG)
    calls = {'tokenizer': 0, 'encode_text': 0}
    base_tok = open_clip.SimpleTokenizer(context_length=77)

    def tokenizer(texts):
        calls['tokenizer'] += 1
        return base_tok(texts)

    encode_text = model.encode_text

    def counting_encode_text(*args, **kwargs):
        calls['encode_text'] += 1
        return encode_text(*args, **kwargs)

    model.encode_text = counting_encode_text
    p = ClipEncoder.from_open_clip_model(model, tokenizer=tokenizer)
    assert calls == {'tokenizer': 1, 'encode_text': 1}
    for _ in range(3):
        p.zero_shot(p.encode(torch.rand(1, 3, 64, 64)).embedding)
    p.to('cpu')
    assert calls == {'tokenizer': 1, 'encode_text': 1}
    assert 'text_embeddings' in p.state_dict()


def test_custom_classes_and_prompts():
    p = make_tiny_clip(class_names=('clear', 'night', 'rain'),
                       prompts={'night': ['a photo taken at night'], 'rain': 'a rainy photo'})
    assert p.class_names == ('clear', 'night', 'rain')
    assert p.prompts['clear'] == DEFAULT_PROMPTS['clear']
    assert p.prompts['night'] == ('a photo taken at night',)
    assert p.prompts['rain'] == ('a rainy photo',)
    assert p.text_embeddings.shape == (3, 32)
    assert p.zero_shot(p.encode(torch.rand(1, 3, 64, 64)).embedding).shape == (1, 3)
    # Unknown class without prompts: generic templates.
    q = make_tiny_clip(class_names=('clear', 'sandstorm'))
    assert any('sandstorm' in t for t in q.prompts['sandstorm'])
    with pytest.raises(ValueError):
        make_tiny_clip(class_names=('rain', 'rain'))


# ---------------------------------------------------------------------- image tower only
def test_image_tower_only():
    model = build_open_clip_from_config(TINY_CLIP_CONFIG)
    p = ClipEncoder.from_open_clip_model(model, has_text_tower=False, model_name='tiny')
    assert not p.has_text_tower and p.text_embeddings is None
    assert not any(k.startswith('text_model.') for k in p.state_dict())
    feats = p.encode(torch.rand(1, 3, 64, 64), with_tokens=True)
    assert feats.embedding.shape == (1, 32) and feats.tokens.shape == (1, 16, 64)
    with pytest.raises(RuntimeError, match='no text tower'):
        p.zero_shot(feats.embedding)

    bare = ClipEncoder.from_open_clip_model(build_open_clip_from_config(TINY_CLIP_CONFIG).visual)
    assert not bare.has_text_tower and bare.embed_dim == 32
    with pytest.raises(RuntimeError, match='no text tower'):
        bare.zero_shot(torch.randn(1, 32))


def test_drop_text_tower_keeps_zero_shot(prior):
    p = make_tiny_clip(seed=0)
    emb = p.encode(torch.rand(2, 3, 64, 64)).embedding
    before = p.zero_shot(emb)
    p.drop_text_tower()
    assert not p.has_text_tower
    torch.testing.assert_close(p.zero_shot(emb), before)


def test_checkpoint_style_rebuild_from_open_clip_config(prior):
    """What checkpoint.py/engine.py do: config + visual weights -> identical embeddings."""
    cfg = json.loads(json.dumps(prior.open_clip_config()))
    model = build_open_clip_from_config(cfg)
    state = {f'visual.{k}': v for k, v in prior.visual.state_dict().items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and not [k for k in missing if k.startswith('visual.')]
    rebuilt = ClipEncoder.from_open_clip_model(model, has_text_tower=False, model_cfg=cfg)
    x = torch.rand(2, 3, 70, 50)
    torch.testing.assert_close(rebuilt.encode(x).embedding, prior.encode(x).embedding)
    assert rebuilt.preprocess_cfg == prior.preprocess_cfg


def test_open_clip_model_view_state_dict_round_trip(prior):
    view = prior.open_clip_model
    keys = set(view.state_dict())
    assert keys == set(build_open_clip_from_config(TINY_CLIP_CONFIG).state_dict())
    visual_only = {k: v.clone() for k, v in view.state_dict().items() if k.startswith('visual.')}
    other = make_tiny_clip(seed=1)
    x = torch.rand(1, 3, 64, 64)
    assert not torch.allclose(other.encode(x).embedding, prior.encode(x).embedding)
    other.open_clip_model.load_state_dict(visual_only, strict=False)  # loads into `other`
    torch.testing.assert_close(other.encode(x).embedding, prior.encode(x).embedding)
    image_only = ClipEncoder.from_open_clip_model(build_open_clip_from_config(TINY_CLIP_CONFIG),
                                                  has_text_tower=False)
    assert set(image_only.open_clip_model.state_dict()) == set(visual_only)


def test_named_clip_config():
    from weather_restore_ros.encoders import named_clip_config
    tiny = named_clip_config('tiny')
    assert tiny == TINY_CLIP_CONFIG and tiny is not TINY_CLIP_CONFIG
    small = ClipEncoder.from_open_clip_model(
        build_open_clip_from_config(named_clip_config('small')), has_text_tower=False)
    assert (small.embed_dim, small.image_size, small.grid) == (128, 128, (8, 8))
    assert named_clip_config('ViT-B-32')['embed_dim'] == 512
    with pytest.raises(ValueError, match='unknown CLIP config'):
        named_clip_config('nope')


def test_resnet_tower_has_no_tokens():
    cfg = {'embed_dim': 32,
           'vision_cfg': {'image_size': 64, 'layers': [1, 1, 1, 1], 'width': 8,
                          'head_width': 16},
           'text_cfg': TINY_CLIP_CONFIG['text_cfg']}
    p = ClipEncoder.from_open_clip_model(build_open_clip_from_config(cfg), has_text_tower=False)
    assert not p.supports_tokens and p.token_dim == 0
    assert p.encode(torch.rand(1, 3, 64, 64)).embedding.shape == (1, 32)
    with pytest.raises(ValueError, match='patch tokens are not available'):
        p.encode(torch.rand(1, 3, 64, 64), with_tokens=True)


# ---------------------------------------------------------------------- modes, devices, dtype
def test_frozen_prior_stays_in_eval_mode():
    p = make_tiny_clip()
    wrapper = torch.nn.Sequential(p)
    wrapper.train()
    assert p.training and not p.visual.training  # frozen: tower stays in eval
    x = torch.rand(1, 3, 64, 64, requires_grad=True)
    assert not p.encode(x).embedding.requires_grad


def test_trainable_tower_gets_gradients():
    p = make_tiny_clip().set_trainable(True)
    p.train()
    assert p.visual.training and not p.text_model.training
    assert all(q.requires_grad for q in p.visual.parameters())
    assert not any(q.requires_grad for q in p.text_model.parameters())
    emb = p.encode(torch.rand(2, 3, 64, 64)).embedding
    emb.sum().backward()
    assert p.visual.conv1.weight.grad is not None
    p.set_trainable(False)
    assert not any(q.requires_grad for q in p.visual.parameters())
    assert not p.trainable and not p.visual.training


def test_unfreezing_parameters_directly_makes_it_trainable():
    """Trainers that flip requires_grad themselves still get gradients and train mode."""
    p = make_tiny_clip()
    for q in p.parameters():
        q.requires_grad_(True)
    p.train(True)
    assert p.trainable and p.visual.training
    p.encode(torch.rand(1, 3, 64, 64)).embedding.sum().backward()
    assert p.visual.proj.grad is not None
    teacher = copy.deepcopy(p).eval()            # e.g. a frozen SRD teacher copy
    for q in teacher.parameters():
        q.requires_grad_(False)
    assert not teacher.trainable and teacher.has_text_tower
    torch.testing.assert_close(teacher.text_embeddings, p.text_embeddings)


def test_to_dtype_keeps_small_buffers_float32():
    p = make_tiny_clip().to(torch.bfloat16)
    assert p.visual.conv1.weight.dtype == torch.bfloat16
    assert p.mean.dtype == p.text_embeddings.dtype == p.logit_scale.dtype == torch.float32
    feats = p.encode(torch.rand(1, 3, 64, 64))
    assert feats.embedding.dtype == torch.float32
    torch.testing.assert_close(p.zero_shot(feats.embedding).sum(), torch.tensor(1.0))


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_device():
    p = make_tiny_clip().to('cuda')
    x = torch.rand(2, 3, 100, 80, device='cuda')
    assert p.preprocess(x).device.type == 'cuda'
    feats = p.encode(x, with_tokens=True)
    assert feats.embedding.device.type == 'cuda' and feats.tokens.device.type == 'cuda'
    assert p.zero_shot(feats.embedding).device.type == 'cuda'
    cpu = make_tiny_clip()
    torch.testing.assert_close(feats.embedding.cpu(), cpu.encode(x.cpu()).embedding,
                               atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------------- loading
def _tiny_model_like(prior):
    model = build_open_clip_from_config(TINY_CLIP_CONFIG)
    state = {f'visual.{k}': v for k, v in prior.visual.state_dict().items()}
    state.update({k: v for k, v in prior.text_model.state_dict().items()})
    model.load_state_dict(state)
    return model


def test_from_local_weights_file_round_trip(tmp_path, prior):
    model = _tiny_model_like(prior)
    cfg_path = tmp_path / 'tiny.json'
    cfg_path.write_text(json.dumps(prior.open_clip_config()))
    weights = tmp_path / 'tiny.pt'
    torch.save(model.state_dict(), weights)
    loaded = ClipEncoder.from_pretrained(str(cfg_path), pretrained=str(weights))
    x = torch.rand(2, 3, 80, 64)
    torch.testing.assert_close(loaded.encode(x).embedding, prior.encode(x).embedding,
                               rtol=0, atol=0)
    torch.testing.assert_close(loaded.text_embeddings, prior.text_embeddings)
    assert loaded.pretrained == str(weights)


def test_from_local_dir_round_trip(tmp_path, prior):
    from safetensors.torch import save_file
    model = _tiny_model_like(prior)
    folder = tmp_path / 'tiny_clip'
    folder.mkdir()
    (folder / 'open_clip_config.json').write_text(json.dumps(prior.open_clip_config()))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(folder / 'open_clip_model.safetensors'))
    loaded = ClipEncoder.from_pretrained(f'local-dir:{folder}', pretrained='ignored')
    x = torch.rand(2, 3, 64, 96)
    a, b = loaded.encode(x, with_tokens=True), prior.encode(x, with_tokens=True)
    torch.testing.assert_close(a.embedding, b.embedding, rtol=0, atol=0)
    torch.testing.assert_close(a.tokens, b.tokens, rtol=0, atol=0)
    torch.testing.assert_close(loaded.zero_shot(a.embedding), prior.zero_shot(b.embedding))


def test_missing_tag_weights_fail_fast_and_clear(tmp_path, monkeypatch):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    t0 = time.perf_counter()
    with pytest.raises(MissingWeightsError) as err:
        ClipEncoder.from_pretrained('ViT-B-32', 'openai', cache_dir=str(tmp_path))
    assert time.perf_counter() - t0 < 5.0
    msg = str(err.value)
    for part in ("'ViT-B-32'", "'openai'", str(tmp_path), 'timm/vit_base_patch32_clip_224.openai',
                 'pretrained=', 'local-dir:', 'HF_HUB_OFFLINE'):
        assert part in msg, part


def test_missing_tag_weights_download_disallowed(tmp_path, monkeypatch):
    monkeypatch.delenv('HF_HUB_OFFLINE', raising=False)
    t0 = time.perf_counter()
    with pytest.raises(MissingWeightsError, match='not cached'):
        ClipEncoder.from_pretrained('ViT-B-32', 'openai', cache_dir=str(tmp_path),
                                    allow_download=False)
    assert time.perf_counter() - t0 < 5.0


def test_missing_local_files_fail_fast(tmp_path):
    t0 = time.perf_counter()
    missing = tmp_path / 'nope' / 'clip.pt'
    with pytest.raises(MissingWeightsError, match='does not exist') as err:
        ClipEncoder.from_pretrained('ViT-B-32', str(missing))
    assert str(missing) in str(err.value)
    with pytest.raises(MissingWeightsError, match='neither a pretrained tag'):
        ClipEncoder.from_pretrained('ViT-B-32', 'no_such_tag')
    with pytest.raises(MissingWeightsError, match='does not exist'):
        ClipEncoder.from_pretrained(f'local-dir:{tmp_path / "absent"}')
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'empty' / 'open_clip_config.json').write_text(
        json.dumps({'model_cfg': TINY_CLIP_CONFIG}))
    with pytest.raises(MissingWeightsError, match='no weights file'):
        ClipEncoder.from_pretrained(f'local-dir:{tmp_path / "empty"}')
    assert time.perf_counter() - t0 < 5.0
    with pytest.raises(ValueError, match='unknown open_clip model'):
        ClipEncoder.from_pretrained('ViT-Nope', None)


def test_cached_tag_weights_are_found_without_network(tmp_path):
    """The cache lookup that lets a cached tag load with no network access at all."""
    from weather_restore_ros.encoders.clip_weights import _cached_tag_weights
    tag = open_clip.get_pretrained_cfg('ViT-B-32', 'openai')
    assert _cached_tag_weights(tag, tmp_path) is None
    # URL-style cache (~/.cache/clip layout, or cache_dir).
    (tmp_path / 'ViT-B-32.pt').write_bytes(b'x')
    assert _cached_tag_weights(tag, tmp_path) == str(tmp_path / 'ViT-B-32.pt')
    # Hugging Face hub cache layout wins (open_clip prefers the hub).
    repo = tmp_path / 'models--timm--vit_base_patch32_clip_224.openai'
    snap = repo / 'snapshots' / ('0' * 40)
    snap.mkdir(parents=True)
    (repo / 'refs').mkdir()
    (repo / 'refs' / 'main').write_text('0' * 40)
    (snap / 'open_clip_model.safetensors').write_bytes(b'x')
    assert _cached_tag_weights(tag, tmp_path) == str(snap / 'open_clip_model.safetensors')
