"""GPU-resident inference: uint8 frames in, restored uint8 frames + weather out.

One engine (one model, one CLIP) serves every camera; each camera (``stream``) has its own
:class:`PriorCache`, so CLIP runs only when that camera's prior is stale. The frame crosses the
host/device boundary twice: once in (through the stream's reused pinned buffer, non-blocking)
and once out; grey/RGBA -> RGB conversion, normalisation, CLIP preprocessing, the scene-change
thumbnail and the network all run on the device tensor.

Per call (``restore_batch``): frames are grouped by shape; each group is uploaded as one
``[B,H,W,C]`` uint8 tensor, the stale streams' frames go through CLIP together, the frames not
skipped go through the network together (split only when the batch exceeds ``max_pixels``), and
the results come back with one device->host copy per output.

The two networks run on a backend (:mod:`weather_restore_ros.backends`, ``backend='torch'`` or
``'onnxruntime'``): it is called for the restorer's forward and the encoder's, and everything
else here -- cache, skipping, tiling, guards -- is the same code for both.

What the engine does is an :class:`~weather_restore_ros.engine_settings.EngineSettings` (built
from one, changed while running with :meth:`RestorationEngine.apply`). Frames over
``max_pixels`` are restored in overlapping tiles or at a reduced size
(:mod:`weather_restore_ros.tiling`).
"""
from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
import torch

from . import DEFAULT_WEATHER_CLASSES, harm, tiling
from .backends import BackendUnavailable, make_backend
from .checkpoint import Checkpoint, check_clip_matches, load_checkpoint
from .devices import PRECISIONS, resolve_device, resolve_precision
from .encoders import ClipEncoder
from .engine_settings import RUNTIME_FIELDS, EngineError, EngineSettings
from .factory import encoder_from_checkpoint, restorer_from_checkpoint
from .frame_transfer import StagingBuffer, check_frame, upload
from .model.restorer import WeatherRestorer
from .prior_cache import PriorCache, RefreshPolicy, scene_thumbnail

STAGES = ('upload', 'clip', 'restore', 'download', 'total')


@dataclass
class RestoreResult:
    image: np.ndarray                 # HxWx3 uint8 RGB
    label: str
    scores: dict[str, float]          # every class, in the engine's class order
    mask: np.ndarray | None           # HxW uint8, 255 = degraded (SAR gate); zeros when skipped
    timings_ms: dict[str, float] = field(default_factory=dict)  # STAGES, for the whole group
    prior_refreshed: str | None = None  # why CLIP ran for this frame, or None
    skipped: bool = False             # passed through unchanged (skip-when-clear)
    invalid_output: bool = False      # the network gave inf/NaN: image is the input, unchanged
    unsafe_output: bool = False       # the harm guard found speckle: part of image is the input
    replaced_fraction: float = 0.0    # the share of the frame the harm guard gave the input back


class _Stream:
    """Per-camera state: the prior cache and (CUDA) the reused pinned upload buffer."""

    def __init__(self, policy: RefreshPolicy):
        self.cache = PriorCache(policy)
        self.staging = StagingBuffer()


