"""Open_clip model configs and prompts: which CLIP architecture to build, and the weather
prompts zero-shot classification averages.

``TINY_CLIP_CONFIG`` and ``SMALL_CLIP_CONFIG`` are towers small enough to embed in a checkpoint
(random init): the tiny one runs the unit tests. ``build_open_clip_from_config`` builds any
open_clip model from a config dict without touching the network.
"""
from __future__ import annotations

import copy
from typing import Any, Mapping

from torch import nn

# Prompt ensembles per class; zero-shot averages the normalised text embeddings of a class's
# prompts. Classes without an entry here (custom class lists) get DEFAULT_TEMPLATES.
DEFAULT_PROMPTS: dict[str, tuple[str, ...]] = {
    'clear': (
        'a photo taken on a clear day',
        'a clear photo with good visibility',
        'a sharp photo with no rain, snow or fog',
        'a photo of a street in dry, clear weather',
    ),
    'rain': (
        'a photo taken in heavy rain',
        'a photo with rain streaks',
        'a rainy scene',
        'a photo of a street in the rain',
    ),
    'snow': (
        'a photo taken in heavy snow',
        'a photo with falling snowflakes',
        'a snowy scene',
        'a photo of a street during a snowstorm',
    ),
    'fog': (
        'a photo taken in dense fog',
        'a hazy photo with low contrast',
        'a foggy scene with low visibility',
        'a photo of a street in haze',
    ),
    'raindrop': (
        'a photo with raindrops on the camera lens',
        'a photo taken through a wet window',
        'water droplets on the lens blur the photo',
        'a photo with raindrops on the glass',
    ),
}
DEFAULT_TEMPLATES = ('a photo taken in {} weather', 'a photo of {}', 'a {} scene')

# A CLIP small enough for unit tests and for checkpoints that embed their own image tower:
# ~3.4 M parameters (3.2 M of them the text token embedding), sub-millisecond forward.
TINY_CLIP_CONFIG: dict[str, Any] = {
    'embed_dim': 32,
    'vision_cfg': {'image_size': 64, 'layers': 2, 'width': 64, 'head_width': 32,
                   'patch_size': 16},
    'text_cfg': {'context_length': 77, 'vocab_size': 49408, 'width': 64, 'heads': 4,
                 'layers': 2},
}

# Small towers a checkpoint can embed (random init, trained with the restorer), by name.
# 'small': ~10 M parameters (image tower ~2.9 M; 6.3 M is the text token table), 128 px,
# 8x8 patch grid. 'tiny': ~3.4 M (image tower 0.15 M), 64 px, 4x4 grid.
SMALL_CLIP_CONFIG: dict[str, Any] = {
    'embed_dim': 128,
    'vision_cfg': {'image_size': 128, 'layers': 6, 'width': 192, 'head_width': 64,
                   'patch_size': 16},
    'text_cfg': {'context_length': 77, 'vocab_size': 49408, 'width': 128, 'heads': 4,
                 'layers': 4},
}
NAMED_CLIP_CONFIGS: dict[str, dict[str, Any]] = {'tiny': TINY_CLIP_CONFIG,
                                                 'small': SMALL_CLIP_CONFIG}


def _jsonable(obj):
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def _split_config(cfg: Mapping) -> tuple[dict, dict]:
    """(model_cfg, preprocess_cfg) from either a bare open_clip model config or a full
    ``open_clip_config.json`` dict (``{'model_cfg': ..., 'preprocess_cfg': ...}``)."""
    cfg = copy.deepcopy(dict(cfg))
    if 'model_cfg' in cfg:
        return dict(cfg['model_cfg']), dict(cfg.get('preprocess_cfg') or {})
    return cfg, {}


def build_open_clip_from_config(cfg: Mapping) -> nn.Module:
    """An open_clip model (random weights, CPU, fp32) from a config dict.

    ``cfg`` is an open_clip model config (``embed_dim``, ``vision_cfg``, ``text_cfg``, ...; e.g.
    :data:`TINY_CLIP_CONFIG`) or a full ``open_clip_config.json`` dict with ``model_cfg`` and
    ``preprocess_cfg``. The preprocessing config (mean/std/interpolation/resize mode) is attached
    to ``model.visual.preprocess_cfg`` as ``open_clip.create_model`` does.
    """
    import open_clip
    from open_clip.model import set_model_preprocess_cfg
    from open_clip.transform import PreprocessCfg, merge_preprocess_dict
    from dataclasses import asdict

    model_cfg, pp_cfg = _split_config(cfg)
    custom_text = model_cfg.pop('custom_text', False) or 'hf_model_name' in model_cfg.get(
        'text_cfg', {})
    if 'multimodal_cfg' in model_cfg:
        raise ValueError('CoCa configs (multimodal_cfg) are not supported by ClipEncoder')
    if 'hf_model_name' in model_cfg.get('text_cfg', {}):
        model_cfg['text_cfg'] = dict(model_cfg['text_cfg'], hf_model_pretrained=False)
    if 'timm_model_name' in model_cfg.get('vision_cfg', {}):
        model_cfg['vision_cfg'] = dict(model_cfg['vision_cfg'], timm_model_pretrained=False)
    cls = open_clip.CustomTextCLIP if custom_text else open_clip.CLIP
    model = cls(**model_cfg)
    preprocess = merge_preprocess_dict(asdict(PreprocessCfg()), pp_cfg)
    size = getattr(model.visual, 'image_size', None)
    if size is not None:
        preprocess['size'] = size
    set_model_preprocess_cfg(model, preprocess)
    return model


def named_clip_config(name: str) -> dict:
    """A copy of a named CLIP config: :data:`NAMED_CLIP_CONFIGS` ('tiny', 'small'), else an
    open_clip built-in architecture ('ViT-B-32', ...), for :func:`build_open_clip_from_config`."""
    if name in NAMED_CLIP_CONFIGS:
        return copy.deepcopy(NAMED_CLIP_CONFIGS[name])
    import open_clip

    cfg = open_clip.get_model_config(name)
    if cfg is None:
        raise ValueError(f'unknown CLIP config {name!r}: use one of '
                         f'{", ".join(NAMED_CLIP_CONFIGS)} or an open_clip architecture '
                         f'({", ".join(open_clip.list_models()[:8])}, ...)')
    return cfg
