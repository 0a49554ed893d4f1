"""``weather-restore bench --node`` (a real node process over DDS, tiny model, a second or two per
run) and the parts of it that are plain logic: frames, the peak search, the soak slope."""
import json
from pathlib import Path

import pytest

from weather_restore_ros.node_bench import frames as F
from weather_restore_ros.node_bench.runner import BenchOptions, Session, soak_slopes

ROOT = Path(__file__).resolve().parents[1]


def test_frames_from_a_bag_keep_size_and_get_new_stamps(tmp_path):
    from weather_restore_ros.rosbag.live_demo import header_stamp_ns
    from weather_restore_ros.rosbag.sample_bag import make_sample_bag
    info = make_sample_bag(tmp_path / 'b', size=(80, 60), seconds_per_segment=0.4)
    fs = F.from_bag(info.path, cameras=3, limit=5)
    assert fs.cameras == 3 and fs.size == (80, 60) and fs.msgtype == 'sensor_msgs/msg/Image'
    assert [len(c) for c in fs.frames] == [5, 5, 5]
    assert fs.frames[2] == fs.frames[0]            # 2 topics: camera 2 plays the first again
    buf = bytearray(fs.frames[0][0])
    F.set_stamp(buf, 1_234_567_890_123_456_789)
    assert header_stamp_ns(bytes(buf)) == 1_234_567_890_123_456_789
    assert F.from_bag(info.path, cameras=3, limit=5).sha256 == fs.sha256
    assert F.from_bag(info.path, cameras=3, limit=4).sha256 != fs.sha256
    with pytest.raises(F.FrameError, match='no sensor_msgs/Image'):
        F.from_bag(info.path, cameras=1, topics=['/nothing'])


def test_peak_search_finds_the_highest_rate_with_few_drops():
    """A node that sustains 42 frames/s: drops above it are 1 - 42/rate."""
    session = Session.__new__(Session)
    session.options, session.log = BenchOptions(peak_runs=4), lambda s: None

    def run(rate):
        delivered = min(rate, 42.0)
        return {'rate_hz': rate, 'delivered_hz': delivered, 'dropped_pct':
                round(100 * (1 - delivered / rate), 1), 'e2e_ms': {'p50': 1, 'p95': 1}}
    session.run_rate = run
    peak = session.peak([run(10.0), run(30.0), run(60.0)])
    assert 42.0 <= peak['rate_hz'] <= 42.0 / 0.95
    assert len(peak['runs']) <= 4 and 60.0 in peak['tried_hz']
    session.run_rate = lambda rate: run(rate) | {'dropped_pct': 50.0}   # never keeps up
    assert session.peak([session.run_rate(10.0)])['rate_hz'] is None


def test_soak_slope_shows_a_leak_and_not_the_start():
    samples = [{'t_s': 10.0 * k, 'rss_mb': 500.0 + (300 if k == 1 else 0) + 0.5 * k,
                'e2e_ms': {'p50': 40.0}} for k in range(1, 8)]
    slopes = soak_slopes(samples)                    # 0.5 MB per 10 s = 3 MB/min
    assert slopes['rss_slope_mb_per_min'] == pytest.approx(3.0, abs=1e-6)
    assert slopes['e2e_p50_slope_ms_per_min'] == pytest.approx(0.0, abs=1e-6)
    flat = [dict(s, rss_mb=950.0 + (10 if k == 4 else 0)) for k, s in enumerate(samples)]
    assert soak_slopes(flat)['rss_slope_mb_per_min'] == 0.0   # one transient is no leak


def _sane(run):
    assert run['sent'] > 0 and 0 < run['delivered'] <= run['sent']
    assert 0.0 <= run['dropped_pct'] <= 100.0
    e = run['e2e_ms']
    assert 0 < e['p50'] <= e['p95'] <= e['max']
    n = run['node_ms']
    assert n['p50'] is not None and 0 < n['p50'] <= n['p95']
    c = run['node_counts']
    assert c['published'] >= run['delivered'] - 1 and c['received'] <= run['sent']
    assert run['lost_before_node'] + c['dropped'] + c['published'] >= run['sent'] - 2
    assert run['node_cpu_pct'] > 0 and run['node_rss_max_mb'] > 50
    assert run['delivered_hz'] > 0


