"""The restorer and the prior encoder as ONNX graphs, with a manifest that says how to feed them.

Where the graphs are cut, and why:

* **restorer** ``(image [B,3,H,W], prior [B,D]) -> (restored [B,3,H,W], mask [B,1,H,W],
  logits [B,C])``. ``prior`` is the prior encoder's L2-normalised embedding -- exactly what the
  engine caches per camera -- so the encoder never runs inside this graph. The CWP token MLP
  stays in the graph: the tokens are a deterministic function of the embedding, the weather
  head reads the embedding itself, and the cache's EMA smooths the embedding, not the tokens
  (tokens cached outside would be wrong with ``prior.ema > 0``); the MLP costs about a
  megaflop per frame next to gigaflops of convolutions. ``H`` and ``W`` must be multiples of
  the stride: the network pads odd sizes itself with data-dependent Python control flow that a
  trace would freeze at the export size, so the caller pads (bottom/right, reflect --
  :func:`~weather_restore_ros.model.blocks.pad_to_multiple`) and crops the outputs back, which
  gives the same image as the network's own padding.
* **encoder** ``pixels -> embedding [B,D]``: the network after the encoder's ``preprocess``
  (resize + mean/std, described in the manifest). The resize size follows the frame's aspect
  for the CNN encoder, so it is done before the graph; height and width are dynamic where the
  encoder accepts any size (the CNN) and fixed where it does not (a ViT CLIP).

Batch, height and width are dynamic axes; opset 17. The legacy TorchScript exporter is used
(``dynamo=False``): every op here is in it, and it needs neither onnxscript nor a guard-free
trace of the padding logic. ``fp16`` adds half-precision variants traced from the half model
(LayerNorm statistics stay fp32 inside, as on a GPU in PyTorch). The weights digest in the
manifest is what :func:`ensure_exported` matches before running a folder's graphs.
"""
from __future__ import annotations

import contextlib
import copy
import datetime
import hashlib
import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import BackendUnavailable, require

OPSET = 17
MANIFEST = 'manifest.json'
FORMAT = 'weather_restore_onnx'
FORMAT_VERSION = 1
PRECISIONS = {'fp32': torch.float32, 'fp16': torch.float16}
RESTORER_INPUTS, RESTORER_OUTPUTS = ('image', 'prior'), ('restored', 'mask', 'logits')
ENCODER_INPUTS, ENCODER_OUTPUTS = ('pixels',), ('embedding',)


class RestorerGraph(nn.Module):
    """What the restorer graph computes: the network's image, mask and logits."""

    def __init__(self, restorer: nn.Module):
        super().__init__()
        self.restorer = restorer

    def forward(self, image: torch.Tensor, prior: torch.Tensor):
        out = self.restorer(image, prior)
        return out.image, out.mask, out.logits


