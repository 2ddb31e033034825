"""Rigid transforms (rotation + translation) for numpy and torch points, and KITTI's calibration chain."""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ['RigidTransform', 'kitti_velo_to_cam', 'quaternion_to_matrix', 'matrix_to_quaternion']


def quaternion_to_matrix(quaternion_xyzw: Any) -> np.ndarray:
    """3x3 rotation of a (normalised here) quaternion in ROS order x, y, z, w."""
    q = np.asarray(quaternion_xyzw, dtype=np.float64).reshape(4)
    norm = np.linalg.norm(q)
    if not np.isfinite(norm) or norm < 1e-12:
        raise ValueError(f'quaternion {q.tolist()} has zero or non-finite norm')
    x, y, z, w = q / norm
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def matrix_to_quaternion(rotation: np.ndarray) -> np.ndarray:
    """Quaternion x, y, z, w (w >= 0) of a 3x3 rotation (Shepperd's method, stable for all angles)."""
    R = np.asarray(rotation, dtype=np.float64)
    trace = np.trace(R)
    if trace > 0:
        s = 2.0 * np.sqrt(1.0 + trace)
        q = np.array([(R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s, 0.25 * s])
    else:
        i = int(np.argmax(np.diag(R)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(max(1.0 + R[i, i] - R[j, j] - R[k, k], 1e-300))
        q = np.empty(4)
        q[i] = 0.25 * s
        q[j] = (R[j, i] + R[i, j]) / s
        q[k] = (R[k, i] + R[i, k]) / s
        q[3] = (R[k, j] - R[j, k]) / s
    q /= np.linalg.norm(q)
    return -q if q[3] < 0 else q


class RigidTransform:
    """Maps points from a source frame into a target frame: ``p_target = R @ p_source + t``.

    Naming convention used across the package: ``T_a_b`` maps points expressed in frame b into frame a,
    so ``T_a_b @ T_b_c == T_a_c``.
    """

    __slots__ = ('rotation', 'translation')

    def __init__(self, rotation: Any = None, translation: Any = None, check: bool = True) -> None:
        self.rotation = np.eye(3) if rotation is None else np.array(rotation, dtype=np.float64).reshape(3, 3)
        self.translation = np.zeros(3) if translation is None else np.array(translation, dtype=np.float64).reshape(3)
        if check:
            # Loose tolerance on purpose: calibration files (KITTI) store rotations rounded to ~1e-6.
            error = np.abs(self.rotation @ self.rotation.T - np.eye(3)).max()
            if not np.isfinite(error) or error > 1e-3 or np.linalg.det(self.rotation) < 0:
                raise ValueError(f'not a rotation matrix (|R R^T - I| = {error:.3g}): {self.rotation.tolist()}')

    # ------------------------------------------------------------------------------------------ constructors
    @classmethod
    def identity(cls) -> RigidTransform:
        return cls()

    @classmethod
    def from_quaternion(cls, translation: Any, quaternion_xyzw: Any) -> RigidTransform:
        return cls(quaternion_to_matrix(quaternion_xyzw), translation)

    @classmethod
    def from_matrix(cls, matrix: Any) -> RigidTransform:
        """From a 4x4 homogeneous or 3x4 [R | t] matrix (kept as given, not re-orthonormalised)."""
        m = np.asarray(matrix, dtype=np.float64)
        if m.shape == (4, 4):
            if not np.allclose(m[3], [0.0, 0.0, 0.0, 1.0]):
                raise ValueError(f'last row of a rigid 4x4 transform must be [0 0 0 1], got {m[3].tolist()}')
        elif m.shape != (3, 4):
            m = m.reshape(-1)
            if m.size != 12:
                raise ValueError(f'expected a 4x4 or 3x4 matrix, got shape {np.shape(matrix)}')
            m = m.reshape(3, 4)
        return cls(m[:3, :3], m[:3, 3])

    @classmethod
    def from_transform_msg(cls, msg: Any) -> RigidTransform:
        """From geometry_msgs/Transform or TransformStamped (duck-typed: .translation/.rotation)."""
        transform = getattr(msg, 'transform', msg)
        t, q = transform.translation, transform.rotation
        return cls.from_quaternion([t.x, t.y, t.z], [q.x, q.y, q.z, q.w])

    # ---------------------------------------------------------------------------------------------- algebra
    @property
    def matrix(self) -> np.ndarray:
        m = np.eye(4)
        m[:3, :3] = self.rotation
        m[:3, 3] = self.translation
        return m

    @property
    def quaternion_xyzw(self) -> np.ndarray:
        return matrix_to_quaternion(self.rotation)

    def inverse(self) -> RigidTransform:
        rotation_t = self.rotation.T
        return RigidTransform(rotation_t, -rotation_t @ self.translation, check=False)

    def __matmul__(self, other: RigidTransform) -> RigidTransform:
        if not isinstance(other, RigidTransform):
            return NotImplemented
        return RigidTransform(self.rotation @ other.rotation, self.rotation @ other.translation + self.translation,
                              check=False)

    def apply(self, points: Any) -> Any:
        """Transform Nx3 (or ...x3) points; numpy stays numpy, a torch tensor stays on its device and dtype."""
        if isinstance(points, np.ndarray):
            dtype = points.dtype if points.dtype.kind == 'f' else np.float64
            rotation = self.rotation.astype(dtype, copy=False)
            translation = self.translation.astype(dtype, copy=False)
            return points.astype(dtype, copy=False) @ rotation.T + translation
        import torch

        if isinstance(points, torch.Tensor):
            dtype = points.dtype if points.is_floating_point() else torch.float32
            rotation = torch.as_tensor(self.rotation, dtype=dtype, device=points.device)
            translation = torch.as_tensor(self.translation, dtype=dtype, device=points.device)
            return points.to(dtype) @ rotation.T + translation
        raise TypeError(f'points must be a numpy array or torch tensor, got {type(points).__name__}')

    def __repr__(self) -> str:
        return (f'RigidTransform(translation={np.round(self.translation, 6).tolist()}, '
                f'quaternion_xyzw={np.round(self.quaternion_xyzw, 6).tolist()})')


def _calib_matrix(calib: dict, names: tuple[str, ...], rows: int, cols: int) -> np.ndarray:
    for name in names:
        if name in calib:
            return np.asarray(calib[name], dtype=np.float64).reshape(rows, cols)
    raise KeyError(f'calibration has none of {names}; keys are {sorted(calib)}')


def kitti_velo_to_cam(calib: dict, camera: int = 2) -> tuple[RigidTransform, np.ndarray]:
    """(T_cam_velo, K) of colour camera ``camera`` (2 = left, 3 = right) such that ``K @ T_cam_velo.apply(X)``
    equals ``P2 @ R0_rect @ Tr_velo_to_cam @ X`` (P3 for camera 3).

    P2 = K [I | t] where t is the offset of camera 2 from the rectified camera-0 frame; folding
    t = K^-1 P2[:, 3] into the transform lets projection use the plain pinhole K, and the depth (third
    component) is then exactly the one of P2's homogeneous product. Accepts object-benchmark keys
    (P2, R0_rect, Tr_velo_to_cam) and raw-dataset keys (P_rect_02, R_rect_00, Tr_velo_cam).
    """
    P2 = _calib_matrix(calib, (f'P{camera}', f'P_rect_0{camera}'), 3, 4)
    R0 = _calib_matrix(calib, ('R0_rect', 'R_rect_00', 'R_rect'), 3, 3)
    velo_to_cam0 = _calib_matrix(calib, ('Tr_velo_to_cam', 'Tr_velo_cam'), 3, 4)
    K = P2[:, :3].copy()
    offset = np.linalg.solve(K, P2[:, 3])
    T_cam2_rect0 = RigidTransform(np.eye(3), offset)
    T_rect0_cam0 = RigidTransform(R0, check=False)
    T_cam0_velo = RigidTransform(velo_to_cam0[:, :3], velo_to_cam0[:, 3], check=False)
    return T_cam2_rect0 @ T_rect0_cam0 @ T_cam0_velo, K
