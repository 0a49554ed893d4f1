"""Size and speed of the network: parameters, GFLOPs, CPU latency.

FLOPs convention: ``torch.utils.flop_counter.FlopCounterMode`` counts one multiply-accumulate as
**2 FLOPs** for convolutions, matmuls/linears and scaled-dot-product attention (so GFLOPs =
2 x GMACs), and ignores element-wise ops (activations, norms, additions, padding,
interpolation). This is the convention of most restoration papers' FLOP tables (TransWeather's
59.5 GFLOPs at 640x480 is quoted in this unit too -- compare with care: some papers report MACs
as "FLOPs"). The CLIP embedding is an input: the CLIP tower is not counted.

``python -m weather_restore_ros.model.profile [--configs tiny small base] [--size 480 640]``
prints a table.
"""
from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from .config import ModelConfig, get_config
from .restorer import WeatherRestorer


def _model(cfg) -> WeatherRestorer:
    if isinstance(cfg, nn.Module):
        return cfg
    if isinstance(cfg, str):
        cfg = get_config(cfg)
    return WeatherRestorer(cfg)


def count_parameters(model: nn.Module, trainable_only: bool = False,
                     inference_only: bool = False) -> int:
    """Number of parameters; ``inference_only`` leaves out the training-time SRD head."""
    skip = set()
    if inference_only and getattr(model, 'srd_head', None) is not None:
        skip = {id(p) for p in model.srd_head.parameters()}
    return sum(p.numel() for p in model.parameters()
               if id(p) not in skip and (p.requires_grad or not trainable_only))


def _inputs(model: WeatherRestorer, h: int, w: int, device='cpu'):
    x = torch.rand(1, model.cfg.in_channels, h, w, device=device)
    e = torch.nn.functional.normalize(torch.randn(1, model.cfg.clip_dim, device=device), dim=-1)
    return x, (e if model.cfg.needs_clip else None)


def _sdpa_cpu_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    from torch.utils.flop_counter import sdpa_flop_count
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _custom_flop_mapping() -> dict:
    """FlopCounterMode knows the CUDA attention kernels but (torch 2.x) not the fused CPU one,
    which it would silently count as 0: map it to the same formula (2 x MACs of QK^T and AV)."""
    op = getattr(torch.ops.aten, '_scaled_dot_product_flash_attention_for_cpu', None)
    from torch.utils.flop_counter import flop_registry
    return {} if op is None or op in flop_registry else {op: _sdpa_cpu_flops}


def gflops(cfg: ModelConfig | str | nn.Module, h: int = 480, w: int = 640) -> float:
    """GFLOPs (2 x GMACs) of one batch-1 forward at ``h x w`` (after padding to the stride)."""
    from torch.utils.flop_counter import FlopCounterMode

    # Counted on the 'meta' device (shapes only, no arithmetic): same counts, ~10x faster.
    if isinstance(cfg, WeatherRestorer):
        cfg = cfg.cfg
    with torch.device('meta'):
        model = _model(cfg).eval()
    x, e = _inputs(model, h, w, device='meta')
    counter = FlopCounterMode(display=False, custom_mapping=_custom_flop_mapping())
    with torch.no_grad(), counter:
        model(x, e)
    return counter.get_total_flops() / 1e9


def gflops_per_megapixel(cfg: ModelConfig | str | nn.Module) -> float:
    """GFLOPs per megapixel, measured at 1024x1024 (a multiple of every preset's stride; the
    small size-independent part -- prior MLP, classifier -- is amortised over the megapixel)."""
    return gflops(cfg, 1024, 1024) / (1024 * 1024 / 1e6)


def time_forward(cfg: ModelConfig | str | nn.Module, h: int = 480, w: int = 640,
                 threads: int = 2, iters: int = 10, warmup: int = 3,
                 channels_last: bool = False, device: str = 'cpu') -> float:
    """Minimum wall time in ms of a batch-1 inference forward (``torch.inference_mode``, fp32).

    The minimum (not the mean) is reported because the machine may be shared: it is the best
    estimate of the uncontended latency. ``threads`` sets ``torch.set_num_threads`` for the run
    (restored afterwards).
    """
    model = _model(cfg).eval().to(device)
    x, e = _inputs(model, h, w, device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    sync = torch.cuda.synchronize if str(device).startswith('cuda') else (lambda: None)
    try:
        best = float('inf')
        with torch.inference_mode():
            for i in range(warmup + iters):
                sync()
                t0 = time.perf_counter()
                model(x, e)
                sync()
                dt = (time.perf_counter() - t0) * 1e3
                if i >= warmup:
                    best = min(best, dt)
        return best
    finally:
        torch.set_num_threads(old)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--configs', nargs='+', default=['tiny', 'small', 'base'])
    ap.add_argument('--size', nargs=2, type=int, default=(480, 640), metavar=('H', 'W'))
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--iters', type=int, default=10)
    ap.add_argument('--channels-last', action='store_true')
    ap.add_argument('--no-time', action='store_true')
    a = ap.parse_args(argv)
    h, w = a.size
    print(f'{"config":8} {"params":>10} {"(infer)":>10} {"GFLOPs":>8} {"GFLOPs/MP":>10} {"ms":>8}')
    for name in a.configs:
        m = _model(name)
        ms = float('nan') if a.no_time else time_forward(
            m, h, w, a.threads, a.iters, channels_last=a.channels_last)
        print(f'{name:8} {count_parameters(m):10d} {count_parameters(m, inference_only=True):10d} '
              f'{gflops(m, h, w):8.2f} {gflops_per_megapixel(m):10.2f} {ms:8.1f}', flush=True)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
