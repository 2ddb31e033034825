"""Points -> sparse depth (z-buffer), depth -> organized cloud, and depth registration between cameras.

Each function is written once and runs on numpy arrays or torch tensors (CPU or CUDA): the few operations
whose spelling differs (allocation, scatter-min) go through the small ``_ops_*`` helpers below, everything
else is arithmetic and boolean indexing that both libraries spell alike. No Python loop touches points.

Pixel convention (ROS/OpenCV): integer pixel coordinates are pixel *centres*, so a point projecting to
(u, v) lands in pixel (round(u), round(v)), rounding halves up. This makes depth -> cloud -> depth exact.

Lens distortion: a camera whose D is non-zero describes a *raw* image, so points go through the camera_info's
model (plumb_bob, rational_polynomial, equidistant; OpenCV's formulas, written out below) before K, and the
cloud is built from the undistorted ray of every pixel (cached per camera). A camera with all-zero D takes
exactly the pinhole code it always took. Which camera a node projects into is decided by
``CameraModel.for_image`` (camera.py).
"""
from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np

from depth_completion_ros.core.camera import CameraModel
from depth_completion_ros.core.transforms import RigidTransform

__all__ = ['project_points', 'backproject', 'register_depth', 'projection_matrix', 'distort_normalized',
           'undistort_normalized', 'pixel_coordinates', 'pixel_rays']

UNDISTORT_ITERATIONS = 30


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


def _xp(values: Any) -> Any:
    """The array library of ``values`` (numpy or torch) for sqrt/arctan/tan/where, spelled alike in both."""
    if _is_torch(values):
        import torch

        return torch
    return np


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


# --------------------------------------------------------------------------------------------------------------
# Lens distortion on normalised image coordinates (x = X/Z, y = Y/Z), numpy or torch
# --------------------------------------------------------------------------------------------------------------

def distort_normalized(x: Any, y: Any, camera: CameraModel) -> tuple[Any, Any]:
    """Distorted normalised coordinates (before K) of undistorted ones, by the camera's distortion model.

    plumb_bob / rational_polynomial (Brown-Conrady with the rational radial term and thin prism, as OpenCV):
        r2 = x^2 + y^2, radial = (1 + k1 r2 + k2 r2^2 + k3 r2^3) / (1 + k4 r2 + k5 r2^2 + k6 r2^3)
        x' = x radial + 2 p1 x y + p2 (r2 + 2 x^2) + s1 r2 + s2 r2^2,  y' = y radial + p1 (r2 + 2 y^2) + 2 p2 x y
             + s3 r2 + s4 r2^2
    equidistant (OpenCV fisheye): theta = atan(r), theta_d = theta (1 + k1 theta^2 + ... + k4 theta^8),
        x' = x theta_d / r (1 when r = 0).
    """
    xp = _xp(x)
    D = camera.distortion_coefficients()
    if camera.distortion_model == 'equidistant':
        k1, k2, k3, k4 = (float(v) for v in D)
        r = xp.sqrt(x * x + y * y)
        theta = xp.arctan(r)
        theta2 = theta * theta
        theta_d = theta * (1 + theta2 * (k1 + theta2 * (k2 + theta2 * (k3 + theta2 * k4))))
        safe_r = xp.where(r > 1e-12, r, xp.ones_like(r))
        scale = xp.where(r > 1e-12, theta_d / safe_r, xp.ones_like(r))
        return x * scale, y * scale
    radial, delta_x, delta_y = _radial_and_offsets(x, y, camera)
    return x * radial + delta_x, y * radial + delta_y


def _radial_and_offsets(x: Any, y: Any, camera: CameraModel) -> tuple[Any, Any, Any]:
    """Polynomial models: x_d = x * radial + delta_x (tangential and thin-prism terms), likewise y."""
    k = np.zeros(12)
    D = camera.distortion_coefficients()
    k[:D.size] = D
    k1, k2, p1, p2, k3, k4, k5, k6, s1, s2, s3, s4 = (float(v) for v in k)
    r2 = x * x + y * y
    radial = (1 + r2 * (k1 + r2 * (k2 + r2 * k3))) / (1 + r2 * (k4 + r2 * (k5 + r2 * k6)))
    xy = x * y
    delta_x = 2 * p1 * xy + p2 * (r2 + 2 * x * x) + r2 * (s1 + s2 * r2)
    delta_y = p1 * (r2 + 2 * y * y) + 2 * p2 * xy + r2 * (s3 + s4 * r2)
    return radial, delta_x, delta_y


