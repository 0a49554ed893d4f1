"""``weather-restore bag IN OUT``: restore every camera of a rosbag2 into a new rosbag2, offline.

Why offline restoration reads the bag in code instead of replaying it: replay timing, discovery
and QoS can drop frames (rosbag2 #1254); reading the bag gives every frame exactly once, in
order, deterministically. What it writes is what the live node would publish for those frames:

* the same topic names (``topics``), the input header on every output, and each output at the
  input frame's *bag* timestamp (so time-synchronised consumers line up with the other topics);
* the same engine behaviour: one :class:`RestorationEngine`, one prior-cache stream per input
  topic (one per camera, as in the node), the same refresh policy and skip-when-clear setting;
* the prior's age (``--refresh-seconds``) is measured on the **bag clock** (the frame's bag
  timestamp), not the wall clock: a bag restores the same way on a fast GPU and a slow CPU, and
  a live node fed by a replay at rate 1 sees the same ages (up to its processing latency). With
  the same frames, ``--refresh-frames``/``--scene-cut`` behave exactly as live; the live node
  can only differ where it dropped frames because inference fell behind;
* every other topic is copied byte for byte with its timestamps, type definition and hash, and
  the offered QoS profiles recorded with it.

Memory stays constant: messages stream through a small window (at most one pending frame per
camera, plus what arrived in between, bounded in count and bytes); frames of all cameras in the
window are restored in one ``restore_batch`` call. Outputs are written in input order, so the
output bag's timestamps are as ordered as the input's.

The JSON summary is written **beside** OUT (``<OUT>_summary.json``), never inside: a rosbag2
folder holds only its storage files and metadata.yaml, and tools (``ros2 bag info``, reindexing)
expect nothing else there.
"""
from __future__ import annotations

import contextlib
import json
import shutil
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from ..engine_settings import EngineSettings, flag_values
from ..output_contract import frame_messages, label_info
from .accounting import Accounting, AccountingError, TopicAccount
from .topics import TopicPlan, offered_qos, plan_topics
from .typestore import definition_of, get_store

STORAGES = ('mcap', 'sqlite3')
_BAG_FILE_SUFFIXES = ('.mcap', '.db3', '.db3-shm', '.db3-wal', '.zstd', '.yaml')


class BagError(RuntimeError):
    """A bag that cannot be restored as asked (bad path, existing output, ...)."""


def _offline_settings() -> EngineSettings:
    return EngineSettings(warmup=False)   # offline: no first frame to make fast


@dataclass
class RestoreOptions:
    """Everything ``weather-restore bag`` takes: the engine's settings (the node's, with the
    prior's age on the bag clock) and what the bag tool itself does."""

    engine: EngineSettings = field(default_factory=_offline_settings)
    topics: list[str] | None = None          # image topics to restore (None: all)
    storage: str = 'mcap'                    # output storage: mcap | sqlite3
    output_encoding: str = 'same'
    mask: bool = False                       # also <ns>/degradation_mask
    compressed: bool = False                 # also <ns>/image_restored/compressed
    jpeg_quality: int = 90
    keep_input_images: bool = True           # copy the restored input topics too
    overwrite: bool = False
    summary: str | None = None               # JSON path; None: <OUT>_summary.json
    window_messages: int = 1000
    window_bytes: int = 64 << 20
    progress: bool = True


@dataclass
class BagSummary:
    input: str
    output: str
    summary_path: str
    input_storage: str
    output_storage: str
    ok: bool
    seconds: float
    frames: int
    accounting: Accounting
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    model: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            'input': self.input, 'output': self.output,
            'input_storage': self.input_storage, 'output_storage': self.output_storage,
            'ok': self.ok, 'problems': self.problems, 'notes': self.notes,
            'seconds': round(self.seconds, 3), 'frames': self.frames,
            'frames_per_s': round(self.frames / self.seconds, 2) if self.seconds > 0 else None,
            'prior_age_clock': 'bag timestamp', 'model': self.model, 'options': self.options,
            'totals': self.accounting.totals(),
            'model_failures': self.accounting.model_failures(),
            'topics': self.accounting.to_dict()}


def default_summary_path(output: str | Path) -> Path:
    out = Path(output)
    return out.parent / f'{out.name}_summary.json'


def bag_storage(path: str | Path) -> str:
    """'mcap' or 'sqlite3' for a bag folder (from metadata.yaml) or a single storage file."""
    path = Path(path)
    if path.is_file():
        return {'.mcap': 'mcap', '.db3': 'sqlite3'}.get(path.suffix, path.suffix.lstrip('.'))
    import yaml
    meta = yaml.safe_load((path / 'metadata.yaml').read_text())
    return meta['rosbag2_bagfile_information']['storage_identifier']


