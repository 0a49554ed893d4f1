"""The ``weather_restore`` node: live restoration of one or more camera topics.

Thin glue: frames are decoded by :mod:`weather_restore_ros.frame_input` and restored by
:class:`weather_restore_ros.engine.RestorationEngine`; what goes out (topics, types, QoS, the
messages of a frame) is :mod:`weather_restore_ros.output_contract`, published through
:mod:`.publishers`; ``/diagnostics`` is built by :mod:`.diagnostics`. What lives here is ROS
behaviour:

* a LifecycleNode that configures and activates itself (``autostart``), so ``ros2 run`` and
  ``ros2 launch`` just work and managed systems can still drive it;
* subscription callbacks only store the newest frame per camera (a replaced one is counted as
  dropped) and return at once; a dedicated inference thread restores whatever is pending, all
  cameras in one batch, so the executor never blocks on the network;
* every output carries the input header unchanged, and ``image_restored`` is always in
  ``imaging.output_encoding(input encoding, output_encoding)``, whichever path made it;
* what :mod:`weather_restore_ros.frame_input` refuses or warns about is logged (throttled) and
  counted by reason in diagnostics, never fatal.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_system_default
from sensor_msgs.msg import CompressedImage, Image
from std_srvs.srv import SetBool

from ..frame_input import StreamDecoder
from ..imaging import ImageConversionError
from ..output_contract import has_vision_msgs
from . import params as P
from . import publishers
from .diagnostics import diagnostic_array, dtype_name
from .publishers import CameraPublishers
from .stats import CameraStats

try:  # Iron and newer
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks

NODE_NAME = 'weather_restore'


def input_qos(name: str) -> QoSProfile:
    """Depth 1 in every case: a slow consumer must skip to the newest frame, never queue."""
    if name == 'sensor_data':
        return QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT,
                          history=HistoryPolicy.KEEP_LAST)
    if name == 'reliable':
        return QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                          history=HistoryPolicy.KEEP_LAST)
    qos = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST)
    qos.reliability = qos_profile_system_default.reliability
    return qos


@dataclass
class _Camera:
    """Topics and counters of one camera; ``prefix`` is '' or 'front/'."""

    name: str
    prefix: str
    stats: CameraStats
    outputs: CameraPublishers | None = None   # what output_contract says this camera publishes
    subscription: object = None
    topic: str = ''              # the subscription's resolved (remapped) name
    decoder: StreamDecoder = field(default_factory=StreamDecoder)


class RestoreNode(LifecycleNode):
    """Lifecycle: configure loads and warms the model and creates the topics, activate starts the
    inference thread, deactivate stops it, cleanup frees the model (and GPU memory).

    ``self.p`` is a plain dict snapshot of the parameters, replaced (never mutated) by the
    set-parameters callback, so the inference thread always reads one consistent set.
    """

    def __init__(self, node_name: str = NODE_NAME, **kwargs):
        super().__init__(node_name, **kwargs)
        P.declare_all(self)
        self.p = P.values(self)
        self.engine = None
        self.cameras: dict[str, _Camera] = {}
        self._pending: dict[str, tuple[object, float]] = {}
        self._cv = threading.Condition()
        self._worker: threading.Thread | None = None
        self._running = False
        self._active = False
        self._activated_at: float | None = None
        self._startup_ms = 0.0
        # Registered after declaring: start-up values are checked in on_configure instead, so a
        # bad value fails the transition with a message rather than raising in the constructor.
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._diag_timer = self.create_timer(1.0, self._publish_diagnostics,
                                             callback_group=MutuallyExclusiveCallbackGroup())
        self._srv = self.create_service(SetBool, 'enabled', self._on_enabled)

    # ------------------------------------------------------------------ lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        t0 = time.perf_counter()
        p = self.p
        check = P.validate_values(p)
        if not check.successful:
            self.get_logger().error(f'invalid parameter: {check.reason}')
            return TransitionCallbackReturn.FAILURE
        try:
            settings = P.engine_settings(p)
        except (TypeError, ValueError) as exc:
            self.get_logger().error(f'invalid parameter: {exc}')
            return TransitionCallbackReturn.FAILURE
        # Before the engine import: torch is first imported there, and its OpenMP runtime reads
        # the wait policy once, when it loads.
        threads = settings.configure_threads()
        from ..engine import RestorationEngine
        try:
            self.engine = RestorationEngine.from_settings(settings, log=self.get_logger().info)
        except Exception as exc:  # any load failure: say why, stay unconfigured
            self.get_logger().error(f'cannot load the restoration model: {exc}')
            return TransitionCallbackReturn.FAILURE
        self._startup_ms = (time.perf_counter() - t0) * 1e3
        if not self.context.ok():  # Ctrl-C while loading: no topics to create, nothing to say
            self.engine = None
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info(
            f'model loaded on {self.engine.device} ({dtype_name(self.engine.dtype)}, precision '
            f'{p["precision"]}, backend {self.engine.backend.name}) in '
            f'{self._startup_ms:.0f} ms, warm-up included '
            f'({self.engine.warmup_ms:.0f} ms); classes: {", ".join(self.engine.class_names)}; '
            f'{threads.describe()}')
        names = list(dict.fromkeys(c.strip('/') for c in p['cameras'])) or ['']
        try:
            for name in names:
                self.cameras[name] = self._make_camera(name)
        except Exception as exc:  # e.g. a camera name that is not a valid topic name
            self.get_logger().error(f'cannot create the topics of cameras {names}: {exc}')
            self._release()
            return TransitionCallbackReturn.FAILURE
        if not has_vision_msgs(publishers.MESSAGE_CLASSES):
            self.get_logger().warning(
                'vision_msgs is not installed: the typed weather topic (Classification) is off; '
                'weather/label (std_msgs/String) is still published')
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        with self._cv:
            self._pending.clear()  # frames from before a deactivate are stale
        self._activated_at = time.monotonic()
        self._running = True
        self._worker = threading.Thread(target=self._inference_loop, name='inference',
                                        daemon=True)
        self._worker.start()
        self._active = True
        topics = ', '.join(c.topic for c in self.cameras.values())
        self.get_logger().info(f'restoring {topics}')
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        self._stop_worker()
        with self._cv:
            self._pending.clear()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        self._stop_worker()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def destroy_node(self) -> None:
        """Stop the inference thread first: it must not publish on destroyed publishers."""
        self._active = False
        self._stop_worker()
        super().destroy_node()

    def _release(self) -> None:
        for cam in list(self.cameras.values()):
            if cam.subscription is not None:
                self.destroy_subscription(cam.subscription)
            if cam.outputs is not None:
                cam.outputs.destroy()
        self.cameras.clear()
        if self.engine is not None:
            device = self.engine.device
            self.engine = None
            if device.type == 'cuda':
                import torch
                torch.cuda.empty_cache()

    def _stop_worker(self) -> None:
        self._running = False
        with self._cv:
            self._cv.notify_all()
        if self._worker is not None:
            self._worker.join(timeout=10.0)
            self._worker = None

    # ------------------------------------------------------------------ topics
    def _make_camera(self, name: str) -> _Camera:
        p = self.p
        pre = f'{name}/' if name else ''
        cam = _Camera(name=name, prefix=pre, stats=CameraStats())
        cam.outputs = CameraPublishers(self, name, mask=p['publish_mask'],
                                       compressed=p['publish_compressed'])
        cam.outputs.publish_label_info(self.engine.class_names)

        compressed = p['input_transport'] == 'compressed'
        msg_type = CompressedImage if compressed else Image
        topic = pre + ('image_raw/compressed' if compressed else 'image_raw')
        events = SubscriptionEventCallbacks(
            incompatible_qos=lambda event, c=cam: self._on_incompatible_qos(c, event))
        cam.subscription = self.create_subscription(
            msg_type, topic, lambda msg, n=name: self._on_frame(n, msg),
            input_qos(p['input_qos']), event_callbacks=events)
        cam.topic = cam.subscription.topic_name
        return cam

    def _on_incompatible_qos(self, cam: _Camera, event) -> None:
        """A publisher that can never reach us is the classic "node runs, no output" case:
        say which policy and what to change (rclpy's default warning names neither)."""
        policy = _policy_name(event.last_policy_kind)
        hint = ('set input_qos:=sensor_data (best effort matches every publisher)'
                if policy == 'RELIABILITY' and self.p['input_qos'] != 'sensor_data'
                else 'change the publisher QoS or input_qos')
        self.get_logger().warning(
            f'incompatible QoS: a publisher on {cam.topic} cannot reach this '
            f'subscription (input_qos={self.p["input_qos"]}, offending policy: {policy}); no '
            f'frames will arrive from it: {hint}', throttle_duration_sec=10.0)

    def _on_frame(self, camera: str, msg) -> None:
        """Executor thread: keep only the newest frame; never wait for inference."""
        cam = self.cameras.get(camera)
        if cam is None or not self._active:
            return
        received = cam.stats.on_input()
        with self._cv:
            if camera in self._pending:
                cam.stats.on_dropped()
            self._pending[camera] = (msg, received)
            self._cv.notify()

    # ------------------------------------------------------------------ inference
    def _inference_loop(self) -> None:
        """Worker thread: take every pending frame (at most one per camera) and restore them."""
        while self._running:
            with self._cv:
                while self._running and not self._pending:
                    self._cv.wait(timeout=0.5)
                batch, self._pending = self._pending, {}
            if not batch or not self._running:
                continue
            try:
                self._process(batch)
            except Exception as exc:  # a bug or a failed publish: log, count, keep serving
                if not self.context.ok():
                    return  # shutting down (Ctrl-C): publishers are gone, nothing to report
                self.get_logger().error(f'frame processing failed: {exc!r}',
                                        throttle_duration_sec=5.0)
                for name in batch:
                    if name in self.cameras:
                        self.cameras[name].stats.on_bad_input('internal_error')

    def _process(self, batch: dict[str, tuple[object, float]]) -> None:
        frames, meta = [], []
        for name, (msg, received) in batch.items():
            cam = self.cameras.get(name)
            if cam is None:
                continue
            try:
                frame = cam.decoder.decode(msg)
            except ImageConversionError as exc:
                self._bad_frame(cam, exc.reason, exc)
                continue
            cam.stats.on_notes(frame.warnings, frame.conversions)
            if frame.warnings:
                self.get_logger().warning(
                    f'{cam.topic}: restoring a frame with {", ".join(frame.warnings)} (see '
                    'input_warning in /diagnostics)', throttle_duration_sec=5.0)
            if not self.p['enabled']:
                cam.outputs.publish_image(msg.header, frame.rgb, frame.encoding, source=msg,
                                          output_encoding=self.p['output_encoding'],
                                          jpeg_quality=self.p['jpeg_quality'])
                cam.stats.on_output(received, passthrough=True)
                continue
            frames.append((name, frame.rgb))
            meta.append((cam, msg.header, received, frame.encoding))
        if not frames:
            return
        for (cam, header, received, encoding), result in zip(meta, self._restore(frames, meta)):
            if result is None:
                continue
            if result.invalid_output:   # the engine published the input instead: say so
                self.get_logger().warning(
                    f'{cam.topic}: the model gave non-finite values for a frame; published it '
                    'unrestored (see invalid_output in /diagnostics)', throttle_duration_sec=5.0)
            if result.unsafe_output:    # the harm guard put the input back into part of it
                self.get_logger().warning(
                    f'{cam.topic}: the model sprayed colour speckle over '
                    f'{100 * result.replaced_fraction:.0f} % of a frame; published the input '
                    'there (see unsafe_output in /diagnostics)', throttle_duration_sec=5.0)
            cam.outputs.publish_frame(header, result, encoding,
                                      output_encoding=self.p['output_encoding'],
                                      jpeg_quality=self.p['jpeg_quality'])
            cam.stats.on_output(received, skipped_clear=result.skipped,
                                invalid_output=result.invalid_output,
                                unsafe_output=result.unsafe_output, weather=result.label,
                                weather_score=result.scores[result.label])

    def _restore(self, frames, meta) -> list:
        """One batch for all cameras; if it fails, retry frame by frame so that one frame the
        engine rejects costs only its own camera its output (None for the failed ones)."""
        try:
            return self.engine.restore_batch(frames)
        except Exception as exc:
            if len(frames) == 1:
                self._bad_frame(meta[0][0], 'inference_error', exc)
                return [None]
        results = []
        for frame, (cam, *_) in zip(frames, meta):
            try:
                results.append(self.engine.restore_batch([frame])[0])
            except Exception as exc:
                self._bad_frame(cam, 'inference_error', exc)
                results.append(None)
        return results

    def _bad_frame(self, cam: _Camera, reason: str, exc: Exception) -> None:
        cam.stats.on_bad_input(reason)
        self.get_logger().warning(f'{cam.topic}: skipped a frame ({exc})',
                                  throttle_duration_sec=5.0)

    # ------------------------------------------------------------------ parameters, service
    def _on_set_parameters(self, params):
        """Runtime parameters take effect at once; rclpy has already rejected read-only ones
        ("Trying to set a read-only parameter") and out-of-range values from the descriptors.
        The engine's come from the whole new parameter set, through one ``engine.apply``."""
        result = P.validate(params)
        if not result.successful:
            return result
        new = dict(self.p)
        new.update({q.name: q.value for q in params if q.name in P.BY_NAME})
        try:
            settings = P.engine_settings(new)
        except (TypeError, ValueError) as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        engine = self.engine
        if engine is not None:
            engine.apply(settings)   # every camera's prior cache follows the refresh policy
        self.p = new
        return result

    def _on_enabled(self, request, response):
        from rclpy.parameter import Parameter
        result = self.set_parameters([Parameter('enabled', value=bool(request.data))])[0]
        response.success = result.successful
        response.message = ('restoration ' + ('on' if request.data else 'off (pass-through)')
                            if result.successful else result.reason)
        return response

    # ------------------------------------------------------------------ diagnostics
    def _publish_diagnostics(self) -> None:
        """1 Hz: the engine and every camera (ros/diagnostics.py says what each level means)."""
        self._diag_pub.publish(diagnostic_array(
            self.get_clock().now().to_msg(), self.get_fully_qualified_name(), self.engine,
            list(self.cameras.values()), active=self._active, activated_at=self._activated_at,
            startup_ms=self._startup_ms, enabled=self.p['enabled'],
            input_timeout_s=self.p['input_timeout_s']))


def _policy_name(kind) -> str:
    """'RELIABILITY' from a QoSPolicyKind or its int value (rclpy versions differ)."""
    try:
        from rclpy.qos import QoSPolicyKind
        return QoSPolicyKind(int(kind)).name
    except Exception:
        return str(kind)


def main(args=None) -> int:
    """``restore_node`` / ``weather-restore node``: configure + activate (``autostart``), spin
    until Ctrl-C. Exit code 1 when the node cannot configure (e.g. no model), else 0."""
    rclpy.init(args=args)
    node = executor = None
    try:
        node = RestoreNode()
        executor = MultiThreadedExecutor(num_threads=2)  # frames + diagnostics/parameters
        executor.add_node(node)
        if node.get_parameter('autostart').value:
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                if not node.context.ok():
                    return 0  # interrupted while loading the model
                node.get_logger().fatal('configuration failed (see above); exiting')
                return 1
            if node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
                node.get_logger().fatal('activation failed; exiting')
                return 1
        else:
            node.get_logger().info('autostart is off: waiting for a lifecycle manager '
                                   '(configure, activate)')
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if executor is not None:
            executor.shutdown(timeout_sec=2.0)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