@pytest.mark.slow
def test_node_bench_measures_a_real_node(tmp_path, tiny_checkpoint, capsys):
    pytest.importorskip('rclpy', reason='rclpy is not installed', exc_type=ImportError)
    from ros_helpers import domain_id

    from weather_restore_ros.cli import main
    out = tmp_path / 'bench.json'
    assert main(['bench', '--node', '--checkpoint', str(tiny_checkpoint), '--device', 'cpu',
                 '--size', '64x48', '--cameras', '2', '--rates', '15', '--duration', '2',
                 '--peak-runs', '1', '--threads', '1', '--domain-id', str(domain_id()),
                 '--json', str(out)]) == 0
    printed = capsys.readouterr().out
    assert 'peak' in printed and 'e2e p50' in printed
    report = json.loads(out.read_text())
    assert report['config']['cameras'] == 2 and report['config']['size'] == [64, 48]
    assert len(report['runs']) == 1 and len(report['peak']['runs']) == 1
    for run in report['runs'] + report['peak']['runs']:
        _sane(run)
    assert report['runs'][0]['sent'] == 2 * 15 * 2


@pytest.mark.slow
def test_node_bench_soak_from_a_bag(tmp_path, tiny_checkpoint, capsys, monkeypatch):
    pytest.importorskip('rclpy', reason='rclpy is not installed', exc_type=ImportError)
    from ros_helpers import domain_id

    from weather_restore_ros.cli import main
    from weather_restore_ros.rosbag.sample_bag import make_sample_bag
    bag = make_sample_bag(tmp_path / 'cams', size=(64, 48), seconds_per_segment=0.5).path
    out = tmp_path / 'soak.json'
    profile = ROOT / 'config' / 'fastdds_large_frames.xml'     # the shipped profile works
    monkeypatch.delenv('FASTDDS_DEFAULT_PROFILES_FILE', raising=False)
    assert main(['bench', '--node', '--bag', str(bag), '--checkpoint', str(tiny_checkpoint),
                 '--device', 'cpu', '--soak', '0.05', '--soak-interval', '1', '--rates', '10',
                 '--threads', '1', '--domain-id', str(domain_id()), '--json', str(out),
                 '--dds-profile', str(profile)]) == 0
    report = json.loads(out.read_text())
    assert str(bag) in report['config']['frames']
    assert report['config']['dds_profile'] == str(profile)
    soak = report['soak']
    assert len(soak['samples']) >= 3 and soak['rate_hz'] == 10
    for s in soak['samples']:
        assert s['rss_mb'] > 50 and 0.0 <= s['dropped_pct'] <= 100.0
        assert s['e2e_ms']['p50'] <= s['e2e_ms']['p95'] <= s['e2e_ms']['max']
    assert soak['rss_slope_mb_per_min'] is not None
    assert 'soak: 0.05 min' in capsys.readouterr().out


def test_lost_large_best_effort_frames_are_explained(monkeypatch, capsys):
    monkeypatch.delenv('FASTDDS_DEFAULT_PROFILES_FILE', raising=False)
    session = Session.__new__(Session)
    session.options = BenchOptions()
    session.frames = F.FrameSet('sensor_msgs/msg/Image', [[b'x' * 921_700]], 'test', '', None)
    assert 'config/fastdds_large_frames.xml' in session._transport_hint()
    session.options = BenchOptions(qos='reliable')
    assert session._transport_hint() == ''
    from weather_restore_ros.cli import main
    assert main(['bench', '--node', '--dds-profile', 'missing.xml']) == 2
    assert 'no such DDS profile' in capsys.readouterr().err


def test_large_best_effort_frames_get_the_shipped_profile(monkeypatch):
    from weather_restore_ros.node_bench.cli import large_frames_profile
    monkeypatch.delenv('FASTDDS_DEFAULT_PROFILES_FILE', raising=False)
    big = F.FrameSet('sensor_msgs/msg/Image', [[b'x' * 921_700]], 'test', '', None)
    small = F.FrameSet('sensor_msgs/msg/Image', [[b'x' * 230_500]], 'test', '', None)
    assert large_frames_profile(big, 'sensor_data') == str(
        ROOT / 'config' / 'fastdds_large_frames.xml')
    assert large_frames_profile(big, 'reliable') is None
    assert large_frames_profile(small, 'sensor_data') is None
    monkeypatch.setenv('FASTDDS_DEFAULT_PROFILES_FILE', '/etc/mine.xml')   # the user's wins
    assert large_frames_profile(big, 'sensor_data') is None
