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

Frames over ``max_pixels`` are restored in overlapping tiles (``oversize='tile'``; tiles are
aligned to the network's stride and blended so that, where the network's receptive field fits in
a quarter of the overlap, the result equals the untiled one) or at a reduced size
(``'downscale'``: the correction is computed small and upsampled onto the full-size frame).
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from . import DEFAULT_WEATHER_CLASSES, harm
from .backends import BACKENDS, BackendUnavailable, make_backend
from .checkpoint import Checkpoint, check_clip_matches, load_checkpoint
from .encoders import ClipPrior
from .factory import encoder_from_checkpoint, restorer_from_checkpoint
from .model.restorer import WeatherRestorer
from .prior_cache import PriorCache, RefreshPolicy, scene_thumbnail

PRECISIONS = {'fp32': torch.float32, 'fp16': torch.float16, 'bf16': torch.bfloat16}
OVERSIZE_MODES = ('tile', 'downscale')
CLASSIFIERS = ('head', 'zero_shot')
STAGES = ('upload', 'clip', 'restore', 'download', 'total')


class EngineError(ValueError):
    """A frame or a setting the engine cannot work with; the message says which."""


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


def resolve_device(device: str | torch.device = 'auto') -> torch.device:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' -> torch.device; EngineError if it cannot be used."""
    if str(device) == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise EngineError(f'device must be auto, cpu, cuda or cuda:N; got {device!r}') from exc
    if dev.type not in ('cpu', 'cuda'):
        raise EngineError(f'device must be auto, cpu, cuda or cuda:N; got {device!r}')
    if dev.type == 'cuda':
        if not torch.cuda.is_available():
            raise EngineError(f'device {str(device)!r} requested but CUDA is not available '
                              f'(torch {torch.__version__}, built with CUDA '
                              f'{torch.version.cuda}); use device cpu or auto')
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise EngineError(f'device {str(device)!r} requested but only '
                              f'{torch.cuda.device_count()} CUDA device(s) are visible')
        if dev.index is None:
            dev = torch.device('cuda', torch.cuda.current_device())
    return dev


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """'auto' (fp16 on CUDA, fp32 on CPU) | 'fp32' | 'fp16' (CUDA only) | 'bf16'."""
    if precision == 'auto':
        return torch.float16 if device.type == 'cuda' else torch.float32
    if precision not in PRECISIONS:
        raise EngineError(f'precision must be one of auto, {", ".join(PRECISIONS)}; '
                          f'got {precision!r}')
    if precision == 'fp16' and device.type != 'cuda':
        raise EngineError('precision fp16 runs only on CUDA devices (CPU half-precision '
                          'convolutions are slow or unsupported); use fp32, or bf16 on a CPU '
                          'with AVX512-BF16/AMX')
    if precision == 'bf16' and device.type == 'cuda' and not torch.cuda.is_bf16_supported():
        raise EngineError(f'bf16 is not supported on {torch.cuda.get_device_name(device)}; '
                          'use fp16')
    return PRECISIONS[precision]


class _Stream:
    """Per-camera state: the prior cache and (CUDA) the reused pinned upload buffer."""

    def __init__(self, policy: RefreshPolicy):
        self.cache = PriorCache(policy)
        self.host: torch.Tensor | None = None            # pinned HxWxC uint8
        self.copied: torch.cuda.Event | None = None       # recorded after the copy from `host`

    def stage(self, frame: np.ndarray) -> torch.Tensor:
        """``frame`` in this stream's pinned buffer, ready for a non-blocking copy.

        The buffer is rewritten only after the previous asynchronous copy out of it finished
        (its event), so a frame can never be overwritten while the device still reads it.
        """
        if self.copied is not None:
            self.copied.synchronize()
        if self.host is None or tuple(self.host.shape) != frame.shape:
            self.host = torch.empty(frame.shape, dtype=torch.uint8, pin_memory=True)
        self.host.numpy()[...] = frame
        return self.host


