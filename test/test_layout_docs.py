"""The maps of the package match its files: the layer map in ``__init__.py``, README's tree
(Development) and the layer table of docs/DESIGN.md name every top-level module and package,
and README's tree names no file that is not there (a rename that forgets the docs fails here).
"""
import re
from pathlib import Path

import weather_restore_ros
from weather_restore_ros import training

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / 'weather_restore_ros'


def _modules(folder: Path) -> list[str]:
    """'name.py' for the modules, 'name/' for the packages of ``folder`` (not __init__)."""
    mods = [f'{p.name}' for p in folder.glob('*.py') if p.name != '__init__.py']
    pkgs = [f'{p.name}/' for p in folder.iterdir() if (p / '__init__.py').is_file()]
    return sorted(mods + pkgs)


def _readme_tree() -> str:
    text = (ROOT / 'README.md').read_text()
    start = text.index('```\nweather_restore_ros/')
    return text[start:text.index('```', start + 3)]


def _design_layers() -> str:
    text = (ROOT / 'docs' / 'DESIGN.md').read_text()
    start = text.index('## Layers')
    return text[start:text.index('\n## ', start + 3)]


def _named(name: str, text: str) -> bool:
    """``name`` ('x.py' or 'x/') as a word of ``text``, with or without its ending."""
    stem = name.rstrip('/').removesuffix('.py')
    return re.search(rf'(?<![\w.]){re.escape(stem)}(\.py|/|\b)', text) is not None


def test_every_top_level_module_is_in_the_three_maps():
    modules = _modules(PKG)
    assert 'engine.py' in modules and 'training/' in modules
    maps = {'weather_restore_ros/__init__.py': weather_restore_ros.__doc__,
            'README.md (Development tree)': _readme_tree(),
            'docs/DESIGN.md (Layers)': _design_layers()}
    for where, text in maps.items():
        missing = [m for m in modules if not _named(m, text)]
        assert not missing, f'{where} does not name {missing}'
    tree = maps['README.md (Development tree)']
    for folder in ('assets/', 'weights/'):   # data, not code: the tree says what they hold
        assert folder in tree


def test_the_readme_tree_names_only_files_that_exist():
    existing = {p.name for p in ROOT.rglob('*') if '.venv' not in p.parts and '.git' not in p.parts}
    named = set(re.findall(r'(?<![\w./-])([a-z_][a-z0-9_]*)(\.py|/)(?![\w])', _readme_tree()))
    assert ('engine', '.py') in named and ('ros', '/') in named
    stale = sorted(f'{stem}{end}' for stem, end in named if stem not in existing
                   and f'{stem}.py' not in existing)
    assert not stale, f"README's tree names {stale}, which no longer exist"


def test_the_training_wing_lists_its_modules():
    missing = [m for m in _modules(PKG / 'training') if not _named(m, training.__doc__)]
    assert not missing, f'weather_restore_ros/training/__init__.py does not list {missing}'
