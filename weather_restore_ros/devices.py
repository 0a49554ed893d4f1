"""Which torch device and dtype the engine's ``device`` and ``precision`` settings mean here.

``engine_settings`` checks their spelling without torch; whether this machine can honour them
(CUDA present, that device index, bf16 support, fp16 only on CUDA) needs torch and is decided
here, before a model is loaded, so a wrong setting fails in milliseconds with the reason.
:func:`training_device` is the same choice for a training process (one GPU per torchrun rank).
"""
from __future__ import annotations

import os

import torch

from .engine_settings import EngineError

PRECISIONS = {'fp32': torch.float32, 'fp16': torch.float16, 'bf16': torch.bfloat16}


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


def training_device(device: str | None = None) -> torch.device:
    """This process's device. ``None``/'auto' pick CUDA when there is one; a bare 'cuda' means
    ``cuda:LOCAL_RANK``, so that torchrun's processes each take their own GPU (and
    ``torch.cuda.set_device`` gets the index it requires); the rest is
    :func:`resolve_device` (an unusable device raises a ``ValueError`` saying why)."""
    if device in (None, 'auto'):
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    if str(device) == 'cuda':
        device = f'cuda:{int(os.environ.get("LOCAL_RANK", 0))}'
    return resolve_device(device)
