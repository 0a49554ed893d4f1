"""Checkpoints: one ``.safetensors`` file, weights plus JSON metadata, never pickle.

The metadata travels inside the safetensors header (``__metadata__['weather_restore']``), so a
checkpoint is a single file that cannot run code when loaded; a human-readable ``.json`` copy is
written beside it for people and tools that do not parse safetensors headers.

Tensor names are prefixed: ``restorer.`` for the restoration network and ``clip.`` for a CLIP
image tower stored in the checkpoint (the shipped model carries its small CLIP; paper-scale
models reference a named open_clip model instead and store no CLIP weights).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .model.config import ModelConfig

FORMAT_VERSION = 1
META_KEY = 'weather_restore'
SHIPPED_MODEL = Path(__file__).resolve().parent / 'models' / 'weather_small.safetensors'


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable or does not fit the configured model/CLIP."""


@dataclass
class ClipInfo:
    """Which CLIP image tower a checkpoint was trained with.

    ``open_clip_config`` is set when the tower's weights are stored in the checkpoint
    (``embedded``); otherwise ``model_name``/``pretrained`` name an open_clip model to load.
    """

    model_name: str
    pretrained: str | None
    embed_dim: int
    embedded: bool = False
    open_clip_config: dict | None = None
    has_text_tower: bool = False

    @classmethod
    def from_dict(cls, d: dict) -> 'ClipInfo':
        return cls(**d)


@dataclass
class Checkpoint:
    config: ModelConfig
    clip: ClipInfo
    class_names: tuple[str, ...]
    restorer_state: dict[str, torch.Tensor]
    clip_state: dict[str, torch.Tensor] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def metadata(self) -> dict:
        return {
            'format_version': FORMAT_VERSION,
            'model_config': self.config.to_dict(),
            'clip': vars(self.clip),
            'class_names': list(self.class_names),
            'training': self.training,
        }


def save_checkpoint(path: str | Path, ckpt: Checkpoint) -> Path:
    """Write ``path`` (.safetensors) and its ``.json`` metadata copy; returns the path."""
    path = Path(path)
    if path.suffix != '.safetensors':
        path = path.with_suffix('.safetensors')
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f'restorer.{k}': v.detach().cpu().contiguous()
               for k, v in ckpt.restorer_state.items()}
    tensors.update({f'clip.{k}': v.detach().cpu().contiguous()
                    for k, v in ckpt.clip_state.items()})
    meta = ckpt.metadata()
    save_file(tensors, str(path), metadata={META_KEY: json.dumps(meta)})
    path.with_suffix('.json').write_text(json.dumps(meta, indent=2) + '\n')
    return path


def read_metadata(path: str | Path) -> dict:
    """Only the header: cheap, for ``info`` and for refusing a mismatched CLIP before loading."""
    path = _existing(path)
    try:
        with safe_open(str(path), framework='pt') as f:
            raw = (f.metadata() or {}).get(META_KEY)
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f'{path}: not a readable safetensors checkpoint ({exc})') from exc
    if raw is None:
        raise CheckpointError(f'{path}: safetensors file without weather_restore metadata; '
                              'was it written by weather-restore train?')
    meta = json.loads(raw)
    if meta.get('format_version', 0) > FORMAT_VERSION:
        raise CheckpointError(f'{path}: checkpoint format {meta["format_version"]} is newer than '
                              f'this package understands ({FORMAT_VERSION}); upgrade the package')
    return meta


def load_checkpoint(path: str | Path | None = None, map_location: str = 'cpu') -> Checkpoint:
    """Load a checkpoint (``None``: the model shipped with the package)."""
    path = _existing(path if path is not None else SHIPPED_MODEL)
    meta = read_metadata(path)
    restorer, clip = {}, {}
    with safe_open(str(path), framework='pt', device=map_location) as f:
        for key in f.keys():
            prefix, _, name = key.partition('.')
            if prefix == 'restorer':
                restorer[name] = f.get_tensor(key)
            elif prefix == 'clip':
                clip[name] = f.get_tensor(key)
    return Checkpoint(
        config=ModelConfig.from_dict(meta['model_config']),
        clip=ClipInfo.from_dict(meta['clip']),
        class_names=tuple(meta['class_names']),
        restorer_state=restorer,
        clip_state=clip,
        training=meta.get('training', {}),
        path=path,
    )


def check_clip_matches(info: ClipInfo, model_name: str | None, pretrained: str | None) -> None:
    """Refuse a configured CLIP that differs from the one the checkpoint was trained with.

    The restorer's prior tokens are a projection of that CLIP's embedding space; another CLIP
    (even one with the same embedding size) feeds it meaningless vectors.
    """
    if not model_name:
        return
    if model_name != info.model_name or (pretrained or None) != (info.pretrained or None):
        raise CheckpointError(
            f'checkpoint was trained with CLIP {info.model_name!r} '
            f'(pretrained={info.pretrained!r}, embedding {info.embed_dim}), but CLIP '
            f'{model_name!r} (pretrained={pretrained!r}) is configured; leave the CLIP '
            'parameters empty to use the checkpoint\'s own, or use a checkpoint trained with '
            'that CLIP')


def _existing(path: str | Path) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        if path == SHIPPED_MODEL:
            raise CheckpointError(
                f'the shipped model {path} is missing from this installation; pass a checkpoint '
                'path (--checkpoint / the checkpoint parameter) or reinstall the package')
        raise CheckpointError(f'checkpoint not found: {path}')
    return path
