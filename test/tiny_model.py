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
                         class_names=DEFAULT_WEATHER_CLASSES, head_std: float | None = None,
                         **config) -> Path:
    """``head_std`` (e.g. 0.1): re-draw the output head so the network visibly changes frames
    (the random-init head is ~identity); ``config``: ModelConfig overrides (``upsample=...``)."""
    torch.manual_seed(seed)
    clip = build_open_clip_from_config(TINY_CLIP_CONFIG)
    cfg = get_config('tiny', clip_dim=TINY_CLIP_CONFIG['embed_dim'],
                     class_names=tuple(class_names), num_classes=len(class_names), **config)
    model = WeatherRestorer(cfg)
    if head_std is not None:
        torch.nn.init.normal_(model.head[-1].weight, std=head_std,
                              generator=torch.Generator().manual_seed(seed + 1))
        if model.detail_gain is not None:   # a gain that varies over the frame, up to ~3x
            torch.nn.init.normal_(model.detail_gain.head.weight, std=head_std * 10,
                                  generator=torch.Generator().manual_seed(seed + 2))
            torch.nn.init.constant_(model.detail_gain.head.bias, 4.0)
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


def make_provoked_checkpoint(path: str | Path, seed: int = 0) -> Path:
    """The tiny checkpoint with :func:`provoke_runaway` applied. On :func:`speckle_frame` it
    runs away, held finite (fp32, CPU), in the grey square only: it sprays saturated colour
    dots there, which the harm guard must catch, and leaves the red around it nearly as it was
    -- a real forward pass, the shipped model's failure on DAWN fog photos in small."""
    from weather_restore_ros.checkpoint import load_checkpoint
    ckpt = load_checkpoint(make_tiny_checkpoint(path, seed=seed))
    provoke_runaway(ckpt.restorer_state)
    return save_checkpoint(path, ckpt)


def speckle_frame(height: int = 160, width: int = 320, square=(48, 112, 80, 144)):
    """A flat red HxWx3 uint8 frame with a flat grey square (rows y0:y1, columns x0:x1)."""
    import numpy as np
    frame = np.empty((height, width, 3), np.uint8)
    frame[...] = (200, 30, 30)
    y0, y1, x0, x1 = square
    frame[y0:y1, x0:x1] = 128
    return frame
