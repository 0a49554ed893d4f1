"""Checkpoints: safetensors + JSON metadata round trip, metadata, refusals with clear errors."""
import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from weather_restore_ros import checkpoint as ckpt_mod
from weather_restore_ros.checkpoint import (FORMAT_VERSION, META_KEY, CheckpointError, ClipInfo,
                                            check_clip_matches, load_checkpoint, read_metadata,
                                            save_checkpoint)
from weather_restore_ros.engine import RestorationEngine
from weather_restore_ros.model.restorer import WeatherRestorer


pytestmark = pytest.mark.usefixtures('one_torch_thread')


def _engine(path, **kw):
    return RestorationEngine.from_checkpoint(str(path), device='cpu', warmup=False, **kw)


def test_round_trip_is_bit_exact(tiny_checkpoint, tmp_path):
    ckpt = load_checkpoint(tiny_checkpoint)
    again = save_checkpoint(tmp_path / 'copy.safetensors', ckpt)
    ckpt2 = load_checkpoint(again)
    assert ckpt2.config == ckpt.config
    assert ckpt2.clip == ckpt.clip
    assert ckpt2.class_names == ckpt.class_names
    assert ckpt2.training == ckpt.training
    assert ckpt2.path == again
    for a, b in ((ckpt.restorer_state, ckpt2.restorer_state), (ckpt.clip_state, ckpt2.clip_state)):
        assert a.keys() == b.keys()
        for k in a:
            assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k

    # Same weights -> the network and the whole engine give identical outputs.
    m1, m2 = WeatherRestorer(ckpt.config), WeatherRestorer(ckpt2.config)
    m1.load_state_dict(ckpt.restorer_state)
    m2.load_state_dict(ckpt2.restorer_state)
    x = torch.rand(1, 3, 40, 56, generator=torch.Generator().manual_seed(0))
    e = torch.nn.functional.normalize(torch.randn(1, ckpt.config.clip_dim), dim=-1)
    with torch.inference_mode():
        o1, o2 = m1.eval()(x, e), m2.eval()(x, e)
    assert torch.equal(o1.image, o2.image) and torch.equal(o1.logits, o2.logits)

    frame = np.random.default_rng(0).integers(0, 256, (40, 56, 3), np.uint8)
    r1 = _engine(tiny_checkpoint).restore(frame)
    r2 = _engine(again).restore(frame)
    assert np.array_equal(r1.image, r2.image) and np.array_equal(r1.mask, r2.mask)
    assert r1.scores == r2.scores and r1.label == r2.label


def test_metadata_is_readable_and_json_sidecar_matches(tiny_checkpoint):
    meta = read_metadata(tiny_checkpoint)
    assert meta['format_version'] == FORMAT_VERSION
    assert meta['model_config']['name'] == 'tiny'
    assert meta['model_config']['clip_dim'] == 32
    assert meta['clip']['model_name'] == 'embedded:tiny'
    assert meta['clip']['embed_dim'] == 32 and meta['clip']['embedded'] is True
    assert meta['class_names'] == ['clear', 'rain', 'snow', 'fog', 'raindrop']
    assert meta['training'] == {'steps': 0}
    sidecar = tiny_checkpoint.with_suffix('.json')
    assert sidecar.is_file()
    assert json.loads(sidecar.read_text()) == meta
    # The header is plain safetensors metadata: readable without this package.
    with open(tiny_checkpoint, 'rb') as f:
        n = int.from_bytes(f.read(8), 'little')
        header = json.loads(f.read(n))
    assert json.loads(header['__metadata__'][META_KEY]) == meta


def test_save_adds_suffix_and_leaves_no_temp_file(tiny_checkpoint, tmp_path):
    ckpt = load_checkpoint(tiny_checkpoint)
    path = save_checkpoint(tmp_path / 'model.v2', ckpt)
    assert path.name == 'model.v2.safetensors'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['model.v2.json', 'model.v2.safetensors']


def test_save_handles_tensors_that_share_memory(tiny_checkpoint, tmp_path):
    ckpt = load_checkpoint(tiny_checkpoint)
    shared = torch.arange(6.0)
    ckpt.clip_state = {'a': shared, 'b': shared, 'c': shared[:3]}
    loaded = load_checkpoint(save_checkpoint(tmp_path / 'tied.safetensors', ckpt))
    assert torch.equal(loaded.clip_state['a'], shared)
    assert torch.equal(loaded.clip_state['b'], shared)
    assert torch.equal(loaded.clip_state['c'], shared[:3])


