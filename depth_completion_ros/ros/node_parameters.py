"""The node's parameters as an rclpy node holds them: declared from the table of ros/params.py (with a named
camera's ``camera.<name>.*`` overrides), validated at start-up (a bad value is one :class:`StartupError` line)
and checked when changed at run time. A mixin of the node (ros/node.py), kept apart so that node.py reads as the
pipeline.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from rcl_interfaces.msg import SetParametersResult
from rclpy.parameter import Parameter

from depth_completion_ros.core.validity import ValiditySettings
from depth_completion_ros.ros import params as param_table


class StartupError(RuntimeError):
    """The node cannot start (bad configuration or weights): one line for the user, non-zero exit."""


class NodeParameters:
    """Declaration and run-time changes of the node's parameters; ``values`` holds them by name."""

    # -- provided by the host (rclpy Node and DepthCompletionCore) ---------------------------------------------
    values: dict[str, Any]
    declare_parameter: Any
    undeclare_parameter: Any
    get_logger: Any
    pipeline: Any
    settings: Any
    cameras: list[Any]

    def _declare_parameters(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for spec in param_table.PARAMETERS:
            values[spec.name] = self._declare_one(spec)
        # A named camera's own image transport and rectification (default: the node-wide value) and extrinsics
        # (default: unset, as in the table, so that the node sees which cameras have their own).
        for camera in values['cameras']:
            for key in param_table.CAMERA_KEYS:
                table = param_table.PARAMETERS_BY_NAME[key]
                default = table.default if key.startswith('extrinsics.') else values[key]
                values[f'camera.{camera}.{key}'] = self._declare_one(replace(table, name=f'camera.{camera}.{key}',
                                                                             default=default))
        return values

    def _declare_one(self, spec: param_table.ParamSpec) -> Any:
        try:
            if spec.type_name == 'double[]':
                value = self._declare_double_array(spec)
            elif spec.type_name == 'string[]':
                # rclpy types an empty list default as a byte array: declared by type, unset means none.
                value = self.declare_parameter(spec.name, Parameter.Type.STRING_ARRAY,
                                               param_table.descriptor_for(spec)).value
                value = list(value or [])
            else:
                value = self.declare_parameter(spec.name, spec.default, param_table.descriptor_for(spec)).value
        except StartupError:
            raise
        except Exception as exc:  # rclpy raises several exception types for a bad override
            raise StartupError(f'parameter {spec.name}: {exc}') from None
        if spec.type_name == 'double' and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        problem = param_table.check_value(spec, value)
        if problem is not None:
            raise StartupError(problem)
        return value

    def _declare_double_array(self, spec: param_table.ParamSpec) -> list[float]:
        """A statically typed DOUBLE_ARRAY (a refused set must not change its type) that still takes YAML's
        integer arrays ([0, 0, 1]) from files and -p: declared loosely to read the override, validated, then
        declared again with the static type and the value as floats."""
        loose = param_table.descriptor_for(spec)
        loose.dynamic_typing = True
        value = self.declare_parameter(spec.name, list(spec.default), loose).value
        self.undeclare_parameter(spec.name)
        value = list(value) if isinstance(value, (list, tuple)) else value
        problem = param_table.check_value(spec, value)
        if problem is not None:
            raise StartupError(problem)
        floats = [float(v) for v in value]
        return list(self.declare_parameter(spec.name, floats, param_table.descriptor_for(spec),
                                           ignore_override=True).value)

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        updates: dict[str, Any] = {}
        for parameter in parameters:
            value = parameter.value
            if parameter.type_ == Parameter.Type.DOUBLE_ARRAY or parameter.type_ == Parameter.Type.INTEGER_ARRAY:
                value = [float(v) for v in value]
            elif parameter.type_ == Parameter.Type.INTEGER and isinstance(
                    self.values.get(parameter.name), float):
                value = float(value)
            reason = param_table.check_runtime_change(parameter.name, value, configured=self.pipeline is not None)
            if reason is not None:
                return SetParametersResult(successful=False, reason=reason)
            if parameter.name in self.values:
                updates[parameter.name] = value
        merged = {**self.values, **updates}
        if merged['min_range'] >= merged['max_range']:
            return SetParametersResult(successful=False, reason='min_range must stay below max_range')
        pipeline = self.pipeline
        if ('prefill_only' in updates and not updates['prefill_only'] and pipeline is not None
                and not pipeline.network_loaded):
            try:
                pipeline.ensure_network()
            except Exception as exc:
                return SetParametersResult(successful=False, reason=f'cannot load the network: {exc}')
        self.values = merged
        if pipeline is not None:  # configured: the running settings follow (else configure reads them)
            self.settings.min_range = merged['min_range']
            self.settings.max_range = merged['max_range']
            self.settings.prefill_only = merged['prefill_only']
            self.settings.cloud_enable = merged['cloud.enable']
            self.settings.cloud_stride = merged['cloud.stride']
            self.settings.cloud_color = merged['cloud.color']
            self.settings.validity = validity_settings(merged)
            for camera in self.cameras:
                camera.sync.slop_s = merged['sync.slop']
        if updates:
            self.get_logger().info('parameters changed: ' + ', '.join(f'{k}={v}' for k, v in updates.items()))
        return SetParametersResult(successful=True)


def validity_settings(values: dict[str, Any]) -> ValiditySettings:
    """The ``validity.*`` / ``confidence.*`` parameters as core settings."""
    return ValiditySettings(enable=values['validity.enable'], top_margin_px=values['validity.top_margin_px'],
                            column_window_px=values['validity.column_window_px'],
                            max_distance_px=values['validity.max_distance_px'],
                            fov_margin_deg=values['validity.fov_margin_deg'],
                            confidence_distance_px=values['confidence.distance_px'],
                            confidence_relative_tolerance=values['confidence.relative_tolerance'])
