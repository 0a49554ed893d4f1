"""``weather-restore demo``: the whole live pipeline on one machine, with nothing configured.

1. Builds a short two-camera bag (``sample_bag``: clear, rain, fog, snow segments).
2. Starts the live node in this process (``ros.restore_node.RestoreNode``, cameras front and
   rear, reliable input QoS so a reliable replay is never dropped by QoS), plus a recorder
   that writes the camera inputs and everything the node publishes to an output bag.
3. Replays the bag into it at its recorded rate (``player.Player``), waits for the last frames.
4. Writes a contact sheet (input | restored | mask, labelled with the weather, one row per
   segment and camera: the restored frame nearest the segment's middle, and which one it is,
   since a slow machine drops frames) and a summary (frames in/out, drops and why, the rate the
   machine managed, weather per segment, latency).

Isolation: by default the demo runs in a private DDS domain with discovery limited to this
machine, so its fake ``/front/image_raw`` can never reach a real robot's graph on the network;
``--domain-id`` joins a given domain instead (to watch it in rviz).

Latency is measured at the recorder on a steady clock: the time from receiving an input frame
to receiving the restored frame with the same header stamp (both in this process).
"""
from __future__ import annotations

import json
import os
import random
import struct
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..engine_settings import EngineSettings
from ..output_contract import IMAGE, STRING, OutputTopics, has_vision_msgs
from .sample_bag import DEFAULT_SEGMENTS, SampleBag, driver_qos, make_sample_bag
from .topics import offered_qos

DEMO_FILES = ('input_bag', 'output_bag', 'contact_sheet.png', 'demo_summary.json',
              'demo_summary.txt')


class DemoError(RuntimeError):
    """The demo could not run; the message says what to do."""


@dataclass
class DemoOptions:
    output: str = 'weather_restore_demo'
    engine: EngineSettings = field(default_factory=EngineSettings)   # the node's parameters
    seconds_per_segment: float = 2.0
    rate_hz: float = 5.0
    size: tuple[int, int] = (320, 240)
    domain_id: int | None = None             # None: a private domain, loopback discovery
    settle_s: float = 3.0                    # wait this long after the last output appears
    startup_timeout_s: float = 30.0
    node_parameters: dict = field(default_factory=dict)   # other node parameters (override)


@dataclass
class DemoResult:
    output: Path
    input_bag: Path
    output_bag: Path
    contact_sheet: Path
    summary_json: Path
    summary_txt: Path
    summary: dict
    table: str


def header_stamp_ns(raw: bytes) -> int:
    """Header stamp of a serialized message that starts with std_msgs/Header (no decoding)."""
    little = raw[1] == 1
    sec, nsec = struct.unpack_from('<iI' if little else '>iI', raw, 4)
    return sec * 10**9 + nsec


def _prepare(out: Path) -> None:
    """Reuse the folder if it is empty or holds only a previous demo's files; never delete
    anything else."""
    if out.exists():
        if not out.is_dir():
            raise DemoError(f'{out} exists and is not a folder; choose another --output')
        foreign = [p.name for p in out.iterdir() if p.name not in DEMO_FILES]
        if foreign:
            raise DemoError(f'{out} holds files that are not from a demo run '
                            f'({", ".join(sorted(foreign)[:5])}); choose another --output')
        import shutil
        for name in DEMO_FILES:
            p = out / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    out.mkdir(parents=True, exist_ok=True)


def _percentile(values, q):
    return float(np.percentile(values, q)) if len(values) else None


class _Latency:
    """Input -> restored receive times at the recorder, paired by header stamp."""

    def __init__(self, cameras: dict[str, str], outputs: dict[str, OutputTopics]):
        self.input_topic = {v: k for k, v in cameras.items()}
        self.output_topic = {o.image: k for k, o in outputs.items()}
        self.received: dict[tuple[str, int], float] = {}
        self.ms: dict[str, list[float]] = defaultdict(list)
        self.last_output = time.monotonic()
        self.lock = threading.Lock()

    def __call__(self, topic: str, t: float, raw: bytes) -> None:
        with self.lock:
            if topic in self.input_topic:
                self.received[(self.input_topic[topic], header_stamp_ns(raw))] = t
            elif topic in self.output_topic:
                cam = self.output_topic[topic]
                t_in = self.received.pop((cam, header_stamp_ns(raw)), None)
                if t_in is not None:
                    self.ms[cam].append((t - t_in) * 1e3)
                self.last_output = t


