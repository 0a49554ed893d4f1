"""EngineSettings: one spelling of the engine's settings for Python, every command and the node.

Validation (a bad value raises naming the setting, from Python and from a flag alike), the
command-line flags of every command that runs the engine (all from ``add_engine_arguments``),
the node's parameter table (generated from ``SETTINGS``, mapped back onto every field), and
``RestorationEngine.apply`` on a real engine and a real node.
"""
import dataclasses

import numpy as np
import pytest

from weather_restore_ros.cli import build_parser
from weather_restore_ros.engine_settings import (BY_PATH, RUNTIME_FIELDS, SETTINGS, EngineError,
                                                 EngineSettings, settings_from_args)
from weather_restore_ros.prior_cache import RefreshPolicy

#: Commands that run the engine, and the settings each leaves out (and why): bench times
#: several checkpoints and several backends side by side with flags of its own; export builds
#: no engine, it verifies its graphs with the engine's thread setting only.
ENGINE_COMMANDS = {
    'restore': (['restore', 'in.png', '-o', 'out'], set()),
    'bag': (['bag', 'a', 'b'], set()),
    'bench': (['bench'], {'checkpoint', 'backend'}),
    'demo': (['demo'], set()),
    'eval': (['eval', '--holdout', '-o', 'x'], set()),
    'node': (['node'], set()),
    'export': (['export', '-o', 'x'], set(BY_PATH) - {'threads'}),
}
#: Flags spelled like an engine flag that mean something else there.
OWN_FLAGS = {
    ('bench', '--checkpoint'): 'several checkpoints, timed side by side',
    ('export', '--max-pixels'): 'the size its verification photos are shrunk to',
    ('info', '--checkpoint'): 'the checkpoint to describe (info builds no engine)',
    ('info', '--clip-model'): 'an open_clip model whose weights to look for',
    ('info', '--clip-pretrained'): 'the same', ('info', '--clip-cache-dir'): 'the same',
    ('train', '--device'): 'the training device (its own default: CUDA when available)',
    ('train', '--threads'): "cpu_threads' training variant: torch decides by default",
}


def _subparsers():
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == 'command')
    return parser, action.choices


# ------------------------------------------------------------------ validation
@pytest.mark.parametrize('field,value,message', [
    ('device', 'gpu', 'device must be auto, cpu, cuda or cuda:N'),
    ('device', 'cuda:x', 'device must be'),
    ('precision', 'fp64', 'precision must be one of auto, fp32, fp16, bf16'),
    ('classifier', 'knn', 'classifier must be one of head, zero_shot'),
    ('backend', 'tensorflow', 'backend must be one of torch, onnxruntime'),
    ('oversize', 'crop', 'oversize must be one of tile, downscale'),
    ('threads', -1, 'threads must be a whole number >= 0'),
    ('threads', 1.5, 'threads must be a whole number'),
    ('warmup', 'yes', 'warmup must be true or false'),
    ('harm_guard', 1, 'harm_guard must be true or false'),
    ('skip_clear_threshold', 1.5, r'skip_clear_threshold must be a number in \[0, 1\]'),
    ('skip_clear_threshold', float('nan'), 'skip_clear_threshold'),
    ('max_pixels', 0, 'max_pixels must be a positive whole number'),
    ('max_pixels', 10.5, 'max_pixels'),
])
def test_bad_values_raise_naming_the_setting(field, value, message):
    with pytest.raises(EngineError, match=message):
        EngineSettings(**{field: value})
    with pytest.raises(EngineError, match=message):   # replace validates the same way
        EngineSettings().replace(**{field: value})


def test_refresh_policy_is_checked_by_its_own_rules():
    with pytest.raises(ValueError, match='RefreshPolicy.ema must be in'):
        EngineSettings().with_values({'refresh.ema': 1.0})
    with pytest.raises(TypeError, match='refresh must be a RefreshPolicy'):
        EngineSettings(refresh={'every_n_frames': 1})
    s = EngineSettings().with_values({'refresh.every_n_frames': 7, 'skip_clear_threshold': 1})
    assert s.refresh == RefreshPolicy(every_n_frames=7) and s.skip_clear_threshold == 1.0
    assert EngineSettings().refresh == RefreshPolicy()   # defaults are the policy's own


def test_unset_values_have_one_spelling():
    """'' (a ROS string parameter) and None mean the same; threads 0 and None too."""
    assert EngineSettings(checkpoint='', onnx_dir='', clip_model='', threads=0) == \
        EngineSettings()
    assert EngineSettings(checkpoint='m.safetensors', threads=2).threads == 2


# ------------------------------------------------------------------ command line
def test_every_command_takes_the_engine_flags_from_one_source():
    _, commands = _subparsers()
    all_flags = {s.flag for s in SETTINGS} | {f'--no-{s.flag[2:]}' for s in SETTINGS}
    for name, sub in commands.items():
        argv, left_out = ENGINE_COMMANDS.get(name, ([], set(BY_PATH)))
        tagged = {}
        for action in sub._actions:
            s = getattr(action, 'engine_setting', None)
            if s is None:   # not from add_engine_arguments: must not look like an engine flag
                for flag in set(action.option_strings) & all_flags:
                    assert (name, flag) in OWN_FLAGS, f'{name} {flag} is spelled by hand'
                continue
            tagged[s.path] = action
            assert s.flag in action.option_strings
            assert action.help.startswith(s.help) and s.param in action.help
            assert tuple(action.choices or ()) == s.choices
        assert set(tagged) == set(BY_PATH) - left_out, name
        if 'precision' in tagged:
            assert tuple(tagged['precision'].choices) == ('auto', 'fp32', 'fp16', 'bf16')


