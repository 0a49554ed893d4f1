"""The node's parameters: one table with types, defaults, ranges, choices and mutability.

Declaring from one table keeps ``config/restore.yaml``, the descriptors shown by
``ros2 param describe`` and the validation in the set-parameters callback from drifting apart.
The engine's rows are generated from :data:`weather_restore_ros.engine_settings.SETTINGS`, and
:func:`engine_settings` maps parameter values onto an ``EngineSettings``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                ParameterType, SetParametersResult)

from ..engine_settings import SETTINGS, EngineSettings
from ..imaging import OUTPUT_ENCODING_CHOICES


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    description: str
    runtime: bool = False                 # may change while running
    choices: tuple[str, ...] = ()
    range: tuple[float, float] | None = None

    def descriptor(self) -> ParameterDescriptor:
        desc = self.description
        if self.choices:
            desc += f' (one of: {", ".join(self.choices)})'
        d = ParameterDescriptor(name=self.name, description=desc, read_only=not self.runtime)
        d.type = _TYPES[type(self.default)]
        if self.range is not None:
            lo, hi = self.range
            if isinstance(self.default, int) and not isinstance(self.default, bool):
                d.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=1)]
            else:
                d.floating_point_range = [FloatingPointRange(from_value=float(lo),
                                                             to_value=float(hi), step=0.0)]
        return d


_TYPES = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
          float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING,
          list: ParameterType.PARAMETER_STRING_ARRAY}

#: The engine's parameters come from ``engine_settings.SETTINGS`` (one spelling of each setting
#: for the node, every command and Python); the node's own follow.
ENGINE_PARAMS = tuple(Param(s.param, s.ros_value(s.default), s.help, runtime=s.runtime,
                            choices=s.choices, range=s.range) for s in SETTINGS)
NODE_PARAMS = (
    Param('cameras', [''], "camera namespaces; [''] = one camera in the node's namespace"),
    Param('input_transport', 'raw', 'input image transport', choices=('raw', 'compressed')),
    Param('input_qos', 'sensor_data', 'input subscription QoS (depth 1)',
          choices=('sensor_data', 'reliable', 'system_default')),
    Param('publish_compressed', False, 'also publish <cam>/image_restored/compressed (JPEG)'),
    Param('publish_mask', False, 'publish <cam>/degradation_mask (mono8, 255 = degraded)'),
    Param('autostart', True, 'configure and activate at start (false: wait for a lifecycle '
          'manager)'),
    Param('enabled', True, 'restore frames; false passes them through unchanged',
          runtime=True),
    Param('output_encoding', 'same', 'encoding of image_restored', runtime=True,
          choices=OUTPUT_ENCODING_CHOICES),
    Param('jpeg_quality', 90, 'JPEG quality of image_restored/compressed', runtime=True,
          range=(1, 100)),
    Param('input_timeout_s', 2.0, 'diagnostics report ERROR when a camera is silent this long',
          runtime=True, range=(0.1, 3600.0)),
)
PARAMS = ENGINE_PARAMS + NODE_PARAMS
BY_NAME = {p.name: p for p in PARAMS}


def declare_all(node) -> None:
    for p in PARAMS:
        node.declare_parameter(p.name, p.default, p.descriptor())


def values(node) -> dict[str, Any]:
    return {p.name: node.get_parameter(p.name).value for p in PARAMS}


def engine_settings(values: dict[str, Any]) -> EngineSettings:
    """The engine's settings for these parameter values (ValueError/TypeError if invalid)."""
    return EngineSettings.from_params(values)


def validate(params) -> SetParametersResult:
    """Choices are not expressible in a ParameterDescriptor: check them here.

    ``params``: rclpy Parameters (the set-parameters callback); types and ranges were already
    checked by rclpy against the descriptors.
    """
    return validate_values({p.name: p.value for p in params})


def validate_values(values: dict[str, Any]) -> SetParametersResult:
    """Same check for a name -> value dict (the start-up values, checked at configure)."""
    for name, value in values.items():
        spec = BY_NAME.get(name)
        if spec is None:
            continue
        if spec.choices and value not in spec.choices:
            return SetParametersResult(
                successful=False,
                reason=f'{name} must be one of {", ".join(spec.choices)}; got {value!r}')
    return SetParametersResult(successful=True)