def run_demo(options: DemoOptions | None = None, log=print) -> DemoResult:
    options = options or DemoOptions()
    out = Path(options.output)
    checkpoint = options.engine.checkpoint
    if checkpoint is None:
        from ..checkpoint import SHIPPED_MODEL
        if not SHIPPED_MODEL.exists():   # say so before spending time on the bag
            raise DemoError(f'the shipped model {SHIPPED_MODEL} is not installed; '
                            'pass --checkpoint PATH')
    elif not Path(checkpoint).exists():
        raise DemoError(f'no such checkpoint: {checkpoint}')
    _prepare(out)
    t_start = time.perf_counter()

    log(f'[1/4] building a sample bag ({", ".join(DEFAULT_SEGMENTS)}: '
        f'{options.seconds_per_segment:g} s each; 2 cameras at {options.rate_hz:g} Hz, '
        f'{options.size[0]}x{options.size[1]})')
    info = make_sample_bag(out / 'input_bag', seconds_per_segment=options.seconds_per_segment,
                           rate_hz=options.rate_hz, size=tuple(options.size))
    summary, table = _run_live(info, out, options, log)
    log('[4/4] contact sheet and summary')
    sheet, summary['contact_sheet'] = _contact_sheet(info, out / 'output_bag',
                                                     out / 'contact_sheet.png')
    summary['seconds_total'] = round(time.perf_counter() - t_start, 1)
    (out / 'demo_summary.json').write_text(json.dumps(summary, indent=2) + '\n')
    (out / 'demo_summary.txt').write_text(table + '\n')
    return DemoResult(out, out / 'input_bag', out / 'output_bag', sheet,
                      out / 'demo_summary.json', out / 'demo_summary.txt', summary, table)


def _run_live(info: SampleBag, out: Path, options: DemoOptions, log):
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter
    from rclpy.signals import SignalHandlerOptions

    from ..ros.restore_node import RestoreNode
    from ..ros.publishers import MESSAGE_CLASSES
    from .record import Recorder
    from .player import Player, ReplayOptions

    domain = options.domain_id
    if domain is None:
        os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
        domain = random.SystemRandom().randint(1, 100)
    cameras = {name: topic for name, topic in info.topics.items()}
    outputs = {name: OutputTopics(f'/{name}') for name in cameras}
    typed = has_vision_msgs(MESSAGE_CLASSES)   # what the node will publish

    ctx = Context()
    rclpy.init(context=ctx, domain_id=domain, signal_handler_options=SignalHandlerOptions.NO)
    executor = MultiThreadedExecutor(num_threads=2, context=ctx)
    node = recorder_node = player = recorder = replay_node = None
    spin = None
    try:
        log(f'[2/4] starting the node (DDS domain {domain}) and loading the model')
        params = {'cameras': list(cameras), 'input_qos': 'reliable', 'publish_mask': True,
                  **options.engine.to_params(), **options.node_parameters}
        node = RestoreNode(context=ctx, parameter_overrides=[
            Parameter(k, value=v) for k, v in params.items()])
        t_load = time.perf_counter()
        if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            raise DemoError('the node could not load the model (see the log above); '
                            'pass --checkpoint PATH')
        load_s = time.perf_counter() - t_load
        node.trigger_activate()

        topics = {t: (IMAGE, driver_qos()) for t in cameras.values()}
        for o in outputs.values():   # what the node publishes with publish_mask
            topics.update({t: (out.msgtype, offered_qos(out.qos))
                           for t, out in o.outputs(mask=True, typed=typed).items()})
        latency = _Latency(cameras, outputs)
        recorder_node = rclpy.create_node('weather_restore_demo_recorder', context=ctx)
        recorder = Recorder(recorder_node, out / 'output_bag', topics, on_message=latency)
        replay_node = rclpy.create_node('weather_restore_demo_replay', context=ctx)
        player = Player(info.path, replay_node, ReplayOptions(rate=1.0, qos='recorded'),
                        log=lambda s: log(f'  replay: {s}'))
        executor.add_node(node)
        executor.add_node(recorder_node)
        spin = threading.Thread(target=executor.spin, name='demo-executor', daemon=True)
        spin.start()

        deadline = time.monotonic() + options.startup_timeout_s
        while not (player.wait_for_subscribers(2, 0.05) and recorder.publishers_matched()):
            if time.monotonic() > deadline:
                raise DemoError('ROS discovery did not complete in '
                                f'{options.startup_timeout_s:g} s (is the DDS domain free?)')
        duration = len(info.segments) * options.seconds_per_segment
        log(f'[3/4] replaying {duration:g} s of camera data into the node')
        stats = player.play()
        # Wait for the last frames: until every input has an output, or none came for a while.
        while True:
            done = all(recorder.counts[o.image] >= stats.published[cameras[c]]
                       for c, o in outputs.items())
            if done or time.monotonic() - latency.last_output > options.settle_s:
                break
            time.sleep(0.05)
        time.sleep(0.2)   # let the labels/masks of the last frame arrive too
        node_stats = {c: cam.stats.snapshot() for c, cam in getattr(node, 'cameras', {}).items()}
        node.trigger_deactivate()
        node.trigger_cleanup()      # frees the model
        recorder.close()
        summary, table = _summarise(info, stats, recorder, latency, node_stats, load_s,
                                    domain, out)
        log(table)
        return summary, table
    finally:
        if player is not None:
            player.close()
        if recorder is not None:
            recorder.close()
        executor.shutdown(timeout_sec=2.0)
        if spin is not None:
            spin.join(timeout=5.0)
        for n in (node, recorder_node, replay_node):
            if n is not None:
                n.destroy_node()
        ctx.try_shutdown()


