"""``bench --engine --load N``: engine timing in worker processes, quiet and under busy loops the
benchmark starts itself; and the /proc readers it and the node benchmark use."""
import json
import os
import time

import pytest

from weather_restore_ros import procstat, thread_bench


def test_busy_load_spins_and_stops():
    with procstat.BusyLoad(1) as busy:
        [pid] = busy.pids
        time.sleep(0.3)
        assert procstat.cpu_seconds(pid) > 0 and procstat.rss_mb(pid) > 0
    assert procstat.cpu_seconds(pid) is None             # gone: stopped on exit
    assert procstat.rss_mb(os.getpid()) > 10
    meter = procstat.CpuMeter([os.getpid()]).start()
    sum(range(2_000_000))
    meter.stop()
    assert meter.percent(os.getpid()) > 0 and meter.others_cores is not None
    with pytest.raises(ValueError):
        procstat.BusyLoad(-1)


def test_sweep_settings_start_with_the_chosen_one_and_never_repeat(monkeypatch):
    monkeypatch.delenv('OMP_WAIT_POLICY', raising=False)
    monkeypatch.setattr(thread_bench.cpu_threads, 'usable_cores', lambda: 8)
    one = thread_bench.settings(3, sweep=False)
    assert [(s.threads, s.interop) for s in one] == [(3, 1)] and 'PASSIVE' in one[0].name
    many = thread_bench.settings(3, sweep=True)
    assert many[0] == one[0] and {s.threads for s in many} == {1, 3, 6, 8}
    keys = [(s.threads, s.interop, thread_bench._effective_wait(s.wait)) for s in many]
    assert len(keys) == len(set(keys)) and any(k[2] == 'unset' for k in keys)
    assert any(s.interop is None for s in many)


@pytest.mark.slow
def test_engine_under_load_in_one_run(tmp_path, tiny_checkpoint, capsys):
    from weather_restore_ros.cli import main
    out = tmp_path / 'load.json'
    assert main(['bench', '--engine', '--load', '1', '--checkpoint', str(tiny_checkpoint),
                 '--size', '64x48', '--iters', '4', '--threads', '1', '--json', str(out)]) == 0
    printed = capsys.readouterr().out
    assert 'load 0 ms' in printed and 'load1/load0' in printed and 'target <= 2x' in printed
    result = json.loads(out.read_text())
    [row] = result['rows']
    assert row['applied']['torch_threads'] == 1 and row['applied']['torch_interop'] == 1
    assert row['applied']['wait_policy'] == os.environ.get('OMP_WAIT_POLICY', 'PASSIVE')
    assert row['applied']['wait_policy_applied'] and row['iterations'] == 4
    assert all(0 < row['min_ms'][k] <= row['median_ms'][k] for k in ('0', '1'))
    assert set(result['others_cores']) == {'0', '1'}


def test_load_needs_the_engine(capsys):
    from weather_restore_ros.cli import main
    assert main(['bench', '--load', '1']) == 2
    assert '--load N needs --engine' in capsys.readouterr().err
