"""The ONNX Runtime backend: the exported graphs, fed the engine's own torch tensors.

Execution providers are taken in the order TensorRT -> CUDA -> CPU, as far as the installed
onnxruntime has them and the engine's device allows (``device: cpu`` -> the CPU provider only);
the ones a session really got are logged at start-up. Tensors are bound to the session by
pointer (I/O binding), on the GPU when the session runs there, so a CUDA engine does not copy
frames through the host; a session that runs on the CPU gets CPU copies.

Session options suit a shared CPU: ``threads`` intra-op threads (default: torch's), one
inter-op thread, sequential execution, and no spin-waiting between runs (ORT's default spins,
burning a core between frames that a robot's other nodes need).

The encoder's preprocessing (resize, mean/std) stays the torch encoder's own ``preprocess``,
on the engine's device, so the two backends cannot drift apart there.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from ..model.blocks import pad_to_multiple
from . import BackendUnavailable, require
from .onnx_export import default_cache_dir, ensure_exported, weights_digest

PROVIDER_ORDER = ('TensorrtExecutionProvider', 'CUDAExecutionProvider', 'CPUExecutionProvider')
GPU_PROVIDERS = PROVIDER_ORDER[:2]
_TORCH_TYPES = {'tensor(float)': torch.float32, 'tensor(float16)': torch.float16}
_NUMPY_TYPES = {torch.float32: np.float32, torch.float16: np.float16}
_PRECISIONS = {torch.float32: 'fp32', torch.float16: 'fp16'}

_log = logging.getLogger(__name__)


def choose_providers(available, device: torch.device) -> list[str]:
    """The providers to ask for, best first: GPU ones only for a CUDA engine."""
    if device.type != 'cuda':
        return ['CPUExecutionProvider']
    return [p for p in PROVIDER_ORDER if p in available or p == 'CPUExecutionProvider']


def session_options(ort, threads: int, fp16_on_cpu: bool = False):
    """``fp16_on_cpu``: no layout optimisations (ORT_ENABLE_EXTENDED instead of _ALL):
    onnxruntime 1.32's CPU layout pass crashes the process (SIGSEGV at session creation) on
    the fp16 CLIP tower; they only speed up fp32 convolutions, and fp16 graphs run on a CPU
    only to be checked."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED if fp16_on_cpu
                                   else ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    so.add_session_config_entry('session.intra_op.allow_spinning', '0')
    so.add_session_config_entry('session.inter_op.allow_spinning', '0')
    so.log_severity_level = 3   # errors only: provider fallbacks are reported by us
    return so


def provider_options(name: str, device: torch.device, directory: Path, fp16: bool) -> dict:
    """TensorRT builds an engine per input-shape range on first use (minutes on a Jetson):
    cache them beside the graphs."""
    index = device.index or 0
    if name == 'TensorrtExecutionProvider':
        return {'device_id': index, 'trt_fp16_enable': fp16, 'trt_engine_cache_enable': True,
                'trt_engine_cache_path': str(directory / 'trt_cache'),
                'trt_timing_cache_enable': True}
    if name == 'CUDAExecutionProvider':
        return {'device_id': index}
    return {}


