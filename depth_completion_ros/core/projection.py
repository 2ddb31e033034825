"""Points -> sparse depth (z-buffer), depth -> organized cloud, and depth registration between cameras.

Each function is written once and runs on numpy arrays or torch tensors (CPU or CUDA): the few operations
whose spelling differs (allocation, scatter-min) go through the small ``_ops_*`` helpers below, everything
else is arithmetic and boolean indexing that both libraries spell alike. No Python loop touches points.

Pixel convention (ROS/OpenCV): integer pixel coordinates are pixel *centres*, so a point projecting to
(u, v) lands in pixel (round(u), round(v)), rounding halves up. This makes depth -> cloud -> depth exact.
"""
from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np

from depth_completion_ros.core.camera import CameraModel
from depth_completion_ros.core.transforms import RigidTransform

__all__ = ['project_points', 'backproject', 'register_depth', 'projection_matrix']


def _is_torch(array: Any) -> bool:
    torch = sys.modules.get('torch')  # torch is only imported by callers that pass tensors
    return torch is not None and isinstance(array, torch.Tensor)


def projection_matrix(camera: CameraModel, use_projection_matrix: bool = False) -> np.ndarray:
    """3x4 matrix mapping camera-frame points to homogeneous pixels: the rectified P or [K | 0]."""
    if use_projection_matrix:
        return camera.P
    return np.hstack([camera.K, np.zeros((3, 1))])


def _ops_constant(like: Any, values: np.ndarray) -> Any:
    """A constant (matrix) in the array library, dtype and device of ``like``."""
    if _is_torch(like):
        import torch

        return torch.as_tensor(values, dtype=like.dtype, device=like.device)
    return values.astype(like.dtype, copy=False)


def _ops_floor_to_int(values: Any) -> Any:
    if _is_torch(values):
        import torch

        return torch.floor(values).to(torch.int64)
    return np.floor(values).astype(np.int64)


def _ops_isfinite(values: Any) -> Any:
    if _is_torch(values):
        import torch

        return torch.isfinite(values)
    return np.isfinite(values)


def _ops_nearest_depth_image(flat_index: Any, depth: Any, height: int, width: int) -> Any:
    """HxW float32 image holding, per pixel, the smallest depth scattered there (0 where nothing landed)."""
    if _is_torch(depth):
        import torch

        buffer = torch.full((height * width,), math.inf, dtype=torch.float32, device=depth.device)
        # scatter_reduce 'amin' is deterministic on CPU and CUDA (index_put_ with duplicates is not).
        buffer.scatter_reduce_(0, flat_index, depth.to(torch.float32), reduce='amin', include_self=True)
        buffer[torch.isinf(buffer)] = 0.0
        return buffer.reshape(height, width)
    buffer = np.full(height * width, np.inf, dtype=np.float32)
    np.minimum.at(buffer, flat_index, depth.astype(np.float32))  # unbuffered: repeated pixels keep the minimum
    buffer[np.isinf(buffer)] = 0.0
    return buffer.reshape(height, width)


def _working_points(points: Any) -> Any:
    """Nx3 float points: numpy in float64 (cheap on CPU, exact pixel rounding); torch keeps float32/64."""
    if points.ndim != 2 or points.shape[1] < 3:
        raise ValueError(f'points must be Nx3 (extra columns ignored), got shape {tuple(points.shape)}')
    points = points[:, :3]
    if _is_torch(points):
        import torch

        return points if points.dtype == torch.float64 else points.to(torch.float32)
    return points.astype(np.float64, copy=False)