class EncoderGraph(nn.Module):
    """What the encoder graph computes: ``encode()`` on already preprocessed pixels."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        with _preprocessed(self.encoder):
            return self.encoder.encode(pixels).embedding


@contextlib.contextmanager
def _preprocessed(encoder: nn.Module):
    """``encoder.encode`` without its ``preprocess`` (every encoder calls it first), so the
    graph holds the network only."""
    encoder.preprocess = lambda pixels: pixels
    try:
        yield
    finally:
        del encoder.preprocess


def weights_digest(restorer: nn.Module, encoder: nn.Module) -> str:
    """SHA-256 of the restorer's config and of both modules' weights (as fp32): what a folder
    of graphs must have been exported from to be run in their place."""
    h = hashlib.sha256()
    h.update(restorer.cfg.to_json().encode())
    h.update(json.dumps(preprocess_spec(encoder), sort_keys=True).encode())
    for module in (restorer, encoder):
        for key, value in module.state_dict().items():
            h.update(key.encode())
            h.update(value.detach().to('cpu', torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def default_cache_dir(digest: str) -> Path:
    """``$WEATHER_RESTORE_ONNX_CACHE`` or ``~/.cache/weather_restore_ros/onnx``, per weights."""
    base = os.environ.get('WEATHER_RESTORE_ONNX_CACHE')
    if not base:
        base = Path(os.environ.get('XDG_CACHE_HOME') or '~/.cache').expanduser() / \
            'weather_restore_ros' / 'onnx'
    return Path(base) / digest[:16]


def preprocess_spec(encoder: nn.Module) -> dict:
    """How the encoder's input is made from an RGB frame in [0, 1] (its ``preprocess``)."""
    spec = {'input': 'RGB float in [0, 1], NCHW',
            'mean': [round(float(v), 6) for v in encoder.mean.flatten()],
            'std': [round(float(v), 6) for v in encoder.std.flatten()]}
    cfg = getattr(encoder, 'preprocess_cfg', None)
    if cfg is not None:   # open_clip CLIP
        spec.update(resize=cfg.get('resize_mode', 'shortest'),
                    interpolation=cfg.get('interpolation', 'bicubic'),
                    size=list(encoder.input_size))
    else:                 # the CNN: aspect kept
        spec.update(resize='shorter side to image_size, aspect kept, longer side at most '
                           '2 x image_size; bilinear, antialias', image_size=encoder.image_size,
                    interpolation='bilinear')
    spec['then'] = '(x - mean) / std'
    return spec