def undistort_normalized(x_d: np.ndarray, y_d: np.ndarray, camera: CameraModel) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`distort_normalized` (numpy): fixed-point iteration for the polynomial models (as
    OpenCV's undistortPoints, with more iterations), Newton on theta for equidistant."""
    x_d = np.asarray(x_d, dtype=np.float64)
    y_d = np.asarray(y_d, dtype=np.float64)
    D = camera.distortion_coefficients()
    if camera.distortion_model == 'equidistant':
        k1, k2, k3, k4 = (float(v) for v in D)
        theta_d = np.sqrt(x_d * x_d + y_d * y_d)
        theta = theta_d.copy()
        for _ in range(UNDISTORT_ITERATIONS):  # Newton on f(theta) = theta (1 + k1 theta^2 + ...) - theta_d
            t2 = theta * theta
            f = theta * (1 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4)))) - theta_d
            df = 1 + t2 * (3 * k1 + t2 * (5 * k2 + t2 * (7 * k3 + t2 * 9 * k4)))
            theta = np.clip(theta - f / np.where(np.abs(df) > 1e-12, df, 1e-12), 0.0, np.pi / 2 - 1e-6)
        with np.errstate(invalid='ignore', divide='ignore'):
            scale = np.where(theta_d > 1e-12, np.tan(theta) / np.where(theta_d > 1e-12, theta_d, 1.0), 1.0)
        return x_d * scale, y_d * scale
    x, y = x_d.copy(), y_d.copy()
    for _ in range(UNDISTORT_ITERATIONS):  # x = (x_d - delta_x(x)) / radial(x), OpenCV's fixed point
        radial, delta_x, delta_y = _radial_and_offsets(x, y, camera)
        with np.errstate(invalid='ignore', divide='ignore'):
            x = (x_d - delta_x) / radial
            y = (y_d - delta_y) / radial
    return x, y


_RAY_CACHE: dict[bytes, tuple[np.ndarray, float]] = {}
RAY_CACHE_SIZE = 8


def _compute_rays(camera: CameraModel) -> tuple[np.ndarray, float]:
    u = np.arange(camera.width, dtype=np.float64)
    v = np.arange(camera.height, dtype=np.float64)
    uu, vv = np.meshgrid(u, v)
    y_d = (vv - camera.cy) / camera.fy
    x_d = (uu - camera.cx - camera.K[0, 1] * y_d) / camera.fx
    x, y = undistort_normalized(x_d, y_d, camera)
    # where the iteration did not converge (beyond a lens model's valid range) the pixel has no ray
    x_check, y_check = distort_normalized(x, y, camera)
    with np.errstate(invalid='ignore'):
        failed = ~(np.hypot(x_check - x_d, y_check - y_d) < 1e-6)
    x[failed] = np.nan
    y[failed] = np.nan
    rays = np.stack([x, y], axis=-1)
    # The largest undistorted radius the image shows: farther points can fold back into the image
    # through a polynomial model's turning point, so projection drops them.
    radius = float(np.sqrt(np.nanmax(x * x + y * y)))
    return rays, radius


def _camera_key(camera: CameraModel) -> bytes:
    return b'|'.join([camera.distortion_model.encode(), np.int64([camera.width, camera.height]).tobytes(),
                      camera.K.tobytes(), camera.D.tobytes()])