def project_points(points_cam: Any, camera: CameraModel, min_range: float = 0.1, max_range: float = math.inf,
                   use_projection_matrix: bool = False) -> Any:
    """Sparse depth image (HxW float32 metres, 0 = no return) of points given in the camera frame.

    Keeps points whose depth (camera z, or the third homogeneous component with ``use_projection_matrix``)
    lies in [min_range, max_range] and is > 0 (so points behind the camera are gone), that are finite and
    land inside the image; where several land on one pixel the nearest wins (z-buffer). Returns the same
    array type (numpy, or torch on the points' device) as ``points_cam``.
    """
    points = _working_points(points_cam)
    matrix = _ops_constant(points, projection_matrix(camera, use_projection_matrix))
    # Huge or degenerate input (1e38 coordinates, z ~ 1e-300) overflows to inf/NaN here by design: such points
    # fail the range and inside tests below, so numpy's RuntimeWarnings would only be noise on stderr.
    with np.errstate(over='ignore', invalid='ignore', divide='ignore'):
        depth = points @ matrix[2, :3] + matrix[2, 3]
        keep = (depth > 0) & (depth >= min_range) & (depth <= max_range) & _ops_isfinite(depth)
        points, depth = points[keep], depth[keep]  # fewer points for the divisions below (about half a scan)

        pixel_x = (points @ matrix[0, :3] + matrix[0, 3]) / depth
        pixel_y = (points @ matrix[1, :3] + matrix[1, 3]) / depth
        # inside the image while still floating point (NaN compares False): no cast of huge values to int
        inside = ((pixel_x >= -0.5) & (pixel_x < camera.width - 0.5)
                  & (pixel_y >= -0.5) & (pixel_y < camera.height - 0.5))
    column = _ops_floor_to_int(pixel_x[inside] + 0.5)
    row = _ops_floor_to_int(pixel_y[inside] + 0.5)
    flat_index = row * camera.width + column
    return _ops_nearest_depth_image(flat_index, depth[inside], camera.height, camera.width)


def backproject(depth: Any, camera: CameraModel) -> Any:
    """Organized cloud HxWx3 float32 in the camera frame: X = (u - cx) z / fx, Y = (v - cy) z / fy, Z = z.

    Pixels with depth 0, NaN or inf become NaN points (depth_image_proc's point_cloud_xyz). numpy in,
    numpy out; a torch tensor stays on its device.
    """
    if tuple(depth.shape) != (camera.height, camera.width):
        raise ValueError(f'depth shape {tuple(depth.shape)} does not match camera {camera.height}x{camera.width}')
    if _is_torch(depth):
        import torch

        z = depth.to(torch.float32)
        valid = torch.isfinite(z) & (z > 0)
        z = torch.where(valid, z, torch.full_like(z, math.nan))
        u = torch.arange(camera.width, dtype=torch.float32, device=z.device)
        v = torch.arange(camera.height, dtype=torch.float32, device=z.device)
        x = (u[None, :] - camera.cx) * z / camera.fx
        y = (v[:, None] - camera.cy) * z / camera.fy
        return torch.stack([x, y, z], dim=-1)
    # Degenerate intrinsics (fx ~ 1e-300 or 1e300, valid but absurd) overflow float32 to inf by design; the
    # warnings numpy would print about it are noise.
    with np.errstate(over='ignore', invalid='ignore', divide='ignore'):
        z = np.asarray(depth, dtype=np.float32)
        z = np.where(np.isfinite(z) & (z > 0), z, np.float32(np.nan))
        cloud = np.empty((camera.height, camera.width, 3), dtype=np.float32)
        u = np.arange(camera.width, dtype=np.float32) - np.float32(camera.cx)
        v = np.arange(camera.height, dtype=np.float32) - np.float32(camera.cy)
        np.multiply(u[None, :], z, out=cloud[..., 0])
        cloud[..., 0] /= np.float32(camera.fx)
        np.multiply(v[:, None], z, out=cloud[..., 1])
        cloud[..., 1] /= np.float32(camera.fy)
        cloud[..., 2] = z
    return cloud


def register_depth(depth_src: Any, camera_src: CameraModel, camera_dst: CameraModel,
                   T_dst_src: RigidTransform) -> Any:
    """Depth of camera_src re-rendered in camera_dst (depth_image_proc register): back-project, transform
    with ``T_dst_src`` (maps src-frame points into the dst frame), project with a z-buffer. 0 = no depth."""
    cloud = backproject(depth_src, camera_src).reshape(-1, 3)
    valid = _ops_isfinite(cloud[:, 2])
    points_dst = T_dst_src.apply(cloud[valid])
    return project_points(points_dst, camera_dst, min_range=0.0)
