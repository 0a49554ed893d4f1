"""``weather-restore export``: the ONNX graphs of the tiny and the shipped model, their manifest,
and onnxruntime (CPU) against PyTorch on the shipped photos."""
import contextlib
import hashlib
import io
import json
import sys

import numpy as np
import pytest
import torch

from onnx_helpers import require_onnxruntime
from tiny_model import make_tiny_checkpoint

require_onnxruntime()

import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402

from weather_restore_ros.backends.onnx_export import RestorerGraph  # noqa: E402
from weather_restore_ros.checkpoint import SHIPPED_MODEL, load_checkpoint  # noqa: E402
from weather_restore_ros.cli import main  # noqa: E402
from weather_restore_ros.engine import EngineError, RestorationEngine  # noqa: E402
from weather_restore_ros.factory import restorer_from_checkpoint  # noqa: E402

pytestmark = pytest.mark.usefixtures('one_torch_thread')


def run_cli(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def sha256(path):
    return hashlib.sha256(open(path, 'rb').read()).hexdigest()


def dims(value_info):
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


@pytest.fixture(scope='module')
def exported(tiny_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp('onnx') / 'tiny'
    # the tiny network costs about as much per pixel as the shipped one: smaller photos
    rc, stdout, stderr = run_cli(['export', str(tiny_checkpoint), '-o', str(out), '--fp16',
                                  '--max-pixels', str(160 * 120)])
    assert rc == 0, stderr
    return out, stdout


def test_export_writes_both_graphs_fp16_variants_and_a_manifest(exported, tiny_checkpoint):
    out, stdout = exported
    m = json.loads((out / 'manifest.json').read_text())
    assert m['format'] == 'weather_restore_onnx' and m['versions']['opset'] >= 17
    assert {'weather_restore_ros', 'torch', 'onnx', 'onnxruntime'} <= set(m['versions'])
    assert m['source']['checkpoint_sha256'] == sha256(tiny_checkpoint)
    assert m['classes'] == ['clear', 'rain', 'snow', 'fog', 'raindrop'] and m['stride'] == 4
    assert m['restorer']['files'] == {'fp32': 'restorer.onnx', 'fp16': 'restorer_fp16.onnx'}
    assert m['encoder']['files'] == {'fp32': 'encoder.onnx', 'fp16': 'encoder_fp16.onnx'}
    assert [i['name'] for i in m['restorer']['inputs']] == ['image', 'prior']
    assert [o['name'] for o in m['restorer']['outputs']] == ['restored', 'mask', 'logits']
    norm = m['encoder']['inputs'][0]['normalisation']
    assert norm['size'] == [64, 64] and len(norm['mean']) == 3   # the tiny CLIP's 64 px
    for part in ('restorer', 'encoder'):
        for name in m[part]['files'].values():
            model = onnx.load(out / name)
            onnx.checker.check_model(model)
            assert max(o.version for o in model.opset_import if o.domain in ('', 'ai.onnx')) >= 17
    graph = onnx.load(out / 'restorer.onnx').graph
    assert [i.name for i in graph.input] == ['image', 'prior']
    assert dims(graph.input[0]) == ['batch', 3, 'height', 'width']
    assert dims(graph.input[1]) == ['batch', 32]                    # the cached prior
    assert dims(graph.output[0]) == ['batch', 3, 'height', 'width']
    enc = onnx.load(out / 'encoder.onnx').graph
    assert dims(enc.input[0]) == ['batch', 3, 64, 64] and dims(enc.output[0]) == ['batch', 32]
    # the check ran on the 4 shipped photos, with and without weather, both precisions
    v = m['verification']
    for precision in ('fp32', 'fp16'):
        assert v[precision]['passed'] and v[precision]['images'] == 12
        assert v[precision]['grey_mean_worst'] <= 1.0
    assert v['fp32']['grey_max'] <= 1 and v['fp32']['labels_agree'] == 12
    assert stdout.count('-> PASS') == 2 and 'chelsea+fog' in stdout and '169x113' in stdout


def test_graph_runs_at_other_sizes_and_batches(exported, tiny_checkpoint):
    """Dynamic batch/height/width: traced at batch 2, 16x24, run at batch 3, 20x36."""
    out, _ = exported
    model = restorer_from_checkpoint(load_checkpoint(tiny_checkpoint))
    session = ort.InferenceSession(str(out / 'restorer.onnx'), providers=['CPUExecutionProvider'])
    gen = torch.Generator().manual_seed(3)
    for b, h, w in ((3, 20, 36), (1, 48, 12)):
        x = torch.rand(b, 3, h, w, generator=gen)
        prior = torch.nn.functional.normalize(torch.randn(b, 32, generator=gen), dim=-1)
        with torch.no_grad():
            want = RestorerGraph(model)(x, prior)
        got = session.run(None, {'image': x.numpy(), 'prior': prior.numpy()})
        for a, g in zip(want, got):
            assert g.shape == tuple(a.shape)
            assert np.abs(a.numpy() - g).max() < 1e-4


@pytest.mark.parametrize('detail_gain', [False, True])
def test_bilinear_upsample_model_exports_and_matches(tmp_path, detail_gain):
    ckpt = make_tiny_checkpoint(tmp_path / 'bilinear.safetensors', upsample='bilinear',
                                head_std=0.1, detail_gain=detail_gain)
    assert load_checkpoint(ckpt).config.upsample == 'bilinear'
    assert load_checkpoint(ckpt).config.detail_gain is detail_gain
    rc, stdout, stderr = run_cli(['export', str(ckpt), '-o', str(tmp_path / 'onnx'),
                                  '--max-pixels', str(160 * 120)])
    assert rc == 0, stderr + stdout
    ops = {n.op_type for n in onnx.load(tmp_path / 'onnx' / 'restorer.onnx').graph.node}
    assert 'Resize' in ops                 # the bilinear x2 is in the graph
    v = json.loads((tmp_path / 'onnx' / 'manifest.json').read_text())['verification']['fp32']
    assert v['passed'] and v['grey_mean_worst'] <= 1.0 and v['grey_max'] <= 1


@pytest.mark.slow
def test_shipped_model_exports_and_matches_pytorch(tmp_path):
    rc, stdout, stderr = run_cli(['export', 'shipped', '-o', str(tmp_path)])
    assert rc == 0, stderr + stdout
    m = json.loads((tmp_path / 'manifest.json').read_text())
    assert m['source']['checkpoint_sha256'] == sha256(SHIPPED_MODEL)
    assert m['source']['config'] == 'small' and m['stride'] == 16
    assert dims(onnx.load(tmp_path / 'encoder.onnx').graph.input[0]) == \
        ['batch', 3, 'height', 'width']    # the CNN encoder takes the frame's aspect
    v = m['verification']['fp32']
    assert v['passed'] and v['images'] == 12 and v['grey_mean_worst'] <= 1.0
    assert 'worst mean' in stdout and '512x512' in stdout and '640x427' in stdout


def test_missing_packages_name_the_extra(monkeypatch, tiny_checkpoint, tmp_path):
    monkeypatch.setitem(sys.modules, 'onnxruntime', None)    # import onnxruntime fails
    with pytest.raises(EngineError, match=r'onnxruntime.*weather_restore_ros\[onnx\]'):
        RestorationEngine.from_checkpoint(str(tiny_checkpoint), device='cpu', warmup=False,
                                          backend='onnxruntime', onnx_dir=str(tmp_path))
    monkeypatch.setitem(sys.modules, 'onnx', None)
    rc, _, stderr = run_cli(['export', str(tiny_checkpoint), '-o', str(tmp_path / 'x')])
    assert rc == 2 and "'onnx'" in stderr and 'weather_restore_ros[onnx]' in stderr
    assert run_cli(['export', str(tiny_checkpoint), '-o', str(tmp_path), '--opset', '13'])[0] == 2


def test_cli_backend_options(exported, tiny_checkpoint, tmp_path):
    """restore, bench and the node shim take the backend; restore writes the same PNGs."""
    import argparse

    import cv2

    from weather_restore_ros.commands.node import build_ros_args
    from weather_restore_ros.synth import sample_images

    onnx_dir, _ = exported
    name, rgb = sample_images(['chelsea'])[0]
    photo = tmp_path / f'{name}.png'
    cv2.imwrite(str(photo), cv2.cvtColor(rgb[:96, :128], cv2.COLOR_RGB2BGR))
    written = {}
    for backend in ('torch', 'onnxruntime'):
        rc, _, err = run_cli(['restore', str(photo), '-o', str(tmp_path / backend),
                              '--checkpoint', str(tiny_checkpoint), '--device', 'cpu',
                              '--backend', backend, '--onnx-dir', str(onnx_dir)])
        assert rc == 0, err
        written[backend] = cv2.imread(str(tmp_path / backend / f'{name}.png')).astype(int)
    assert np.abs(written['torch'] - written['onnxruntime']).mean() <= 1.0
    assert 'CPUExecutionProvider' in err                # the backend says what it runs on

    rc, out, err = run_cli(['bench', '--backends', 'torch', 'onnxruntime', '--checkpoint',
                            str(tiny_checkpoint), '--onnx-dir', str(onnx_dir), '--size',
                            '64x48', '96x64', '--batch', '1', '2', '--iters', '2',
                            '--threads', '1', '--device', 'cpu'])
    assert rc == 0, err
    assert 'onnxruntime/torch' in out and 'CPUExecutionProvider' in out
    rows = [line.split() for line in out.splitlines() if line.strip().startswith(('64x48',
                                                                                  '96x64'))]
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (s, b, stage) for s in ('64x48', '96x64') for b in ('1', '2')
        for stage in ('network', 'engine')]
    for r in rows:   # torch ms, onnxruntime ms (printed to 0.1 ms), their ratio (to 0.01)
        a, b, ratio = float(r[3]), float(r[4]), float(r[5].rstrip('x'))
        assert a > 0 and b > 0
        assert (b - 0.05) / (a + 0.05) - 0.005 <= ratio <= (b + 0.05) / (a - 0.05) + 0.005

    args = argparse.Namespace(params_file=None, name=None, namespace=None, log_level=None,
                              ros_args=[], backend='onnxruntime', onnx_dir='/graphs')
    assert build_ros_args(args) == ['--ros-args', '-p', 'backend:=onnxruntime',
                                    '-p', 'onnx_dir:=/graphs']