def pixel_rays(camera: CameraModel) -> tuple[np.ndarray, float]:
    """HxWx2 float64 undistorted normalised (x, y) of every pixel centre and the largest radius among them."""
    key = _camera_key(camera)  # a new CameraModel per camera_info message: cache by value, not identity
    cached = _RAY_CACHE.get(key)
    if cached is None:
        if len(_RAY_CACHE) >= RAY_CACHE_SIZE:
            _RAY_CACHE.pop(next(iter(_RAY_CACHE)))
        cached = _RAY_CACHE[key] = _compute_rays(camera)
    return cached


def _pixels(points: Any, depth: Any, camera: CameraModel, matrix: Any) -> tuple[Any, Any]:
    """Pixel coordinates of points (depth > 0 given), pinhole by ``matrix`` or through the distortion model."""
    if not camera.has_distortion:
        return (points @ matrix[0, :3] + matrix[0, 3]) / depth, (points @ matrix[1, :3] + matrix[1, 3]) / depth
    x, y = points[:, 0] / depth, points[:, 1] / depth
    _rays, radius = pixel_rays(camera)
    x_d, y_d = distort_normalized(x, y, camera)
    pixel_x = camera.fx * x_d + camera.K[0, 1] * y_d + camera.cx
    pixel_y = camera.fy * y_d + camera.cy
    beyond = (x * x + y * y) > (radius * 1.05) ** 2
    nan = math.nan
    return _xp(pixel_x).where(beyond, nan, pixel_x), _xp(pixel_y).where(beyond, nan, pixel_y)


def pixel_coordinates(points_cam: np.ndarray, camera: CameraModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(u, v, ok) of Nx3 camera-frame points: sub-pixel coordinates (distortion applied) and finite & z > 0."""
    points = _working_points(points_cam)
    matrix = _ops_constant(points, projection_matrix(camera))
    depth = points[:, 2]
    with np.errstate(invalid='ignore', divide='ignore'):
        u, v = _pixels(points, depth, camera, matrix)
    ok = (depth > 0) & _ops_isfinite(u) & _ops_isfinite(v)
    return u, v, ok


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

        if use_projection_matrix or not camera.has_distortion:
            pixel_x = (points @ matrix[0, :3] + matrix[0, 3]) / depth
            pixel_y = (points @ matrix[1, :3] + matrix[1, 3]) / depth
        else:
            pixel_x, pixel_y = _pixels(points, depth, camera, matrix)
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
    if camera.has_distortion:
        return _backproject_distorted(depth, camera)
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


def _backproject_distorted(depth: Any, camera: CameraModel) -> Any:
    """Organized cloud of a raw (distorted) image: each pixel's undistorted ray times its depth."""
    rays, _radius = pixel_rays(camera)
    if _is_torch(depth):
        import torch

        z = depth.to(torch.float32)
        z = torch.where(torch.isfinite(z) & (z > 0), z, torch.full_like(z, math.nan))
        ray = torch.as_tensor(rays, dtype=torch.float32, device=z.device)
        return torch.stack([ray[..., 0] * z, ray[..., 1] * z, z], dim=-1)
    return rays_times_depth(rays, depth)


def rays_times_depth(rays: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """``...x3`` float32 points: undistorted normalised rays (``...x2``, from :func:`pixel_rays`, possibly a
    subset of pixels) times their depth; NaN where the depth is 0, negative, NaN or inf."""
    z = np.asarray(depth, dtype=np.float32)
    with np.errstate(invalid='ignore'):
        z = np.where(np.isfinite(z) & (z > 0), z, np.float32(np.nan))
    ray = rays.astype(np.float32)
    return np.stack([ray[..., 0] * z, ray[..., 1] * z, z], axis=-1)


def register_depth(depth_src: Any, camera_src: CameraModel, camera_dst: CameraModel,
                   T_dst_src: RigidTransform) -> Any:
    """Depth of camera_src re-rendered in camera_dst (depth_image_proc register): back-project, transform
    with ``T_dst_src`` (maps src-frame points into the dst frame), project with a z-buffer. 0 = no depth."""
    cloud = backproject(depth_src, camera_src).reshape(-1, 3)
    valid = _ops_isfinite(cloud[:, 2])
    points_dst = T_dst_src.apply(cloud[valid])
    return project_points(points_dst, camera_dst, min_range=0.0)
