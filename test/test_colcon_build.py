"""`colcon build` of this package in a throw-away workspace, and the ROS install layout it gives.

What `ros2 run weather_restore_ros restore_node` and `ros2 launch weather_restore_ros ...` rely
on: executables in lib/<pkg>/, package.xml, launch/ and config/ in share/<pkg>/, and the
ament index marker. Runs both a plain and a --symlink-install build (~3 s each); nothing is run.
"""
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from weather_restore_ros.checkpoint import SHIPPED_DIR, SHIPPED_MODEL

PKG = 'weather_restore_ros'
REPO = Path(__file__).resolve().parents[1]
# Only the package files: never .venv, .git, build outputs or test data.
PACKAGE_ITEMS = ('package.xml', 'setup.py', 'setup.cfg', 'resource', PKG, 'launch', 'config',
                 'README.md')
EXECUTABLES = ('restore_node', 'weather-restore')
ENTRY_POINTS = {'restore_node': 'weather_restore_ros.ros.restore_node:main',
                'weather-restore': 'weather_restore_ros.cli:main'}

pytestmark = pytest.mark.slow


def _has_module(name):
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError, AttributeError):
        return False


def _colcon_command():
    """argv prefix that runs the colcon of this interpreter's environment, or None."""
    if not _has_module('colcon_core'):
        return None
    script = Path(sys.executable).parent / 'colcon'
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    on_path = shutil.which('colcon')
    if on_path:
        return [on_path]
    return [sys.executable, '-c', 'import sys; from colcon_core.command import main; sys.exit(main())']


COLCON = _colcon_command()
if COLCON is None:
    pytest.skip('colcon is not installed (pip install colcon-common-extensions colcon-ros)',
                allow_module_level=True)
if not _has_module('colcon_ros'):
    pytest.skip('colcon-ros is not installed: colcon would not treat the package as ament_python '
                '(pip install colcon-ros)', allow_module_level=True)


def _make_workspace(root: Path) -> Path:
    """root/ws/src/weather_restore_ros holding a copy of the package files."""
    ws = root / 'ws'
    dst = ws / 'src' / PKG
    dst.mkdir(parents=True)
    ignore = shutil.ignore_patterns('__pycache__', '*.pyc', '*.egg-info')
    for name in PACKAGE_ITEMS:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dst / name, ignore=ignore)
        elif src.is_file():
            shutil.copy2(src, dst / name)
        elif name not in ('launch', 'config', 'README.md'):
            pytest.fail(f'package file {name} is missing from {REPO}')
    # launch/ and config/ may still be empty in the source tree: give the install rules
    # something to install, in the copy only.
    for folder, pattern, placeholder in (('launch', '*.launch.py', 'placeholder.launch.py'),
                                         ('config', '*.yaml', 'placeholder.yaml')):
        (dst / folder).mkdir(exist_ok=True)
        if not list((dst / folder).glob(pattern)):
            (dst / folder / placeholder).write_text('# placeholder for test_colcon_build\n')
    return ws


def _colcon_build(ws: Path, *extra_args):
    env = dict(os.environ)
    env['COLCON_HOME'] = str(ws / '.colcon_home')  # ignore the user's colcon defaults
    env.pop('COLCON_DEFAULTS_FILE', None)
    cmd = COLCON + ['build', '--event-handlers', 'console_cohesion+', 'summary+',
                    '--base-paths', 'src', *extra_args]
    proc = subprocess.run(cmd, cwd=ws, env=env, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        stderr_log = ws / 'log' / 'latest_build' / PKG / 'stderr.log'
        extra = stderr_log.read_text()[-4000:] if stderr_log.is_file() else ''
        pytest.fail(f'colcon build {" ".join(extra_args)} failed ({proc.returncode}):\n'
                    f'{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}\n{extra}')
    return proc


def _assert_runnable_script(path: Path, name: str):
    assert path.is_file(), f'{path} is missing'
    assert os.access(path, os.X_OK), f'{path} is not executable'
    text = path.read_text()
    first = text.splitlines()[0]
    assert first.startswith('#!'), f'{path} has no shebang: {first!r}'
    interpreter = first[2:].strip().split()[0]
    if Path(interpreter).name == 'env':  # '#!/usr/bin/env python3'
        interpreter = shutil.which(first[2:].split()[1]) or ''
    assert 'python' in Path(interpreter).name, f'{path} shebang is not a Python: {first!r}'
    assert os.access(interpreter, os.X_OK), f'{path} shebang interpreter missing: {first!r}'
    module = ENTRY_POINTS[name].split(':')[0]
    # setuptools writes either an entry-point lookup by name or a direct import.
    assert name in text or module in text, f'{path} does not start {ENTRY_POINTS[name]}'


@pytest.mark.parametrize('mode', ['plain', 'symlink-install'])
def test_colcon_build_layout(tmp_path, mode):
    ws = _make_workspace(tmp_path)
    _colcon_build(ws, *(['--symlink-install'] if mode == 'symlink-install' else []))

    prefix = ws / 'install' / PKG
    for name in EXECUTABLES:
        _assert_runnable_script(prefix / 'lib' / PKG / name, name)

    share = prefix / 'share' / PKG
    assert (share / 'package.xml').is_file()
    assert (share / 'package.xml').read_text() == (REPO / 'package.xml').read_text()
    marker = prefix / 'share' / 'ament_index' / 'resource_index' / 'packages' / PKG
    assert marker.is_file(), 'ament index marker missing: ros2 run/launch cannot find the package'

    src = ws / 'src' / PKG
    for folder, pattern in (('launch', '*.launch.py'), ('config', '*.yaml')):
        expected = sorted(p.name for p in (src / folder).glob(pattern))
        installed = sorted(p.name for p in (share / folder).glob(pattern))
        assert installed == expected, f'share/{PKG}/{folder}: {installed} != {expected}'
        for name in installed:  # resolves symlinks of --symlink-install
            assert (share / folder / name).read_text() == (src / folder / name).read_text()

    # colcon-ros recognised it as ament_python (a plain python package has no ament hooks).
    assert (share / 'hook' / 'ament_prefix_path.dsv').is_file()

    if mode == 'plain':  # the installed egg-info maps the executables to our entry points
        eps = list(prefix.glob('lib/python*/site-packages/*.egg-info/entry_points.txt'))
        assert eps, 'no installed egg-info with entry_points.txt'
        text = eps[0].read_text()
        for name, target in ENTRY_POINTS.items():
            assert f'{name} = {target}' in text, f'{name} -> {target} not in {eps[0]}'
        pkg_dirs = list(prefix.glob(f'lib/python*/site-packages/{PKG}/__init__.py'))
        assert pkg_dirs, f'{PKG} was not installed into site-packages'
        # setup.py's package_data: the shipped model, its card and sheet go with the package
        # (the node loads the checkpoint from there when none is configured).
        shipped = SHIPPED_DIR.relative_to(REPO / PKG)
        files = sorted(p.name for p in SHIPPED_DIR.iterdir() if p.is_file())
        assert SHIPPED_MODEL.name in files and SHIPPED_MODEL.with_suffix('.json').name in files
        missing = [f for f in files if not (pkg_dirs[0].parent / shipped / f).is_file()]
        assert not missing, f'{PKG}/{shipped}: {missing} not installed (setup.py package_data)'