def read_manifest(directory: str | Path) -> dict | None:
    """The folder's manifest, or None when it has none (an empty or unfinished export)."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BackendUnavailable(f'{path}: unreadable manifest ({exc}); export again') from exc
    if manifest.get('format') != FORMAT or manifest.get('format_version') != FORMAT_VERSION:
        raise BackendUnavailable(f'{path}: not a {FORMAT} v{FORMAT_VERSION} manifest; export '
                                 'again with this version (weather-restore export)')
    return manifest


def ensure_exported(restorer: nn.Module, encoder: nn.Module, directory: str | Path, *,
                    class_names, precision: str = 'fp32', explicit: bool = True,
                    log=None, digest: str | None = None) -> dict:
    """The manifest of ``directory`` once it holds graphs of these weights in ``precision``.

    Graphs that are missing are exported there (an empty folder, the cache, a folder exported
    without ``--fp16`` that now needs it). A folder whose manifest names other weights is an
    error when the user chose it (``explicit``), never overwritten; in the cache it is
    replaced.
    """
    directory = Path(directory)
    digest = digest or weights_digest(restorer, encoder)
    manifest = read_manifest(directory)
    if manifest is not None and manifest['source']['weights_sha256'] != digest:
        if explicit:
            raise BackendUnavailable(
                f'{directory} holds graphs exported from other weights (source '
                f'{manifest["source"].get("checkpoint")}, weights '
                f'{manifest["source"]["weights_sha256"][:12]}, these are {digest[:12]}); '
                'export this checkpoint there or into another folder: weather-restore export')
        manifest = None
    have = set(manifest['restorer']['files']) if manifest else set()
    if precision not in have:
        want = ['fp32'] + sorted(have | {precision} - {'fp32'})
        if log:
            log(f'exporting the {"/".join(want)} ONNX graphs to {directory} (once per model)')
        source = manifest['source'] if manifest else {}
        manifest = export_graphs(restorer, encoder, directory, class_names=class_names,
                                 fp16='fp16' in want, checkpoint=source.get('checkpoint'),
                                 digest=digest)
    return manifest


def export_graphs(restorer: nn.Module, encoder: nn.Module, directory: str | Path, *,
                  class_names, fp16: bool = False, opset: int = OPSET,
                  checkpoint: str | Path | None = None, digest: str | None = None) -> dict:
    """Write ``restorer.onnx`` and ``encoder.onnx`` (and ``*_fp16.onnx``) and
    ``manifest.json`` into ``directory``; returns the manifest. Each file is written under a
    temporary name and renamed, the manifest last: a folder with a manifest is complete."""
    onnx = require('onnx', 'ONNX export')
    if opset < 17:
        raise ValueError(f'opset must be >= 17 (LayerNormalization, SDPA), got {opset}')
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    digest = digest or weights_digest(restorer, encoder)
    restorer = copy.deepcopy(restorer).to('cpu', torch.float32).eval()
    encoder = copy.deepcopy(encoder).to('cpu', torch.float32).eval()
    stride = int(restorer.stride)
    files: dict[str, dict[str, str]] = {'restorer': {}, 'encoder': {}}
    gen = torch.Generator().manual_seed(0)
    # Batch 2 and a non-square size: no batch-1 or square special case can be traced in.
    image = torch.rand(2, 3, 4 * stride, 6 * stride, generator=gen)
    prior = F.normalize(torch.randn(2, restorer.cfg.clip_dim, generator=gen), dim=-1)
    pixels = encoder.preprocess(torch.rand(2, 3, 480, 640, generator=gen))
    # The CNN's input follows the frame's aspect (dynamic); a ViT's is fixed.
    other = encoder.preprocess(torch.rand(1, 3, 720, 1280, generator=gen))
    enc_hw_dynamic = tuple(other.shape[-2:]) != tuple(pixels.shape[-2:])
    hw = {0: 'batch', 2: 'height', 3: 'width'}
    for precision in ('fp32', 'fp16') if fp16 else ('fp32',):
        dtype = PRECISIONS[precision]
        suffix = '' if precision == 'fp32' else '_fp16'
        r, e = copy.deepcopy(restorer).to(dtype), copy.deepcopy(encoder).to(dtype)
        _export(RestorerGraph(r), (image.to(dtype), prior.to(dtype)),
                directory / f'restorer{suffix}.onnx', RESTORER_INPUTS, RESTORER_OUTPUTS,
                {'image': hw, 'prior': {0: 'batch'}, 'restored': hw, 'mask': hw,
                 'logits': {0: 'batch'}}, opset, onnx)
        # The encoder casts its float32 input itself (as encode() does): pixels stay fp32.
        _export(EncoderGraph(e), (pixels,), directory / f'encoder{suffix}.onnx',
                ENCODER_INPUTS, ENCODER_OUTPUTS,
                {'pixels': hw if enc_hw_dynamic else {0: 'batch'},
                 'embedding': {0: 'batch'}}, opset, onnx)
        files['restorer'][precision] = f'restorer{suffix}.onnx'
        files['encoder'][precision] = f'encoder{suffix}.onnx'
    manifest = _manifest(restorer, encoder, files, class_names, stride, opset, onnx,
                         list(pixels.shape[1:]), enc_hw_dynamic, checkpoint, digest)
    _write_atomic(directory / MANIFEST, (json.dumps(manifest, indent=2) + '\n').encode())
    return manifest


def write_manifest(directory: str | Path, manifest: dict) -> None:
    """Rewrite a folder's manifest (the export command adds its verification to it)."""
    _write_atomic(Path(directory) / MANIFEST, (json.dumps(manifest, indent=2) + '\n').encode())


def _export(module, args, path: Path, inputs, outputs, dynamic_axes, opset, onnx) -> None:
    import warnings
    tmp = path.with_name(f'.{path.name}.tmp{os.getpid()}')
    fastpath = torch.backends.mha.get_fastpath_enabled()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            # The tracer warns about every Python branch on a shape; the padding one is the
            # reason inputs come padded, the others hold for any size (checked by the tests).
            warnings.simplefilter('ignore')
            # nn.MultiheadAttention's fused inference kernel (CLIP towers) has no ONNX form.
            torch.backends.mha.set_fastpath_enabled(False)
            torch.onnx.export(module, args, str(tmp), dynamo=False, opset_version=opset,
                              input_names=list(inputs), output_names=list(outputs),
                              dynamic_axes=dynamic_axes, do_constant_folding=True)
            shapes = [tuple(t.shape) for t in _as_tuple(module(*args))]
        _fix_output_shapes(onnx, tmp, outputs, shapes, dynamic_axes)
        onnx.checker.check_model(str(tmp))
        os.replace(tmp, path)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
        tmp.unlink(missing_ok=True)


