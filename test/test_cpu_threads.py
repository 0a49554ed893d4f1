"""The CPU thread policy: defaults, the OpenMP wait policy set before torch loads, the shared
``--threads`` option of every command, the node's read-only ``threads`` parameter."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from weather_restore_ros import cpu_threads

ROOT = Path(__file__).resolve().parents[1]


def test_default_threads_leave_room_for_other_processes(monkeypatch):
    monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
    assert cpu_threads.default_threads(1) == (1, 'default')
    assert cpu_threads.default_threads(2) == (1, 'default')     # one core busy: still fast
    assert cpu_threads.default_threads(6) == (3, 'default')
    assert cpu_threads.default_threads(64) == (cpu_threads.MAX_DEFAULT_THREADS, 'default')
    monkeypatch.setenv('OMP_NUM_THREADS', '3')                  # the user's choice wins
    assert cpu_threads.default_threads(64) == (3, 'OMP_NUM_THREADS')
    monkeypatch.setenv('OMP_NUM_THREADS', 'lots')
    assert cpu_threads.default_threads(8) == (4, 'default')


def test_wait_policy_is_set_only_where_the_user_did_not():
    env = {}
    assert cpu_threads.set_wait_policy('auto', env) == 'PASSIVE' == env['OMP_WAIT_POLICY']
    env = {'OMP_WAIT_POLICY': 'ACTIVE'}
    assert cpu_threads.set_wait_policy('auto', env) == 'ACTIVE'
    assert cpu_threads.set_wait_policy('runtime', env) == '' and 'OMP_WAIT_POLICY' not in env
    assert cpu_threads.set_wait_policy('ACTIVE', env) == 'ACTIVE'
    with pytest.raises(ValueError, match='wait policy'):
        cpu_threads.set_wait_policy('lazy', env)


_PROBE = """
import json, os, sys
sys.path.insert(0, {root!r})
from weather_restore_ros import cpu_threads
if {torch_first}:
    import torch
s = cpu_threads.configure({threads})
import torch
print(json.dumps({{'env': os.environ.get('OMP_WAIT_POLICY'), 'applied': s.wait_policy_applied,
                  'threads': torch.get_num_threads(), 'interop': torch.get_num_interop_threads(),
                  'from': s.threads_from, 'text': s.describe()}}))
"""


def _probe(threads, torch_first=False, **env):
    full = {k: v for k, v in os.environ.items() if k not in ('OMP_WAIT_POLICY', 'OMP_NUM_THREADS')}
    full.update(env)
    out = subprocess.run([sys.executable, '-c', _PROBE.format(root=str(ROOT), threads=threads,
                                                              torch_first=torch_first)],
                         env=full, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_configure_sets_the_wait_policy_before_torch_and_the_thread_counts():
    got = _probe(2)                                   # a fresh process, torch not loaded yet
    assert got['env'] == 'PASSIVE' and got['applied']
    assert (got['threads'], got['interop'], got['from']) == (2, 1, 'argument')
    assert 'OMP_WAIT_POLICY PASSIVE' in got['text']
    got = _probe(None, OMP_WAIT_POLICY='ACTIVE', OMP_NUM_THREADS='1')   # the user's own
    assert got['env'] == 'ACTIVE' and got['applied']
    assert (got['threads'], got['from']) == (1, 'OMP_NUM_THREADS')
    got = _probe(1, torch_first=True)                 # too late for the wait policy: said
    assert not got['applied'] and got['threads'] == 1
    assert 'torch was imported before' in got['text']


@pytest.mark.parametrize('argv', [
    ['restore', 'in.png', '-o', 'out'], ['bag', 'a', 'b'], ['bench'], ['demo'],
    ['eval', '--holdout', '-o', 'x'], ['node'], ['train', 'c.yaml']])
def test_every_model_command_takes_threads(argv):
    from weather_restore_ros.cli import build_parser
    parser = build_parser()
    assert parser.parse_args(argv + ['--threads', '2']).threads == 2
    assert parser.parse_args(argv).threads is None
    with pytest.raises(SystemExit):
        parser.parse_args(argv + ['--threads', '-1'])


def test_node_command_passes_threads_as_the_node_parameter():
    from argparse import Namespace

    from weather_restore_ros.commands.node import build_ros_args
    args = Namespace(params_file=None, name=None, namespace=None, log_level=None, ros_args=[],
                     threads=3)
    assert build_ros_args(args) == ['--ros-args', '-p', 'threads:=3']


def test_threads_parameter_is_read_only_and_applied_at_configure(tiny_checkpoint):
    pytest.importorskip('rclpy', reason='rclpy is not installed', exc_type=ImportError)
    import torch
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter
    from ros_helpers import ros_context

    from weather_restore_ros.ros import params as P
    from weather_restore_ros.ros.restore_node import RestoreNode

    assert P.BY_NAME['threads'].descriptor().read_only
    old = torch.get_num_threads()
    with ros_context() as ctx:
        node = RestoreNode(context=ctx, namespace='/threads', parameter_overrides=[
            Parameter('checkpoint', value=str(tiny_checkpoint)), Parameter('device', value='cpu'),
            Parameter('warmup', value=False), Parameter('threads', value=2)])
        try:
            assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
            assert torch.get_num_threads() == 2
            result = node.set_parameters([Parameter('threads', value=1)])[0]
            assert not result.successful and 'read-only' in result.reason
        finally:
            node.destroy_node()
            torch.set_num_threads(old)
