"""Per-stream cache of the CLIP weather prior and the policy that decides when to refresh it.

Weather changes slowly compared with a camera's frame rate, so the CLIP image tower (the most
expensive part of a frame after the restorer itself) runs only when a stream's prior is stale:
every N frames, after a maximum age, or when the scene changes (a cut, a camera switch, a sudden
downpour). One :class:`PriorCache` serves one stream (camera); the engine keeps one per stream.

The module imports no torch, no cv2, no numpy at import time: the values it stores
(embeddings, thumbnails) may be numpy arrays or torch tensors on any device, and every operation
on them is written so both work (``a * old + (1 - a) * new`` for the EMA, ``float(abs(x -
y).mean())`` for the scene distance). torch, cv2 and numpy are imported lazily, only for the kind
of frame given; the command-line parsers take :class:`RefreshPolicy`'s defaults (through
``engine_settings``) and ``--help`` stays fast.
"""
from __future__ import annotations

import math
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

REASONS = ('empty', 'frames', 'age', 'scene')
THUMBNAIL_SIZE = 16


@dataclass
class RefreshPolicy:
    """When a stream's CLIP prior is recomputed. ``0`` disables a trigger.

    every_n_frames: refresh when this many frames were checked since the last refresh.
    max_age_s: refresh when the prior is at least this old (seconds of the cache's clock).
    scene_cut_threshold: refresh when the mean absolute difference between the frame's
        thumbnail (16x16 grey, values in [0, 1]) and the thumbnail the prior was computed from
        exceeds this. Comparing with the *reference* thumbnail, not with the previous frame,
        means a slow drift also triggers once it adds up, while a static scene never does.
    ema: weight of the old prior when a periodic refresh ('frames'/'age') stores a new one,
        in [0, 1); 0 replaces it. An empty cache and a scene cut always replace (blending the
        prior of another scene into the new one would be wrong).
    """

    every_n_frames: int = 30
    max_age_s: float = 2.0
    scene_cut_threshold: float = 0.12
    ema: float = 0.0

    def __post_init__(self):
        for name in ('every_n_frames', 'max_age_s', 'scene_cut_threshold', 'ema'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f'RefreshPolicy.{name} must be a number, got {value!r}')
            if not value >= 0 or math.isinf(value):  # `not >=` also catches NaN
                raise ValueError(f'RefreshPolicy.{name} must be finite and >= 0, got {value!r}')
        if self.every_n_frames != int(self.every_n_frames):
            raise ValueError(f'RefreshPolicy.every_n_frames must be a whole number, '
                             f'got {self.every_n_frames!r}')
        self.every_n_frames = int(self.every_n_frames)
        if self.ema >= 1:
            raise ValueError(f'RefreshPolicy.ema must be in [0, 1) (weight of the old prior; '
                             f'1 would never update it), got {self.ema!r}')

    @property
    def enabled_triggers(self) -> tuple[str, ...]:
        return tuple(name for name, v in (('frames', self.every_n_frames),
                                          ('age', self.max_age_s),
                                          ('scene', self.scene_cut_threshold)) if v)


def scene_thumbnail(frame, size: int = THUMBNAIL_SIZE):
    """A cheap scene-change statistic: the frame area-averaged to ``size`` x ``size`` grey.

    * numpy ``HxWx3`` (or ``HxW``/``HxWx1``/``HxWx4``) uint8, or float in [0, 1] ->
      ``size x size`` float32 numpy in [0, 1] (``cv2.resize`` with ``INTER_AREA``). A leading
      batch dimension (``BxHxWx3``) gives ``B x size x size``.
    * torch ``[3,H,W]`` -> ``[size,size]``; ``[B,3,H,W]`` -> ``[B,size,size]``; float in
      [0, 1] or uint8, any dtype/device. Computed with ``adaptive_avg_pool2d`` on the tensor's
      own device (no host transfer), returned as float32.

    Grey is the plain mean of the colour channels, so RGB and BGR frames give the same value.
    """
    torch = sys.modules.get('torch')  # a tensor can only exist if torch was imported already
    if torch is not None and isinstance(frame, torch.Tensor):
        return _tensor_thumbnail(frame, size)
    return _numpy_thumbnail(frame, size)


