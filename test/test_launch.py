"""Launch files: static checks that always run, a stubbed run of their Python, and a real
launch_testing run where ROS 2 launch is installed (it is not on PyPI: skipped there).
"""
import ast
import importlib.util
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_FILES = sorted((ROOT / 'launch').glob('*.launch.py'))
MAIN_LAUNCH = ROOT / 'launch' / 'restore.launch.py'
TWO_CAMERAS = ROOT / 'launch' / 'restore_two_cameras.launch.py'
# What every launch file lets a user set (itself or through the file it includes);
# restore.launch.py also remaps the inputs.
COMMON_ARGS = {'namespace', 'params_file', 'device', 'use_sim_time', 'log_level'}
MAIN_ARGS = COMMON_ARGS | {'cameras', 'input_topic', 'camera_topics'}


def _console_scripts() -> set[str]:
    tree = ast.parse((ROOT / 'setup.py').read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == 'console_scripts':
                    return {ast.literal_eval(e).split('=')[0].strip() for e in value.elts}
    raise AssertionError('no console_scripts in setup.py')


def _calls(tree, name):
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)
            and getattr(n.func, 'id', getattr(n.func, 'attr', None)) == name]


def _first_arg(call):
    return ast.literal_eval(call.args[0]) if call.args else ast.literal_eval(
        next(k.value for k in call.keywords if k.arg == 'name'))


def test_launch_files_exist():
    assert MAIN_LAUNCH in LAUNCH_FILES and len(LAUNCH_FILES) >= 2


def _declared(tree):
    return {_first_arg(c) for c in _calls(tree, 'DeclareLaunchArgument')}


