"""A training run's options (``TrainConfig``, loaded from a YAML file of ``train_configs/``),
checked when loaded: an unknown key or a value of the wrong kind names itself instead of failing
deep inside the optimizer.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from .. import DEFAULT_WEATHER_CLASSES
from ..model.losses import DEFAULT_LOSS_WEIGHTS

#: Weighted loss terms. 'recon' (Charbonnier) weighs 1.0 unless set; the others are computed only
#: when their weight is > 0 (a term missing from ``loss`` is off). 'psnr': NAFNet's PSNR loss;
#: 'gate': the SAR gates against the pair's degradation mask (see ``losses.gate_loss``);
#: 'tone': the 16 px local means (``losses.tone_loss``: no frame darkened for a veil it lacks).
LOSS_TERMS = tuple(DEFAULT_LOSS_WEIGHTS)
#: Other ``loss`` options (with defaults).
LOSS_OPTIONS = {'srd_temperature': 0.1, 'srd_l2_weight': 0.0, 'label_smoothing': 0.0}
CLIP_OPTIONS = ('timm', 'image_size', 'embedded', 'model_name', 'pretrained', 'cache_dir',
                'trainable')
#: ModelConfig fields the trainer derives from the CLIP, the loss and class_names.
DERIVED_MODEL_FIELDS = ('clip_dim', 'num_classes', 'class_names', 'srd_dim', 'use_srd')


@dataclass
class TrainConfig:
    """Everything a run needs; loaded from YAML (see ``train_configs/*.yaml``).

    ``model``: ``{name: tiny|small|base, <ModelConfig field overrides>}``.
    ``clip``: ``{model_name, pretrained, cache_dir}`` for an open_clip model, or
    ``{embedded: <'tiny'|'small'|open_clip architecture name|config dict>}`` for a randomly
    initialised tower stored in the checkpoints; ``trainable: true`` fine-tunes the image tower
    jointly (at ``clip_lr``; the checkpoints then store its weights), else it stays frozen.
    ``data``: ``{train: spec, val: spec}`` (see :func:`build_dataset`); ``val`` is optional.
    ``loss``: weights of :data:`LOSS_TERMS` plus :data:`LOSS_OPTIONS`.
    ``amp``: fp16 autocast + GradScaler, on CUDA only (ignored on CPU).
    ``steps`` counts optimizer steps of the global batch (``batch_size`` x processes).
    ``init_from``: start from a checkpoint's weights (``shipped`` = the packaged model) instead of
    a random initialisation -- fine-tuning, e.g. the shipped model on a fleet's own frames. The
    model and clip sections must describe the same network; ``--resume`` takes precedence.
    ``train_only``: names of restorer submodules (e.g. ``[classifier]``) to train, the rest of
    the restorer frozen -- e.g. re-fitting the weather head of a trained model without
    touching a single weight of its restoration (empty: train everything).
    """

    out_dir: str = 'runs/train'
    seed: int = 0
    class_names: tuple = DEFAULT_WEATHER_CLASSES
    model: dict = field(default_factory=lambda: {'name': 'small'})
    clip: dict = field(default_factory=lambda: {'model_name': 'ViT-B-32',
                                                'pretrained': 'openai'})
    data: dict = field(default_factory=dict)
    steps: int = 100_000
    batch_size: int = 8                              # per process
    lr: float = 2e-4
    clip_lr: float = 5e-5
    weight_decay: float = 1e-4
    warmup_steps: int = 1000
    grad_clip: float = 1.0                           # 0 = no clipping
    ema_decay: float = 0.0                           # restorer weight EMA; 0 = off
    init_from: str = ''                              # checkpoint path | 'shipped' | '' (random)
    train_only: list = field(default_factory=list)   # restorer submodules to train; [] = all
    amp: bool = True
    num_workers: int = 4
    loss: dict = field(default_factory=lambda: {'recon': 1.0, 'ssim': 0.2, 'srd': 0.1,
                                                'cls': 0.05, 'srd_temperature': 0.1})
    log_every: int = 50
    val_every: int = 1000
    ckpt_every: int = 1000
    val_images: int = 64

    def __post_init__(self):
        # YAML 1.1 reads "1e-3" as a string and "5" where a float is meant as an int: coerce,
        # and say which option is wrong instead of failing deep inside the optimizer.
        for f in fields(self):
            v = getattr(self, f.name)
            if f.type == 'int':
                setattr(self, f.name, _as_number(f.name, v, int))
            elif f.type == 'float':
                setattr(self, f.name, _as_number(f.name, v, float))
            elif f.type == 'bool' and not isinstance(v, bool):
                raise ValueError(f'training option {f.name} must be true or false, got {v!r}')
            elif f.type == 'dict' and not isinstance(v, dict):
                raise ValueError(f'training option {f.name} must be a mapping, got {v!r}')
            elif f.type == 'list' and not (isinstance(v, (list, tuple))
                                           and all(isinstance(x, str) for x in v)):
                raise ValueError(f'training option {f.name} must be a list of names, got {v!r}')
        self.class_names = tuple(self.class_names)
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f'training option ema_decay must be in [0, 1), got {self.ema_decay}')
        for name in ('steps', 'warmup_steps', 'num_workers', 'val_images'):
            if getattr(self, name) < 0:
                raise ValueError(f'training option {name} must be >= 0')
        for name in ('batch_size', 'log_every', 'val_every', 'ckpt_every'):
            if getattr(self, name) < 1:
                raise ValueError(f'training option {name} must be >= 1')
        _check_keys('loss', self.loss, LOSS_TERMS + tuple(LOSS_OPTIONS))
        self.loss = {k: _as_number(f'loss.{k}', v, float) for k, v in self.loss.items()}
        _check_keys('clip', self.clip, CLIP_OPTIONS)
        derived = sorted(set(self.model) & set(DERIVED_MODEL_FIELDS))
        if derived:
            raise ValueError(f'model: {derived} are set by the trainer (from clip, loss and '
                             'class_names); remove them from the model section')
        if self.data and 'train' not in self.data:
            raise ValueError("data needs a 'train' entry (and optionally 'val')")
        _check_keys('data', self.data, ('train', 'val'))

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides) -> 'TrainConfig':
        """Load a YAML config; ``overrides`` (None values ignored) replace top-level options.
        Unknown options (top level, ``loss``, ``clip``, ``data``) raise ``ValueError``."""
        import yaml
        with open(path) as f:
            d = yaml.safe_load(f) or {}
        if not isinstance(d, dict):
            raise ValueError(f'{path}: a training config is a YAML mapping')
        d.update({k: v for k, v in overrides.items() if v is not None})
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f'{path}: unknown training option(s) {sorted(unknown)}; valid: '
                             f'{sorted(f.name for f in fields(cls))}')
        try:
            return cls(**d)
        except ValueError as exc:
            raise ValueError(f'{path}: {exc}') from None


def _check_keys(section: str, d: dict, valid) -> None:
    unknown = sorted(set(d) - set(valid))
    if unknown:
        raise ValueError(f'unknown {section} option(s) {unknown}; valid: {sorted(valid)}')


def _as_number(name: str, v, kind):
    if isinstance(v, bool) or v is None:
        raise ValueError(f'training option {name} must be a number, got {v!r}')
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise ValueError(f'training option {name} must be a number, got {v!r}') from None
    if kind is int:
        if not x.is_integer():
            raise ValueError(f'training option {name} must be a whole number, got {v!r}')
        return int(x)
    return x