def test_configured_clip_that_differs_is_refused_naming_both(tiny_checkpoint):
    with pytest.raises(CheckpointError) as exc:
        _engine(tiny_checkpoint, clip_model='ViT-B-32', clip_pretrained='openai')
    msg = str(exc.value)
    assert 'embedded:tiny' in msg and 'ViT-B-32' in msg and 'openai' in msg
    # Empty settings mean "the checkpoint's own"; the same name is accepted.
    _engine(tiny_checkpoint, clip_model='', clip_pretrained=None)
    _engine(tiny_checkpoint, clip_model='embedded:tiny')

    info = ClipInfo(model_name='ViT-B-32', pretrained='openai', embed_dim=512)
    check_clip_matches(info, 'ViT-B-32', 'openai')
    check_clip_matches(info, 'ViT-B-32', None)
    with pytest.raises(CheckpointError, match="laion2b.*openai|openai.*laion2b"):
        check_clip_matches(info, 'ViT-B-32', 'laion2b_s34b_b79k')
    with pytest.raises(CheckpointError, match='ViT-L-14'):
        check_clip_matches(info, 'ViT-L-14', 'openai')


def test_missing_and_garbage_files_give_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(CheckpointError, match='checkpoint not found'):
        load_checkpoint(tmp_path / 'nope.safetensors')
    garbage = tmp_path / 'garbage.safetensors'
    garbage.write_bytes(b'\x00\x01this is not a checkpoint' * 10)
    with pytest.raises(CheckpointError, match='not a readable safetensors checkpoint'):
        load_checkpoint(garbage)
    with pytest.raises(CheckpointError, match='not a readable safetensors checkpoint'):
        read_metadata(garbage)
    plain = tmp_path / 'plain.safetensors'
    save_file({'w': torch.zeros(2)}, str(plain))
    with pytest.raises(CheckpointError, match='without weather_restore metadata'):
        load_checkpoint(plain)
    bad_json = tmp_path / 'bad_json.safetensors'
    save_file({'w': torch.zeros(2)}, str(bad_json), metadata={META_KEY: '{not json'})
    with pytest.raises(CheckpointError, match='not valid JSON'):
        load_checkpoint(bad_json)
    # The shipped model may not be installed: say so, not "file not found" somewhere.
    monkeypatch.setattr(ckpt_mod, 'SHIPPED_MODEL', tmp_path / 'weights' / 'absent.safetensors')
    with pytest.raises(CheckpointError, match='shipped model .* is not installed'):
        load_checkpoint()
    with pytest.raises(CheckpointError, match='is not installed'):
        RestorationEngine.from_checkpoint(None, device='cpu', warmup=False)


def _rewrite_meta(src, dst, **changes):
    ckpt = load_checkpoint(src)
    meta = ckpt.metadata()
    meta.update(changes)
    tensors = {f'restorer.{k}': v for k, v in ckpt.restorer_state.items()}
    tensors.update({f'clip.{k}': v for k, v in ckpt.clip_state.items()})
    save_file(tensors, str(dst), metadata={META_KEY: json.dumps(meta)})
    return dst


def test_future_format_version_is_refused(tiny_checkpoint, tmp_path):
    path = _rewrite_meta(tiny_checkpoint, tmp_path / 'future.safetensors',
                         format_version=FORMAT_VERSION + 1)
    with pytest.raises(CheckpointError, match=f'format {FORMAT_VERSION + 1} is newer'):
        read_metadata(path)
    with pytest.raises(CheckpointError, match='newer'):
        load_checkpoint(path)
    path = _rewrite_meta(tiny_checkpoint, tmp_path / 'noversion.safetensors',
                         format_version='one')
    with pytest.raises(CheckpointError, match='format_version'):
        load_checkpoint(path)


def test_inconsistent_metadata_is_refused(tiny_checkpoint, tmp_path):
    meta = read_metadata(tiny_checkpoint)
    clip = dict(meta['clip'], embed_dim=512)
    path = _rewrite_meta(tiny_checkpoint, tmp_path / 'dim.safetensors', clip=clip)
    with pytest.raises(CheckpointError, match='32-d CLIP embedding.*512'):
        load_checkpoint(path)
    path = _rewrite_meta(tiny_checkpoint, tmp_path / 'keys.safetensors',
                         model_config=dict(meta['model_config'], bogus=1))
    with pytest.raises(CheckpointError, match='invalid checkpoint metadata.*bogus'):
        load_checkpoint(path)
    path = _rewrite_meta(tiny_checkpoint, tmp_path / 'missing.safetensors')
    raw = read_metadata(path)
    del raw['class_names']
    save_file({'restorer.w': torch.zeros(1)}, str(path), metadata={META_KEY: json.dumps(raw)})
    with pytest.raises(CheckpointError, match='lacks class_names'):
        load_checkpoint(path)
    # Weights that do not fit the model config.
    path = _rewrite_meta(tiny_checkpoint, tmp_path / 'shape.safetensors',
                         model_config=dict(meta['model_config'], widths=[8, 16, 32]))
    with pytest.raises(CheckpointError, match='do not fit the model config'):
        RestorationEngine.from_checkpoint(str(path), device='cpu', warmup=False)
