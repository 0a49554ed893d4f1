"""GPU-resident inference: uint8 frames in, restored uint8 frames + weather out.

One engine (one model, one CLIP) serves every camera; each camera (``stream``) has its own
:class:`PriorCache`, so CLIP runs only when that camera's prior is stale. The frame crosses the
host/device boundary twice: once in (through a reused pinned buffer, non-blocking) and once out;
conversion, normalisation, CLIP preprocessing, the scene-change thumbnail and the network all run
on the device tensor.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import torch
import torch.nn.functional as F

from . import DEFAULT_WEATHER_CLASSES
from .checkpoint import Checkpoint, check_clip_matches, load_checkpoint
from .clip_prior import ClipPrior, build_open_clip_from_config
from .model.restorer import WeatherRestorer
from .prior_cache import PriorCache, RefreshPolicy, scene_thumbnail

PRECISIONS = {'fp32': torch.float32, 'fp16': torch.float16, 'bf16': torch.bfloat16}
OVERSIZE_MODES = ('tile', 'downscale')
CLASSIFIERS = ('head', 'zero_shot')


class EngineError(ValueError):
    """A frame or a setting the engine cannot work with; the message says which."""


@dataclass
class RestoreResult:
    image: np.ndarray                 # HxWx3 uint8 RGB
    label: str
    scores: dict[str, float]          # every class, in the engine's class order
    mask: np.ndarray | None           # HxW uint8, 255 = degraded (SAR gate)
    timings_ms: dict[str, float] = field(default_factory=dict)
    prior_refreshed: str | None = None  # why CLIP ran for this frame, or None
    skipped: bool = False             # passed through unchanged (skip-when-clear)


def resolve_device(device: str = 'auto') -> torch.device:
    if device == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    dev = torch.device(device)
    if dev.type == 'cuda' and not torch.cuda.is_available():
        raise EngineError(f'device {device!r} requested but CUDA is not available '
                          f'(torch {torch.__version__}); use device=cpu or auto')
    return dev


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    if precision == 'auto':
        return torch.float16 if device.type == 'cuda' else torch.float32
    if precision not in PRECISIONS:
        raise EngineError(f'precision must be one of auto, {", ".join(PRECISIONS)}; '
                          f'got {precision!r}')
    if precision == 'fp16' and device.type != 'cuda':
        raise EngineError('fp16 runs only on CUDA devices (CPU half-precision convolutions are '
                          'slow or unsupported); use fp32, or bf16 on a CPU with AVX512-BF16/AMX')
    if precision == 'bf16' and device.type == 'cuda' and not torch.cuda.is_bf16_supported():
        raise EngineError(f'bf16 is not supported on {torch.cuda.get_device_name(device)}; '
                          'use fp16')
    return PRECISIONS[precision]


def clip_from_checkpoint(ckpt: Checkpoint, model_name: str | None = None,
                         pretrained: str | None = None, cache_dir: str | None = None,
                         device: str | torch.device = 'cpu') -> ClipPrior:
    """The CLIP tower a checkpoint needs: its embedded one, or the named open_clip model."""
    check_clip_matches(ckpt.clip, model_name, pretrained)
    info = ckpt.clip
    if info.embedded:
        model = build_open_clip_from_config(info.open_clip_config)
        missing, unexpected = model.load_state_dict(ckpt.clip_state, strict=False)
        visual_missing = [k for k in missing if k.startswith('visual.')]
        if visual_missing or unexpected:
            raise ValueError(f'{ckpt.path}: embedded CLIP weights do not fit its config '
                             f'(missing {visual_missing[:3]}, unexpected {unexpected[:3]})')
        clip = ClipPrior.from_open_clip_model(
            model, class_names=ckpt.class_names, model_name=info.model_name,
            model_cfg=info.open_clip_config, has_text_tower=info.has_text_tower)
        return clip.to(device)
    return ClipPrior.from_pretrained(info.model_name, info.pretrained, cache_dir=cache_dir,
                                     device=device, class_names=ckpt.class_names)


class _Stream:
    """Per-camera state: the prior cache and the reused host buffers."""

    def __init__(self, policy: RefreshPolicy):
        self.cache = PriorCache(policy)
        self.host_in: torch.Tensor | None = None

    def pinned_input(self, frame: np.ndarray) -> torch.Tensor:
        if self.host_in is None or tuple(self.host_in.shape) != frame.shape:
            self.host_in = torch.empty(frame.shape, dtype=torch.uint8, pin_memory=True)
        self.host_in.numpy()[...] = frame
        return self.host_in


class RestorationEngine:
    """Restore frames of any number of camera streams with one shared model.

    Thread-safe: calls are serialised by a lock, so a node may call it from a worker thread while
    its parameter callback changes thresholds.
    """

    def __init__(self, model: WeatherRestorer, clip: ClipPrior,
                 class_names: Iterable[str] = DEFAULT_WEATHER_CLASSES, *,
                 device: str = 'auto', precision: str = 'auto',
                 refresh: RefreshPolicy | None = None, classifier: str = 'head',
                 skip_clear_threshold: float = 0.0, max_pixels: int = 1920 * 1080,
                 oversize: str = 'tile', tile_size: int = 512, tile_overlap: int = 64,
                 warmup: bool = True, warmup_shape: tuple[int, int] = (480, 640)):
        self.device = resolve_device(device)
        self.dtype = resolve_precision(precision, self.device)
        self.class_names = tuple(class_names)
        if classifier not in CLASSIFIERS:
            raise EngineError(f'classifier must be one of {CLASSIFIERS}, got {classifier!r}')
        if classifier == 'zero_shot' and not clip.has_text_tower:
            raise EngineError('classifier=zero_shot needs a CLIP with a text tower; this '
                              "checkpoint's CLIP has none (use classifier=head)")
        if oversize not in OVERSIZE_MODES:
            raise EngineError(f'oversize must be one of {OVERSIZE_MODES}, got {oversize!r}')
        if tile_overlap * 2 >= tile_size:
            raise EngineError('tile_overlap must be less than half of tile_size')
        self.classifier = classifier
        self.skip_clear_threshold = skip_clear_threshold
        self.max_pixels = int(max_pixels)
        self.oversize = oversize
        self.tile_size, self.tile_overlap = int(tile_size), int(tile_overlap)
        self._policy = refresh or RefreshPolicy()
        self._streams: dict[str, _Stream] = {}
        self._lock = threading.Lock()

        memory_format = (torch.channels_last if self.device.type == 'cuda'
                         else torch.contiguous_format)
        self._memory_format = memory_format
        self.model = model.eval().to(self.device, self.dtype, memory_format=memory_format)
        self.clip = clip.eval().to(self.device)
        if self.device.type == 'cuda':
            self.clip = self.clip.to(self.dtype)
        for p in list(self.model.parameters()) + list(self.clip.parameters()):
            p.requires_grad_(False)
        self.warmup_ms = self.warm_up(warmup_shape) if warmup else 0.0

    @classmethod
    def from_checkpoint(cls, checkpoint: str | None = None, *, clip_model: str | None = None,
                        clip_pretrained: str | None = None, clip_cache_dir: str | None = None,
                        device: str = 'auto', **kwargs) -> 'RestorationEngine':
        """Load a checkpoint (``None``: the shipped model) and the CLIP it was trained with."""
        ckpt = load_checkpoint(checkpoint)
        model = WeatherRestorer(ckpt.config)
        model.load_state_dict(ckpt.restorer_state)
        clip = clip_from_checkpoint(ckpt, clip_model, clip_pretrained, clip_cache_dir)
        engine = cls(model, clip, ckpt.class_names, device=device, **kwargs)
        engine.checkpoint = ckpt
        return engine

    # ----------------------------------------------------------------- settings at runtime
    @property
    def refresh_policy(self) -> RefreshPolicy:
        return self._policy

    @refresh_policy.setter
    def refresh_policy(self, policy: RefreshPolicy) -> None:
        with self._lock:
            self._policy = policy
            for s in self._streams.values():
                s.cache.policy = policy

    def cache(self, stream: str) -> PriorCache:
        return self._stream(stream).cache

    def forget_stream(self, stream: str) -> None:
        """Drop a stream's prior and buffers (a camera that went away, a finished video)."""
        with self._lock:
            self._streams.pop(stream, None)

    def streams(self) -> list[str]:
        return list(self._streams)

    def _stream(self, name: str) -> _Stream:
        s = self._streams.get(name)
        if s is None:
            s = self._streams[name] = _Stream(self._policy)
        return s

    # ------------------------------------------------------------------------ inference
    def warm_up(self, shape: tuple[int, int] = (480, 640)) -> float:
        """One full pass on a dummy frame, so the first real frame is not the slow one."""
        t0 = time.perf_counter()
        frame = np.full((*shape, 3), 127, np.uint8)
        self.restore_batch([('__warmup__', frame)])
        self._streams.pop('__warmup__', None)
        return (time.perf_counter() - t0) * 1e3

    def restore(self, rgb: np.ndarray, stream: str = 'default') -> RestoreResult:
        return self.restore_batch([(stream, rgb)])[0]

    def restore_batch(self, frames: list[tuple[str, np.ndarray]]) -> list[RestoreResult]:
        """Restore frames of several streams; frames of equal size share one forward pass."""
        names = [s for s, _ in frames]
        if len(set(names)) != len(names):
            raise EngineError('one frame per stream per batch: the prior cache is per stream')
        arrays = [_as_rgb(a) for _, a in frames]
        results: list[RestoreResult | None] = [None] * len(frames)
        with self._lock, torch.inference_mode():
            groups: dict[tuple, list[int]] = {}
            for i, a in enumerate(arrays):
                groups.setdefault(a.shape, []).append(i)
            for idx in groups.values():
                out = self._restore_group([names[i] for i in idx], [arrays[i] for i in idx])
                for i, r in zip(idx, out):
                    results[i] = r
        return results  # type: ignore[return-value]

    def _restore_group(self, names: list[str], arrays: list[np.ndarray]) -> list[RestoreResult]:
        timer = _StageTimer(self.device)
        x = self._upload(names, arrays)
        timer.mark('upload')

        streams = [self._stream(n) for n in names]
        thumbs = scene_thumbnail(x)
        reasons = [s.cache.check(thumbs[i]) for i, s in enumerate(streams)]
        stale = [i for i, r in enumerate(reasons) if r is not None]
        if stale:
            feats = self.clip.encode(x[stale])
            for j, i in enumerate(stale):
                streams[i].cache.store(feats.embedding[j], thumbs[i])
        timer.mark('clip')

        # Skip-when-clear: a frame whose stream's prior says "clear" goes through unchanged.
        # A refresh frame always gets the full pass, so the cached verdict stays current.
        run = [i for i, s in enumerate(streams) if reasons[i] is not None
               or not self._confidently_clear(s.cache)]
        image = x.clone() if len(run) < len(names) else None
        mask = torch.zeros_like(x[:, :1])
        probs = torch.stack([self._cached_probs(s.cache) for s in streams])
        if run:
            emb = torch.stack([streams[i].cache.embedding for i in run]).to(self.dtype)
            restored, m, logits = self._forward(x[run], emb)
            if self.classifier == 'zero_shot':
                p = self.clip.zero_shot(emb.float())
            else:
                p = logits.float().softmax(-1)
            if image is None:
                image = restored
            else:
                image[run] = restored
            mask[run] = m
            probs[run] = p.to(probs.dtype)
            for j, i in enumerate(run):
                if reasons[i] is not None:
                    streams[i].cache.extras['probs'] = p[j]
        timer.mark('restore')

        img_u8 = (image.float().clamp(0, 1) * 255).round_().to(torch.uint8)
        img_u8 = img_u8.permute(0, 2, 3, 1).contiguous().cpu().numpy()
        mask_u8 = (mask.float() * 255).round_().to(torch.uint8)[:, 0].cpu().numpy()
        probs = probs.float().cpu().numpy()
        timer.mark('download')

        results = []
        for i in range(len(names)):
            scores = {c: float(p) for c, p in zip(self.class_names, probs[i])}
            results.append(RestoreResult(
                image=img_u8[i], label=self.class_names[int(probs[i].argmax())], scores=scores,
                mask=mask_u8[i], timings_ms=timer.ms(), prior_refreshed=reasons[i],
                skipped=i not in run))
        return results

    def _upload(self, names: list[str], arrays: list[np.ndarray]) -> torch.Tensor:
        """uint8 HxWx3 frames -> float [B,3,H,W] in [0,1] on the device, in compute dtype."""
        if self.device.type == 'cuda':
            host = [self._stream(n).pinned_input(a) for n, a in zip(names, arrays)]
            dev = torch.stack([h.to(self.device, non_blocking=True) for h in host])
        else:
            dev = torch.stack([torch.from_numpy(a) for a in arrays])
        x = dev.permute(0, 3, 1, 2).to(self.dtype).div_(255.0)
        return x.contiguous(memory_format=self._memory_format)

    def _confidently_clear(self, cache: PriorCache) -> bool:
        thr = self.skip_clear_threshold
        probs = cache.extras.get('probs')
        if thr <= 0 or probs is None or 'clear' not in self.class_names:
            return False
        return float(probs[self.class_names.index('clear')]) >= thr

    def _cached_probs(self, cache: PriorCache) -> torch.Tensor:
        probs = cache.extras.get('probs')
        if probs is None:
            return torch.full((len(self.class_names),), 1.0 / len(self.class_names),
                              device=self.device)
        return probs.float()

    def _forward(self, x: torch.Tensor, emb: torch.Tensor):
        """The network on a batch, tiled or downscaled when the frame is over ``max_pixels``."""
        h, w = x.shape[-2:]
        if h * w <= self.max_pixels:
            out = self.model(x, emb)
            return out.image, out.mask, out.logits
        if self.oversize == 'downscale':
            scale = (self.max_pixels / (h * w)) ** 0.5
            small = F.interpolate(x, scale_factor=scale, mode='area')
            out = self.model(small, emb)
            # Restore at low resolution, then add the upsampled *correction* to the full-size
            # input: full-resolution detail survives, weather removal is kept.
            delta = F.interpolate(out.image - small, size=(h, w), mode='bilinear',
                                  align_corners=False)
            mask = F.interpolate(out.mask, size=(h, w), mode='bilinear', align_corners=False)
            return (x + delta).clamp_(0, 1), mask, out.logits
        return self._tiled(x, emb)

    def _tiled(self, x: torch.Tensor, emb: torch.Tensor):
        """Overlapping tiles blended with linear ramps, so seams do not show."""
        h, w = x.shape[-2:]
        t, step = self.tile_size, self.tile_size - self.tile_overlap
        th, tw = min(t, h), min(t, w)
        ramp = _ramp_window(th, tw, self.tile_overlap, x.device, x.dtype)
        image = torch.zeros_like(x)
        mask = torch.zeros_like(x[:, :1])
        weight = torch.zeros_like(x[:1, :1])
        logits = []
        for y0 in _tile_starts(h, th, step):
            for x0 in _tile_starts(w, tw, step):
                tile = x[..., y0:y0 + th, x0:x0 + tw]
                out = self.model(tile, emb)
                image[..., y0:y0 + th, x0:x0 + tw] += out.image * ramp
                mask[..., y0:y0 + th, x0:x0 + tw] += out.mask * ramp
                weight[..., y0:y0 + th, x0:x0 + tw] += ramp
                logits.append(out.logits)
        return image / weight, mask / weight, torch.stack(logits).mean(0)


