"""The node's parameters: one table with types, defaults, ranges, choices and mutability.

Declaring from one table keeps ``config/restore.yaml``, the descriptors shown by
``ros2 param describe`` and the validation in the set-parameters callback from drifting apart.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                ParameterType, SetParametersResult)

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

PARAMS = (
    Param('checkpoint', '', 'restoration checkpoint (.safetensors); empty = the shipped model'),
    Param('clip_model', '', 'open_clip model name; empty = the one the checkpoint was '
          'trained with'),
    Param('clip_pretrained', '', 'open_clip pretrained tag or weights file'),
    Param('clip_cache_dir', '', 'where open_clip looks for downloaded weights'),
    Param('device', 'auto', 'inference device: auto, cpu, cuda or cuda:N'),
    Param('precision', 'auto', 'compute precision', choices=('auto', 'fp32', 'fp16', 'bf16')),
    Param('classifier', 'head', 'weather classifier', choices=('head', 'zero_shot')),
    Param('backend', 'torch', 'what runs the networks (read at start-up): torch, or '
          'onnxruntime with the TensorRT, CUDA or CPU provider, whichever is installed and '
          'fits the device', choices=('torch', 'onnxruntime')),
    Param('onnx_dir', '', 'backend onnxruntime: folder written by weather-restore export '
          '(its manifest must name this checkpoint); empty = exported once into '
          '~/.cache/weather_restore_ros/onnx'),
    Param('cameras', [''], "camera namespaces; [''] = one camera in the node's namespace"),
    Param('input_transport', 'raw', 'input image transport', choices=('raw', 'compressed')),
    Param('input_qos', 'sensor_data', 'input subscription QoS (depth 1)',
          choices=('sensor_data', 'reliable', 'system_default')),
    Param('publish_compressed', False, 'also publish <cam>/image_restored/compressed (JPEG)'),
    Param('publish_mask', False, 'publish <cam>/degradation_mask (mono8, 255 = degraded)'),
    Param('autostart', True, 'configure and activate at start (false: wait for a lifecycle '
          'manager)'),
    Param('warmup', True, 'run one dummy frame through the model before accepting frames'),
    Param('threads', 0, 'CPU threads for torch; 0 = OMP_NUM_THREADS if set, else half the '
          'cores, at most 4. Read once at configure, before torch starts its thread pool '
          '(OMP_WAIT_POLICY=PASSIVE is set then unless the environment sets it)',
          range=(0, 1024)),
    Param('enabled', True, 'restore frames; false passes them through unchanged',
          runtime=True),
    Param('output_encoding', 'same', 'encoding of image_restored', runtime=True,
          choices=OUTPUT_ENCODING_CHOICES),
    Param('jpeg_quality', 90, 'JPEG quality of image_restored/compressed', runtime=True,
          range=(1, 100)),
    Param('skip_clear_threshold', 0.0, 'pass frames through when the cached prior says clear '
          'with at least this confidence (0 = never)', runtime=True, range=(0.0, 1.0)),
    Param('harm_guard', True, 'publish the input in the blocks of a frame where the model '
          'sprayed colour speckle (counted as unsafe_output); false = the raw model output',
          runtime=True),
    Param('max_frame_pixels', 1920 * 1080, 'larger frames are tiled or downscaled',
          runtime=True, range=(64 * 64, 100_000_000)),
    Param('oversize', 'tile', 'what to do with frames over max_frame_pixels', runtime=True,
          choices=('tile', 'downscale')),
    Param('input_timeout_s', 2.0, 'diagnostics report ERROR when a camera is silent this long',
          runtime=True, range=(0.1, 3600.0)),
    Param('prior.refresh_frames', 30, 're-run CLIP every N frames (0 = off)', runtime=True,
          range=(0, 1_000_000)),
    Param('prior.refresh_seconds', 2.0, 're-run CLIP when the prior is older (0 = off)',
          runtime=True, range=(0.0, 3600.0)),
    Param('prior.scene_cut_threshold', 0.12, 're-run CLIP when the scene changes by this much '
          '(mean abs difference of a 16x16 grey thumbnail; 0 = off)', runtime=True,
          range=(0.0, 1.0)),
    Param('prior.ema', 0.0, 'smoothing of the prior: weight of the old embedding',
          runtime=True, range=(0.0, 0.99)),
)
BY_NAME = {p.name: p for p in PARAMS}


def declare_all(node) -> None:
    for p in PARAMS:
        node.declare_parameter(p.name, p.default, p.descriptor())


def values(node) -> dict[str, Any]:
    return {p.name: node.get_parameter(p.name).value for p in PARAMS}


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