class RestorationEngine:
    """Restore frames of any number of camera streams with one shared model.

    Built from an :class:`EngineSettings` (``settings``, plus keyword overrides of its fields:
    ``RestorationEngine(model, clip, names, device='cpu', warmup=False)``). Thread-safe: calls
    are serialised by a lock, so a node may call it from a worker thread while its parameter
    callback changes the runtime settings with :meth:`apply`; they apply from the next call.

    ``harm_guard`` (default on): every restored frame is checked against its input with
    :func:`weather_restore_ros.harm.guard`; blocks where the network sprayed coloured speckle
    get the input back (feathered), and the result says so (``unsafe_output``,
    ``replaced_fraction``). Off, the raw network output is published (evaluation measures the
    raw model that way).

    ``backend``: ``'torch'`` (the modules) or ``'onnxruntime'`` (their ONNX graphs, from
    ``onnx_dir`` or exported into a cache folder at start-up; ``threads`` sets its CPU threads,
    default torch's; ``log(str)`` hears which providers it chose). The settings, the prior
    cache and the guards do not depend on it.

    ``tile_size``/``tile_overlap`` (tiling of oversize frames) and ``warmup_shape`` are tuning
    of this class, not settings a user chooses.
    """

    def __init__(self, model: WeatherRestorer, clip: ClipEncoder,
                 class_names: Iterable[str] = DEFAULT_WEATHER_CLASSES,
                 settings: EngineSettings | None = None, *, tile_size: int = 512,
                 tile_overlap: int = 64, warmup_shape: tuple[int, int] = (480, 640), log=None,
                 **overrides):
        settings = (settings or EngineSettings()).replace(**overrides)
        self.device = resolve_device(settings.device)
        self.dtype = resolve_precision(settings.precision, self.device)
        self.precision = {v: k for k, v in PRECISIONS.items()}[self.dtype]
        self.class_names = tuple(class_names)
        if len(self.class_names) != model.cfg.num_classes:
            raise EngineError(f'{len(self.class_names)} class names for a model with '
                              f'{model.cfg.num_classes} classes')
        if settings.classifier == 'zero_shot' and clip.text_embeddings is None:
            raise EngineError('classifier=zero_shot needs a CLIP with class text embeddings; '
                              "this checkpoint's CLIP has no text tower (use classifier=head)")
        if model.cfg.needs_clip and clip.embed_dim != model.cfg.clip_dim:
            raise EngineError(f'CLIP embedding {clip.embed_dim}-d, model expects '
                              f'{model.cfg.clip_dim}-d')
        if tile_size < 1 or tile_overlap < 0 or tile_overlap * 2 >= tile_size:
            raise EngineError(f'need tile_size > 2 * tile_overlap >= 0, got tile_size '
                              f'{tile_size}, tile_overlap {tile_overlap}')
        self._settings = settings
        self.tile_size, self.tile_overlap = int(tile_size), int(tile_overlap)
        self.checkpoint: Checkpoint | None = None
        self._streams: dict[str, _Stream] = {}
        self._lock = threading.Lock()          # one inference at a time
        self._streams_lock = threading.Lock()  # the stream table (diagnostics read it too)
        try:  # before the modules move: an ONNX export traces them on the CPU in fp32
            self.backend = make_backend(settings.backend, model, clip, device=self.device,
                                        dtype=self.dtype, threads=settings.threads,
                                        onnx_dir=settings.onnx_dir, log=log)
        except BackendUnavailable as exc:
            raise EngineError(str(exc)) from exc

        # channels_last on CUDA (cuDNN's fast NHWC kernels for fp16/bf16). On CPU the weights
        # stay NCHW; the network runs its activations NHWC itself (WeatherRestorer.memory_format).
        self._memory_format = (torch.channels_last if self.device.type == 'cuda'
                               else torch.contiguous_format)
        self.model = model.eval().to(self.device, self.dtype, memory_format=self._memory_format)
        self.clip = clip.eval().to(self.device)
        if self.device.type == 'cuda':
            self.clip = self.clip.to(self.dtype)
        for p in list(self.model.parameters()) + list(self.clip.parameters()):
            p.requires_grad_(False)
        self.warmup_ms = self.warm_up(warmup_shape) if settings.warmup else 0.0

    @classmethod
    def from_settings(cls, settings: EngineSettings, **kwargs) -> 'RestorationEngine':
        """Load ``settings.checkpoint`` (None: the shipped model) and the CLIP it was trained
        with; ``settings.clip_model``/``clip_pretrained``, when set, are checked against the
        checkpoint's. ``kwargs``: ``tile_size``, ``tile_overlap``, ``warmup_shape``, ``log``."""
        ckpt = load_checkpoint(settings.checkpoint)
        check_clip_matches(ckpt.clip, settings.clip_model, settings.clip_pretrained)
        device = resolve_device(settings.device)
        resolve_precision(settings.precision, device)  # fail before any slow load
        model = restorer_from_checkpoint(ckpt)
        clip = encoder_from_checkpoint(ckpt, settings.clip_model, settings.clip_pretrained,
                                       settings.clip_cache_dir)
        engine = cls(model, clip, ckpt.class_names, settings.replace(device=str(device)),
                     **kwargs)
        engine.checkpoint = ckpt
        return engine

    @classmethod
    def from_checkpoint(cls, checkpoint: str | None = None, **kwargs) -> 'RestorationEngine':
        """:meth:`from_settings` with the settings given as keywords (``device='cpu'``,
        ``refresh=RefreshPolicy(...)``, ...); the other keywords go to ``__init__``."""
        names = {f.name for f in dataclasses.fields(EngineSettings)}
        fields = {k: kwargs.pop(k) for k in list(kwargs) if k in names}
        return cls.from_settings(EngineSettings(checkpoint=checkpoint, **fields), **kwargs)

    # ----------------------------------------------------------------- settings at runtime
    @property
    def settings(self) -> EngineSettings:
        """What the engine was built with, runtime settings as last applied."""
        return self._settings

    def apply(self, settings: EngineSettings) -> None:
        """Take the runtime settings of ``settings`` (``RUNTIME_FIELDS``: harm_guard,
        skip_clear_threshold, max_pixels, oversize, refresh) from the next call on; every
        stream's prior cache gets the refresh policy, keeping its prior. The other fields
        (checkpoint, device, precision, backend, ...) are what the engine was built with and
        are not looked at: changing them means building another engine."""
        if not isinstance(settings, EngineSettings):
            raise TypeError(f'apply takes EngineSettings, got {type(settings).__name__}')
        new = self._settings.replace(**{f: getattr(settings, f) for f in RUNTIME_FIELDS})
        with self._streams_lock:
            self._settings = new
            for s in self._streams.values():
                s.cache.policy = new.refresh

    def _set(self, **change) -> None:
        self.apply(self._settings.replace(**change))

    # Read-only views of the settings; the setters are shorthand for apply(settings.replace()).
    classifier = property(lambda self: self._settings.classifier)
    refresh_policy = property(lambda self: self._settings.refresh,
                              lambda self, v: self._set(refresh=v))
    skip_clear_threshold = property(lambda self: self._settings.skip_clear_threshold,
                                    lambda self, v: self._set(skip_clear_threshold=v))
    harm_guard = property(lambda self: self._settings.harm_guard,
                          lambda self, v: self._set(harm_guard=v))
    max_pixels = property(lambda self: self._settings.max_pixels,
                          lambda self, v: self._set(max_pixels=v))
    oversize = property(lambda self: self._settings.oversize,
                        lambda self, v: self._set(oversize=v))

    def cache(self, stream: str) -> PriorCache:
        """The stream's prior cache (created empty on first use)."""
        return self._stream(stream).cache

    def classify_cached(self, stream: str) -> tuple[str, dict[str, float]] | None:
        """(label, scores) of the stream's cached prior, without running anything; None while
        the stream has no prior yet."""
        with self._streams_lock:
            s = self._streams.get(stream)
        probs = None if s is None else s.cache.probs
        if probs is None:
            return None
        scores = dict(zip(self.class_names, (float(p) for p in probs.float().cpu())))
        return max(scores, key=scores.get), scores

    def forget_stream(self, stream: str) -> None:
        """Drop a stream's prior and buffers (a camera that went away, a finished video)."""
        with self._streams_lock:
            self._streams.pop(stream, None)

    def streams(self) -> list[str]:
        with self._streams_lock:
            return list(self._streams)

    def _stream(self, name: str) -> _Stream:
        with self._streams_lock:
            s = self._streams.get(name)
            if s is None:
                s = self._streams[name] = _Stream(self._settings.refresh)
            return s

    # ------------------------------------------------------------------------ inference
    def warm_up(self, shape: tuple[int, int] = (480, 640)) -> float:
        """One full pass (CLIP + network) on a dummy frame, so the first real frame is not the
        slow one (lazy kernel selection, allocator growth). Returns its duration in ms."""
        t0 = time.perf_counter()
        frame = np.full((*shape, 3), 127, np.uint8)
        self.restore_batch([('__warmup__', frame)])
        self.forget_stream('__warmup__')
        return (time.perf_counter() - t0) * 1e3

    def restore(self, rgb: np.ndarray, stream: str = 'default') -> RestoreResult:
        """Restore one HxW / HxWx1 / HxWx3 (RGB) / HxWx4 (RGBA) uint8 frame of ``stream``."""
        return self.restore_batch([(stream, rgb)])[0]

    def restore_batch(self, frames: Sequence[tuple[str, np.ndarray]]) -> list[RestoreResult]:
        """Restore one frame of each of several streams; frames of equal shape share one upload,
        one CLIP pass (for the stale streams) and one network pass."""
        frames = list(frames)
        names = [s for s, _ in frames]
        if len(set(names)) != len(names):
            raise EngineError('one frame per stream per batch: the prior cache is per stream')
        arrays = [check_frame(a) for _, a in frames]
        results: list[RestoreResult | None] = [None] * len(frames)
        groups: dict[tuple, list[int]] = {}
        for i, a in enumerate(arrays):
            groups.setdefault(a.shape, []).append(i)
        with self._lock, torch.inference_mode():
            for idx in groups.values():
                out = self._restore_group([names[i] for i in idx], [arrays[i] for i in idx])
                for i, r in zip(idx, out):
                    results[i] = r
        return results  # type: ignore[return-value]

    def _restore_group(self, names: list[str], arrays: list[np.ndarray]) -> list[RestoreResult]:
        timer = _StageTimer(self.device)
        streams = [self._stream(n) for n in names]
        rgb8, x = upload([s.staging for s in streams], arrays, self.device, self.dtype,
                         self._memory_format)
        timer.mark('upload')

        thumbs = scene_thumbnail(x)
        reasons = [s.cache.check(thumbs[i]) for i, s in enumerate(streams)]
        stale = [i for i, r in enumerate(reasons) if r is not None]
        if stale:
            embedding = self.backend.embed(x[stale])
            for j, i in enumerate(stale):
                streams[i].cache.store(embedding[j], thumbs[i])
        timer.mark('clip')

        # Skip-when-clear: a frame whose stream's prior says "clear" goes through unchanged.
        # A refresh frame always gets the full pass, so the cached verdict stays current.
        run = [i for i, s in enumerate(streams)
               if reasons[i] is not None or not self._confidently_clear(s.cache)]
        probs = torch.stack([self._cached_probs(s.cache) for s in streams])
        valid = torch.ones(len(names), dtype=torch.bool, device=self.device)
        if len(run) == len(names):
            emb = torch.stack([s.cache.embedding for s in streams]).to(self.dtype)
            image, mask, logits, valid = _finite_or_input(x, *self._forward(x, emb))
            img8 = harm.to_uint8(image).permute(0, 2, 3, 1)
        else:  # skipped frames are the input bytes, bit for bit (bf16 would round them)
            img8, mask = rgb8.clone(), torch.zeros_like(x[:, :1])
            emb = logits = None
            if run:
                emb = torch.stack([streams[i].cache.embedding for i in run]).to(self.dtype)
                restored, m, logits, valid[run] = _finite_or_input(
                    x[run], *self._forward(x[run], emb))
                img8[run] = harm.to_uint8(restored).permute(0, 2, 3, 1)
                mask[run] = m.to(mask.dtype)
        # Do no harm: blocks of a restored frame where the network sprayed speckle get the
        # input back (skipped frames are the input, invalid ones were given it above).
        unsafe = torch.zeros(len(names), dtype=torch.bool, device=self.device)
        replaced = torch.zeros(len(names), device=self.device)
        if run and self.harm_guard:
            img8, mask = self._guard(run, rgb8, img8, mask, unsafe, replaced)
        if run:
            p = (self.clip.zero_shot(emb.float()) if self.classifier == 'zero_shot'
                 else logits.float().softmax(-1))
            probs[run] = p
            for j, i in enumerate(run):
                if reasons[i] is not None:  # the stream's verdict, used by skip/classify_cached
                    streams[i].cache.probs = p[j]
        timer.mark('restore')

        img_u8 = img8.contiguous().cpu().numpy()
        mask_u8 = harm.to_uint8(mask)[:, 0].cpu().numpy()
        probs = probs.cpu().numpy()
        valid, unsafe, replaced = torch.stack(
            [valid.float(), unsafe.float(), replaced.float()]).cpu().numpy()
        timer.mark('download')

        timings = timer.ms()
        results = []
        for i in range(len(names)):
            scores = {c: float(v) for c, v in zip(self.class_names, probs[i])}
            results.append(RestoreResult(
                image=img_u8[i], label=self.class_names[int(probs[i].argmax())], scores=scores,
                mask=mask_u8[i], timings_ms=dict(timings), prior_refreshed=reasons[i],
                skipped=i not in run, invalid_output=not valid[i],
                unsafe_output=bool(unsafe[i]), replaced_fraction=float(replaced[i])))
        return results

    def _guard(self, run: list[int], rgb8: torch.Tensor, img8: torch.Tensor,
               mask: torch.Tensor, unsafe: torch.Tensor, replaced: torch.Tensor):
        """:func:`harm.guard` on the restored frames ``run`` of a group (uint8 ``[B,H,W,3]``
        input and output, before the download): returns the guarded ``img8`` and the mask
        (weighted like the image: no degradation is reported where the input went out), and
        fills ``unsafe``/``replaced`` in place. On the device, no synchronisation."""
        if len(run) == len(img8):
            img8 = img8.contiguous()  # the download's copy, made here: both frames NHWC
            g = harm.guard(rgb8.permute(0, 3, 1, 2), img8.permute(0, 3, 1, 2))
            unsafe.copy_(g.unsafe)
            replaced.copy_(g.replaced)
            return g.images.permute(0, 2, 3, 1), mask * g.weights.to(mask.dtype)
        g = harm.guard(rgb8[run].permute(0, 3, 1, 2), img8[run].permute(0, 3, 1, 2))
        img8[run] = g.images.permute(0, 2, 3, 1)
        mask[run] = mask[run] * g.weights.to(mask.dtype)
        unsafe[run] = g.unsafe
        replaced[run] = g.replaced
        return img8, mask

    def _confidently_clear(self, cache: PriorCache) -> bool:
        thr = self.skip_clear_threshold
        probs = cache.probs
        if thr <= 0 or probs is None or 'clear' not in self.class_names:
            return False
        return float(probs[self.class_names.index('clear')]) >= thr

    def _cached_probs(self, cache: PriorCache) -> torch.Tensor:
        probs = cache.probs
        if probs is None:
            return torch.full((len(self.class_names),), 1.0 / len(self.class_names),
                              device=self.device)
        return probs.float()

    # ------------------------------------------------------------------------ the network
    def _forward(self, x: torch.Tensor, emb: torch.Tensor):
        """The network on a batch -> (image, mask, logits). At most ``max_pixels`` go through
        one pass: a batch over it is split, a frame over it is tiled or downscaled."""
        b, _, h, w = x.shape
        per_pass = max(1, self.max_pixels // (h * w))
        if b > per_pass:
            parts = [self._forward(x[i:i + per_pass], emb[i:i + per_pass])
                     for i in range(0, b, per_pass)]
            return tuple(torch.cat(t) for t in zip(*parts))
        if h * w <= self.max_pixels:
            return self.backend.restore(x, emb)
        if self.oversize == 'downscale':
            return self._downscaled(x, emb)
        return self._tiled(x, emb)

    def _downscaled(self, x: torch.Tensor, emb: torch.Tensor):
        return tiling.downscaled(self.backend.restore, x, emb, self.max_pixels)

    def _tiled(self, x: torch.Tensor, emb: torch.Tensor):
        return tiling.tiled(self.backend.restore, x, emb, self.tile_layout(*x.shape[-2:]))

    def tile_layout(self, h: int, w: int) -> tuple[int, int, list[tuple[int, int]],
                                                      list[tuple[int, int]]]:
        """(tile size, overlap, row spans, column spans) used for an ``h x w`` frame
        (:func:`weather_restore_ros.tiling.layout`)."""
        return tiling.layout(h, w, stride=self.model.stride, tile_size=self.tile_size,
                             tile_overlap=self.tile_overlap, max_pixels=self.max_pixels)


def _finite_or_input(x: torch.Tensor, image: torch.Tensor, mask: torch.Tensor,
                     logits: torch.Tensor):
    """Frames whose output or logits are not finite get the input back, an empty mask and
    uniform scores, plus a per-frame ``valid`` flag. Without ``block_norm`` or ``gate_bound``
    nothing bounds the blocks: weights that let activations grow (SimpleGate squares them at
    every block) can overflow on inputs unlike the training data -- fp16 at ~65k -- and one NaN
    pixel would spread to the whole frame through the channel attention. Passing the frame
    through is honest; publishing the NaN-turned-zero image would not be. All on the device: no
    synchronisation."""
    valid = torch.isfinite(image).flatten(1).all(1) & torch.isfinite(logits).all(1)
    keep = valid.view(-1, 1, 1, 1)
    return (torch.where(keep, image, x), torch.where(keep, mask, 0.0),
            torch.where(valid.view(-1, 1), logits, 0.0), valid)


class _StageTimer:
    """Wall-clock per stage; on CUDA it synchronises, so the split is real (costs ~10 us)."""

    def __init__(self, device: torch.device):
        self._sync = ((lambda: torch.cuda.synchronize(device)) if device.type == 'cuda'
                      else (lambda: None))
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