def _tile_starts(length: int, tile: int, step: int) -> list[int]:
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, step))
    return starts + [length - tile]


def _ramp_window(h: int, w: int, overlap: int, device, dtype) -> torch.Tensor:
    def ramp(n):
        i = torch.arange(n, device=device, dtype=torch.float32)
        return torch.minimum(torch.ones_like(i),
                             torch.minimum(i + 1, n - i) / (overlap + 1))
    return (ramp(h)[:, None] * ramp(w)[None, :]).to(dtype)


def _as_rgb(a: np.ndarray) -> np.ndarray:
    """Accept HxW / HxWx1 grey and HxWx4 RGBA as well as HxWx3 RGB uint8 frames."""
    if not isinstance(a, np.ndarray) or a.dtype != np.uint8:
        raise EngineError(f'frames must be uint8 numpy arrays, got '
                          f'{type(a).__name__} {getattr(a, "dtype", "")}')
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise EngineError(f'frames must be HxW, HxWx1, HxWx3 or HxWx4; got shape {a.shape}')
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise EngineError(f'empty frame {a.shape[1]}x{a.shape[0]}')
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    elif a.shape[2] == 4:
        a = a[..., :3]
    return np.ascontiguousarray(a)


class _StageTimer:
    """Wall-clock per stage; on CUDA it synchronises, so the split is real (costs ~10 us)."""

    def __init__(self, device: torch.device):
        self._sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
        self._t = time.perf_counter()
        self._ms: dict[str, float] = {}

    def mark(self, stage: str) -> None:
        self._sync()
        now = time.perf_counter()
        self._ms[stage] = (now - self._t) * 1e3
        self._t = now

    def ms(self) -> dict[str, float]:
        d = dict(self._ms)
        d['total'] = sum(self._ms.values())
        return d
