"""The restoration node in-process for tests: a RestoreNode and a probe node on one executor.

Shared by test_node.py and test_bad_input.py. Import after ``pytest.importorskip('rclpy')``.
"""
import os
import time

from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_helpers import collect

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from std_msgs.msg import Header

from weather_restore_ros.ros.restore_node import RestoreNode

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
# On a GPU machine: WEATHER_RESTORE_TEST_DEVICE=cuda runs every node test on the device.
DEVICE = os.environ.get('WEATHER_RESTORE_TEST_DEVICE', 'cpu')
_stamps = iter(range(1, 1_000_000))


def new_header(frame_id='cam_optical'):
    """A header no other frame in this run has: outputs are matched to inputs by it."""
    n = next(_stamps)
    return Header(stamp=Time(sec=1_700_000_000 + n, nanosec=n * 1000), frame_id=frame_id)


def same_header(a, b) -> bool:
    return (a.stamp.sec, a.stamp.nanosec, a.frame_id) == (b.stamp.sec, b.stamp.nanosec,
                                                           b.frame_id)


class LogRecorder:
    """Wraps a node's logger: records (level, text) and still logs.

    One method per level: rclpy keys a log call site (throttling, severity) on the caller's
    line, and refuses one line logging at two severities -- or with two sets of filters, so
    the node's ``throttle_duration_sec`` etc. are recorded but not passed on (seen when a
    throttled warning followed an unthrottled one, e.g. without vision_msgs).
    """

    def __init__(self, logger):
        self._logger = logger
        self.records = []

    def __getattr__(self, name):
        return getattr(self._logger, name)

    def debug(self, message, **kwargs):
        self.records.append(('debug', str(message)))
        return self._logger.debug(message)

    def info(self, message, **kwargs):
        self.records.append(('info', str(message)))
        return self._logger.info(message)

    def warning(self, message, **kwargs):
        self.records.append(('warning', str(message)))
        return self._logger.warning(message)

    def error(self, message, **kwargs):
        self.records.append(('error', str(message)))
        return self._logger.error(message)

    def fatal(self, message, **kwargs):
        self.records.append(('fatal', str(message)))
        return self._logger.fatal(message)

    def texts(self, *levels):
        return [t for lv, t in self.records if not levels or lv in levels]


class Rig:
    """One RestoreNode plus a probe node in the same executor, in namespace ``ns``."""

    def __init__(self, ctx, checkpoint, ns, **params):
        values = {'checkpoint': str(checkpoint), 'device': DEVICE, 'warmup': False, **params}
        self.ns = ns
        self.node = RestoreNode(context=ctx, namespace=ns, parameter_overrides=[
            Parameter(k, value=v) for k, v in values.items()])
        self.log = LogRecorder(self.node.get_logger())
        self.node.get_logger = lambda: self.log
        self.probe = Node('probe', namespace=ns, context=ctx)
        self.executor = SingleThreadedExecutor(context=ctx)
        self.executor.add_node(self.node)
        self.executor.add_node(self.probe)
        self._pubs = {}

    def start(self):
        assert self.node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert self.node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        return self

    def close(self):
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        self.probe.destroy_node()

    def spin_until(self, predicate, timeout=10.0, step=0.02):
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                return False
            self.executor.spin_once(timeout_sec=step)
        return True

    def spin_for(self, seconds):
        self.spin_until(lambda: False, timeout=seconds)

    def collect(self, msg_type, topic, qos=RELIABLE):
        return collect(self.probe, msg_type, topic, qos)

    def publisher(self, msg_type, topic, qos=RELIABLE):
        key = (msg_type, topic, id(qos))
        if key not in self._pubs:
            self._pubs[key] = self.probe.create_publisher(msg_type, topic, qos)
        return self._pubs[key]

    def stats(self, camera=''):
        return self.node.cameras[camera].stats.snapshot()

    def send_until(self, pub, msg, done, timeout=10.0, every=0.25):
        """Publish ``msg`` (again every ``every`` s: best effort, discovery) until ``done()``."""
        last = [-1e9]

        def check():
            if done():
                return True
            if time.monotonic() - last[0] > every:
                pub.publish(msg)
                last[0] = time.monotonic()
            return False
        return self.spin_until(check, timeout)

    def set_params(self, **values):
        """Through the node's parameter service, like ``ros2 param set``."""
        from rclpy.parameter_client import AsyncParameterClient
        client = getattr(self, '_param_client', None)
        if client is None:
            client = self._param_client = AsyncParameterClient(self.probe, self.node.get_name())
            assert self.spin_until(lambda: client.services_are_ready(), 10.0)
        future = client.set_parameters([Parameter(k, value=v) for k, v in values.items()])
        assert self.spin_until(future.done, 10.0)
        return future.result().results


def wait_outputs(rig, pub, msg, lists, timeout=10.0):
    """Send ``msg`` until every list got a message with its header."""
    return rig.send_until(pub, msg, lambda: all(
        any(same_header(m.header, msg.header) for m in lst) for lst in lists), timeout)


def match(lst, header):
    return next(m for m in lst if same_header(m.header, header))


def diag(rig, camera_label, predicate, timeout=5.0):
    """The newest camera status of ``rig`` (by name) that satisfies ``predicate``."""
    arrays = rig.collect(DiagnosticArray, '/diagnostics')
    name = f'{rig.node.get_fully_qualified_name()}: camera {camera_label}'
    found = []

    def check():
        for a in arrays:
            for s in a.status:
                if s.name == name and predicate(s):
                    found.append(s)
        return bool(found)
    assert rig.spin_until(check, timeout), f'no matching diagnostics for {name}'
    return found[-1]


def values(status):
    return {kv.key: kv.value for kv in status.values}