class _Graph:
    """One inference session and the binding of torch tensors to it."""

    def __init__(self, ort, path: Path, options, providers, device: torch.device):
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # a corrupt file, an op the provider lacks
            raise BackendUnavailable(f'onnxruntime cannot load {path}: {exc}') from exc
        self.providers = self.session.get_providers()
        on_gpu = self.providers[0] in GPU_PROVIDERS
        self.device = device if on_gpu else torch.device('cpu')
        self.inputs = {i.name: _torch_type(i, path) for i in self.session.get_inputs()}
        self.outputs = {o.name: _torch_type(o, path) for o in self.session.get_outputs()}

    def run(self, inputs: dict[str, torch.Tensor],
            shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
        """Inputs cast to the graph's types on its device; outputs allocated by torch there.
        Inputs the graph does not take (a model that ignores the prior) are not passed."""
        binding = self.session.io_binding()
        kind, index = self.device.type, self.device.index or 0
        held = []   # the bound memory must outlive the run
        for name, dtype in self.inputs.items():
            t = inputs[name].to(self.device, dtype).contiguous()
            held.append(t)
            binding.bind_input(name, kind, index, _NUMPY_TYPES[dtype], tuple(t.shape),
                               t.data_ptr())
        outputs = {}
        for name, dtype in self.outputs.items():
            out = outputs[name] = torch.empty(shapes[name], dtype=dtype, device=self.device)
            binding.bind_output(name, kind, index, _NUMPY_TYPES[dtype], tuple(out.shape),
                                out.data_ptr())
        if kind == 'cuda':   # the inputs were written on torch's stream, ORT uses its own
            torch.cuda.current_stream(self.device).synchronize()
        self.session.run_with_iobinding(binding)
        return outputs


class OrtBackend:
    """The restorer and encoder graphs of one exported folder (see :meth:`open`)."""

    name = 'onnxruntime'

    def __init__(self, restorer: _Graph, encoder: _Graph, *, stride: int, num_classes: int,
                 embed_dim: int, preprocess, directory: Path, threads: int, precision: str,
                 version: str):
        self._restorer, self._encoder = restorer, encoder
        self.stride, self.num_classes, self.embed_dim = stride, num_classes, embed_dim
        self._preprocess = preprocess
        self.directory, self.threads, self.precision = directory, threads, precision
        self.providers = restorer.providers
        self.version = version

    @classmethod
    def open(cls, restorer, encoder, *, device: torch.device, dtype: torch.dtype,
             threads: int | None = None, onnx_dir: str | None = None, log=None) -> 'OrtBackend':
        """Sessions for ``restorer``/``encoder`` (the torch modules, as loaded: their weights
        are matched against the folder's manifest and exported when missing).

        ``onnx_dir`` None/empty: the per-weights cache folder (:func:`default_cache_dir`).
        """
        log = log or _log.info
        ort = require('onnxruntime', 'the onnxruntime backend')
        precision = _PRECISIONS.get(dtype)
        if precision is None:
            raise BackendUnavailable(f'the onnxruntime backend runs fp32 or fp16 graphs, not '
                                     f'{str(dtype).replace("torch.", "")}; use precision fp32 '
                                     '(CPU) or fp16 (CUDA), or backend torch')
        threads = int(threads) if threads else torch.get_num_threads()
        digest = weights_digest(restorer, encoder)
        explicit = bool(onnx_dir)
        directory = Path(onnx_dir).expanduser() if explicit else default_cache_dir(digest)
        manifest = ensure_exported(restorer, encoder, directory,
                                   class_names=restorer.cfg.class_names, precision=precision,
                                   explicit=explicit, log=log, digest=digest)
        wanted = choose_providers(ort.get_available_providers(), device)
        if device.type == 'cuda' and wanted == ['CPUExecutionProvider']:
            log(f'warning: onnxruntime {ort.__version__} has no TensorRT or CUDA provider '
                '(pip install onnxruntime-gpu): the graphs run on the CPU')
        providers = [(p, provider_options(p, device, directory, precision == 'fp16'))
                     for p in wanted]
        options = session_options(ort, threads, fp16_on_cpu=precision == 'fp16'
                                  and wanted == ['CPUExecutionProvider'])
        graphs = [_Graph(ort, directory / manifest[part]['files'][precision], options,
                         providers, device) for part in ('restorer', 'encoder')]
        backend = cls(*graphs, stride=int(restorer.stride),
                      num_classes=int(restorer.cfg.num_classes),
                      embed_dim=int(encoder.embed_dim), preprocess=encoder.preprocess,
                      directory=directory, threads=threads, precision=precision,
                      version=ort.__version__)
        if device.type == 'cuda' and backend.providers[0] != wanted[0]:
            log(f'warning: onnxruntime could not use {wanted[0]}; running on '
                f'{backend.providers[0]}')
        log(f'backend {backend.describe()}')
        return backend

    def describe(self) -> str:
        return (f'onnxruntime {self.version} ({", ".join(self.providers)}; '
                f'{self.threads} thread{"s" if self.threads != 1 else ""}; {self.precision} '
                f'graphs in {self.directory})')

    def restore(self, x: torch.Tensor, prior: torch.Tensor):
        b, _, h, w = x.shape
        xp, _, _ = pad_to_multiple(x, self.stride)   # what the network does inside itself
        hp, wp = xp.shape[-2:]
        out = self._restorer.run({'image': xp, 'prior': prior},
                                 {'restored': (b, 3, hp, wp), 'mask': (b, 1, hp, wp),
                                  'logits': (b, self.num_classes)})
        return (out['restored'][..., :h, :w].to(x.device, x.dtype),
                out['mask'][..., :h, :w].to(x.device, x.dtype),
                out['logits'].to(x.device))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        pixels = self._preprocess(x)
        out = self._encoder.run({'pixels': pixels}, {'embedding': (len(x), self.embed_dim)})
        return out['embedding'].to(x.device, torch.float32)


def _torch_type(arg, path: Path) -> torch.dtype:
    try:
        return _TORCH_TYPES[arg.type]
    except KeyError:
        raise BackendUnavailable(f'{path}: {arg.name} is {arg.type}; this backend binds '
                                 'float and float16 tensors only') from None
