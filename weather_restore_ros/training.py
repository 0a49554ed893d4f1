"""Training: reconstruction + CLIP-SRD + weather-head losses, one process or ``torchrun``.

The same function runs a single CPU process, one GPU, or N GPUs with DistributedDataParallel
(``torchrun --nproc_per_node=N -m weather_restore_ros.cli train cfg.yaml``): the process group
comes from the environment torchrun sets, only rank 0 logs, validates and writes checkpoints.

Checkpoints are the inference format (:mod:`weather_restore_ros.checkpoint`) plus a
``train_state.pt`` of optimizer/scheduler tensors, loaded with ``weights_only=True``.
"""
from __future__ import annotations

import copy
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from . import DEFAULT_WEATHER_CLASSES
from .checkpoint import Checkpoint, ClipInfo, save_checkpoint
from .clip_prior import ClipPrior, build_open_clip_from_config, named_clip_config
from .model.config import get_config
from .model.losses import (charbonnier, soft_residual_distillation, ssim,
                           weather_classification_loss)
from .model.restorer import WeatherRestorer


@dataclass
class TrainConfig:
    """Everything a run needs; loaded from YAML (see ``configs/*.yaml``)."""

    out_dir: str = 'runs/train'
    seed: int = 0
    class_names: tuple = DEFAULT_WEATHER_CLASSES
    model: dict = field(default_factory=lambda: {'name': 'small'})
    # clip: {model_name, pretrained, cache_dir} for an open_clip model, or
    #       {embedded: <name or open_clip config dict>} for a small tower stored in checkpoints;
    #       trainable: fine-tune the tower jointly (else frozen).
    clip: dict = field(default_factory=lambda: {'model_name': 'ViT-B-32',
                                                'pretrained': 'openai'})
    data: dict = field(default_factory=dict)       # {'train': spec, 'val': spec}
    steps: int = 100_000
    batch_size: int = 8
    lr: float = 2e-4
    clip_lr: float = 5e-5
    weight_decay: float = 1e-4
    warmup_steps: int = 1000
    grad_clip: float = 1.0
    amp: bool = True                                # CUDA only
    num_workers: int = 4
    loss: dict = field(default_factory=lambda: {'recon': 1.0, 'ssim': 0.2, 'srd': 0.1,
                                                'cls': 0.05, 'srd_temperature': 0.1})
    log_every: int = 50
    val_every: int = 1000
    ckpt_every: int = 1000
    val_images: int = 64

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides) -> 'TrainConfig':
        import yaml
        with open(path) as f:
            d = yaml.safe_load(f) or {}
        d.update({k: v for k, v in overrides.items() if v is not None})
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f'{path}: unknown training option(s) {sorted(unknown)}')
        cfg = cls(**d)
        cfg.class_names = tuple(cfg.class_names)
        return cfg


# ---------------------------------------------------------------------------- building blocks
def build_clip(spec: dict, class_names, device) -> tuple[ClipPrior, ClipInfo]:
    """The prior encoder: an embedded small tower (random init) or a named open_clip model."""
    embedded = spec.get('embedded')
    if embedded is not None:
        cfg = named_clip_config(embedded) if isinstance(embedded, str) else embedded
        model = build_open_clip_from_config(cfg)
        name = embedded if isinstance(embedded, str) else 'custom'
        clip = ClipPrior.from_open_clip_model(model, class_names=class_names,
                                              model_name=f'embedded:{name}', model_cfg=cfg,
                                              has_text_tower=False)
        info = ClipInfo(model_name=f'embedded:{name}', pretrained=None,
                        embed_dim=clip.embed_dim, embedded=True, open_clip_config=cfg,
                        has_text_tower=False)
    else:
        clip = ClipPrior.from_pretrained(spec.get('model_name', 'ViT-B-32'),
                                         spec.get('pretrained', 'openai'),
                                         cache_dir=spec.get('cache_dir'), device=device,
                                         class_names=class_names)
        info = ClipInfo(model_name=clip.model_name, pretrained=clip.pretrained,
                        embed_dim=clip.embed_dim, embedded=False, has_text_tower=True)
    return clip.to(device), info