def _is_bag_folder(path: Path) -> bool:
    """True for an empty folder or one holding only rosbag2 files: safe to replace."""
    entries = list(path.iterdir())
    return all(e.is_file() and e.name.endswith(_BAG_FILE_SUFFIXES) for e in entries)


def _prepare_output(inp: Path, out: Path, summary: Path, overwrite: bool) -> None:
    inp_r, out_r = inp.resolve(), out.resolve()
    if out_r == inp_r or inp_r in out_r.parents or out_r in inp_r.parents:
        raise BagError(f'output {out} overlaps the input {inp}; the input is never modified')
    for p in (out, summary):
        if p.exists() and not overwrite:
            raise BagError(f'{p} exists; pass --overwrite to replace it')
    if out.exists():
        if not out.is_dir() or not _is_bag_folder(out):
            raise BagError(f'{out} is not a rosbag2 folder; refusing to delete it even with '
                           '--overwrite (remove it yourself)')


def _summary_options(options: RestoreOptions) -> dict:
    """The options as the summary records them: flat, the engine's under their flag names."""
    bag = {k: v for k, v in asdict(options).items() if k not in ('engine', 'progress')}
    return {**flag_values(options.engine), **bag}


@dataclass
class _Frame:
    """One decoded input frame waiting in the window for the next batch."""

    topic: str
    timestamp: int
    header: object
    rgb: object
    encoding: str                 # what 'same' means for this frame's output
    result: object = None


