"""Sparser inputs from real data: fewer LiDAR beams, point drop-out, Kinect-style holes, N sampled points, and
a LiDAR line pattern simulated from a (semi-)dense depth map. Pure functions (inputs are never modified), seeded
through a ``numpy.random.Generator``; used by training augmentation and by eval's sparsity sweep.

Public API::

    ring_ids(points) -> (N,) int                       ring of each scan point, 0 = top-most beam
    reduce_beams(points, beams) -> points              keep `beams` evenly spaced rings of the scan
    scan_depth(points, T_cam_points, camera) -> depth  project a (changed) scan again, nearest return per pixel
    drop_points(sparse, fraction, rng) -> sparse       remove a random fraction of the measured pixels
    kinect_holes(depth, rng, ...) -> depth             depth-camera-like holes: at depth edges and in blobs
    sample_points(depth, n_points, seed) -> sparse     N random valid pixels (data.holdout; NYU "500 points")
    simulate_lidar_lines(depth, camera, ...) -> sparse  keep the pixels a 64-beam Velodyne would hit

Depth maps are HxW float32 metres, 0 = none; point arrays are Nx3 or Nx4 (x, y, z in metres, extra columns
kept) in the sensor frame.
"""
from __future__ import annotations

import numpy as np

from depth_completion_ros.core.camera import CameraModel
from depth_completion_ros.core.projection import backproject, project_points
from depth_completion_ros.core.transforms import RigidTransform, kitti_velo_to_cam
from depth_completion_ros.data.holdout import sample_points

__all__ = ['HDL64_ELEVATIONS_DEG', 'KITTI_T_CAM_VELO', 'ring_ids', 'reduce_beams', 'scan_depth', 'drop_points',
           'kinect_holes', 'sample_points', 'simulate_lidar_lines']

# Elevation (degrees, seen from the sensor origin) of the 64 rings of KITTI's HDL-64E, top first: per ring
# (ring_ids), the median over the 55 full scans in ../shared/data of each scan's median ring elevation. Not the
# datasheet's nominal +2 .. -24.8 deg: the lasers sit off the origin and KITTI's sensor is slightly tilted; seen
# from the origin, as here, the rings lie at these angles for street-scale ranges.
HDL64_ELEVATIONS_DEG = np.array([
    2.62, 2.26, 2.02, 1.63, 1.34, 0.95, 0.67, 0.31, -0.05, -0.43, -0.73, -1.08, -1.45, -1.77, -2.09, -2.46, -2.74,
    -3.12, -3.40, -3.77, -4.08, -4.43, -4.76, -5.10, -5.48, -5.80, -6.11, -6.40, -6.78, -7.12, -7.35, -7.76, -8.36,
    -8.88, -9.36, -9.77, -10.23, -10.86, -11.35, -11.77, -12.22, -12.65, -13.17, -13.69, -14.25, -14.69, -15.17,
    -15.55, -16.16, -16.68, -17.24, -17.69, -18.18, -18.58, -19.04, -19.58, -20.09, -20.68, -21.18, -21.56, -22.01,
    -22.63, -23.15, -23.63])

# Velodyne -> rectified camera 2 of the KITTI cars, from the 2011_09_26 calibration (calib_cam_to_cam.txt
# P_rect_02 and R_rect_00, calib_velo_to_cam.txt R and T): the mounting assumed when a depth map comes without
# its LiDAR calibration (KITTI-DC ground truth); the other recording days differ by millimetres and < 0.5 deg.
KITTI_T_CAM_VELO, _ = kitti_velo_to_cam({
    'P_rect_02': np.array([7.215377e+02, 0.0, 6.095593e+02, 4.485728e+01, 0.0, 7.215377e+02, 1.728540e+02,
                           2.163791e-01, 0.0, 0.0, 1.0, 2.745884e-03]),
    'R_rect_00': np.array([9.999239e-01, 9.837760e-03, -7.445048e-03, -9.869795e-03, 9.999421e-01, -4.278459e-03,
                           7.402527e-03, 4.351614e-03, 9.999631e-01]),
    'Tr_velo_cam': np.array([7.533745e-03, -9.999714e-01, -6.166020e-04, -4.069766e-03, 1.480249e-02,
                             7.280733e-04, -9.998902e-01, -7.631618e-02, 9.998621e-01, 7.523790e-03, 1.480755e-02,
                             -2.717806e-01])})


def _elevation_deg(xyz: np.ndarray) -> np.ndarray:
    return np.degrees(np.arctan2(xyz[:, 2], np.hypot(xyz[:, 0], xyz[:, 1])))