def build_dataset(spec: dict, class_names, seed: int, train: bool):
    """A dataset from a config entry: ``type`` is synthetic | paired | allweather | cdd11 | test."""
    from . import data as D
    spec = dict(spec)
    kind = spec.pop('type', 'paired')
    crop = spec.pop('crop_size', 256 if train else None)
    common = dict(crop_size=crop, class_names=class_names, seed=seed)
    if kind == 'synthetic':
        from .holdout import holdout_dataset, training_photo_sources
        if spec.pop('holdout', False):
            return holdout_dataset(class_names, seed=spec.pop('seed', 1234), **spec)
        clean = training_photo_sources(spec.pop('clean', 'samples'))
        return D.SyntheticWeatherDataset(clean, length=spec.pop('length', 10_000), **common,
                                         **spec)
    if kind == 'paired':
        return D.PairedFolderDataset(spec.pop('root'), **common, **spec)
    if kind == 'allweather':
        return D.AllWeatherListDataset(spec.pop('list'), **common, **spec)
    if kind == 'cdd11':
        return D.CDD11Dataset(spec.pop('root'), **common, **spec)
    if kind == 'test':
        return D.SingleTestSet(spec.pop('name'), spec.pop('root'), **common, **spec)
    raise ValueError(f'unknown dataset type {kind!r} (synthetic, paired, allweather, cdd11, '
                     'test)')


def lr_lambda(warmup: int, total: int):
    """Linear warm-up, then cosine decay to 1 % of the base rate."""
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        t = (step - warmup) / max(1, total - warmup)
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
    return f


class ScalarLog:
    """TensorBoard event files when tensorboard is installed, always a JSONL file too."""

    def __init__(self, out_dir: Path):
        self.path = out_dir / 'metrics.jsonl'
        self._f = open(self.path, 'a')
        try:
            from torch.utils.tensorboard import SummaryWriter
            self._tb = SummaryWriter(str(out_dir / 'tensorboard'))
        except Exception:  # tensorboard not installed
            self._tb = None

    def write(self, step: int, values: dict[str, float]) -> None:
        self._f.write(json.dumps({'step': step, 'time': time.time(), **values}) + '\n')
        self._f.flush()
        if self._tb is not None:
            for k, v in values.items():
                self._tb.add_scalar(k, v, step)

    def close(self) -> None:
        self._f.close()
        if self._tb is not None:
            self._tb.close()


# ---------------------------------------------------------------------------- the run
class Objective(torch.nn.Module):
    """Restorer + prior encoder + losses as one module, so DDP wraps a single forward."""

    def __init__(self, model: WeatherRestorer, clip: ClipPrior, teacher: ClipPrior | None,
                 weights: dict):
        super().__init__()
        self.model, self.clip = model, clip
        self._teacher = [teacher]  # a list: not a submodule, DDP must not sync it
        self.weights = dict(weights)

    def forward(self, x, y, label):
        w = self.weights
        out = self.model(x, self.clip.encode(x).embedding)
        terms = {'recon': charbonnier(out.image, y)}
        if w.get('ssim', 0) > 0:
            terms['ssim'] = 1 - ssim(out.image, y)
        if w.get('cls', 0) > 0:
            terms['cls'] = weather_classification_loss(out.logits, label)
        teacher = self._teacher[0]
        if teacher is not None:
            with torch.no_grad():
                deg = teacher.encode(x, with_tokens=True)
                clean = teacher.encode(y, with_tokens=True)
            student = self.model.srd_student(out.residuals, deg.grid)
            terms['srd'] = soft_residual_distillation(
                student, deg.tokens, clean.tokens, temperature=w.get('srd_temperature', 0.1))
        total = sum(w.get(k, 1.0) * v for k, v in terms.items())
        return total, terms


