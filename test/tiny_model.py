"""A tiny but real checkpoint for tests: tiny restorer + tiny embedded CLIP tower, random init.

Everything downstream (engine, CLI, node, bag tools) loads it through the same code path as the
shipped model: ``RestorationEngine.from_checkpoint(path)``.
"""
from __future__ import annotations

from pathlib import Path

import torch

from weather_restore_ros import DEFAULT_WEATHER_CLASSES
from weather_restore_ros.checkpoint import Checkpoint, ClipInfo, save_checkpoint
from weather_restore_ros.encoders import TINY_CLIP_CONFIG, build_open_clip_from_config
from weather_restore_ros.model.config import get_config
from weather_restore_ros.model.restorer import WeatherRestorer


def make_tiny_checkpoint(path: str | Path, seed: int = 0,
                         class_names=DEFAULT_WEATHER_CLASSES) -> Path:
    torch.manual_seed(seed)
    clip = build_open_clip_from_config(TINY_CLIP_CONFIG)
    cfg = get_config('tiny', clip_dim=TINY_CLIP_CONFIG['embed_dim'],
                     class_names=tuple(class_names), num_classes=len(class_names))
    model = WeatherRestorer(cfg)
    info = ClipInfo(model_name='embedded:tiny', pretrained=None,
                    embed_dim=TINY_CLIP_CONFIG['embed_dim'], embedded=True,
                    open_clip_config=TINY_CLIP_CONFIG, has_text_tower=False)
    visual = {k: v for k, v in clip.state_dict().items() if k.startswith('visual.')}
    return save_checkpoint(path, Checkpoint(config=cfg, clip=info, class_names=tuple(class_names),
                                            restorer_state=model.state_dict(),
                                            clip_state=visual, training={'steps': 0}))


@torch.no_grad()
def provoke_runaway(weights) -> None:
    """Scale the encoder's and decoder's conv weights x3 in place (a module's parameters or a
    state dict): the failure seen in raindrop fine-tunes, provoked -- without normalisation the
    SimpleGate blocks then square their way to overflow on flat colours."""
    items = weights.named_parameters() if hasattr(weights, 'named_parameters') else weights.items()
    for name, p in items:
        if name.startswith(('encoder', 'dec')) and p.dim() == 4:
            p.mul_(3)
