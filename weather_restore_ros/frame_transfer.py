"""Camera frames onto the engine's device: the checks a frame must pass, and the upload.

A frame crosses the host/device boundary once on the way in: on CUDA through its stream's
reused pinned buffer with a non-blocking copy (an event guards the buffer's reuse), on a CPU
by one copy into the batch tensor. Grey/RGBA -> RGB and the conversion to the compute dtype
happen on the device.
"""
from __future__ import annotations

import numpy as np
import torch

from .engine_settings import EngineError


def check_frame(a: np.ndarray) -> np.ndarray:
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


class StagingBuffer:
    """One camera's reused pinned host buffer (CUDA uploads)."""

    def __init__(self):
        self.host: torch.Tensor | None = None            # pinned HxWxC uint8
        self.copied: torch.cuda.Event | None = None       # recorded after the copy from `host`

    def stage(self, frame: np.ndarray) -> torch.Tensor:
        """``frame`` in this pinned buffer, ready for a non-blocking copy.

        The buffer is rewritten only after the previous asynchronous copy out of it finished
        (its event), so a frame can never be overwritten while the device still reads it.
        """
        if self.copied is not None:
            self.copied.synchronize()
        if self.host is None or tuple(self.host.shape) != frame.shape:
            self.host = torch.empty(frame.shape, dtype=torch.uint8, pin_memory=True)
        self.host.numpy()[...] = frame
        return self.host


def upload(buffers: list[StagingBuffer], arrays: list[np.ndarray], device: torch.device,
           dtype: torch.dtype, memory_format: torch.memory_format):
    """Equal-shape uint8 HxWxC frames (one buffer per frame's camera) -> (uint8 [B,H,W,3] RGB
    view, float [B,3,H,W] in [0,1] in ``dtype``), both on ``device``. One host->device copy per
    frame; grey/RGBA conversion happens on the device."""
    shape = (len(arrays), *arrays[0].shape)
    if device.type == 'cuda':
        dev = torch.empty(shape, dtype=torch.uint8, device=device)
        cuda_stream = torch.cuda.current_stream(device)
        for i, (s, a) in enumerate(zip(buffers, arrays)):
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
    x = dev.permute(0, 3, 1, 2).to(dtype).div_(255.0)
    return dev, x.contiguous(memory_format=memory_format)