def test_per_command_defaults_are_the_stated_ones():
    parser, _ = _subparsers()

    def settings(name, *extra):
        return settings_from_args(parser.parse_args(ENGINE_COMMANDS[name][0] + list(extra)))
    assert settings('demo') == EngineSettings()                  # the node's defaults
    assert settings('restore') == settings('bag') == EngineSettings(warmup=False)
    assert settings('eval') == EngineSettings(warmup=False, harm_guard=False)
    assert settings('bench') == EngineSettings(device='cpu')
    assert settings('export').threads == 1
    flags = settings('bag', '--no-harm-guard', '--refresh-frames', '5', '--scene-cut', '0',
                     '--ema', '0.5', '--precision', 'fp32', '--checkpoint', 'm.safetensors',
                     '--threads', '2', '--max-pixels', '4096', '--oversize', 'downscale')
    assert flags == EngineSettings(
        warmup=False, harm_guard=False, precision='fp32', checkpoint='m.safetensors', threads=2,
        max_pixels=4096, oversize='downscale',
        refresh=RefreshPolicy(every_n_frames=5, scene_cut_threshold=0.0, ema=0.5))
    node = parser.parse_args(['node'])   # nothing given: the params file decides everything
    assert all(getattr(node, s.dest) is None for s in SETTINGS)


@pytest.mark.parametrize('argv,message', [
    (['--skip-clear-threshold', '2'], 'skip_clear_threshold must be a number in [0, 1]'),
    (['--device', 'gpu'], 'device must be auto, cpu, cuda or cuda:N'),
    (['--ema', '1'], 'RefreshPolicy.ema must be in [0, 1)'),
    (['--refresh-frames', '2.5'], 'expected a whole number'),
    (['--precision', 'fp64'], 'precision must be one of auto, fp32, fp16, bf16'),
    (['--threads', '-1'], 'threads must be a whole number >= 0'),
])
def test_bad_flags_are_refused_by_the_settings_own_check(argv, message, capsys):
    parser, _ = _subparsers()
    for name in ('restore', 'bag', 'eval'):
        with pytest.raises(SystemExit) as exit_:
            parser.parse_args(ENGINE_COMMANDS[name][0] + argv)
        assert exit_.value.code == 2
        assert message in capsys.readouterr().err


# ------------------------------------------------------------------ node parameters
def test_the_node_parameter_table_maps_onto_every_setting():
    """Every EngineSettings field (the refresh policy's fields one by one) is a node parameter
    with the same default, choices and mutability, and the mapping goes both ways."""
    pytest.importorskip('rclpy', reason='rclpy is not installed', exc_type=ImportError)
    from weather_restore_ros.ros import params as P
    fields = {f.name for f in dataclasses.fields(EngineSettings)} - {'refresh'}
    fields |= {f'refresh.{f.name}' for f in dataclasses.fields(RefreshPolicy)}
    assert {s.path for s in SETTINGS} == fields
    for s in SETTINGS:
        p = P.BY_NAME[s.param]
        assert p.default == s.ros_value(s.default) and type(p.default) is s.kind, s.param
        assert (p.choices, p.range, p.runtime) == (s.choices, s.range, s.runtime), s.param
    assert {p.name for p in P.PARAMS} >= {s.param for s in SETTINGS}
    defaults = {p.name: p.default for p in P.PARAMS}
    assert P.engine_settings(defaults) == EngineSettings()
    other = EngineSettings(checkpoint='m.safetensors', device='cuda:1', precision='bf16',
                           backend='onnxruntime', threads=3, warmup=False, harm_guard=False,
                           skip_clear_threshold=0.5, max_pixels=4096, oversize='downscale',
                           refresh=RefreshPolicy(every_n_frames=4, max_age_s=0.5,
                                                 scene_cut_threshold=0.2, ema=0.3))
    assert P.engine_settings({**defaults, **other.to_params()}) == other
    assert set(RUNTIME_FIELDS) == {'harm_guard', 'skip_clear_threshold', 'max_pixels',
                                   'oversize', 'refresh'}


