"""``weather-restore export CHECKPOINT -o DIR``: the model as ONNX graphs, checked on photos."""
from __future__ import annotations

import sys


def register(sub) -> None:
    from ..engine_settings import add_engine_arguments
    p = sub.add_parser(
        'export', help='export the model to ONNX (ONNX Runtime, TensorRT)',
        description='Write DIR/restorer.onnx (image + cached prior embedding -> restored image, '
                    'mask, weather logits), DIR/encoder.onnx (the prior encoder, run only on a '
                    'prior refresh), with --fp16 half-precision variants, and DIR/manifest.json '
                    '(input/output names and shapes, normalisation, stride, classes, versions, '
                    "the source checkpoint's SHA-256). Dynamic batch, height and width; opset "
                    '>= 17. Then every graph is run with onnxruntime on the CPU against '
                    'PyTorch on real photos (the shipped ones, with and without synthetic '
                    'weather, and --photos): the restored frames must agree within 1 grey '
                    'level on average (exit 1 otherwise). Needs the onnx extra: '
                    'pip install "weather_restore_ros[onnx]".')
    p.add_argument('checkpoint', nargs='?', default='shipped',
                   help="checkpoint (.safetensors); 'shipped' (default) = the packaged model")
    p.add_argument('--output', '-o', required=True, help='output folder')
    p.add_argument('--fp16', action='store_true', help='also write *_fp16.onnx variants')
    p.add_argument('--opset', type=int, default=17, help='ONNX opset (>= 17; default 17)')
    p.add_argument('--photos', nargs='+', default=[], metavar='DIR',
                   help='also verify on every image below these folders')
    p.add_argument('--max-pixels', type=int, default=1280 * 720, metavar='N',
                   help='verification: larger photos are shrunk to N pixels first '
                        '(default 921600)')
    # No engine here, only its --threads; 1 by default, as before: the verification's figures
    # then do not depend on the machine's core count.
    add_engine_arguments(p, only=('threads',), defaults={'threads': 1})
    p.add_argument('--no-verify', action='store_true', help='skip the onnxruntime check')
    p.set_defaults(func=run)


def run(args) -> int:
    from ..engine_settings import settings_from_args
    # before torch is imported: it reads the wait policy once
    args.threads = settings_from_args(args).configure_threads().threads

    from ..backends import BackendUnavailable
    from ..checkpoint import CheckpointError
    from ..encoders import MissingWeightsError

    if args.opset < 17:
        print(f'error: --opset must be >= 17, got {args.opset}', file=sys.stderr)
        return 2
    try:
        return _export(args)
    except (BackendUnavailable, CheckpointError, MissingWeightsError, OSError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2


def _export(args) -> int:
    import time

    import torch

    from ..backends import parity
    from ..backends.onnx_export import PRECISIONS, export_graphs, write_manifest
    from ..backends.ort_backend import OrtBackend
    from ..backends.torch_backend import TorchBackend
    from ..factory import load_model

    t0 = time.perf_counter()
    loaded = load_model(None if args.checkpoint == 'shipped' else args.checkpoint)
    ckpt = loaded.checkpoint
    manifest = export_graphs(loaded.restorer, loaded.encoder, args.output,
                             class_names=ckpt.class_names, fp16=args.fp16, opset=args.opset,
                             checkpoint=ckpt.path)
    files = [f for part in ('restorer', 'encoder') for f in manifest[part]['files'].values()]
    print(f'exported {ckpt.path} ({ckpt.config.name}, encoder {ckpt.clip.model_name}) to '
          f'{args.output}: {", ".join(files)}, manifest.json (opset {args.opset}, '
          f'{time.perf_counter() - t0:.1f} s)')
    if args.no_verify:
        return 0
    images = parity.verification_images(args.photos, max_pixels=args.max_pixels)
    reference = TorchBackend(loaded.restorer, loaded.encoder)
    verdicts = {}
    for precision in manifest['restorer']['files']:
        candidate = OrtBackend.open(loaded.restorer, loaded.encoder, device=torch.device('cpu'),
                                    dtype=PRECISIONS[precision], threads=args.threads,
                                    onnx_dir=args.output, log=lambda _: None)
        rows = parity.compare(reference, candidate, images)
        result = parity.summary(rows)
        verdicts[precision] = {**result, 'rows': rows}
        print(f'\nonnxruntime {candidate.version} CPU, {precision} graphs, against PyTorch '
              f'{torch.__version__} fp32 ({len(rows)} photos, end to end: encoder -> prior -> '
              'restorer; grey levels of the uint8 output):')
        print(parity.table(rows))
        print(f'worst mean {result["grey_mean_worst"]:.4f} ({result["worst_image"]}), '
              f'largest max {result["grey_max"]}, bound: mean <= {result["bound_mean"]:g} -> '
              f'{"PASS" if result["passed"] else "FAIL"}; same weather label on '
              f'{result["labels_agree"]}/{len(rows)}')
    manifest['verification'] = {'runtime': 'onnxruntime CPU', 'reference': 'PyTorch fp32',
                                **{p: {k: v for k, v in r.items() if k != 'rows'}
                                   for p, r in verdicts.items()}}
    write_manifest(args.output, manifest)
    return 0 if all(r['passed'] for r in verdicts.values()) else 1