def ring_ids(points: np.ndarray) -> np.ndarray:
    """Ring (beam) of every point, 0 = the top-most ring; KITTI ``.bin`` scans have no ring field.

    A spinning LiDAR's scan is stored ring after ring, each ring sweeping azimuth one way; a new ring starts
    where the azimuth steps back by more than 5 deg (KITTI: by ~360 deg in full scans, ~80 deg in
    ``velodyne_reduced``, which also lacks the lowest rings: they hit the road below the image). The scan starts
    mid-ring, so a short first segment joins the ring of nearest median elevation. Rings are numbered by median
    elevation, top first. A cloud without that order (shuffled, merged) falls back to clustering the elevation
    angles, which is coarser: lasers sit off the origin, so near points of one ring spread over ~1 deg.
    """
    xyz = np.asarray(points, np.float64)[:, :3]
    if len(xyz) < 2:
        return np.zeros(len(xyz), np.int64)
    azimuth = np.degrees(np.arctan2(xyz[:, 1], xyz[:, 0]))
    elevation = _elevation_deg(xyz)
    starts = np.flatnonzero(np.diff(azimuth) < -5.0) + 1
    n_segments = starts.size + 1
    if 4 <= n_segments <= 512 and len(xyz) / n_segments >= 20:
        segment = np.zeros(len(xyz), np.int64)
        segment[starts] = 1
        segment = np.cumsum(segment)
        sizes = np.bincount(segment)
        medians = np.array([np.median(e) for e in np.split(elevation, starts)])
        ring_of_segment = np.arange(n_segments)
        if sizes[0] < 0.6 * np.median(sizes):
            ring_of_segment[0] = 1 + int(np.abs(medians[1:] - medians[0]).argmin())
        kept = np.unique(ring_of_segment)
        rank = np.empty(n_segments, np.int64)
        rank[kept[np.argsort(-medians[kept])]] = np.arange(kept.size)
        return rank[ring_of_segment][segment]
    # Unordered cloud: peaks of the elevation histogram are the rings; every point goes to the nearest peak.
    from scipy.ndimage import gaussian_filter1d
    from scipy.signal import find_peaks

    edges = np.arange(elevation.min() - 0.1, elevation.max() + 0.15, 0.05)
    histogram = gaussian_filter1d(np.histogram(elevation, edges)[0].astype(np.float64), 1.0)
    peaks, _ = find_peaks(histogram, prominence=histogram.max() * 0.02)
    centres = np.sort(edges[peaks] + 0.025)[::-1] if peaks.size else np.array([float(np.median(elevation))])
    return np.abs(elevation[:, None] - centres[None]).argmin(axis=1)


def reduce_beams(points: np.ndarray, beams: int, rings: np.ndarray | None = None, offset: int = 0) -> np.ndarray:
    """The points of ``beams`` evenly spaced rings (every ``n_rings // beams``-th ring from ``offset``), e.g.
    64 -> 32 -> 16 lines as a VLP-32/VLP-16 would see (their vertical field of view is not narrowed)."""
    rings = ring_ids(points) if rings is None else rings
    n_rings = int(rings.max()) + 1 if rings.size else 0
    if beams <= 0:
        raise ValueError(f'beams must be positive, got {beams}')
    if beams >= n_rings:
        return points.copy()
    stride = n_rings / beams
    kept = np.unique(np.floor(offset % max(1, int(stride)) + np.arange(beams) * stride).astype(np.int64))
    return points[np.isin(rings, kept)].copy()


def scan_depth(points: np.ndarray, T_cam_points: RigidTransform, camera: CameraModel) -> np.ndarray:
    """HxW float32 sparse depth (m) of a scan given in its sensor frame, nearest return per pixel."""
    return np.asarray(project_points(T_cam_points.apply(np.asarray(points)[:, :3]), camera), np.float32)


