"""Which completed pixels a measurement supports, and how much to trust each one (ROS-free, numpy).

A completion (ip_basic prefill or LRRU) fills *every* pixel: above the LiDAR's top beam it copies the highest
return upwards, into the sky; beside the depth camera's image it extrapolates. A robot must not see those as
obstacles, so a pixel of the output is **valid** only when all of these hold:

1. **column rule**: it is not more than ``top_margin_px`` rows above the highest measurement of its image
   column, where a column's highest measurement is the highest among the columns within ``column_window_px``
   either side (a LiDAR ring samples azimuth more coarsely than the camera's pixels near the image centre, so
   single pixel columns miss the upper rings and would otherwise be cut into vertical NaN streaks down to
   the first ring that hit them; a column with no measurement in its window is unsupported entirely);
2. **distance rule**: it lies at most ``max_distance_px`` pixels from the nearest measurement (0 = off);
3. **field of view**: the 3D point it stands for lies inside the depth sensor's field of view
   (:class:`SensorFov`: the elevation/azimuth coverage of the LiDAR scan, or the depth camera's image).

Everything else becomes unknown (0 here, NaN on the wire: REP 118). The rules are applied in ``pipeline.py``
to whatever produced the dense depth, so the prefill-only and the network paths are treated alike.

**Confidence** (0..1, 0 where invalid) is a *geometric support* measure, computed from the same distance
transform as rule 2, so it costs next to nothing and needs no training data:

    confidence = exp(-0.5 * (d / distance_px)^2) * exp(-|z - z_near| / (relative_tolerance * z_near * (1 + d)))

where ``d`` is the pixel distance to the nearest measurement and ``z_near`` its depth. The first factor says
how far the output had to be interpolated; the second drops at depth edges, where the nearest measurement
belongs to another surface than the completed value (the place where completions are wrong most often). The
tolerance grows with ``d`` because a smooth but slanted surface (the road ahead) legitimately changes depth
between a measurement and the pixels around it.
A measured pixel the output reproduces has confidence 1. We chose this over a learned head because it is
explainable, does not depend on the weights (prefill-only gets it too) and is monotone in what a planner
cares about: distance from real data.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from scipy.ndimage import minimum_filter1d

from depth_completion_ros.core.camera import CameraModel
from depth_completion_ros.core.transforms import RigidTransform

__all__ = ['ValiditySettings', 'SensorFov', 'Support', 'measurement_support', 'column_top_rows',
           'valid_mask', 'confidence_map', 'apply_validity']

AZIMUTH_BIN_DEG = 1.0
FOV_STRIDE = 4


@dataclass
class ValiditySettings:
    """The node's ``validity.*`` and ``confidence.*`` parameters (see ros/params.py for the texts)."""
    enable: bool = True
    top_margin_px: int = 0             # rows above a column's highest measurement still counted as supported
    column_window_px: int = 3          # a column's highest measurement: the highest within this many columns
    max_distance_px: float = 10.0      # farther from every measurement = unknown; 0 = no distance rule
    fov_margin_deg: float = 1.0        # tolerance of the field-of-view test
    confidence_distance_px: float = 4.0
    confidence_relative_tolerance: float = 0.05  # per pixel of distance to the nearest measurement


@dataclass
class Support:
    """Distance (px) from every pixel to the nearest measurement and that measurement's depth (m)."""
    distance_px: np.ndarray            # HxW float32; inf when the image has no measurement at all
    nearest_depth: np.ndarray          # HxW float32; 0 when the image has no measurement at all


def measurement_support(sparse: np.ndarray) -> Support:
    """One distance transform over the measured pixels (sparse > 0) that also labels each pixel with its
    nearest measurement (OpenCV, 5x5 mask: distances within ~2% of Euclidean, a few ms on a KITTI frame)."""
    sparse = np.asarray(sparse, dtype=np.float32)
    measured = sparse > 0
    if not measured.any():
        return Support(np.full(sparse.shape, np.inf, np.float32), np.zeros(sparse.shape, np.float32))
    distance, labels = cv2.distanceTransformWithLabels((~measured).astype(np.uint8), cv2.DIST_L2, 5,
                                                       labelType=cv2.DIST_LABEL_PIXEL)
    # DIST_LABEL_PIXEL numbers the zero (measured) pixels 1..N in raster order, as boolean indexing lists them
    return Support(distance, sparse[measured][labels - 1])


def column_top_rows(sparse: np.ndarray, window_px: int = 0) -> np.ndarray:
    """Row index of the highest (smallest row) measurement of every column, taken over the columns within
    ``window_px`` either side (0: the column alone); ``height`` where there is none."""
    measured = np.asarray(sparse) > 0
    height = measured.shape[0]
    first = np.argmax(measured, axis=0)  # first True per column (0 when the column has none: fixed below)
    top = np.where(measured.any(axis=0), first, height).astype(np.int64)
    if window_px > 0:
        top = minimum_filter1d(top, size=2 * int(window_px) + 1, mode='constant', cval=height)
    return top