class _BagRestorer:
    """One run: reader -> window -> engine -> writer, with the accounting."""

    def __init__(self, reader, writer, plan: TopicPlan, engine, options: RestoreOptions,
                 accounting: Accounting):
        self.reader, self.writer, self.plan = reader, writer, plan
        self.engine, self.options, self.acc = engine, options, accounting
        self.store = get_store()
        self.types = self.store.types
        self.queue: deque = deque()
        self.queue_bytes = 0
        self.pending: dict[str, _Frame] = {}
        self.copy_conn: dict[int, object] = {}       # input connection id -> output connection
        self.no_definition: set[int] = set()
        self.out_conns: dict[str, dict] = {}    # input topic -> output key -> connection
        self.label_info_due: set[str] = set()   # input topics whose LabelInfo is still to write
        self.decoders: dict[str, object] = {}        # input topic -> frame_input.StreamDecoder
        self.bag_time: dict[str, float] = {}
        self.start_ns = reader.start_time if reader.message_count else 0
        self.frames = 0
        self.bar = None

    # ------------------------------------------------------------------ connections
    def add_connections(self) -> None:
        added: dict[tuple, object] = {}
        for conn in self.reader.connections:
            restored = conn.topic in self.plan.restore
            if restored and not self.options.keep_input_images:
                continue
            key = (conn.topic, conn.msgtype, conn.ext.serialization_format,
                   tuple(conn.ext.offered_qos_profiles))
            if key in added:
                self.copy_conn[conn.id] = added[key]
                continue
            definition = definition_of(conn, self.store)
            if definition is None:
                self.no_definition.add(conn.id)
                continue
            msgdef, rihs01 = definition
            out = self.writer.add_connection(
                conn.topic, conn.msgtype, msgdef=msgdef, rihs01=rihs01,
                serialization_format=conn.ext.serialization_format,
                offered_qos_profiles=conn.ext.offered_qos_profiles)
            added[key] = self.copy_conn[conn.id] = out
        for topic, outs in self.plan.restore.items():
            self.out_conns[topic] = {
                o.key: self.writer.add_connection(out_topic, o.msgtype, typestore=self.store,
                                                  offered_qos_profiles=offered_qos(o.qos))
                for out_topic, o in outs.outputs(mask=self.options.mask,
                                                 compressed=self.options.compressed).items()}
            self.label_info_due.add(topic)
            self.bag_time[topic] = 0.0
            self.engine.cache(topic).clock = lambda t=topic: self.bag_time[t]

    # ------------------------------------------------------------------ main loop
    def run(self) -> None:
        # custom_data (user metadata in metadata.yaml) travels with the bag; rosbags keeps it
        # on the reader's storage object.
        meta = getattr(getattr(self.reader, 'storage', None), 'metadata', None)
        for key, value in (getattr(meta, 'custom', None) or {}).items():
            self.writer.set_custom_data(str(key), str(value))
        self.add_connections()
        opt = self.options
        for conn, timestamp, data in self.reader.messages():
            acc = self.acc[conn.topic]
            acc.read += 1
            if conn.id in self.no_definition:
                acc.skip('no_definition', f'{conn.msgtype}: no definition in the bag')
            elif conn.id in self.copy_conn:
                self._enqueue(('raw', self.copy_conn[conn.id], timestamp, data), len(data))
                acc.copied += 1
            if conn.topic in self.plan.restore:
                frame = self._decode(conn, timestamp, data, acc)
                if frame is not None:
                    if conn.topic in self.pending:
                        self.flush()
                    self.pending[conn.topic] = frame
                    self._enqueue(('frame', frame), frame.rgb.nbytes)
                    if len(self.pending) == len(self.plan.restore):
                        self.flush()
                elif self.bar is not None:
                    self.bar.update(1)
            if (len(self.queue) >= opt.window_messages
                    or self.queue_bytes >= opt.window_bytes):
                self.flush()
        self.flush()

    def _enqueue(self, entry, nbytes: int) -> None:
        self.queue.append(entry)
        self.queue_bytes += nbytes

    def _decode(self, conn, timestamp: int, data, acc: TopicAccount) -> _Frame | None:
        from ..frame_input import StreamDecoder
        from ..imaging import ImageConversionError
        try:
            msg = self.store.deserialize_cdr(data, conn.msgtype)
        except Exception as exc:  # whatever rosbags raises on a corrupt buffer
            acc.skip('undeserializable', f'{type(exc).__name__}: {exc}')
            return None
        decoder = self.decoders.setdefault(conn.topic, StreamDecoder())
        try:
            frame = decoder.decode(msg)   # the node's decoding, limits, reasons and warnings
        except ImageConversionError as exc:
            acc.skip(exc.reason, str(exc))
            return None
        acc.input_warnings.update(frame.warnings)
        acc.conversions.update(frame.conversions)
        return _Frame(conn.topic, timestamp, msg.header, frame.rgb, frame.encoding)

    # ------------------------------------------------------------------ batches
    def flush(self) -> None:
        if self.pending:
            frames = list(self.pending.values())
            for f in frames:
                self.bag_time[f.topic] = (f.timestamp - self.start_ns) / 1e9
            results = self.engine.restore_batch([(f.topic, f.rgb) for f in frames])
            for f, r in zip(frames, results):
                f.result = r
            self.pending.clear()
        while self.queue:
            entry = self.queue.popleft()
            if entry[0] == 'raw':
                _, out, timestamp, data = entry
                self.writer.write(out, timestamp, data)
            else:
                self._write_outputs(entry[1])
        self.queue_bytes = 0

    def _write_outputs(self, f: _Frame) -> None:
        """What the node publishes for this frame (``output_contract``), at its bag timestamp;
        LabelInfo once per camera, before its first frame, with that frame's header."""
        r, opt, acc = f.result, self.options, self.acc[f.topic]
        messages = frame_messages(self.types, f.header, r, f.encoding,
                                  output_encoding=opt.output_encoding, mask=opt.mask,
                                  compressed=opt.compressed, jpeg_quality=opt.jpeg_quality)
        if f.topic in self.label_info_due:
            self.label_info_due.discard(f.topic)
            messages = {'label_info': label_info(self.types, f.header, self.engine.class_names),
                        **messages}
        for key, msg in messages.items():
            conn = self.out_conns[f.topic][key]
            self.writer.write(conn, f.timestamp, self.store.serialize_cdr(msg, conn.msgtype))
        acc.restored += 1
        acc.clear_passthrough += bool(r.skipped)
        acc.invalid_output += bool(r.invalid_output)
        acc.unsafe_output += bool(r.unsafe_output)   # written as guarded (input where speckled)
        acc.weather[r.label] += 1
        if r.prior_refreshed:
            acc.prior_refreshes[r.prior_refreshed] += 1
        self.frames += 1
        if self.bar is not None:
            self.bar.update(1)