def _as_tuple(out):
    return out if isinstance(out, tuple) else (out,)


def _fix_output_shapes(onnx, path: Path, names, shapes, dynamic_axes) -> None:
    """Write the fixed sizes of the outputs into the graph (the tracer leaves sizes it could
    not infer symbolic, e.g. the embedding width), so TensorRT and readers see them."""
    model = onnx.load(str(path))
    for out, name, shape in zip(model.graph.output, names, shapes):
        dynamic = dynamic_axes.get(name, {})
        for i, (dim, size) in enumerate(zip(out.type.tensor_type.shape.dim, shape)):
            if i in dynamic:
                dim.dim_param = dynamic[i]
            else:
                dim.dim_value = int(size)
    onnx.save(model, str(path))


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f'.{path.name}.tmp{os.getpid()}')
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _manifest(restorer, encoder, files, class_names, stride, opset, onnx, pixel_shape,
              enc_hw_dynamic, checkpoint, digest) -> dict:
    from .. import __version__
    try:
        import onnxruntime
        ort_version = onnxruntime.__version__
    except ImportError:
        ort_version = None
    cfg = restorer.cfg
    px = ['batch', pixel_shape[0]] + (['height', 'width'] if enc_hw_dynamic
                                      else pixel_shape[1:])
    return {
        'format': FORMAT, 'format_version': FORMAT_VERSION,
        'created': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'source': {'checkpoint': str(checkpoint) if checkpoint else None,
                   'checkpoint_sha256': (file_sha256(checkpoint)
                                         if checkpoint and Path(checkpoint).is_file() else None),
                   'weights_sha256': digest, 'config': cfg.name,
                   'encoder': str(getattr(encoder, 'model_name', type(encoder).__name__))},
        'versions': {'weather_restore_ros': __version__, 'torch': torch.__version__,
                     'onnx': onnx.__version__, 'onnxruntime': ort_version, 'opset': opset},
        'classes': list(class_names),
        'stride': stride,
        'restorer': {
            'files': files['restorer'],
            'inputs': [
                {'name': 'image', 'shape': ['batch', 3, 'height', 'width'],
                 'dtype': 'float32 (float16 in the fp16 file)',
                 'normalisation': 'RGB / 255 (float in [0, 1]), NCHW, no mean/std',
                 'note': f'height and width multiples of {stride}: pad bottom/right by '
                         'reflection (replicate when smaller than the padding), crop the '
                         'outputs back'},
                {'name': 'prior', 'shape': ['batch', cfg.clip_dim],
                 'dtype': 'float32 (float16 in the fp16 file)',
                 'note': "the encoder graph's embedding, cached per camera and refreshed "
                         'on a scene change / every N frames / after T s'}],
            'outputs': [
                {'name': 'restored', 'shape': ['batch', 3, 'height', 'width'],
                 'note': 'RGB in [0, 1]'},
                {'name': 'mask', 'shape': ['batch', 1, 'height', 'width'],
                 'note': 'where the weather is, in [0, 1]'},
                {'name': 'logits', 'shape': ['batch', len(class_names)],
                 'note': 'weather logits in the order of classes (softmax -> scores)'}]},
        'encoder': {
            'files': files['encoder'],
            'inputs': [{'name': 'pixels', 'shape': px, 'dtype': 'float32',
                        'normalisation': preprocess_spec(encoder)}],
            'outputs': [{'name': 'embedding', 'shape': ['batch', int(encoder.embed_dim)],
                         'note': 'L2-normalised; the restorer input prior'}]},
    }