class SensorFov:
    """The part of the scene the depth sensor can see, as a test on 3D points in the camera optical frame.

    Built from the data itself, so no sensor table is needed: for a LiDAR the elevation range and the
    azimuth bins (1 deg) its scan covers, in the LiDAR frame; for a depth camera its image rectangle.
    """

    def __init__(self, T_sensor_cam: RigidTransform, elevation_range: tuple[float, float] | None = None,
                 azimuth_bins: np.ndarray | None = None, camera: CameraModel | None = None,
                 margin_deg: float = 1.0) -> None:
        self.T_sensor_cam = T_sensor_cam
        self.elevation_range = elevation_range
        self.azimuth_bins = azimuth_bins
        self.camera = camera
        self.margin_deg = margin_deg

    @classmethod
    def from_points(cls, points_sensor: np.ndarray, T_cam_sensor: RigidTransform,
                    margin_deg: float = 1.0) -> SensorFov:
        """FOV of a LiDAR from one scan (Nx3+ in the sensor frame, finite)."""
        xyz = np.asarray(points_sensor, dtype=np.float64)[:, :3]
        elevation, azimuth = _angles_deg(xyz)
        bins = np.zeros(int(round(360.0 / AZIMUTH_BIN_DEG)), dtype=bool)
        bins[_azimuth_bin(azimuth, bins.size)] = True
        # a margin of whole bins either side, so a gap of one bin between two returns is not a hole
        spread = max(1, int(math.ceil(margin_deg / AZIMUTH_BIN_DEG)))
        covered = np.logical_or.reduce([np.roll(bins, shift) for shift in range(-spread, spread + 1)])
        if not elevation.size:
            return cls(T_cam_sensor.inverse(), (0.0, 0.0), np.zeros_like(bins), margin_deg=margin_deg)
        return cls(T_cam_sensor.inverse(), (float(elevation.min()), float(elevation.max())), covered,
                   margin_deg=margin_deg)

    @classmethod
    def from_camera(cls, depth_camera: CameraModel, T_cam_depth: RigidTransform,
                    margin_deg: float = 1.0) -> SensorFov:
        """FOV of a depth camera: what projects inside its image (in front of it)."""
        return cls(T_cam_depth.inverse(), camera=depth_camera, margin_deg=margin_deg)

    def contains(self, points_cam: np.ndarray) -> np.ndarray:
        """Boolean per point (Nx3, camera optical frame): inside the sensor's field of view."""
        points = self.T_sensor_cam.apply(np.asarray(points_cam, dtype=np.float64))
        if self.camera is not None:
            from depth_completion_ros.core.projection import pixel_coordinates

            inside = points[:, 2] > 0
            u, v, ok = pixel_coordinates(points[inside], self.camera)
            margin_px = self.margin_deg * math.pi / 180.0 * self.camera.fx
            in_image = ok & (u >= -0.5 - margin_px) & (u <= self.camera.width - 0.5 + margin_px) \
                & (v >= -0.5 - margin_px) & (v <= self.camera.height - 0.5 + margin_px)
            inside[np.flatnonzero(inside)] = in_image
            return inside
        assert self.elevation_range is not None and self.azimuth_bins is not None
        # elevation test without arctan: tan(low) <= z / hypot(x, y) <= tan(high), limits within +-89 deg
        low, high = (math.radians(float(np.clip(a, -89.0, 89.0)))
                     for a in (self.elevation_range[0] - self.margin_deg, self.elevation_range[1] + self.margin_deg))
        horizontal = np.hypot(points[:, 0], points[:, 1])
        inside = (points[:, 2] >= math.tan(low) * horizontal) & (points[:, 2] <= math.tan(high) * horizontal)
        if not self.azimuth_bins.all():  # a spinning LiDAR covers every bin: nothing to test
            azimuth = np.degrees(np.arctan2(points[:, 1], points[:, 0]))
            inside &= self.azimuth_bins[_azimuth_bin(azimuth, self.azimuth_bins.size)]
        return inside


