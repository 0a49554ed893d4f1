"""How many CPU threads torch uses, and how its idle OpenMP threads wait: one policy for every
command and the node.

Why this exists: on a machine where another process holds a core, every OpenMP parallel region
ends in a barrier that waits for the thread the scheduler has put aside. With the OpenMP
runtime's default wait policy the waiting threads also spin, taking CPU from that very process.
On the 2-core development machine the engine median at 640x480 went from 34 ms (quiet, 2
threads) to 190 ms with one other busy process, 112 ms with ``OMP_WAIT_POLICY=PASSIVE``; one
thread stays near its quiet time whatever the other core does (``weather-restore bench --engine
--load 2 --sweep`` measures this on any machine, quiet and loaded in one run). A vehicle
computer always shares its CPU with other nodes, so the default leaves room for them:

* intra-op threads: ``--threads`` / the node's ``threads`` parameter; else ``OMP_NUM_THREADS``
  when the user set it; else half the cores this process may run on, at least 1 and at most
  :data:`MAX_DEFAULT_THREADS`;
* inter-op threads: 1 (eager inference never runs inter-op work; torch's default starts one
  thread per core that only sleeps);
* ``OMP_WAIT_POLICY=PASSIVE`` (idle OpenMP threads sleep at once instead of spinning), unless
  the environment already sets it. The OpenMP runtime reads it once, when torch's library is
  loaded, so :func:`configure` must run before ``import torch``; when torch was imported
  earlier the thread counts are still applied and the result says the wait policy was not.

No torch, no ROS at module level: the commands and the node call this first.
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass

MAX_DEFAULT_THREADS = 4
WAIT_POLICY = 'PASSIVE'
#: ``wait_policy`` values: 'auto' = PASSIVE unless the environment sets one; 'runtime' = leave
#: OMP_WAIT_POLICY unset (the OpenMP runtime spins a while before sleeping: torch's default).
WAIT_CHOICES = ('auto', 'PASSIVE', 'ACTIVE', 'runtime')


@dataclass(frozen=True)
class ThreadSettings:
    """What :func:`configure` applied (for logs, diagnostics and benchmark reports)."""

    threads: int
    threads_from: str            # 'argument' | 'OMP_NUM_THREADS' | 'default'
    interop: int | None          # None: torch's pool had started, its size could not change
    wait_policy: str             # value of OMP_WAIT_POLICY the OpenMP runtime read ('' = unset)
    wait_policy_applied: bool    # False: torch was imported before we could set it

    def describe(self) -> str:
        wait = self.wait_policy or 'unset'
        if not self.wait_policy_applied:
            wait += ' (torch was imported before it could be set: set it in the environment)'
        interop = 'unchanged' if self.interop is None else str(self.interop)
        return (f'{self.threads} CPU thread(s) ({self.threads_from}), inter-op {interop}, '
                f'OMP_WAIT_POLICY {wait}')


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask, e.g. under taskset or a cgroup)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_threads(cores: int | None = None) -> tuple[int, str]:
    """(threads, where the number came from) when no ``--threads`` was given."""
    env = os.environ.get('OMP_NUM_THREADS', '').strip()
    if env.isdigit() and int(env) > 0:
        return int(env), 'OMP_NUM_THREADS'
    cores = usable_cores() if cores is None else cores
    return max(1, min(MAX_DEFAULT_THREADS, cores // 2)), 'default'


def set_wait_policy(policy: str = 'auto', env=None) -> str:
    """Put the OpenMP wait policy into ``env`` (os.environ) for a runtime not loaded yet.

    'auto' keeps a value the user set; 'runtime' removes it. Returns the value now set ('' =
    none)."""
    env = os.environ if env is None else env
    if policy not in WAIT_CHOICES:
        raise ValueError(f'wait policy must be one of {", ".join(WAIT_CHOICES)}; got {policy!r}')
    if policy == 'auto':
        env.setdefault('OMP_WAIT_POLICY', WAIT_POLICY)
    elif policy == 'runtime':
        env.pop('OMP_WAIT_POLICY', None)
    else:
        env['OMP_WAIT_POLICY'] = policy
    return env.get('OMP_WAIT_POLICY', '')


def configure(threads: int | None = None, *, interop: int | None = 1,
              wait_policy: str = 'auto') -> ThreadSettings:
    """Apply the policy: wait policy first (before torch is imported), then thread counts.

    ``threads`` None or 0 = :func:`default_threads`. ``interop`` None leaves torch's default.
    Safe to call more than once (a node configured again): what cannot change any more is
    reported, not raised.
    """
    if threads is not None and threads < 0:
        raise ValueError(f'threads must be >= 0 (0 = automatic); got {threads}')
    torch_loaded = 'torch' in sys.modules
    if torch_loaded:
        policy = os.environ.get('OMP_WAIT_POLICY', '')   # what the runtime read at load
        applied = set_wait_policy(wait_policy, env=dict(os.environ)) == policy
    else:
        policy, applied = set_wait_policy(wait_policy), True
    if threads:
        n, source = int(threads), 'argument'
    else:
        n, source = default_threads()
    import torch
    torch.set_num_threads(n)
    if interop is not None:
        try:
            torch.set_num_interop_threads(int(interop))
        except RuntimeError:  # already set, or inter-op work has started: keep what it has
            interop = None if torch.get_num_interop_threads() != interop else interop
    return ThreadSettings(n, source, interop, policy, applied)


def _thread_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected a whole number of threads, got {text!r}')
    if value < 0:
        raise argparse.ArgumentTypeError(f'threads must be >= 0 (0 = automatic), got {value}')
    return value


def threads_help(*, training: bool = False) -> str:
    """What ``--threads`` (and the node's ``threads`` parameter) means, in one wording."""
    if training:
        default = ('default: torch decides (every core: a training machine is not shared); '
                   'given, the wait policy below applies too')
    else:
        default = (f'default: OMP_NUM_THREADS if set, else half the cores, at most '
                   f'{MAX_DEFAULT_THREADS}')
    what = 'torch' if training else 'torch and onnxruntime'
    return (f'CPU threads for {what} (0 = automatic; {default}). Applied once, '
            'before torch loads. Idle OpenMP threads sleep (OMP_WAIT_POLICY=PASSIVE unless the '
            'environment sets it): on a shared CPU, spinning threads and barriers waiting on a '
            'descheduled thread multiply latency')


def add_threads_argument(parser, *, training: bool = False) -> None:
    """``--threads N`` of ``weather-restore train`` (``args.threads``, None = auto); the
    commands that run the engine take it from ``engine_settings.add_engine_arguments``, with
    the same wording (:func:`threads_help`)."""
    parser.add_argument('--threads', type=_thread_count, default=None, metavar='N',
                        help=threads_help(training=training))
