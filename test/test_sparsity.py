"""Sparsity simulation on real frames: rings of real KITTI scans, 64 -> 32 -> 16 beams, drop-out, Kinect holes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from depth_completion_ros.data.loaders import open_source
from depth_completion_ros.data.quality import depth_edges, line_structure
from depth_completion_ros.data.sparsity import (
    HDL64_ELEVATIONS_DEG,
    drop_points,
    kinect_holes,
    reduce_beams,
    ring_ids,
    scan_depth,
)


@pytest.fixture(scope='module')
def kitti_raw_sample(shared_data: Path):
    return open_source(f'kitti-raw:{shared_data / "kitti_raw_2011_09_26_udacity_seq"}?frames=20')[0]


def _ring_elevations(points: np.ndarray, rings: np.ndarray) -> np.ndarray:
    elevation = np.degrees(np.arctan2(points[:, 2], np.hypot(points[:, 0], points[:, 1])))
    return np.array([np.median(elevation[rings == r]) for r in range(rings.max() + 1)])


def test_ring_ids_find_the_64_rings_of_real_scans(kitti_raw_sample, shared_data: Path) -> None:
    rings = ring_ids(kitti_raw_sample.points)
    assert rings.max() + 1 == 64
    elevations = _ring_elevations(kitti_raw_sample.points, rings)
    assert (np.diff(elevations) < 0).all()                          # ring 0 on top, strictly downwards
    np.testing.assert_allclose(elevations, HDL64_ELEVATIONS_DEG, atol=0.3)
    reduced = open_source(f'kitti-object:{shared_data / "kitti_object_extra"}?frames=134')[0].points
    assert ring_ids(reduced).max() + 1 == 46      # frustum-only scan: the 18 lowest rings hit the road below the image
    np.testing.assert_allclose(_ring_elevations(reduced, ring_ids(reduced)), HDL64_ELEVATIONS_DEG[:46], atol=0.6)
    shuffled = kitti_raw_sample.points[np.random.default_rng(0).permutation(len(kitti_raw_sample.points))]
    assert 55 <= ring_ids(shuffled).max() + 1 <= 80                 # no order: elevation clustering, coarser
    assert len(reduce_beams(shuffled, 16)) / len(shuffled) == pytest.approx(0.25, abs=0.07)


@pytest.mark.parametrize('beams', [32, 16])
def test_reduce_beams_keeps_every_kth_ring_with_visible_rows(kitti_raw_sample, beams: int) -> None:
    points, sample = kitti_raw_sample.points, kitti_raw_sample
    rings = ring_ids(points)
    reduced = reduce_beams(points, beams, rings=rings)
    kept_rings = np.unique(ring_ids(reduced))
    assert len(kept_rings) == beams
    assert len(reduced) / len(points) == pytest.approx(beams / 64, rel=0.15)
    full_depth = scan_depth(points, sample.T_cam_points, sample.camera)
    np.testing.assert_array_equal(full_depth, sample.sparse)       # scan_depth is the loader's projection
    depth = scan_depth(reduced, sample.T_cam_points, sample.camera)
    full, thin = line_structure(full_depth), line_structure(depth)
    ratio = 64 // beams
    assert thin['density'] == pytest.approx(full['density'] / ratio, rel=0.3)
    assert thin['points_per_column'] == pytest.approx(full['points_per_column'] / ratio, rel=0.3)
    assert thin['vertical_gap_px'] >= 0.7 * ratio * full['vertical_gap_px'] / 1.3   # rows `ratio` times apart


def test_drop_points_and_kinect_holes(nyu_dir: Path) -> None:
    sample = open_source(f'rgbd:{nyu_dir}?intrinsics=518,519,325.5,253.5&frames=1')[0]
    rng = np.random.default_rng(0)
    dropped = drop_points(sample.sparse, 0.3, rng)
    before, after = (sample.sparse > 0).sum(), (dropped > 0).sum()
    assert after / before == pytest.approx(0.7, abs=0.01)
    assert ((dropped > 0) <= (sample.sparse > 0)).all() and np.array_equal(dropped[dropped > 0],
                                                                            sample.sparse[dropped > 0])
    holed = kinect_holes(sample.sparse, np.random.default_rng(1), blobs=0)
    edges = depth_edges(sample.sparse, 0.05)
    lost = (sample.sparse > 0) & (holed == 0)
    assert lost[edges].mean() > 0.5 and lost[~edges].mean() < 0.2  # holes gather at depth edges
    blobs = kinect_holes(sample.sparse, np.random.default_rng(2), edge_drop=0.0, blobs=6)
    assert 0 < ((sample.sparse > 0) & (blobs == 0)).mean() < 0.3
    assert np.array_equal(blobs[blobs > 0], sample.sparse[blobs > 0])   # never invents or moves depth


def test_simulated_lines_land_on_the_rings_of_a_known_lidar() -> None:
    """On a synthetic street with a known LiDAR (nominal HDL-64E angles, known mounting), lines simulated from
    the dense rendered depth fall where that LiDAR's own returns are."""
    from scipy.ndimage import binary_dilation

    from depth_completion_ros.data.sparsity import simulate_lidar_lines
    from depth_completion_ros.data.synthetic import LIDAR_AZIMUTH_STEP_DEG, LIDAR_ELEVATIONS_DEG, street_frame

    frame = street_frame(4, width=621, height=188)
    simulated = simulate_lidar_lines(frame.gt_depth, frame.camera, T_cam_lidar=frame.T_cam_lidar,
                                     elevations_deg=LIDAR_ELEVATIONS_DEG, azimuth_step_deg=LIDAR_AZIMUTH_STEP_DEG) > 0
    real = frame.sparse > 0
    around = np.ones((3, 3), bool)
    assert (simulated & binary_dilation(real, around)).sum() > 0.7 * simulated.sum()
    assert (real & binary_dilation(simulated, around)).sum() > 0.8 * real.sum()
    assert simulated.sum() == pytest.approx(real.sum(), rel=0.4)     # the simulation has no drop-outs