def drop_points(sparse: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A copy of ``sparse`` without a random ``fraction`` of its measured pixels (each dropped independently)."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f'fraction must be in [0, 1], got {fraction}')
    return np.where((sparse > 0) & (rng.random(sparse.shape) < fraction), 0.0, sparse).astype(np.float32)


def kinect_holes(depth: np.ndarray, rng: np.random.Generator, edge_drop: float = 0.7, edge_width: int = 2,
                 edge_jump: float = 0.05, blobs: int = 4, blob_radius: tuple[int, int] = (4, 24)) -> np.ndarray:
    """A copy of ``depth`` with the holes a structured-light / ToF camera leaves.

    - Depth edges: pixels within ``edge_width`` px of a relative depth jump > ``edge_jump`` between neighbours
      are lost with probability ``edge_drop`` (mixed pixels and the projector's shadow at occlusion edges).
    - Blobs: ``Poisson(blobs)`` elliptic holes with radii in ``blob_radius`` px (dark, shiny or far surfaces).
    """
    from scipy.ndimage import binary_dilation

    out = np.asarray(depth, np.float32).copy()
    valid = out > 0
    with np.errstate(divide='ignore', invalid='ignore'):
        jump = np.zeros(out.shape, bool)
        for axis in (0, 1):
            a, b = (out[1:], out[:-1]) if axis == 0 else (out[:, 1:], out[:, :-1])
            both = (a > 0) & (b > 0)
            big = both & (np.abs(a - b) > edge_jump * np.minimum(a, b))
            if axis == 0:
                jump[1:] |= big
                jump[:-1] |= big
            else:
                jump[:, 1:] |= big
                jump[:, :-1] |= big
    near_edge = binary_dilation(jump, iterations=edge_width) if edge_width > 0 else jump
    out[near_edge & (rng.random(out.shape) < edge_drop)] = 0.0
    height, width = out.shape
    n_blobs = int(rng.poisson(blobs))
    if n_blobs:
        rows, cols = np.mgrid[0:height, 0:width]
        centres = rng.uniform((0, 0), (height, width), (n_blobs, 2))
        radii = rng.uniform(*blob_radius, (n_blobs, 2))
        angles = rng.uniform(0, np.pi, n_blobs)
        for (cy, cx), (ry, rx), angle in zip(centres, radii, angles, strict=True):   # a few blobs, not pixels
            dy, dx = rows - cy, cols - cx
            u = dx * np.cos(angle) + dy * np.sin(angle)
            v = -dx * np.sin(angle) + dy * np.cos(angle)
            out[(u / rx) ** 2 + (v / ry) ** 2 <= 1.0] = 0.0
    out[~valid] = 0.0
    return out


def simulate_lidar_lines(depth: np.ndarray, camera: CameraModel, T_cam_lidar: RigidTransform = KITTI_T_CAM_VELO,
                         elevations_deg: np.ndarray = HDL64_ELEVATIONS_DEG, azimuth_step_deg: float = 0.18,
                         max_offset_px: float = 1.5) -> np.ndarray:
    """The pixels of ``depth`` a spinning LiDAR at ``T_cam_lidar`` would return: a velodyne_raw-like input from
    (semi-)dense ground truth.

    Every valid pixel is back-projected and seen from the LiDAR: its elevation picks the nearest ring of
    ``elevations_deg``, its azimuth a bin of ``azimuth_step_deg`` (0.18 deg: the median azimuth step between
    consecutive points of a ring in the KITTI scans, HDL-64E at 10 Hz). In each (ring, azimuth bin) the pixel
    nearest to the ring's elevation is kept if it lies within ``max_offset_px`` pixels (in elevation) of it: a
    return needs a ground-truth pixel where the beam crosses.
    """
    cloud = backproject(np.asarray(depth, np.float32), camera).reshape(-1, 3)
    valid = np.flatnonzero(np.isfinite(cloud[:, 2]))
    lidar = T_cam_lidar.inverse().apply(cloud[valid].astype(np.float64))
    elevation = _elevation_deg(lidar)
    azimuth = np.degrees(np.arctan2(lidar[:, 1], lidar[:, 0]))
    rings_desc = np.asarray(elevations_deg, np.float64)
    ascending = rings_desc[::-1]
    upper = np.clip(np.searchsorted(ascending, elevation), 1, ascending.size - 1)
    lower = upper - 1
    nearest = np.where(np.abs(ascending[upper] - elevation) < np.abs(ascending[lower] - elevation), upper, lower)
    offset = np.abs(ascending[nearest] - elevation)
    # Tolerance: max_offset_px pixels of elevation (1 px = 1/fy rad at the principal point), at most half the gap
    # to the neighbouring ring so one pixel never serves two rings.
    gaps = np.abs(np.diff(ascending))
    half_gap = 0.5 * np.minimum(np.append(gaps, gaps[-1]), np.insert(gaps, 0, gaps[0]))[nearest]
    tolerance = np.minimum(np.degrees(max_offset_px / camera.fy), half_gap)
    azimuth_bin = np.floor((azimuth + 180.0) / azimuth_step_deg).astype(np.int64)
    key = nearest * (int(360.0 / azimuth_step_deg) + 2) + azimuth_bin
    order = np.lexsort((offset, key))                  # by cell, then by offset: the first of each cell is best
    first = order[np.concatenate([[True], np.diff(key[order]) != 0])]
    chosen = first[offset[first] <= tolerance[first]]
    out = np.zeros(depth.size, np.float32)
    out[valid[chosen]] = np.asarray(depth, np.float32).reshape(-1)[valid[chosen]]
    return out.reshape(depth.shape)
