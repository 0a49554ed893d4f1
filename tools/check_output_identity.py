#!/usr/bin/env python3
"""Hash everything the package publishes for fixed inputs, to show a refactor changed nothing.

    python tools/check_output_identity.py record before.json --checkpoint CKPT
    (change the code)
    python tools/check_output_identity.py compare before.json --checkpoint CKPT   # exit 1 if not

Why a script and not a test: it runs the shipped-size model through the real command line and
the real live demo (tens of seconds on a 2-core machine), and its point is "the same bytes as the
commit before", which only a recorded file from that commit can say. Pass a fixed copy of a
checkpoint (``--checkpoint``): the shipped one changes when a model is retrained.

What is hashed (sha256, per topic, in message order):

* ``weather-restore bag`` on a bag made by ``rosbag.sample_bag.make_sample_bag`` with fixed
  arguments, twice: default options, and ``--mask --compressed`` (every output the tool can
  write). Each message's bag timestamp and raw CDR bytes, each connection's type, type hash,
  serialization format and offered QoS, and the JSON summary without its timings and paths.
* ``weather-restore demo`` (``rosbag.live_demo.run_demo``, the live node in this process) at
  1 Hz, so the node never drops or batches a frame, with ``prior.refresh_seconds`` 2.5 so the
  wall-clock refresh is decided far from a frame time. Each recorded message's raw CDR bytes (the live
  node's serialization), except ``weather/label_info``, whose header stamp is the node's clock
  at configure time: its frame_id, class map and threshold instead. Receive timestamps are not
  hashed (wall clock). If the demo dropped a frame, the run says so: its hashes then depend on
  timing and are not comparable.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BAG_RUNS = {'default': [], 'mask_compressed': ['--mask', '--compressed']}
SAMPLE = dict(seconds_per_segment=0.4, rate_hz=5.0, size=(320, 240), seed=0)
DEMO = dict(seconds_per_segment=2.0, rate_hz=1.0, size=(320, 240))
SUMMARY_VOLATILE = ('input', 'output', 'seconds', 'frames_per_s', 'summary', 'checkpoint')
# Spelled out, not imported: this script must run on the commit before a refactor too.
LABEL_INFO = 'vision_msgs/msg/LabelInfo'


def _sha(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(len(p).to_bytes(8, 'little'))
        h.update(p)
    return h.hexdigest()


def _qos_text(profiles) -> str:
    return repr(list(profiles))   # rosbags Qos dataclasses: every field, in order


def hash_bag(path: Path, *, timestamps: bool = True, label_info_fields: bool = False) -> dict:
    """topic -> {connection metadata, count, sha256 over its messages in order}."""
    from rosbags.rosbag2 import Reader

    from weather_restore_ros.rosbag.typestore import get_store
    store = get_store()
    out: dict[str, dict] = {}
    digests: dict[str, hashlib._Hash] = {}
    with Reader(path) as reader:
        for c in reader.connections:
            entry = out.setdefault(c.topic, {'connections': [], 'count': 0})
            entry['connections'].append({
                'msgtype': c.msgtype, 'digest': c.digest,
                'serialization_format': c.ext.serialization_format,
                'offered_qos': _qos_text(c.ext.offered_qos_profiles)})
            digests[c.topic] = hashlib.sha256()
        for conn, timestamp, raw in reader.messages():
            data = bytes(raw)
            if label_info_fields and conn.msgtype == LABEL_INFO:
                m = store.deserialize_cdr(data, LABEL_INFO)
                data = json.dumps([m.header.frame_id, [(v.class_id, v.class_name)
                                                       for v in m.class_map],
                                   float(m.threshold)]).encode()
            stamp = timestamp.to_bytes(8, 'little') if timestamps else b''
            digests[conn.topic].update(_sha(stamp, data).encode())
            out[conn.topic]['count'] += 1
    for topic, h in digests.items():
        out[topic]['sha256'] = h.hexdigest()
    return out


def _strip(value):
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in SUMMARY_VOLATILE}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def run_bags(work: Path, checkpoint: str) -> dict:
    from weather_restore_ros.rosbag.sample_bag import make_sample_bag
    inp = work / 'sample_in'
    make_sample_bag(inp, **SAMPLE)
    result = {'input': hash_bag(inp)}
    for name, extra in BAG_RUNS.items():
        out = work / f'bag_{name}'
        cmd = [sys.executable, '-m', 'weather_restore_ros.cli', 'bag', str(inp), str(out),
               '--checkpoint', checkpoint, '--device', 'cpu', '--no-progress', *extra]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f'{" ".join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}')
        summary = json.loads((work / f'bag_{name}_summary.json').read_text())
        result[name] = {'topics': hash_bag(out), 'summary': _strip(summary)}
    return result


def run_demo_hashes(work: Path, checkpoint: str) -> dict:
    try:
        from weather_restore_ros.rosbag.live_demo import DemoOptions, run_demo
    except ImportError:   # commits before rosbag/demo.py was renamed live_demo.py
        from weather_restore_ros.rosbag.demo import DemoOptions, run_demo
    # The model and device as node parameters: DemoOptions has spelled them differently
    # (checkpoint=/device= fields, then an EngineSettings); node_parameters override either.
    res = run_demo(DemoOptions(output=str(work / 'demo'),
                               node_parameters={'checkpoint': checkpoint, 'device': 'cpu',
                                                'prior.refresh_seconds': 2.5}, **DEMO),
                   log=lambda s: print(s, file=sys.stderr))
    cams = res.summary['cameras']
    return {'dropped': {c: v['dropped'] for c, v in cams.items()},
            'segments': res.summary['segments'],
            'topics': hash_bag(res.output_bag, timestamps=False, label_info_fields=True)}


def collect(checkpoint: str, skip_demo: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix='output_identity_') as tmp:
        work = Path(tmp)
        result = {'checkpoint_sha256': hashlib.sha256(Path(checkpoint).read_bytes()).hexdigest(),
                  'bag': run_bags(work, checkpoint)}
        if not skip_demo:
            result['demo'] = run_demo_hashes(work, checkpoint)
    return result


def differences(a, b, path='') -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                out.append(f'{path}/{k}: only in {"after" if k not in a else "before"}')
            else:
                out += differences(a[k], b[k], f'{path}/{k}')
        return out
    return [] if a == b else [f'{path}: {a!r} -> {b!r}'[:300]]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('mode', choices=('record', 'compare'))
    ap.add_argument('json', type=Path, help='hashes file (written by record, read by compare)')
    ap.add_argument('--checkpoint', required=True, help='a fixed copy of a checkpoint')
    ap.add_argument('--no-demo', action='store_true', help='only the bag command')
    args = ap.parse_args(argv)
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    now = collect(str(Path(args.checkpoint).resolve()), args.no_demo)
    dropped = sum(now.get('demo', {}).get('dropped', {}).values())
    if dropped:
        print(f'warning: the demo dropped {dropped} frame(s): its hashes depend on timing',
              file=sys.stderr)
    if args.mode == 'record':
        args.json.write_text(json.dumps(now, indent=1, sort_keys=True) + '\n')
        print(f'recorded {args.json}')
        return 0
    before = json.loads(args.json.read_text())
    if args.no_demo:
        before.pop('demo', None)
    diff = differences(before, now)
    for line in diff:
        print(line)
    topics = sum(len(v['topics']) for k, v in now['bag'].items() if k != 'input')
    topics += len(now.get('demo', {}).get('topics', {}))
    runs = ['bag ' + k for k in BAG_RUNS] + (['demo'] if 'demo' in now else [])
    print(f'{"identical" if not diff else f"{len(diff)} difference(s)"}: {topics} output-bag '
          f'topics compared ({", ".join(runs)})')
    return 0 if not diff else 1


if __name__ == '__main__':
    raise SystemExit(main())
