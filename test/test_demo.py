"""``weather-restore demo`` end to end (tiny model, small frames, short segments)."""
import json

import cv2
import pytest

pytest.importorskip('rclpy', reason='rclpy is not installed', exc_type=ImportError)

from weather_restore_ros.rosbag.live_demo import DemoError, _prepare  # noqa: E402

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


def test_sheet_shows_the_restored_frame_nearest_the_middle():
    from weather_restore_ros.rosbag.live_demo import sheet_choice
    from weather_restore_ros.rosbag.sample_bag import Segment
    seg = Segment('rain', 10, 20)
    stamps = list(range(0, 30))                          # 10 frames inside: 10..19, middle 15
    assert sheet_choice(stamps, seg, set(range(30)))['offset'] == 0
    c = sheet_choice(stamps, seg, {11, 17, 25})          # middle dropped: 17 is nearest
    assert (c['stamp'], c['frame'], c['offset'], c['restored']) == (17, 8, 2, 2)
    assert sheet_choice(stamps, seg, {13, 17})['stamp'] == 13   # a tie: the earlier frame
    c = sheet_choice(stamps, seg, {5, 25})                # nothing restored in this segment
    assert c['frame'] is None and c['stamp'] == 15 and c['restored'] == 0


@pytest.mark.slow
def test_demo_on_a_slow_machine_shows_restored_frames_and_says_why_frames_dropped(
        tmp_path, tiny_checkpoint, monkeypatch):
    """The engine made slow (0.5 s per batch, a real forward pass after the wait): the node
    keeps up with about 2 of the 5 frames/s per camera, as on a busy machine."""
    import time

    from weather_restore_ros.engine import RestorationEngine
    from weather_restore_ros.engine_settings import EngineSettings
    from weather_restore_ros.rosbag.live_demo import DemoOptions, _labels_by_stamp, run_demo
    from weather_restore_ros.rosbag.topics import OutputTopics

    real = RestorationEngine.restore_batch

    def slow(self, frames):
        time.sleep(0.5)
        return real(self, frames)
    monkeypatch.setattr(RestorationEngine, 'restore_batch', slow)
    result = run_demo(DemoOptions(output=str(tmp_path / 'demo'),
                                  engine=EngineSettings(checkpoint=str(tiny_checkpoint),
                                                        device='cpu', warmup=False),
                                  seconds_per_segment=1.2, size=(96, 72)), log=lambda s: None)
    restored = _labels_by_stamp(result.output_bag, {c: OutputTopics(f'/{c}')
                                                    for c in ('front', 'rear')})
    for cam in ('front', 'rear'):
        c = result.summary['cameras'][cam]
        assert c['frames_in'] == 24 and 0 < c['frames_out'] < c['frames_in']
        assert c['dropped'] == c['frames_in'] - c['frames_out']
        assert c['node_dropped'] > 0 and c['restored_hz'] < 5
        note = next(ln for ln in result.table.splitlines() if ln.startswith(f'{cam}: '))
        assert f'{c["dropped"]} of 24 frames dropped' in note
        assert f'{c["node_dropped"]} replaced by a newer frame' in note
        assert f'restored {c["restored_hz"]:.1f} frames/s' in note
    rows = result.summary['contact_sheet']
    assert len(rows) == 8
    for row in rows:                  # every row shows a frame the node really restored
        assert row['frame'] is not None and row['stamp'] in restored[row['camera']]
    assert json.loads(result.summary_json.read_text())['contact_sheet'] == rows


@pytest.mark.parametrize('command', ['demo', 'bench'])
@pytest.mark.parametrize('size,why', [('0x72', 'must be positive'), ('96', 'WIDTHxHEIGHT'),
                                      ('96x72x3', 'WIDTHxHEIGHT')])
def test_size_is_validated(command, size, why, capsys):
    """demo and bench share one WIDTHxHEIGHT parser: a bad --size is refused before any work."""
    from weather_restore_ros.cli import main
    with pytest.raises(SystemExit) as exit_:
        main([command, '--size', size])
    assert exit_.value.code == 2 and why in capsys.readouterr().err