def _numpy_thumbnail(frame, size: int):
    import cv2
    import numpy as np

    frame = np.asarray(frame)
    if frame.ndim == 4:
        return np.stack([_numpy_thumbnail(f, size) for f in frame])
    if frame.ndim not in (2, 3) or frame.shape[0] == 0 or frame.shape[1] == 0:
        raise ValueError(f'scene_thumbnail: expected an HxW or HxWxC image, got shape '
                         f'{frame.shape}')
    if frame.ndim == 3 and frame.shape[2] == 4:
        frame = frame[:, :, :3]
    if frame.dtype == np.uint8:
        scale = 1.0 / 255.0
    elif frame.dtype == np.uint16:
        scale = 1.0 / 65535.0
    else:
        scale = 1.0
    if frame.dtype not in (np.uint8, np.uint16, np.float32):
        frame = frame.astype(np.float32)
    small = cv2.resize(np.ascontiguousarray(frame), (size, size), interpolation=cv2.INTER_AREA)
    small = small.astype(np.float32)
    if small.ndim == 3:
        small = small.mean(axis=2)
    return small * np.float32(scale)


def _tensor_thumbnail(frame, size: int):
    import torch.nn.functional as F

    if frame.dim() == 3:
        return _tensor_thumbnail(frame.unsqueeze(0), size)[0]
    if frame.dim() != 4 or frame.shape[1] not in (1, 3, 4):
        raise ValueError(f'scene_thumbnail: expected a [3,H,W] or [B,3,H,W] tensor, got shape '
                         f'{tuple(frame.shape)}')
    x = frame[:, :3]
    if not x.is_floating_point():
        x = x.float() / 255.0
    small = F.adaptive_avg_pool2d(x, size)
    return small.float().mean(dim=1)


def thumbnail_distance(a, b) -> float:
    """Mean absolute difference of two thumbnails (numpy or torch, same kind and shape)."""
    return float(abs(a - b).mean())