def restore_bag(input_path: str | Path, output_path: str | Path,
                options: RestoreOptions | None = None, *, engine=None,
                log: Callable[[str], None] | None = None) -> BagSummary:
    """Restore ``input_path`` into a new bag at ``output_path``; returns the summary.

    ``engine``: an already loaded RestorationEngine to use (tests, or several bags in a row);
    the runtime part of ``options.engine`` (refresh policy, skip threshold, harm guard,
    oversize handling) is applied to it, and the streams this run creates are forgotten
    afterwards. Raises BagError for unusable paths,
    TopicPlanError for an ambiguous topic selection, and AccountingError when the counts do not
    add up (the output is then left at ``.<OUT>.partial/<OUT>`` for inspection and the summary
    says what is wrong).
    """
    from rosbags.rosbag2 import Reader, ReaderError, StoragePlugin, Writer

    options = options or RestoreOptions()
    log = log or (lambda s: print(s, file=sys.stderr))
    if options.storage not in STORAGES:
        raise BagError(f'--storage must be one of {", ".join(STORAGES)}')
    from ..imaging import OUTPUT_ENCODING_CHOICES
    if options.output_encoding not in OUTPUT_ENCODING_CHOICES:
        raise BagError(f'--output-encoding must be one of {", ".join(OUTPUT_ENCODING_CHOICES)}')
    inp, out = Path(input_path), Path(output_path)
    if not inp.exists():
        raise BagError(f'no such bag: {inp}')
    summary_path = Path(options.summary) if options.summary else default_summary_path(out)
    _prepare_output(inp, out, summary_path, options.overwrite)
    # Written under a scratch folder beside OUT, then moved into place once the accounting
    # adds up: an interrupted run never leaves a half bag at OUT. The bag folder inside keeps
    # OUT's name, because rosbags names the storage file after its folder (OUT/OUT.mcap).
    scratch = out.with_name(f'.{out.name}.partial')
    partial = scratch / out.name
    if scratch.exists():
        if not scratch.is_dir() or any(p != partial for p in scratch.iterdir()) or (
                partial.exists() and not _is_bag_folder(partial)):
            raise BagError(f'{scratch} exists and is not a scratch bag folder; remove it')
        shutil.rmtree(scratch)

    try:   # before loading the model: a wrong path should fail in milliseconds
        reader = Reader(inp)
        reader.open()
    except (OSError, ReaderError) as exc:
        raise BagError(f'cannot read bag {inp}: {exc}') from None

    acc = Accounting(keep_input=options.keep_input_images)
    with contextlib.closing(reader):
        topic_types: dict[str, str] = {}
        for c in reader.connections:
            known = topic_types.setdefault(c.topic, c.msgtype)
            if known != c.msgtype:
                topic_types[c.topic] = 'mixed types'
        plan = plan_topics(topic_types, options.topics, mask=options.mask,
                           compressed=options.compressed)
        for note in plan.notes:
            log(f'note: {note}')
        if engine is None:
            from ..engine import RestorationEngine
            engine = RestorationEngine.from_settings(options.engine)
        else:
            engine.apply(options.engine)
        t0 = time.perf_counter()   # frames/s without the model load
        for c in reader.connections:
            role = 'restore' if c.topic in plan.restore else 'copy'
            a = acc.topics.get(c.topic) or acc.add(
                TopicAccount(c.topic, topic_types[c.topic], role, 0))
            a.expected += c.msgcount
        storage = StoragePlugin.MCAP if options.storage == 'mcap' else StoragePlugin.SQLITE3
        total_frames = sum(acc[t].expected for t in plan.restore)
        try:
            scratch.mkdir(parents=True)
            with Writer(partial, version=9, storage_plugin=storage) as writer:
                job = _BagRestorer(reader, writer, plan, engine, options, acc)
                if options.progress:
                    from tqdm import tqdm
                    job.bar = tqdm(total=total_frames, unit='frame', desc='restoring',
                                   file=sys.stderr, dynamic_ncols=True, smoothing=0.1)
                try:
                    job.run()
                finally:
                    if job.bar is not None:
                        job.bar.close()
                for topic, a in acc.topics.items():
                    if a.role == 'restore':
                        outs = plan.restore[topic].all(mask=options.mask,
                                                       compressed=options.compressed)
                        a.outputs = {t: a.restored for t in outs}
                        a.outputs[plan.restore[topic].label_info] = int(a.restored > 0)
                written: dict[str, int] = {}
                for c in writer.connections:
                    written[c.topic] = written.get(c.topic, 0) + writer.counts[c.id]
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        finally:
            for topic in plan.restore:
                engine.forget_stream(topic)
        input_storage = bag_storage(inp)

    problems = acc.problems(written)
    if not problems:
        if out.exists():
            shutil.rmtree(out)
        partial.rename(out)
        scratch.rmdir()
    seconds = time.perf_counter() - t0
    ckpt = getattr(engine, 'checkpoint', None)
    summary = BagSummary(
        input=str(inp), output=str(out if not problems else partial),
        summary_path=str(summary_path), input_storage=input_storage,
        output_storage=options.storage, ok=not problems, seconds=seconds, frames=job.frames,
        accounting=acc, problems=problems, notes=plan.notes,
        model={'checkpoint': str(getattr(ckpt, 'path', options.engine.checkpoint or 'shipped')),
               'device': str(engine.device), 'dtype': str(engine.dtype).replace('torch.', ''),
               'backend': engine.backend.describe(),
               'classes': list(engine.class_names)},
        options=_summary_options(options))
    summary_path.parent.mkdir(parents=True, exist_ok=True)
    summary_path.write_text(json.dumps(summary.to_dict(), indent=2) + '\n')
    if problems:
        raise AccountingError('message accounting does not add up (output left at '
                              f'{partial}, summary {summary_path}):\n  ' + '\n  '.join(problems))
    return summary