def _labels_by_stamp(bag: Path, outputs: dict[str, OutputTopics]) -> dict[str, dict[int, str]]:
    """camera -> {header stamp -> weather label} from the recorded output bag.

    The node publishes image_restored and weather/label once per frame, in order, on reliable
    topics: the k-th label belongs to the k-th restored image of that camera.
    """
    from rosbags.rosbag2 import Reader

    from .typestore import get_store
    store = get_store()
    stamps: dict[str, list[int]] = defaultdict(list)
    labels: dict[str, list[str]] = defaultdict(list)
    image_cam = {o.image: c for c, o in outputs.items()}
    label_cam = {o.label: c for c, o in outputs.items()}
    with Reader(bag) as reader:
        conns = [c for c in reader.connections if c.topic in image_cam or c.topic in label_cam]
        for conn, _, raw in reader.messages(connections=conns):
            if conn.topic in image_cam:
                stamps[image_cam[conn.topic]].append(header_stamp_ns(raw))
            else:
                labels[label_cam[conn.topic]].append(store.deserialize_cdr(raw, STRING).data)
    return {c: dict(zip(stamps[c], labels[c])) for c in outputs}


def _summarise(info: SampleBag, stats, recorder, latency: _Latency, node_stats: dict,
               load_s: float, domain: int, out: Path):
    outputs = {name: OutputTopics(f'/{name}') for name in info.topics}
    labels = _labels_by_stamp(out / 'output_bag', outputs)
    cams = {}
    for cam, topic in info.topics.items():
        sent = stats.published[topic]
        got = recorder.counts[outputs[cam].image]
        ns = node_stats.get(cam, {})
        cams[cam] = {
            'input_topic': topic, 'frames_in': sent, 'frames_out': got,
            'dropped': sent - got, 'node_dropped': ns.get('dropped'),
            'node_received': ns.get('received'),
            'node_bad_input': sum(ns.get('bad_input', {}).values()) if ns else None,
            'restored_hz': round(got / stats.seconds, 2) if stats.seconds > 0 else None,
            'latency_p50_ms': _percentile(latency.ms[cam], 50),
            'latency_p95_ms': _percentile(latency.ms[cam], 95),
        }
    segments = []
    for seg in info.segments:
        row = {'weather': seg.weather, 'start_s': (seg.start_ns - info.segments[0].start_ns) / 1e9,
               'cameras': {}}
        for cam in info.topics:
            got = Counter(l for s, l in labels[cam].items() if seg.contains(s))
            n = sum(got.values())
            top, k = got.most_common(1)[0] if got else ('-', 0)
            row['cameras'][cam] = {'label': top, 'share': round(k / n, 3) if n else 0.0,
                                   'frames': n, 'labels': dict(got)}
        segments.append(row)
    summary = {'domain_id': domain, 'model_load_s': round(load_s, 2),
               'replay': {'published': dict(stats.published), 'seconds': round(stats.seconds, 2),
                          'max_lag_ms': round(stats.max_lag_ms, 1)},
               'cameras': cams, 'segments': segments,
               'recorded': dict(recorder.counts)}

    def ms(v):
        return '-' if v is None else f'{v:.0f}'

    lines = ['camera  frames in  frames out  dropped  latency p50 ms  latency p95 ms']
    for cam, c in cams.items():
        lines.append(f'{cam:<6}  {c["frames_in"]:>9}  {c["frames_out"]:>10}  {c["dropped"]:>7}  '
                     f'{ms(c["latency_p50_ms"]):>14}  {ms(c["latency_p95_ms"]):>14}')
    lines += [_drop_note(cam, c, info.rate_hz) for cam, c in cams.items() if c['dropped']]
    lines.append('')
    head = 'segment (truth)  ' + '  '.join(f'{cam:<18}' for cam in info.topics)
    lines.append(head.rstrip())
    for row in segments:
        cells = [f'{c["label"]} ({c["share"]:.0%} of {c["frames"]})'
                 for c in row['cameras'].values()]
        lines.append(f'{row["weather"]:<15}  ' + '  '.join(f'{x:<18}' for x in cells).rstrip())
    return summary, '\n'.join(lines)


