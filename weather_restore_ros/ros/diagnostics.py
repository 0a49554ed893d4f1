"""``/diagnostics`` of the node: one status for the engine, one per camera (REP-107 style: name,
level, message, key/values), from the counters of :mod:`weather_restore_ros.ros.stats`.

Levels of a camera: ERROR when no frame came for ``input_timeout_s`` while active (or none at
all since activation); WARN when, within the stats window, a frame was refused or warned about,
or the model failed on one (``stats.recent_problems``); OK otherwise. Kept apart from the node
so that the node stays lifecycle, topics and inference, and what an operator reads is in one
place.
"""
from __future__ import annotations

import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from .stats import recent_problems


def diagnostic_array(stamp, name: str, engine, cameras, *, active: bool,
                     activated_at: float | None, startup_ms: float, enabled: bool,
                     input_timeout_s: float) -> DiagnosticArray:
    """The array published at 1 Hz. ``name``: the node's fully qualified name; ``cameras``:
    objects with ``name``, ``topic`` (the subscription's resolved name) and ``stats``
    (a CameraStats); ``activated_at``: ``time.monotonic()`` at activation, or None."""
    msg = DiagnosticArray()
    msg.header.stamp = stamp
    msg.status.append(engine_status(name, engine, active=active, startup_ms=startup_ms,
                                    enabled=enabled, cameras=len(cameras)))
    streams = engine.streams() if engine is not None else []
    for cam in cameras:
        msg.status.append(camera_status(name, cam, engine, streams, active=active,
                                        activated_at=activated_at, timeout=input_timeout_s))
    return msg


def engine_status(name: str, engine, *, active: bool, startup_ms: float, enabled: bool,
                  cameras: int) -> DiagnosticStatus:
    status = DiagnosticStatus(name=f'{name}: engine', hardware_id=name)
    if engine is None:
        status.level, status.message = DiagnosticStatus.WARN, 'model not loaded (unconfigured)'
        return status
    status.level = DiagnosticStatus.OK
    status.message = 'active' if active else 'inactive'
    status.hardware_id = str(engine.device)
    status.values = _kv(device=engine.device, precision=dtype_name(engine.dtype),
                        backend=engine.backend.name, startup_ms=round(startup_ms),
                        warmup_ms=round(engine.warmup_ms), enabled=enabled, cameras=cameras)
    return status


def camera_status(name: str, cam, engine, streams, *, active: bool,
                  activated_at: float | None, timeout: float) -> DiagnosticStatus:
    s = cam.stats.snapshot()
    topic = cam.topic
    status = DiagnosticStatus(name=f'{name}: camera {cam.name or "default"}',
                              hardware_id=topic)
    silent = s['silent_s']
    if silent is None and activated_at is not None:
        silent = time.monotonic() - activated_at  # nothing yet: silent since activate
    if active and silent is not None and silent > timeout:
        status.level = DiagnosticStatus.ERROR
        status.message = (f'no frame on {topic} for {silent:.1f} s' if s['received']
                          else f'no frame received on {topic} since activation')
    elif problems := recent_problems(s):
        status.level = DiagnosticStatus.WARN
        status.message = ' and '.join(problems) + ' recently'
    else:
        status.level, status.message = DiagnosticStatus.OK, 'restoring'
    # Only read an existing prior: engine.cache() would create the stream on this thread.
    prior = engine.cache(cam.name).stats() if cam.name in streams else {}
    status.values = _kv(
        input_rate_hz=round(s['input_rate_hz'], 2),
        output_rate_hz=round(s['output_rate_hz'], 2),
        latency_p50_ms=_round(s['latency_p50_ms']),
        latency_p95_ms=_round(s['latency_p95_ms']),
        received=s['received'], published=s['published'], dropped=s['dropped'],
        skipped_clear=s['skipped_clear'], passthrough=s['passthrough'],
        bad_input=sum(s['bad_input'].values()),
        **{f'bad_input.{k}': v for k, v in sorted(s['bad_input'].items())},
        input_warnings=sum(s['input_warnings'].values()),
        **{f'input_warning.{k}': v for k, v in sorted(s['input_warnings'].items())},
        **{f'converted.{k}': v for k, v in sorted(s['conversions'].items())},
        invalid_output=s['invalid_output'], unsafe_output=s['unsafe_output'],
        prior_age_s=_round(prior.get('age_s')),
        prior_refreshes=prior.get('refreshes', 0),
        weather=s['weather'], weather_score=round(s['weather_score'], 3))
    return status


def dtype_name(dtype) -> str:
    """'fp32' / 'fp16' / 'bf16' for a torch dtype (diagnostics and the start-up log)."""
    return {'torch.float32': 'fp32', 'torch.float16': 'fp16',
            'torch.bfloat16': 'bf16'}.get(str(dtype), str(dtype))


def _kv(**values) -> list[KeyValue]:
    return [KeyValue(key=k, value='' if v is None else str(v)) for k, v in values.items()]


def _round(v, nd=1):
    return None if v is None else round(v, nd)