def test_node_command_flags_reach_the_node_parameters_with_their_types():
    """``weather-restore node --no-harm-guard --refresh-seconds 2 ...`` -> -p arguments that
    rclpy hands to the node with the declared types (a float given as 2 is still a double)."""
    pytest.importorskip('rclpy', reason='rclpy is not installed', exc_type=ImportError)
    import rclpy
    from rclpy.context import Context
    from rclpy.signals import SignalHandlerOptions
    from ros_helpers import domain_id

    from weather_restore_ros.commands.node import build_ros_args
    from weather_restore_ros.ros.restore_node import RestoreNode
    args = build_parser().parse_args(
        ['node', '--no-harm-guard', '--refresh-seconds', '2', '--device', 'cuda:0',
         '--threads', '3', '--checkpoint', '/m/x.safetensors', '--skip-clear-threshold', '1'])
    ros_args = build_ros_args(args)
    assert ros_args[0] == '--ros-args' and '-p' in ros_args and 'device:=cuda:0' in ros_args
    ctx = Context()
    rclpy.init(args=['weather-restore', *ros_args], context=ctx, domain_id=domain_id(),
               signal_handler_options=SignalHandlerOptions.NO)
    try:
        node = RestoreNode(context=ctx)
        got = {n: node.get_parameter(n).value for n in (
            'harm_guard', 'prior.refresh_seconds', 'device', 'threads', 'checkpoint',
            'skip_clear_threshold', 'warmup')}
        node.destroy_node()
    finally:
        ctx.try_shutdown()
    assert got == {'harm_guard': False, 'prior.refresh_seconds': 2.0, 'device': 'cuda:0',
                   'threads': 3, 'checkpoint': '/m/x.safetensors', 'skip_clear_threshold': 1.0,
                   'warmup': True}
    assert type(got['prior.refresh_seconds']) is float


# ------------------------------------------------------------------ apply
def test_apply_changes_the_runtime_settings_and_nothing_else(tiny_checkpoint):
    from weather_restore_ros.engine import RestorationEngine
    engine = RestorationEngine.from_checkpoint(str(tiny_checkpoint), device='cpu',
                                               warmup=False)
    engine.restore(np.full((24, 32, 3), 100, np.uint8), 'cam')   # a stream with a prior
    built = engine.settings
    new = EngineSettings(device='cuda', backend='onnxruntime', checkpoint='other.safetensors',
                         harm_guard=False, skip_clear_threshold=0.7, max_pixels=4096,
                         oversize='downscale', refresh=RefreshPolicy(every_n_frames=3))
    engine.apply(new)
    assert (engine.harm_guard, engine.skip_clear_threshold, engine.max_pixels,
            engine.oversize) == (False, 0.7, 4096, 'downscale')
    assert engine.cache('cam').policy == RefreshPolicy(every_n_frames=3)
    assert engine.cache('cam').embedding is not None          # the prior is kept
    # built-with settings are not looked at: still the CPU torch engine of that checkpoint
    assert engine.settings == built.replace(**{f: getattr(new, f) for f in RUNTIME_FIELDS})
    assert engine.device.type == 'cpu' and engine.backend.name == 'torch'
    assert engine.settings.checkpoint == str(tiny_checkpoint)
    # the attribute setters are the same path, with the same checks
    engine.skip_clear_threshold = 0.0
    assert engine.settings.skip_clear_threshold == 0.0
    with pytest.raises(EngineError, match='skip_clear_threshold'):
        engine.skip_clear_threshold = 2.0
    with pytest.raises(TypeError):
        engine.apply({'harm_guard': True})


def test_cli_fails_loudly_when_a_subcommand_does_not_import(monkeypatch):
    from weather_restore_ros import cli
    monkeypatch.setattr(cli, 'COMMANDS', cli.COMMANDS + (
        ('broken', 'weather_restore_ros.commands.no_such_command'),))
    with pytest.raises(ImportError, match='weather-restore broken: cannot import'):
        cli.build_parser()


def test_node_parameter_changes_reach_the_engine_through_apply(tiny_checkpoint, monkeypatch):
    """``ros2 param set`` of engine parameters: one ``engine.apply`` with the settings of the
    whole new parameter set; a value outside the descriptor's range never reaches it."""
    pytest.importorskip('rclpy', reason='rclpy is not installed', exc_type=ImportError)
    from node_rig import Rig
    from ros_helpers import ros_context

    from weather_restore_ros.engine import RestorationEngine
    from weather_restore_ros.ros import params as P
    with ros_context() as ctx:
        rig = Rig(ctx, tiny_checkpoint, '/settings').start()
        try:
            applied = []
            real = RestorationEngine.apply
            monkeypatch.setattr(RestorationEngine, 'apply',
                                lambda self, s: (applied.append(s), real(self, s))[1])
            results = rig.set_params(**{'prior.ema': 0.5, 'harm_guard': False,
                                        'max_frame_pixels': 8192, 'enabled': True})
            assert all(r.successful for r in results), [r.reason for r in results]
            engine = rig.node.engine
            want = P.engine_settings(rig.node.p)
            assert applied and applied[-1] == want
            assert {f: getattr(engine.settings, f) for f in RUNTIME_FIELDS} == \
                {f: getattr(want, f) for f in RUNTIME_FIELDS}
            assert engine.refresh_policy.ema == 0.5 and engine.max_pixels == 8192
            calls = len(applied)   # one per parameter: the service sets them one by one
            [bad] = rig.set_params(**{'skip_clear_threshold': float('nan')})
            assert not bad.successful and 'out of range' in bad.reason   # the descriptor's
            assert engine.skip_clear_threshold == 0.0 and len(applied) == calls
        finally:
            rig.close()