def _angles_deg(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(elevation, azimuth) in degrees of points in a sensor frame with z up (REP 103: x forward)."""
    horizontal = np.hypot(points[:, 0], points[:, 1])
    return np.degrees(np.arctan2(points[:, 2], horizontal)), np.degrees(np.arctan2(points[:, 1], points[:, 0]))


def _azimuth_bin(azimuth_deg: np.ndarray, n_bins: int) -> np.ndarray:
    return (np.floor((azimuth_deg + 180.0) / AZIMUTH_BIN_DEG).astype(np.int64)) % n_bins


def valid_mask(dense: np.ndarray, sparse: np.ndarray, camera: CameraModel, settings: ValiditySettings,
               support: Support | None = None, sensor_fov: SensorFov | None = None) -> np.ndarray:
    """HxW bool: dense > 0 and finite, and supported by a measurement (the three rules of this module)."""
    dense = np.asarray(dense, dtype=np.float32)
    with np.errstate(invalid='ignore'):
        valid = np.isfinite(dense) & (dense > 0)
    if not settings.enable:
        return valid
    height = dense.shape[0]
    top = column_top_rows(sparse, settings.column_window_px) - int(settings.top_margin_px)
    valid &= np.arange(height)[:, None] >= top[None, :]
    if settings.max_distance_px > 0:
        support = support or measurement_support(sparse)
        valid &= support.distance_px <= settings.max_distance_px
    if sensor_fov is not None and valid.any():
        # a measured pixel is inside the sensor's view by definition (the block test can clip one at the edge)
        valid &= fov_mask(dense, camera, sensor_fov, support.nearest_depth if support is not None else None) \
            | (np.asarray(sparse) > 0)
    return valid


def fov_mask(dense: np.ndarray, camera: CameraModel, sensor_fov: SensorFov,
             fallback_depth: np.ndarray | None = None) -> np.ndarray:
    """HxW bool: the pixel's 3D point is inside ``sensor_fov``. Tested on every FOV_STRIDE-th pixel and spread
    to its block (the FOV edge is smooth; 16x fewer points keep this a few ms); a pixel without depth is
    tested at its nearest measurement's depth (``fallback_depth``) or not at all."""
    from depth_completion_ros.core.projection import pixel_rays, rays_times_depth

    height, width = dense.shape
    # Each block's centre pixel, but at least one per axis: an image 1 or 2 pixels high or wide has no pixel at
    # FOV_STRIDE // 2, and an empty sample cannot be spread (np.pad's 'edge' mode refuses an empty axis).
    row0, col0 = min(FOV_STRIDE // 2, height - 1), min(FOV_STRIDE // 2, width - 1)
    sample = (slice(row0, None, FOV_STRIDE), slice(col0, None, FOV_STRIDE))
    depth = dense[sample] if fallback_depth is None else np.where(dense[sample] > 0, dense[sample],
                                                                  fallback_depth[sample])
    # Only the sampled pixels are back-projected (their undistorted rays, cached per camera, times depth).
    points = rays_times_depth(pixel_rays(camera)[0][sample], depth)
    known = np.isfinite(points).all(axis=-1)
    inside = np.zeros(points.shape[:2], dtype=bool)
    inside[known] = sensor_fov.contains(points[known])
    blocks = np.repeat(np.repeat(inside, FOV_STRIDE, axis=0), FOV_STRIDE, axis=1)
    pad_rows = max(0, height - blocks.shape[0] - row0)
    pad_cols = max(0, width - blocks.shape[1] - col0)
    blocks = np.pad(blocks, ((row0, pad_rows), (col0, pad_cols)), mode='edge')
    return blocks[:height, :width]


def confidence_map(dense: np.ndarray, valid: np.ndarray, support: Support,
                   settings: ValiditySettings) -> np.ndarray:
    """HxW float32 in 0..1 (0 where not valid): distance support x agreement with the nearest measurement."""
    distance_scale = max(float(settings.confidence_distance_px), 1e-6)
    tolerance = max(float(settings.confidence_relative_tolerance), 1e-6)
    with np.errstate(invalid='ignore', divide='ignore', over='ignore'):
        near = np.maximum(support.nearest_depth, np.float32(1e-6))
        distance_term = np.exp(np.float32(-0.5) * np.square(support.distance_px / np.float32(distance_scale)))
        # the disagreement a smooth surface may show grows with the distance interpolated over: (1 + d)
        allowed = np.float32(tolerance) * near * (np.float32(1.0) + support.distance_px)
        agreement = np.exp(-np.abs(dense - support.nearest_depth) / allowed)
        confidence = (distance_term * agreement).astype(np.float32)
    confidence[~valid] = 0.0
    return np.clip(confidence, 0.0, 1.0, out=confidence)


def apply_validity(dense: np.ndarray, sparse: np.ndarray, camera: CameraModel, settings: ValiditySettings,
                   sensor_fov: SensorFov | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(depth with 0 where unsupported, confidence 0..1): what the pipeline publishes."""
    dense = np.asarray(dense, dtype=np.float32)
    support = measurement_support(sparse)
    valid = valid_mask(dense, sparse, camera, settings, support, sensor_fov)
    depth = np.where(valid, dense, np.float32(0.0))
    return depth, confidence_map(depth, valid, support, settings)