def _drop_note(cam: str, c: dict, rate_hz: float) -> str:
    """Why a camera lost frames, in words: the node keeps only the newest one while busy."""
    replaced = c['node_dropped'] or 0
    lost = max(0, c['frames_in'] - (c['node_received'] or 0))
    other = c['dropped'] - replaced - lost
    why = [f'{replaced} replaced by a newer frame while the node was busy (it keeps only the '
           'newest frame of a camera: nothing queues)'] if replaced else []
    if lost:
        why.append(f'{lost} never reached the node')
    if other > 0:
        why.append(f'{other} skipped or still in flight at the end '
                   f'({c["node_bad_input"] or 0} bad input)')
    rate = '-' if c['restored_hz'] is None else f'{c["restored_hz"]:.1f}'
    return (f'{cam}: {c["dropped"]} of {c["frames_in"]} frames dropped: {"; ".join(why)}. '
            f'This machine restored {rate} frames/s of this camera, which sent {rate_hz:g}/s.')


def sheet_choice(stamps: list[int], segment, restored: set[int]) -> dict:
    """Which frame of one camera's segment the sheet shows: the restored frame nearest the
    middle (the middle one may have been dropped); without any, the middle input alone."""
    inside = [s for s in stamps if segment.contains(s)]
    mid = len(inside) // 2
    done = [i for i, s in enumerate(inside) if s in restored]
    pick = min(done, key=lambda i: (abs(i - mid), i)) if done else None
    return {'weather': segment.weather, 'frames': len(inside), 'restored': len(done),
            'frame': None if pick is None else pick + 1, 'offset': None if pick is None
            else pick - mid, 'stamp': inside[mid if pick is None else pick] if inside else None}


def _sheet_labels(cam: str, c: dict, label: str) -> list[str]:
    where = f'frame {c["frame"] or c["frames"] // 2 + 1} of {c["frames"]}'
    if c['frame'] is None:
        return [f'{cam}: {c["weather"]} (input, {where}): no frame of this segment restored',
                '', '']
    restored = 'restored' if c['offset'] == 0 else f'restored, middle {c["offset"]:+d}'
    return [f'{cam}: {c["weather"]} (input, {where})', f'{restored}; weather: {label}',
            'degradation mask']


def _contact_sheet(info: SampleBag, bag: Path, path: Path) -> tuple[Path, list[dict]]:
    """One row per (segment, camera): input | restored | mask of the same frame, from the
    recorded bag; also says which frame each row shows."""
    import cv2
    from rosbags.rosbag2 import Reader

    from ..imaging import image_to_rgb
    from ..synth import contact_sheet
    from .typestore import get_store

    store = get_store()
    outputs = {name: OutputTopics(f'/{name}') for name in info.topics}
    frame_label = _labels_by_stamp(bag, outputs)
    wanted = {}
    for seg in info.segments:
        for cam, stamps in info.stamps.items():
            choice = sheet_choice(stamps, seg, set(frame_label[cam]))
            if choice['stamp'] is not None:
                wanted[(cam, choice['stamp'])] = choice
    role = {}
    for cam, topic in info.topics.items():
        role[topic] = (cam, 0)
        role[outputs[cam].image] = (cam, 1)
        role[outputs[cam].mask] = (cam, 2)
    cells: dict[tuple[str, int], list] = {k: [None, None, None] for k in wanted}
    with Reader(bag) as reader:
        conns = [c for c in reader.connections if c.topic in role]
        for conn, _, raw in reader.messages(connections=conns):
            cam, col = role[conn.topic]
            key = (cam, header_stamp_ns(raw))
            if key in cells:
                cells[key][col] = image_to_rgb(store.deserialize_cdr(raw, IMAGE))
    rows, labels, chosen = [], [], []
    for (cam, stamp), choice in wanted.items():
        rows.append(cells[(cam, stamp)])
        labels.append(_sheet_labels(cam, choice, frame_label[cam].get(stamp, '-')))
        chosen.append({'camera': cam, **choice})
    sheet = contact_sheet(rows, labels=labels, tile_width=256)
    if not cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise DemoError(f'cannot write {path}')
    return path, chosen
