"""The engine's settings, spelled once.

:class:`EngineSettings` is what a :class:`~weather_restore_ros.engine.RestorationEngine` is
built from (model, CLIP, device, precision, backend, threads, warm-up) and what it may change
while running (``RUNTIME_FIELDS``: harm guard, skip-when-clear, frame size limit, the prior's
refresh policy). Values are checked once, when a settings object is made or ``replace``d: a bad
value raises :class:`EngineError` naming the setting, with the same message whether it came
from Python, a command-line flag or a node parameter.

:data:`SETTINGS` says how each setting is spelled elsewhere: its node parameter (the engine
rows of ``ros/params.PARAMS`` are generated from it), its command-line flag
(:func:`add_engine_arguments`, used by every command that runs the engine), its help text and,
for the node, its descriptor range. ``RestoreOptions`` (``weather-restore bag``) and
``DemoOptions`` carry an ``EngineSettings``.

No torch here: the commands build their parsers and the node checks its parameters before
torch is imported, and the CPU thread policy (:meth:`EngineSettings.configure_threads`) must be
applied before that.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from .backends import BACKENDS
from .cpu_threads import configure, threads_help
from .prior_cache import RefreshPolicy

PRECISIONS = ('auto', 'fp32', 'fp16', 'bf16')
CLASSIFIERS = ('head', 'zero_shot')
OVERSIZE_MODES = ('tile', 'downscale')
_DEVICE = re.compile(r'auto|(cpu|cuda)(:\d+)?')


class EngineError(ValueError):
    """A frame or a setting the engine cannot work with; the message says which."""


@dataclass(frozen=True)
class EngineSettings:
    """Everything that decides what the engine does; see :data:`SETTINGS` for each meaning.

    ``None`` (or ``''``, which is stored as ``None``) for a path or a CLIP name means "the
    default" (the shipped model, the checkpoint's CLIP, the ONNX cache); ``threads`` None (or
    0) means the CPU thread policy's automatic choice.
    """

    checkpoint: str | None = None
    clip_model: str | None = None
    clip_pretrained: str | None = None
    clip_cache_dir: str | None = None
    device: str = 'auto'
    precision: str = 'auto'
    classifier: str = 'head'
    backend: str = 'torch'
    onnx_dir: str | None = None
    threads: int | None = None
    warmup: bool = True
    harm_guard: bool = True
    skip_clear_threshold: float = 0.0
    max_pixels: int = 1920 * 1080
    oversize: str = 'tile'
    refresh: RefreshPolicy = field(default_factory=RefreshPolicy)

    def __post_init__(self):
        for name in ('checkpoint', 'clip_model', 'clip_pretrained', 'clip_cache_dir',
                     'onnx_dir'):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                value = str(value)   # a Path
            object.__setattr__(self, name, value or None)
        if type(self.device).__name__ == 'device':   # a torch.device: its text
            object.__setattr__(self, 'device', str(self.device))
        if not isinstance(self.device, str) or not _DEVICE.fullmatch(self.device):
            raise EngineError(f'device must be auto, cpu, cuda or cuda:N; got {self.device!r}')
        for name, choices in (('precision', PRECISIONS), ('classifier', CLASSIFIERS),
                              ('backend', BACKENDS), ('oversize', OVERSIZE_MODES)):
            if getattr(self, name) not in choices:
                raise EngineError(f'{name} must be one of {", ".join(choices)}; '
                                  f'got {getattr(self, name)!r}')
        if self.threads is not None:
            if not _whole(self.threads) or self.threads < 0:
                raise EngineError(f'threads must be a whole number >= 0 (0 = automatic); '
                                  f'got {self.threads!r}')
            object.__setattr__(self, 'threads', int(self.threads) or None)
        for name in ('warmup', 'harm_guard'):
            if not isinstance(getattr(self, name), bool):
                raise EngineError(f'{name} must be true or false; got {getattr(self, name)!r}')
        t = self.skip_clear_threshold
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 <= t <= 1:
            raise EngineError(f'skip_clear_threshold must be a number in [0, 1] (0 = never '
                              f'skip); got {t!r}')
        object.__setattr__(self, 'skip_clear_threshold', float(t))
        if not _whole(self.max_pixels) or self.max_pixels < 1:
            raise EngineError(f'max_pixels must be a positive whole number, got '
                              f'{self.max_pixels!r}')
        object.__setattr__(self, 'max_pixels', int(self.max_pixels))
        if not isinstance(self.refresh, RefreshPolicy):
            raise TypeError(f'refresh must be a RefreshPolicy, got {type(self.refresh).__name__}')

    def replace(self, **changes) -> 'EngineSettings':
        """A copy with ``changes`` (field names), validated like a new one."""
        return dataclasses.replace(self, **changes)

    def with_values(self, values: Mapping[str, Any]) -> 'EngineSettings':
        """A copy with ``values`` keyed by :attr:`Setting.path` (``'refresh.ema'`` for the
        refresh policy's fields), validated. RefreshPolicy raises ValueError for its own."""
        top = {k: v for k, v in values.items() if '.' not in k}
        sub = {k.split('.', 1)[1]: v for k, v in values.items() if '.' in k}
        if sub:
            top['refresh'] = dataclasses.replace(top.get('refresh', self.refresh), **sub)
        return self.replace(**top)

    def get(self, path: str) -> Any:
        """The value at a :attr:`Setting.path` (``'refresh.ema'``: the policy's field)."""
        obj = self
        for part in path.split('.'):
            obj = getattr(obj, part)
        return obj

    # -------------------------------------------------------------- node parameters
    @classmethod
    def from_params(cls, values: Mapping[str, Any]) -> 'EngineSettings':
        """From the node's parameter values (name -> value; other names are ignored)."""
        return cls().with_values({s.path: values[s.param] for s in SETTINGS
                                  if s.param in values})

    def to_params(self) -> dict[str, Any]:
        """The node parameters that give these settings (ROS has no None: '' or 0)."""
        return {s.param: s.ros_value(self.get(s.path)) for s in SETTINGS}

    def configure_threads(self):
        """Apply the CPU thread policy (:func:`cpu_threads.configure`) for ``threads``; call it
        before the first torch import (the engine module), as every command and the node do.
        Returns the applied :class:`~weather_restore_ros.cpu_threads.ThreadSettings`."""
        return configure(self.threads)


def _whole(value) -> bool:
    return (not isinstance(value, bool) and isinstance(value, (int, float))
            and math.isfinite(value) and int(value) == value)


@dataclass(frozen=True)
class Setting:
    """How one setting is spelled outside Python."""

    path: str                   # EngineSettings field, or 'refresh.<RefreshPolicy field>'
    param: str                  # the node parameter
    flag: str                   # the command-line option (a boolean also gets --no-<name>)
    help: str                   # the flag's help and the parameter's description
    choices: tuple[str, ...] = ()
    range: tuple[float, float] | None = None   # the node parameter's descriptor range
    runtime: bool = False       # may change while the engine runs (engine.apply, param set)
    metavar: str | None = None
    kind: type | None = None    # bool, int, float or str (the flag's and the parameter's
                                # type); None: the default's type (str for a None default)

    def __post_init__(self):
        if self.kind is None:
            d = self.default
            object.__setattr__(self, 'kind', str if d is None else type(d))

    @property
    def default(self) -> Any:
        return EngineSettings().get(self.path)

    @property
    def dest(self) -> str:
        """The argparse attribute: the flag's name (``--scene-cut`` -> ``scene_cut``)."""
        return self.flag.lstrip('-').replace('-', '_')

    def ros_value(self, value: Any) -> Any:
        if value is None:
            return '' if self.kind is str else 0
        return self.kind(value)


SETTINGS = (
    Setting('checkpoint', 'checkpoint', '--checkpoint',
            'restoration checkpoint (.safetensors); unset or empty: the shipped model',
            metavar='CKPT'),
    Setting('clip_model', 'clip_model', '--clip-model',
            'open_clip model name, checked against the checkpoint; unset or empty: the one '
            'the checkpoint was trained with', metavar='NAME'),
    Setting('clip_pretrained', 'clip_pretrained', '--clip-pretrained',
            "open_clip pretrained tag or weights file; unset or empty: the checkpoint's",
            metavar='TAG'),
    Setting('clip_cache_dir', 'clip_cache_dir', '--clip-cache-dir',
            'where open_clip looks for downloaded weights; unset or empty: its default',
            metavar='DIR'),
    Setting('device', 'device', '--device', 'inference device: auto (CUDA when available), '
            'cpu, cuda or cuda:N'),
    Setting('precision', 'precision', '--precision', 'compute precision: auto = fp16 on CUDA, '
            'fp32 on a CPU; fp16 needs CUDA', choices=PRECISIONS),
    Setting('classifier', 'classifier', '--classifier', 'weather classifier: head (the '
            'trained head) or zero_shot (CLIP text prompts; needs a CLIP with a text tower)',
            choices=CLASSIFIERS),
    Setting('backend', 'backend', '--backend', 'what runs the networks: torch, or onnxruntime '
            'with the TensorRT, CUDA or CPU provider, whichever is installed and fits the '
            'device (pip install "weather_restore_ros[onnx]")', choices=BACKENDS),
    Setting('onnx_dir', 'onnx_dir', '--onnx-dir', 'backend onnxruntime: folder written by '
            'weather-restore export (its manifest must name this checkpoint); unset or empty: '
            'exported once into ~/.cache/weather_restore_ros/onnx', metavar='DIR'),
    Setting('threads', 'threads', '--threads', threads_help(), range=(0, 1024), metavar='N',
            kind=int),
    Setting('warmup', 'warmup', '--warmup', 'run one dummy frame through the model at '
            'start-up, so that the first real frame is not the slow one'),
    Setting('harm_guard', 'harm_guard', '--harm-guard', 'put the input back into the blocks '
            'of a frame where the model sprayed colour speckle (counted as unsafe_output); '
            'off: the raw model output', runtime=True),
    Setting('skip_clear_threshold', 'skip_clear_threshold', '--skip-clear-threshold',
            'pass a frame through unchanged when its camera\'s cached prior says clear with '
            'at least this confidence (0 = never)', range=(0.0, 1.0), runtime=True,
            metavar='P'),
    Setting('max_pixels', 'max_frame_pixels', '--max-pixels', 'larger frames are tiled or '
            'downscaled (see oversize)', range=(64 * 64, 100_000_000), runtime=True,
            metavar='N'),
    Setting('oversize', 'oversize', '--oversize', 'what to do with frames over max pixels: '
            'tile (overlapping tiles, blended) or downscale (the correction computed small)',
            choices=OVERSIZE_MODES, runtime=True),
    Setting('refresh.every_n_frames', 'prior.refresh_frames', '--refresh-frames',
            're-run the prior encoder every N frames of a camera (0 = off)',
            range=(0, 1_000_000), runtime=True, metavar='N'),
    Setting('refresh.max_age_s', 'prior.refresh_seconds', '--refresh-seconds',
            're-run the prior encoder when the prior is this many seconds old (0 = off; '
            'weather-restore bag: on the bag clock)', range=(0.0, 3600.0), runtime=True,
            metavar='S'),
    Setting('refresh.scene_cut_threshold', 'prior.scene_cut_threshold', '--scene-cut',
            're-run the prior encoder when the scene changes by this much (mean abs '
            'difference of a 16x16 grey thumbnail; 0 = off)', range=(0.0, 1.0), runtime=True,
            metavar='D'),
    Setting('refresh.ema', 'prior.ema', '--ema', 'smoothing of the prior on a periodic '
            'refresh: weight of the old embedding (0 = replace it)', range=(0.0, 0.99),
            runtime=True, metavar='W'),
)
BY_PATH = {s.path: s for s in SETTINGS}
#: EngineSettings fields that RestorationEngine.apply changes on a running engine.
RUNTIME_FIELDS = tuple(dict.fromkeys(s.path.split('.')[0] for s in SETTINGS if s.runtime))


# ------------------------------------------------------------------ command line
def add_engine_arguments(parser, *, defaults: Mapping[str, Any] | None = None,
                         omit: Iterable[str] = (), only: Iterable[str] | None = None,
                         node: bool = False) -> None:
    """The engine's flags, the same in every command: one argument group, one flag per
    :data:`SETTINGS` row (booleans: ``--x`` / ``--no-x``), with the setting's choices and help.

    ``defaults``: per-command defaults by path, where a command truly differs (the caller
    says why). ``omit``/``only``: paths a command leaves out or keeps (it says why).
    ``node``: every default None, i.e. "not given" (``weather-restore node`` passes only
    given flags, as ``-p`` parameters, so its params file decides the rest).
    """
    defaults = dict(defaults or {})
    unknown = (set(defaults) | set(omit) | set(only or ())) - set(BY_PATH)
    if unknown:
        raise ValueError(f'add_engine_arguments: no such setting {sorted(unknown)}')
    keep = set(only) if only is not None else set(BY_PATH)
    group = parser.add_argument_group(
        'engine settings', 'the same settings as the node parameters named with each '
        '(config/restore.yaml)')
    added = tuple(s for s in SETTINGS if s.path in keep and s.path not in omit)
    parser.set_defaults(engine_settings=tuple(s.path for s in added))
    for s in added:
        default = None if node else defaults.get(s.path, s.default)
        if node:
            help_ = f"{s.help} (parameter {s.param}; default: the params file's, else the node's)"
        elif default is None:            # the help says what unset means
            help_ = f'{s.help} (node parameter {s.param})'
        else:
            help_ = f'{s.help} (default: %(default)s; node parameter {s.param})'
        kw = dict(dest=s.dest, default=default, help=help_)
        if s.kind is bool:
            action = group.add_argument(s.flag, action=argparse.BooleanOptionalAction, **kw)
        else:
            action = group.add_argument(s.flag, type=_parser_for(s), choices=s.choices or None,
                                        metavar=s.metavar, **kw)
        action.engine_setting = s    # tests check every command's flags come from here


def _parser_for(s: Setting):
    """argparse type: the text as the setting's kind, checked by EngineSettings itself."""
    def parse(text: str):
        try:
            value = s.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f'expected {"a whole number" if s.kind is int else "a number"}, got {text!r}')
        try:
            EngineSettings().with_values({s.path: value})
        except (ValueError, TypeError) as exc:
            raise argparse.ArgumentTypeError(str(exc))
        return value
    return parse


def settings_from_args(args, base: EngineSettings | None = None) -> EngineSettings:
    """The settings the flags of :func:`add_engine_arguments` give (settings a command left
    out keep ``base``'s)."""
    values = {p: getattr(args, BY_PATH[p].dest) for p in getattr(args, 'engine_settings', ())}
    return (base or EngineSettings()).with_values(values)


def flag_values(settings: EngineSettings) -> dict[str, Any]:
    """{flag dest: value} (e.g. ``scene_cut``): the settings as a flat JSON-able dict, with
    the command line's names (``weather-restore bag`` puts it in its summary)."""
    return {s.dest: settings.get(s.path) for s in SETTINGS}


def ros_args(args) -> list[str]:
    """``-p param:=value`` for every engine flag given on a ``node=True`` parser."""
    out = []
    for s in SETTINGS:
        value = getattr(args, s.dest, None)
        if value is not None:
            text = ('true' if value else 'false') if s.kind is bool else \
                repr(float(value)) if s.kind is float else str(value)
            out += ['-p', f'{s.param}:={text}']
    return out