class PriorCache:
    """The CLIP prior of one stream, and when to recompute it.

    Per frame the caller does::

        reason = cache.check(scene_thumbnail(frame))     # counts the frame
        if reason is not None:
            cache.store(clip.encode(frame).embedding, thumbnail)
        use(cache.embedding)

    A lock guards the state: one stream is normally processed by one thread, but a node's
    parameter callback may swap ``policy`` and a diagnostics timer may read ``stats()`` from
    other threads at the same time. ``check`` and ``store`` are separate calls, so two threads
    processing the *same* stream could both refresh; that wastes a CLIP pass, nothing more.
    """

    def __init__(self, policy: RefreshPolicy | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self._lock = threading.Lock()
        self._clock = clock
        self._policy = self._validated(policy if policy is not None else RefreshPolicy())
        self.reset()

    @property
    def clock(self) -> Callable[[], float]:
        """What the prior's age is measured on: a steady clock live, the bag clock offline
        (so a recording gives the same refreshes on any machine)."""
        return self._clock

    @clock.setter
    def clock(self, clock: Callable[[], float]) -> None:
        with self._lock:
            self._clock = clock

    @staticmethod
    def _validated(policy) -> RefreshPolicy:
        if not isinstance(policy, RefreshPolicy):
            raise TypeError(f'policy must be a RefreshPolicy, got {type(policy).__name__}')
        return policy

    # ------------------------------------------------------------------------ state
    @property
    def policy(self) -> RefreshPolicy:
        return self._policy

    @policy.setter
    def policy(self, policy: RefreshPolicy) -> None:
        """Takes effect from the next ``check``; the cached prior is kept."""
        policy = self._validated(policy)
        with self._lock:
            self._policy = policy

    @property
    def embedding(self):
        """The current prior (whatever ``store`` was given, EMA-smoothed), or None."""
        return self._embedding

    @property
    def thumbnail(self):
        """The thumbnail of the frame the prior was last refreshed from, or None."""
        return self._thumbnail

    @property
    def probs(self):
        """The weather class probabilities of the frame the prior was refreshed from (the
        camera's cached verdict: skip-when-clear and ``classify_cached`` read it), or None.

        Set by the engine after the network ran on that frame (so after :meth:`store`, which
        clears it, as dropping the prior does): never smoothed, never older than the prior.
        """
        return self._probs

    @probs.setter
    def probs(self, value) -> None:
        with self._lock:
            self._probs = value

    @property
    def age_s(self) -> float | None:
        """Seconds since the last refresh, or None while the cache is empty."""
        stored = self._stored_at
        return None if stored is None else self._clock() - stored

    def reset(self) -> None:
        """Forget the prior *and* the statistics: the cache is as new."""
        with self._lock:
            self._clear_prior()
            self._frames = 0
            self._refreshes = 0
            self._reasons: Counter = Counter()

    def invalidate(self) -> None:
        """Forget the prior but keep the statistics: the next ``check`` returns 'empty'."""
        with self._lock:
            self._clear_prior()

    def _clear_prior(self) -> None:
        self._embedding = None
        self._thumbnail = None
        self._probs = None
        self._stored_at: float | None = None
        self._since = 0
        self._pending: str | None = None

    # ------------------------------------------------------------------------ per frame
    def check(self, thumbnail=None) -> str | None:
        """Count one frame; return why the prior must be refreshed now, or None.

        Reasons, in the order they are tested (the cheap ones first, so the scene distance,
        which syncs a GPU thumbnail to the host, is only computed when needed): 'empty' (no
        prior yet), 'frames' (``every_n_frames`` checked since the refresh), 'age'
        (``max_age_s`` elapsed), 'scene' (thumbnail distance above ``scene_cut_threshold``;
        a thumbnail of another kind or shape than the reference also counts as a cut).
        ``thumbnail=None`` skips the scene test.
        """
        with self._lock:
            p = self._policy
            self._frames += 1
            self._since += 1
            reason = None
            if self._embedding is None:
                reason = 'empty'
            elif p.every_n_frames and self._since >= p.every_n_frames:
                reason = 'frames'
            elif p.max_age_s and self._clock() - self._stored_at >= p.max_age_s:
                reason = 'age'
            elif p.scene_cut_threshold and thumbnail is not None and self._scene_cut(
                    thumbnail, p.scene_cut_threshold):
                reason = 'scene'
            if reason is not None:
                self._reasons[reason] += 1
            self._pending = reason
            return reason

    def _scene_cut(self, thumbnail, threshold: float) -> bool:
        ref = self._thumbnail
        if ref is None:
            return False
        if type(ref) is not type(thumbnail) or tuple(ref.shape) != tuple(thumbnail.shape):
            return True
        if getattr(ref, 'device', None) != getattr(thumbnail, 'device', None):
            return True
        return thumbnail_distance(thumbnail, ref) > threshold

    def store(self, embedding, thumbnail=None) -> None:
        """Store a freshly computed prior (and the thumbnail of the frame it came from).

        With ``policy.ema > 0`` a periodic refresh blends: ``ema * old + (1 - ema) * new``;
        after 'empty', 'scene', or when the old prior's kind/shape differs, the new prior
        replaces the old one. No renormalisation: a blend of unit vectors is slightly shorter
        than 1 (the caller may renormalise). The cached :attr:`probs` are cleared.
        """
        with self._lock:
            a = self._policy.ema
            old = self._embedding
            blend = (a > 0 and old is not None and self._pending not in ('empty', 'scene')
                     and type(old) is type(embedding)
                     and tuple(old.shape) == tuple(embedding.shape)
                     and getattr(old, 'device', None) == getattr(embedding, 'device', None))
            self._embedding = a * old + (1.0 - a) * embedding if blend else embedding
            if thumbnail is not None:
                self._thumbnail = thumbnail
            self._probs = None
            self._stored_at = self._clock()
            self._since = 0
            self._pending = None
            self._refreshes += 1

    def stats(self) -> dict[str, Any]:
        """frames, refreshes, reasons {reason: n}, age_s (None if empty), frames_since_refresh."""
        with self._lock:
            return {
                'frames': self._frames,
                'refreshes': self._refreshes,
                'reasons': {r: self._reasons.get(r, 0) for r in REASONS},
                'age_s': None if self._stored_at is None else self._clock() - self._stored_at,
                'frames_since_refresh': self._since,
            }
