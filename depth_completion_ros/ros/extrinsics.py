"""Sensor -> camera extrinsics: from TF when tf2_ros imports (a ROS install), else from parameters.

Parameters give either a translation + quaternion (x, y, z, w) or a 4x4 / 3x4 row-major matrix (e.g. KITTI
``R0_rect @ Tr_velo_to_cam``). ``extrinsics.source: auto`` uses the parameters when they are set (non-identity
or a matrix) and TF otherwise; without tf2_ros (pip-wheel installs) the parameters are the only source.
"""
from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from depth_completion_ros.core.transforms import RigidTransform


def tf2_available() -> bool:
    return importlib.util.find_spec('tf2_ros') is not None


class ExtrinsicsError(RuntimeError):
    """No transform available for this frame (the frame is dropped, warning throttled)."""


class ExtrinsicsProvider(Protocol):
    description: str

    def lookup(self, camera_frame: str, sensor_frame: str, stamp: Any) -> RigidTransform: ...


def transform_from_parameters(translation: Sequence[float], rotation_xyzw: Sequence[float],
                              matrix: Sequence[float]) -> RigidTransform:
    """The parameter form -> RigidTransform (p_cam = R p_sensor + t). ``matrix`` of length 12/16 wins."""
    if len(matrix) in (12, 16):
        values = np.asarray(matrix, dtype=np.float64).reshape(-1, 4)
        return RigidTransform.from_matrix(values)
    if len(matrix) not in (0, 1):
        raise ValueError(f'extrinsics.matrix needs 12 or 16 values, got {len(matrix)}')
    if len(translation) != 3 or len(rotation_xyzw) != 4:
        raise ValueError('extrinsics.translation needs 3 values and extrinsics.rotation 4 (x, y, z, w)')
    quaternion = np.asarray(rotation_xyzw, dtype=np.float64)
    norm = float(np.linalg.norm(quaternion))
    if not np.isfinite(norm) or norm < 1e-9:
        raise ValueError('extrinsics.rotation is not a valid quaternion (zero length)')
    return RigidTransform.from_quaternion(np.asarray(translation, dtype=np.float64), quaternion / norm)


def parameters_are_set(translation: Sequence[float], rotation_xyzw: Sequence[float],
                       matrix: Sequence[float]) -> bool:
    return (len(matrix) in (12, 16) or any(abs(v) > 0 for v in translation)
            or list(rotation_xyzw) != [0.0, 0.0, 0.0, 1.0])


class StaticExtrinsics:
    """The same transform for every frame (parameters)."""

    def __init__(self, transform: RigidTransform) -> None:
        self.transform = transform
        self.description = 'parameters'

    def lookup(self, camera_frame: str, sensor_frame: str, stamp: Any) -> RigidTransform:
        return self.transform


class TfExtrinsics:
    """tf2_ros lookup of camera_frame <- sensor_frame at the sensor stamp with a short timeout."""

    def __init__(self, node: Any, timeout_s: float = 0.05) -> None:
        import tf2_ros  # noqa: F401  (only reached when tf2_available())
        from rclpy.duration import Duration

        self._tf2_ros = tf2_ros
        self.buffer = tf2_ros.Buffer()
        self.listener = tf2_ros.TransformListener(self.buffer, node)
        self.timeout = Duration(seconds=timeout_s)
        self.description = 'tf'

    def lookup(self, camera_frame: str, sensor_frame: str, stamp: Any) -> RigidTransform:
        from rclpy.time import Time

        try:
            msg = self.buffer.lookup_transform(camera_frame, sensor_frame, Time.from_msg(stamp), self.timeout)
        except (self._tf2_ros.LookupException, self._tf2_ros.ConnectivityException,
                self._tf2_ros.ExtrapolationException) as exc:
            raise ExtrinsicsError(f'no TF {camera_frame} <- {sensor_frame}: {exc}') from None
        t = msg.transform.translation
        q = msg.transform.rotation
        return RigidTransform.from_quaternion(np.array([t.x, t.y, t.z]), np.array([q.x, q.y, q.z, q.w]))

    def clear(self) -> None:
        """After time jumped back (bag loop) old transforms would be TF_OLD_DATA: forget them."""
        self.buffer.clear()


def make_extrinsics(node: Any, source: str, translation: Sequence[float], rotation_xyzw: Sequence[float],
                    matrix: Sequence[float], tf_timeout_s: float) -> ExtrinsicsProvider:
    """Pick the provider for ``extrinsics.source`` (auto|tf|parameters). Raises ValueError when impossible."""
    if source == 'tf' or (source == 'auto' and tf2_available()
                          and not parameters_are_set(translation, rotation_xyzw, matrix)):
        if not tf2_available():
            raise ValueError('extrinsics.source is tf but tf2_ros is not importable here; '
                             'give extrinsics.translation/rotation or extrinsics.matrix instead')
        return TfExtrinsics(node, tf_timeout_s)
    return StaticExtrinsics(transform_from_parameters(translation, rotation_xyzw, matrix))
