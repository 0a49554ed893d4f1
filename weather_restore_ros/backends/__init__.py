"""Who runs the two networks for the engine: eager PyTorch, or ONNX Runtime.

The engine (:mod:`weather_restore_ros.engine`) does everything else itself -- upload, the prior
cache, skip-when-clear, tiling/downscaling, the invalid-output and harm guards, download -- on
torch tensors. A backend only answers two questions, so every engine feature works unchanged
with either:

* ``restore(x [B,3,H,W] in [0,1], prior [B,D]) -> (image [B,3,H,W], mask [B,1,H,W],
  logits [B,C])``: the restoration network, any ``H, W`` (the backend pads to the stride);
* ``embed(x [B,3,H,W] in [0,1]) -> embedding [B,D] float32``: the prior encoder, run only on a
  prior refresh.

``torch`` (:mod:`.torch_backend`) calls the modules; ``onnxruntime`` (:mod:`.ort_backend`) runs
the graphs written by :mod:`.onnx_export` (``weather-restore export``), exporting them into a
cache folder at start-up when none are given. ``onnx`` and ``onnxruntime`` are optional extras,
imported only when asked for.
"""
from __future__ import annotations

import importlib

BACKENDS = ('torch', 'onnxruntime')

EXTRA_HINT = ('pip install "weather_restore_ros[onnx]" (CPU) or "weather_restore_ros[onnx-gpu]" '
              '(CUDA/TensorRT), i.e. the PyPI packages onnx + onnxruntime or onnxruntime-gpu')


class BackendUnavailable(RuntimeError):
    """The backend's packages are not installed, or it cannot run this model/precision; the
    message says how to fix it."""


def require(module: str, what: str):
    """Import ``module`` (onnx, onnxruntime) or raise :class:`BackendUnavailable` naming the
    pip extra."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise BackendUnavailable(f'{what} needs the Python package {module!r}, which is not '
                                 f'installed: {EXTRA_HINT}') from exc


def make_backend(name: str, restorer, encoder, *, device, dtype, threads: int | None = None,
                 onnx_dir: str | None = None, log=None):
    """The backend ``name`` (:data:`BACKENDS`) for modules already on ``device``/``dtype``.

    ``threads``: ONNX Runtime's intra-op threads (default ``torch.get_num_threads()``; the
    torch backend uses torch's own setting). ``onnx_dir``: exported graphs to run (their
    manifest must name these weights), or where to export them; None = a cache folder keyed by
    the weights. ``log(str)``: start-up messages (which providers were chosen, an export).
    """
    if name == 'torch':
        from .torch_backend import TorchBackend
        return TorchBackend(restorer, encoder)
    if name == 'onnxruntime':
        from .ort_backend import OrtBackend
        return OrtBackend.open(restorer, encoder, device=device, dtype=dtype, threads=threads,
                               onnx_dir=onnx_dir, log=log)
    raise BackendUnavailable(f'backend must be one of {", ".join(BACKENDS)}; got {name!r}')
