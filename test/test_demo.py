"""``weather-restore demo`` end to end (tiny model, small frames, short segments)."""
import json

import cv2
import pytest

pytest.importorskip('rclpy', reason='rclpy is not installed', exc_type=ImportError)

from weather_restore_ros.rosbag.demo import DemoError, _prepare  # noqa: E402

pytestmark = pytest.mark.ros


def _counts(path):
    from rosbags.rosbag2 import Reader
    with Reader(path) as r:
        return {c.topic: c.msgcount for c in r.connections}


def test_demo_end_to_end(tmp_path, tiny_checkpoint, capsys):
    from weather_restore_ros.cli import main
    out = tmp_path / 'demo'
    assert main(['demo', '--output', str(out), '--checkpoint', str(tiny_checkpoint),
                 '--device', 'cpu', '--seconds-per-segment', '0.6', '--size', '96x72']) == 0
    printed = capsys.readouterr().out
    for name in ('input_bag', 'output_bag', 'contact_sheet.png', 'demo_summary.json'):
        assert str(out / name) in printed
    per_camera = 4 * 3                                   # 4 segments x 0.6 s x 5 Hz
    assert _counts(out / 'input_bag') == {'/front/image_raw': per_camera,
                                          '/rear/image_raw': per_camera}
    recorded = _counts(out / 'output_bag')
    summary = json.loads((out / 'demo_summary.json').read_text())
    for cam in ('front', 'rear'):
        c = summary['cameras'][cam]
        assert c['frames_in'] == per_camera == recorded[f'/{cam}/image_raw']
        assert 0 < c['frames_out'] == recorded[f'/{cam}/image_restored']
        assert c['frames_out'] + c['dropped'] == c['frames_in']
        assert recorded[f'/{cam}/weather/label'] == c['frames_out']
        assert recorded[f'/{cam}/degradation_mask'] == c['frames_out']
        assert c['latency_p50_ms'] > 0 and c['latency_p95_ms'] >= c['latency_p50_ms']
    assert [s['weather'] for s in summary['segments']] == ['clear', 'rain', 'fog', 'snow']
    assert all(s['cameras']['front']['label'] in ('clear', 'rain', 'snow', 'fog', 'raindrop')
               for s in summary['segments'] if s['cameras']['front']['frames'])
    sheet = cv2.imread(str(out / 'contact_sheet.png'))
    assert sheet.shape[0] > 8 * 100 and sheet.shape[1] > 3 * 256 and sheet.std() > 10
    table = (out / 'demo_summary.txt').read_text()
    assert 'latency p50' in table and 'snow' in table


def test_demo_never_deletes_foreign_files(tmp_path):
    (tmp_path / 'thesis.tex').write_text('x')
    with pytest.raises(DemoError, match='not from a demo run'):
        _prepare(tmp_path)
    assert (tmp_path / 'thesis.tex').exists()
    old = tmp_path / 'again'
    (old / 'input_bag').mkdir(parents=True)
    (old / 'demo_summary.txt').write_text('old')
    _prepare(old)                                        # a previous demo's files go
    assert list(old.iterdir()) == []