def _included(path):
    """{launch file this one includes: the argument names it passes} (this package's files)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    files = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
             and isinstance(n.value, str) and n.value.endswith('.launch.py')}
    out = {}
    for call in _calls(tree, 'IncludeLaunchDescription'):
        [name] = files  # one included file per launch file here
        args = next(k.value for k in call.keywords if k.arg == 'launch_arguments')
        out[path.parent / name] = {ast.literal_eval(k) for k in args.func.value.keys}
    return out


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_statically(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    assert any(isinstance(n, ast.FunctionDef) and n.name == 'generate_launch_description'
               for n in tree.body)

    nodes = _calls(tree, 'Node')
    included = _included(path)
    assert nodes or included, 'no Node action and no included launch file'
    for call in nodes:
        kw = {k.arg: k.value for k in call.keywords}
        assert ast.literal_eval(kw['executable']) in _console_scripts()
        package = kw['package']
        package = (ast.literal_eval(package) if isinstance(package, ast.Constant)
                   else 'weather_restore_ros')  # the module-level PACKAGE constant
        assert package == 'weather_restore_ros'
    if nodes:
        assert "PACKAGE = 'weather_restore_ros'" in path.read_text()

    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
               and isinstance(n.value, str)}
    for name in (s for s in strings if s.endswith(('.yaml', '.yml'))):
        assert (ROOT / 'config' / name).is_file(), f'{name} is not in config/'
    if nodes:  # the default params file is the installed config/restore.yaml
        assert 'config' in strings

    own = declared = _declared(tree)
    for child, forwarded in included.items():
        assert child in LAUNCH_FILES, f'{child} is not one of launch/*.launch.py'
        child_declared = _declared(ast.parse(child.read_text()))
        assert forwarded <= child_declared, f'passes undeclared {forwarded - child_declared}'
        declared = declared | child_declared   # what ros2 launch --show-args lists for it
    assert COMMON_ARGS <= declared
    if path == MAIN_LAUNCH:
        assert MAIN_ARGS <= declared
    used = {c.args[0].value for c in _calls(tree, 'LaunchConfiguration') + _calls(tree, 'arg')
            if c.args and isinstance(c.args[0], ast.Constant)}  # arg(name): the launch helper
    assert used
    # Evaluated in this file (an include's arguments too, before the child declares its own).
    assert used <= own, f'used but not declared: {used - own}'


# ------------------------------------------------------------------ the Python, with stubs
class _Action:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class _LaunchConfiguration:
    def __init__(self, name, default=None):
        self.name = name

    def perform(self, context):
        return context.launch_configurations[self.name]


def _load_with_stubs(path, monkeypatch):
    """Execute the launch file against minimal stand-ins for launch/launch_ros, recording what
    it builds: enough to check argument handling without a ROS 2 install."""
    def module(name, **attrs):
        mod = types.ModuleType(name)
        mod.__dict__.update(attrs)
        monkeypatch.setitem(sys.modules, name, mod)

    module('launch', LaunchDescription=type('LaunchDescription', (_Action,), {}))
    module('launch.actions', DeclareLaunchArgument=type('DeclareLaunchArgument', (_Action,), {}),
           OpaqueFunction=type('OpaqueFunction', (_Action,), {}),
           IncludeLaunchDescription=type('IncludeLaunchDescription', (_Action,), {}))
    module('launch.launch_description_sources',
           PythonLaunchDescriptionSource=type('PythonLaunchDescriptionSource', (_Action,), {}))
    module('launch.substitutions', LaunchConfiguration=_LaunchConfiguration)
    module('launch_ros')
    module('launch_ros.actions', Node=type('Node', (_Action,), {}))
    module('ament_index_python.packages', get_package_share_directory=lambda pkg: str(ROOT))
    spec = importlib.util.spec_from_file_location(path.stem.replace('.', '_'), path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _perform(value, configurations):
    """A launch argument value (text, or a list of text and LaunchConfigurations) as text."""
    parts = value if isinstance(value, list) else [value]
    return ''.join(p if isinstance(p, str) else configurations[p.name] for p in parts)


def _run(path, monkeypatch, **launch_args):
    """The Node kwargs a launch file starts with these arguments, following an include as
    launch does: the included file sees every configuration plus the forwarded arguments."""
    ld = _load_with_stubs(path, monkeypatch).generate_launch_description()
    entities = ld.args[0]
    values = {e.args[0]: e.kwargs['default_value'] for e in entities
              if type(e).__name__ == 'DeclareLaunchArgument'}
    values.update(launch_args)
    includes = [e for e in entities if type(e).__name__ == 'IncludeLaunchDescription']
    if includes:
        [include] = includes
        [child] = include.args[0].args
        forwarded = {k: _perform(v, values) for k, v in include.kwargs['launch_arguments']}
        return _run(Path(child), monkeypatch, **{**values, **forwarded})
    [opaque] = [e for e in entities if type(e).__name__ == 'OpaqueFunction']
    context = types.SimpleNamespace(launch_configurations=values)
    [node] = opaque.kwargs['function'](context)
    return node.kwargs, values


def test_restore_launch_defaults_keep_the_params_file(monkeypatch):
    node, values = _run(MAIN_LAUNCH, monkeypatch)
    params_file, overrides = node['parameters']
    assert Path(params_file) == ROOT / 'config' / 'restore.yaml' and Path(params_file).is_file()
    assert overrides == {'use_sim_time': False}  # cameras/device come from the file
    assert node['executable'] == 'restore_node' and node['namespace'] == ''
    assert dict(node['remappings']) == {
        'image_raw': 'image_raw', 'image_raw/compressed': 'image_raw/compressed',
        'image_restored': 'image_restored',
        'image_restored/compressed': 'image_restored/compressed'}
    assert node['arguments'] == ['--ros-args', '--log-level', 'info']


def test_restore_launch_arguments_override(monkeypatch):
    node, _ = _run(MAIN_LAUNCH, monkeypatch, namespace='car', cameras='[front, rear]',
                   device='cuda:0', use_sim_time='true', input_topic='/cam/raw',
                   log_level='debug')
    _, overrides = node['parameters']
    assert overrides == {'cameras': ['front', 'rear'], 'device': 'cuda:0', 'use_sim_time': True}
    assert node['namespace'] == 'car'
    assert dict(node['remappings'])['image_raw/compressed'] == '/cam/raw/compressed'
    assert node['arguments'][-1] == 'debug'
    node, _ = _run(MAIN_LAUNCH, monkeypatch, cameras='front')
    assert node['parameters'][1]['cameras'] == ['front']


def test_restore_launch_camera_topics(monkeypatch):
    node, _ = _run(MAIN_LAUNCH, monkeypatch, cameras='[front, rear]',
                   camera_topics='{front: /cam_f/image_raw, rear: /cam_r/image_raw}')
    remaps = dict(node['remappings'])
    assert remaps['front/image_raw'] == '/cam_f/image_raw'
    assert remaps['front/image_raw/compressed'] == '/cam_f/image_raw/compressed'
    assert remaps['rear/image_raw'] == '/cam_r/image_raw'
    with pytest.raises(ValueError, match='camera_topics must be a mapping'):
        _run(MAIN_LAUNCH, monkeypatch, camera_topics='[/cam_f/image_raw]')


def test_two_camera_launch_includes_restore_launch(monkeypatch):
    """The include starts restore.launch.py's node with both cameras and their inputs; the
    arguments the two-camera file does not declare reach that node as given."""
    node, _ = _run(TWO_CAMERAS, monkeypatch,
                   front_topic='/v/front/image', rear_topic='/v/rear/image')
    params_file, overrides = node['parameters']
    assert Path(params_file) == ROOT / 'config' / 'restore.yaml'
    assert overrides == {'use_sim_time': False, 'cameras': ['front', 'rear']}
    assert node['executable'] == 'restore_node' and node['namespace'] == ''
    remaps = dict(node['remappings'])
    assert remaps['front/image_raw'] == '/v/front/image'
    assert remaps['front/image_raw/compressed'] == '/v/front/image/compressed'
    assert remaps['rear/image_raw'] == '/v/rear/image'
    assert remaps['rear/image_raw/compressed'] == '/v/rear/image/compressed'

    node, _ = _run(TWO_CAMERAS, monkeypatch, namespace='car', device='cuda:0',
                   use_sim_time='true', log_level='debug', params_file='/tmp/mine.yaml')
    assert node['parameters'] == ['/tmp/mine.yaml', {
        'use_sim_time': True, 'cameras': ['front', 'rear'], 'device': 'cuda:0'}]
    assert node['namespace'] == 'car' and node['arguments'][-1] == 'debug'
    remaps = dict(node['remappings'])
    assert (remaps['front/image_raw'], remaps['rear/image_raw']) == (
        'front/image_raw', 'rear/image_raw')   # the defaults: relative, in the namespace


# ------------------------------------------------------------------ real launch_testing
LAUNCH_TEST = ROOT / 'test' / 'launch_tests' / 'restore_launch.py'


def test_launch_testing_file_is_well_formed():
    """Checked here too, since without launch_testing nothing else reads it."""
    tree = ast.parse(LAUNCH_TEST.read_text())
    names = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    assert {'generate_test_description', 'TestRestoresFrames', 'TestShutdown'} <= names
    assert 'restore.launch.py' in LAUNCH_TEST.read_text()


@pytest.mark.slow
def test_restore_launch_with_launch_testing(request, tmp_path):
    pytest.importorskip(
        'launch_testing',
        reason='launch_testing is not installed (ROS 2 launch is not on PyPI; on a ROS 2 '
               'install: apt install ros-$ROS_DISTRO-launch-testing-ros)', exc_type=ImportError)
    pytest.importorskip('launch_ros', reason='launch_ros is not installed', exc_type=ImportError)
    from ament_index_python.packages import (PackageNotFoundError,
                                             get_package_prefix)
    try:
        prefix = Path(get_package_prefix('weather_restore_ros'))
    except PackageNotFoundError:
        pytest.skip('weather_restore_ros is not in the ament index: colcon build, then source '
                    'install/setup.bash')
    if not (prefix / 'lib' / 'weather_restore_ros' / 'restore_node').exists():
        pytest.skip(f'no lib/weather_restore_ros/restore_node under {prefix}')

    tiny_checkpoint = request.getfixturevalue('tiny_checkpoint')  # only once not skipped
    data = yaml.safe_load((ROOT / 'config' / 'restore.yaml').read_text())
    data['/**']['ros__parameters'].update(checkpoint=str(tiny_checkpoint))
    params = tmp_path / 'restore.yaml'
    params.write_text(yaml.safe_dump(data))
    env = dict(os.environ, WEATHER_RESTORE_TEST_PARAMS=str(params), HF_HUB_OFFLINE='1')
    proc = subprocess.run(
        [sys.executable, '-m', 'launch_testing.launch_test',
         str(LAUNCH_TEST)],
        env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