class Trainer:
    def __init__(self, cfg: TrainConfig, device: str | None = None):
        self.cfg = cfg
        self.distributed = int(os.environ.get('WORLD_SIZE', '1')) > 1
        if self.distributed and not dist.is_initialized():
            dist.init_process_group('nccl' if torch.cuda.is_available() else 'gloo')
        self.rank = dist.get_rank() if self.distributed else 0
        self.world = dist.get_world_size() if self.distributed else 1
        if device is None:
            device = (f'cuda:{int(os.environ.get("LOCAL_RANK", 0))}'
                      if torch.cuda.is_available() else 'cpu')
        self.device = torch.device(device)
        if self.device.type == 'cuda':
            torch.cuda.set_device(self.device)
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        self.out = Path(cfg.out_dir)
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)

        names = tuple(cfg.class_names)
        self.clip, self.clip_info = build_clip(cfg.clip, names, self.device)
        self.clip_trainable = bool(cfg.clip.get('trainable', False))
        w = cfg.loss
        self.use_srd = w.get('srd', 0) > 0
        mcfg = dict(cfg.model)
        base = mcfg.pop('name', 'small')
        self.model_cfg = get_config(
            base, clip_dim=self.clip.embed_dim, num_classes=len(names), class_names=names,
            srd_dim=self.clip.token_dim if self.use_srd else 0, use_srd=self.use_srd, **mcfg)
        model = WeatherRestorer(self.model_cfg).to(self.device)
        # SRD teacher: CLIP's own picture of the weather, frozen. When the tower itself is
        # fine-tuned, the teacher is a frozen copy of its starting point.
        self.teacher = (copy.deepcopy(self.clip).eval() if self.use_srd and self.clip_trainable
                        else self.clip)
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        for p in self.clip.parameters():
            p.requires_grad_(self.clip_trainable)
        params = [{'params': model.parameters(), 'lr': cfg.lr}]
        if self.clip_trainable:
            params.append({'params': self.clip.parameters(), 'lr': cfg.clip_lr})
        self.model = model
        self.objective = Objective(model, self.clip, self.teacher if self.use_srd else None,
                                   cfg.loss)
        if self.distributed:
            self.objective = torch.nn.parallel.DistributedDataParallel(
                self.objective,
                device_ids=[self.device.index] if self.device.type == 'cuda' else None,
                find_unused_parameters=cfg.loss.get('cls', 0) <= 0)  # classifier unused then
        self.opt = torch.optim.AdamW(params, weight_decay=cfg.weight_decay)
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lr_lambda(cfg.warmup_steps, cfg.steps))
        self.amp = cfg.amp and self.device.type == 'cuda'
        self.scaler = torch.amp.GradScaler('cuda', enabled=self.amp)
        self.step = 0
        self.train_set = build_dataset(cfg.data['train'], names, cfg.seed, train=True)
        self.val_set = (build_dataset(cfg.data['val'], names, cfg.seed + 1, train=False)
                        if cfg.data.get('val') else None)

    # ---------------------------------------------------------------- state
    def checkpoint(self) -> Checkpoint:
        clip_state = {}
        if self.clip_info.embedded:
            clip_state = {k: v for k, v in self.clip.open_clip_model.state_dict().items()
                          if k.startswith('visual.')}
        return Checkpoint(config=self.model_cfg, clip=self.clip_info,
                          class_names=tuple(self.cfg.class_names),
                          restorer_state=self.model.state_dict(), clip_state=clip_state,
                          training=self.summary())

    def summary(self) -> dict[str, Any]:
        return {'steps': self.step, 'batch_size': self.cfg.batch_size * self.world,
                'data': self.cfg.data, 'losses': self.cfg.loss,
                'clip_trainable': self.clip_trainable, 'wall_time_s': round(self.wall_time, 1),
                **{k: v for k, v in getattr(self, 'last_val', {}).items()}}

    def save(self) -> Path:
        path = save_checkpoint(self.out / 'last.safetensors', self.checkpoint())
        torch.save({'step': self.step, 'optimizer': self.opt.state_dict(),
                    'scheduler': self.sched.state_dict(), 'scaler': self.scaler.state_dict(),
                    'wall_time': self.wall_time},
                   self.out / 'train_state.pt')
        with open(self.out / 'train_config.json', 'w') as f:
            json.dump(asdict(self.cfg), f, indent=2)
        return path

    def resume(self) -> None:
        from .checkpoint import load_checkpoint
        ckpt = load_checkpoint(self.out / 'last.safetensors')
        self.model.load_state_dict(ckpt.restorer_state)
        if ckpt.clip_state:
            self.clip.open_clip_model.load_state_dict(ckpt.clip_state, strict=False)
        state = torch.load(self.out / 'train_state.pt', map_location=self.device,
                           weights_only=True)
        self.opt.load_state_dict(state['optimizer'])
        self.sched.load_state_dict(state['scheduler'])
        self.scaler.load_state_dict(state['scaler'])
        self.step = int(state['step'])
        self.wall_time = float(state.get('wall_time', 0.0))

    # ---------------------------------------------------------------- loop
    wall_time = 0.0

    def train(self, max_steps: int | None = None, progress: bool = True) -> dict[str, Any]:
        from tqdm import tqdm

        from .data import make_loader
        cfg = self.cfg
        end = min(cfg.steps, self.step + max_steps) if max_steps else cfg.steps
        loader = make_loader(self.train_set, cfg.batch_size, shuffle=True, seed=cfg.seed,
                             num_workers=cfg.num_workers, distributed=self.distributed)
        log = ScalarLog(self.out) if self.rank == 0 else None
        bar = tqdm(total=end, initial=self.step, disable=not progress or self.rank != 0,
                   unit='step', dynamic_ncols=True)
        self.model.train()
        self.clip.train(self.clip_trainable)
        epoch = self.step * cfg.batch_size * self.world // max(1, len(self.train_set))
        t_start = time.time() - self.wall_time
        running: dict[str, float] = {}
        while self.step < end:
            if hasattr(loader.sampler, 'set_epoch'):
                loader.sampler.set_epoch(epoch)
            if hasattr(self.train_set, 'set_epoch'):
                self.train_set.set_epoch(epoch)
            for batch in loader:
                if self.step >= end:
                    break
                x = batch['input'].to(self.device, non_blocking=True)
                y = batch['target'].to(self.device, non_blocking=True)
                label = batch['label'].to(self.device, non_blocking=True)
                with torch.autocast('cuda', dtype=torch.float16, enabled=self.amp):
                    total, terms = self.objective(x, y, label)
                self.opt.zero_grad(set_to_none=True)
                self.scaler.scale(total).backward()
                self.scaler.unscale_(self.opt)
                params = [p for g in self.opt.param_groups for p in g['params']]
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                self.scaler.step(self.opt)
                self.scaler.update()
                self.sched.step()
                self.step += 1
                self.wall_time = time.time() - t_start
                for k, v in {'total': total, **terms}.items():
                    running[k] = running.get(k, 0.0) + float(v.detach())
                bar.update(1)
                if self.step % cfg.log_every == 0 or self.step == end:
                    means = {f'loss/{k}': v / cfg.log_every for k, v in running.items()}
                    running = {}
                    bar.set_postfix(loss=f'{means["loss/total"]:.4f}')
                    if log:
                        log.write(self.step, {**means, 'lr': self.sched.get_last_lr()[0]})
                if self.val_set is not None and (self.step % cfg.val_every == 0
                                                 or self.step == end):
                    self.validate(log)
                if self.rank == 0 and (self.step % cfg.ckpt_every == 0 or self.step == end):
                    self.save()
            epoch += 1
        bar.close()
        if log:
            log.close()
        return self.summary()

    @torch.no_grad()
    def validate(self, log=None) -> dict[str, float]:
        """PSNR/SSIM (Y channel, as the benchmark papers report) and weather accuracy."""
        from .metrics import psnr as psnr_np
        from .metrics import ssim as ssim_np
        self.model.eval()
        self.clip.eval()
        psnrs, ssims, correct, seen = [], [], 0, 0
        n = min(len(self.val_set), self.cfg.val_images)
        for i in range(self.rank, n, self.world):
            s = self.val_set[i]
            x = s['input'][None].to(self.device)
            out = self.model(x, self.clip.encode(x).embedding)
            correct += int(out.logits.argmax(-1).item() == int(s['label']))
            seen += 1
            if self.cfg.class_names[int(s['label'])] == 'clear':
                continue  # input == target: its PSNR is unbounded and would swamp the mean
            pred = _to_uint8(out.image[0])
            gt = _to_uint8(s['target'])
            psnrs.append(psnr_np(pred, gt))
            ssims.append(ssim_np(pred, gt))
        stats = torch.tensor([sum(psnrs), sum(ssims), len(psnrs), correct, seen],
                             dtype=torch.float64, device=self.device)
        if self.distributed:
            dist.all_reduce(stats)
        count = max(1.0, float(stats[2]))
        self.last_val = {'val_psnr': round(float(stats[0]) / count, 3),
                         'val_ssim': round(float(stats[1]) / count, 4),
                         'val_accuracy': round(float(stats[3]) / max(1.0, float(stats[4])), 4)}
        if log:
            log.write(self.step, {f'val/{k[4:]}': v for k, v in self.last_val.items()})
        self.model.train()
        self.clip.train(self.clip_trainable)
        return self.last_val

    def close(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()


def _to_uint8(t: torch.Tensor) -> np.ndarray:
    return (t.float().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()


def train(cfg: TrainConfig, resume: bool = False, device: str | None = None,
          max_steps: int | None = None, progress: bool = True) -> dict[str, Any]:
    trainer = Trainer(cfg, device=device)
    try:
        if resume:
            trainer.resume()
        return trainer.train(max_steps=max_steps, progress=progress)
    finally:
        trainer.close()