class RestorationEngine:
    """Restore frames of any number of camera streams with one shared model.

    Thread-safe: calls are serialised by a lock, so a node may call it from a worker thread while
    its parameter callback changes the settings (``refresh_policy``, ``skip_clear_threshold``,
    ``max_pixels``, ``oversize``, ``harm_guard`` may be changed at any time; they apply from
    the next call).

    ``harm_guard`` (default on): every restored frame is checked against its input with
    :func:`weather_restore_ros.harm.guard`; blocks where the network sprayed coloured speckle
    get the input back (feathered), and the result says so (``unsafe_output``,
    ``replaced_fraction``). Off, the raw network output is published (evaluation measures the
    raw model that way).

    ``backend``: ``'torch'`` (the modules) or ``'onnxruntime'`` (their ONNX graphs, from
    ``onnx_dir`` or exported into a cache folder at start-up; ``threads`` sets its CPU threads,
    default torch's; ``log(str)`` hears which providers it chose). The settings, the prior
    cache and the guards do not depend on it.
    """

    def __init__(self, model: WeatherRestorer, clip: ClipPrior,
                 class_names: Iterable[str] = DEFAULT_WEATHER_CLASSES, *,
                 device: str = 'auto', precision: str = 'auto',
                 refresh: RefreshPolicy | None = None, classifier: str = 'head',
                 skip_clear_threshold: float = 0.0, max_pixels: int = 1920 * 1080,
                 oversize: str = 'tile', tile_size: int = 512, tile_overlap: int = 64,
                 warmup: bool = True, warmup_shape: tuple[int, int] = (480, 640),
                 harm_guard: bool = True, backend: str = 'torch', onnx_dir: str | None = None,
                 threads: int | None = None, log=None):
        self.device = resolve_device(device)
        self.dtype = resolve_precision(precision, self.device)
        self.precision = {v: k for k, v in PRECISIONS.items()}[self.dtype]
        self.class_names = tuple(class_names)
        if len(self.class_names) != model.cfg.num_classes:
            raise EngineError(f'{len(self.class_names)} class names for a model with '
                              f'{model.cfg.num_classes} classes')
        if classifier not in CLASSIFIERS:
            raise EngineError(f'classifier must be one of {CLASSIFIERS}, got {classifier!r}')
        if classifier == 'zero_shot' and clip.text_embeddings is None:
            raise EngineError('classifier=zero_shot needs a CLIP with class text embeddings; '
                              "this checkpoint's CLIP has no text tower (use classifier=head)")
        if model.cfg.needs_clip and clip.embed_dim != model.cfg.clip_dim:
            raise EngineError(f'CLIP embedding {clip.embed_dim}-d, model expects '
                              f'{model.cfg.clip_dim}-d')
        if tile_size < 1 or tile_overlap < 0 or tile_overlap * 2 >= tile_size:
            raise EngineError(f'need tile_size > 2 * tile_overlap >= 0, got tile_size '
                              f'{tile_size}, tile_overlap {tile_overlap}')
        check_backend(backend)
        self.classifier = classifier
        self.skip_clear_threshold = float(skip_clear_threshold)
        self.harm_guard = bool(harm_guard)
        self.max_pixels = max_pixels
        self.oversize = oversize
        self.tile_size, self.tile_overlap = int(tile_size), int(tile_overlap)
        self.checkpoint: Checkpoint | None = None
        self._policy = refresh if refresh is not None else RefreshPolicy()
        self._streams: dict[str, _Stream] = {}
        self._lock = threading.Lock()          # one inference at a time
        self._streams_lock = threading.Lock()  # the stream table (diagnostics read it too)
        try:  # before the modules move: an ONNX export traces them on the CPU in fp32
            self.backend = make_backend(backend, model, clip, device=self.device,
                                        dtype=self.dtype, threads=threads, onnx_dir=onnx_dir,
                                        log=log)
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
        self.warmup_ms = self.warm_up(warmup_shape) if warmup else 0.0

    @classmethod
    def from_checkpoint(cls, checkpoint: str | None = None, *, clip_model: str | None = None,
                        clip_pretrained: str | None = None, clip_cache_dir: str | None = None,
                        device: str = 'auto', **kwargs) -> 'RestorationEngine':
        """Load a checkpoint (``None``: the shipped model) and the CLIP it was trained with.

        ``clip_model``/``clip_pretrained``: the configured CLIP, checked against the one in the
        checkpoint (None/empty: use the checkpoint's). Other keyword arguments go to ``__init__``.
        """
        ckpt = load_checkpoint(checkpoint)
        check_clip_matches(ckpt.clip, clip_model, clip_pretrained)  # before any slow load
        device_ = resolve_device(device)
        resolve_precision(kwargs.get('precision', 'auto'), device_)  # fail before loading
        check_backend(kwargs.get('backend', 'torch'))
        model = restorer_from_checkpoint(ckpt)
        clip = encoder_from_checkpoint(ckpt, clip_model, clip_pretrained, clip_cache_dir)
        engine = cls(model, clip, ckpt.class_names, device=str(device_), **kwargs)
        engine.checkpoint = ckpt
        return engine

    # ----------------------------------------------------------------- settings at runtime
    @property
    def refresh_policy(self) -> RefreshPolicy:
        return self._policy

    @refresh_policy.setter
    def refresh_policy(self, policy: RefreshPolicy) -> None:
        if not isinstance(policy, RefreshPolicy):
            raise TypeError(f'refresh_policy must be a RefreshPolicy, got {type(policy).__name__}')
        with self._streams_lock:
            self._policy = policy
            for s in self._streams.values():
                s.cache.policy = policy

    @property
    def max_pixels(self) -> int:
        return self._max_pixels

    @max_pixels.setter
    def max_pixels(self, value: int) -> None:
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise EngineError(f'max_pixels must be a positive whole number, got {value!r}')
        self._max_pixels = int(value)

    @property
    def oversize(self) -> str:
        return self._oversize

    @oversize.setter
    def oversize(self, value: str) -> None:
        if value not in OVERSIZE_MODES:
            raise EngineError(f'oversize must be one of {OVERSIZE_MODES}, got {value!r}')
        self._oversize = value

    def cache(self, stream: str) -> PriorCache:
        """The stream's prior cache (created empty on first use)."""
        return self._stream(stream).cache

    def classify_cached(self, stream: str) -> tuple[str, dict[str, float]] | None:
        """(label, scores) of the stream's cached prior, without running anything; None while
        the stream has no prior yet."""
        with self._streams_lock:
            s = self._streams.get(stream)
        probs = None if s is None else s.cache.extras.get('probs')
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
                s = self._streams[name] = _Stream(self._policy)
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
        arrays = [_check_frame(a) for _, a in frames]
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
        rgb8, x = self._upload(streams, arrays)
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
            img8 = _to_uint8(image).permute(0, 2, 3, 1)
        else:  # skipped frames are the input bytes, bit for bit (bf16 would round them)
            img8, mask = rgb8.clone(), torch.zeros_like(x[:, :1])
            emb = logits = None
            if run:
                emb = torch.stack([streams[i].cache.embedding for i in run]).to(self.dtype)
                restored, m, logits, valid[run] = _finite_or_input(
                    x[run], *self._forward(x[run], emb))
                img8[run] = _to_uint8(restored).permute(0, 2, 3, 1)
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
                    streams[i].cache.extras['probs'] = p[j]
        timer.mark('restore')

        img_u8 = img8.contiguous().cpu().numpy()
        mask_u8 = _to_uint8(mask)[:, 0].cpu().numpy()
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

    def _upload(self, streams: list[_Stream], arrays: list[np.ndarray]):
        """Equal-shape uint8 HxWxC frames -> (uint8 [B,H,W,3] RGB view, float [B,3,H,W] in
        [0,1] in the compute dtype), both on the device. One host->device copy per frame;
        grey/RGBA conversion happens on the device."""
        shape = (len(arrays), *arrays[0].shape)
        if self.device.type == 'cuda':
            dev = torch.empty(shape, dtype=torch.uint8, device=self.device)
            cuda_stream = torch.cuda.current_stream(self.device)
            for i, (s, a) in enumerate(zip(streams, arrays)):
                dev[i].copy_(s.stage(a), non_blocking=True)
                if s.copied is None:
                    s.copied = torch.cuda.Event()
                s.copied.record(cuda_stream)
        else:
            dev = torch.empty(shape, dtype=torch.uint8)
            host = dev.numpy()   # copying through numpy also accepts read-only message buffers
            for i, a in enumerate(arrays):
                host[i] = a
        if dev.shape[-1] == 1:
            dev = dev.expand(-1, -1, -1, 3)
        elif dev.shape[-1] == 4:
            dev = dev[..., :3]
        x = dev.permute(0, 3, 1, 2).to(self.dtype).div_(255.0)
        return dev, x.contiguous(memory_format=self._memory_format)

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
        """Restore at <= max_pixels, then add the upsampled *correction* to the full-size input:
        full-resolution detail survives, the weather removal is kept (at lower resolution)."""
        h, w = x.shape[-2:]
        scale = math.sqrt(self.max_pixels / (h * w))
        size = (max(1, int(h * scale)), max(1, int(w * scale)))
        small = F.interpolate(x, size=size, mode='area')
        image, mask, logits = self.backend.restore(small, emb)
        delta = F.interpolate(image - small, size=(h, w), mode='bilinear', align_corners=False)
        mask = F.interpolate(mask, size=(h, w), mode='bilinear', align_corners=False)
        return (x + delta).clamp_(0, 1), mask.clamp_(0, 1), logits

    def tile_layout(self, h: int, w: int) -> tuple[int, int, list[tuple[int, int]],
                                                      list[tuple[int, int]]]:
        """(tile size, overlap, row spans, column spans) used for an ``h x w`` frame.

        The tile side is ``tile_size``, at most ``sqrt(max_pixels)``, rounded down to the
        network's stride; the overlap is rounded up to the stride (and shrunk if the tile is too
        small for it), so every tile starts on the stride grid of the whole frame.
        """
        s = self.model.stride
        t = max(s, min(self.tile_size, math.isqrt(self.max_pixels)) // s * s)
        ov = -(-self.tile_overlap // s) * s
        if 2 * ov >= t:
            ov = max(0, (t - 1) // 2) // s * s
        return t, ov, _tile_spans(h, t, ov), _tile_spans(w, t, ov)

    def _tiled(self, x: torch.Tensor, emb: torch.Tensor):
        """Overlapping tiles; in each overlap the outer quarter next to a tile's inner edge
        (where zero padding distorts the output) gets weight 0, the middle half a linear
        cross-fade. Weights of overlapping tiles sum to 1."""
        h, w = x.shape[-2:]
        _, ov, rows, cols = self.tile_layout(h, w)
        image = torch.zeros_like(x)
        mask = torch.zeros_like(x[:, :1])
        logits = 0
        for y0, y1 in rows:
            wy = _blend_weights(y1 - y0, ov, y0 > 0, y1 < h, x.device)
            for x0, x1 in cols:
                wx = _blend_weights(x1 - x0, ov, x0 > 0, x1 < w, x.device)
                win = (wy[:, None] * wx[None, :]).to(x.dtype)
                t_image, t_mask, t_logits = self.backend.restore(x[..., y0:y1, x0:x1], emb)
                image[..., y0:y1, x0:x1] += t_image * win
                mask[..., y0:y1, x0:x1] += t_mask * win
                logits = logits + t_logits.float()
        return image.clamp_(0, 1), mask.clamp_(0, 1), logits / (len(rows) * len(cols))


def check_backend(name: str) -> None:
    if name not in BACKENDS:
        raise EngineError(f'backend must be one of {", ".join(BACKENDS)}; got {name!r}')


def _tile_spans(length: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """[start, end) spans of ``tile`` (the last one shorter) stepping by ``tile - overlap``.
    The last span is always longer than ``overlap``, so each overlap lies inside both tiles."""
    spans, start = [], 0
    while True:
        end = min(start + tile, length)
        spans.append((start, end))
        if end >= length:
            return spans
        start += tile - overlap


def _blend_weights(n: int, overlap: int, lead: bool, trail: bool, device) -> torch.Tensor:
    """Per-pixel weights of a tile along one axis; ``lead``/``trail``: that edge is inside the
    frame (another tile overlaps it). Over the ``overlap`` pixels at an inner edge: ``m =
    overlap // 4`` zeros, a linear ramp, ``m`` ones -- the mirror image of the neighbour's."""
    w = torch.ones(n, device=device)
    if overlap:
        m = overlap // 4
        span = overlap - 2 * m + 1
        ramp = (torch.arange(overlap, device=device, dtype=torch.float32) - m + 1
                ).clamp_(0, span) / span
        if lead:
            w[:overlap] = ramp
        if trail:
            w[n - overlap:] = w[n - overlap:] * ramp.flip(0)
    return w


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


def _to_uint8(t: torch.Tensor) -> torch.Tensor:
    return (t.float().clamp(0, 1) * 255).round_().to(torch.uint8)


def _check_frame(a: np.ndarray) -> np.ndarray:
    """A valid HxWxC (C = 1, 3, 4) uint8 frame (a view when possible), else EngineError."""
    if not isinstance(a, np.ndarray) or a.dtype != np.uint8:
        raise EngineError(f'frames must be uint8 numpy arrays, got {type(a).__name__}'
                          f'{" " + str(a.dtype) if isinstance(a, np.ndarray) else ""}')
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise EngineError(f'frames must be HxW, HxWx1, HxWx3 (RGB) or HxWx4 (RGBA); '
                          f'got shape {a.shape}')
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise EngineError(f'empty frame ({a.shape[1]}x{a.shape[0]})')
    return a


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
