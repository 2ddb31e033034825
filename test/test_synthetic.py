"""Synthetic scene generator: determinism and sensor-model sanity (small frames, fast)."""
from __future__ import annotations

import numpy as np
import pytest

from depth_completion_ros.data.synthetic import LIDAR_ELEVATIONS_DEG, room_frame, street_frame, street_sequence


@pytest.fixture(scope='module')
def street():
    return street_frame(3, width=320, height=128)


@pytest.fixture(scope='module')
def room():
    return room_frame(5, width=320, height=240)


def test_same_seed_same_arrays(street, room):
    again = street_frame(3, width=320, height=128)
    for name in ('rgb', 'gt_depth', 'sparse', 'points'):
        np.testing.assert_array_equal(getattr(street, name), getattr(again, name))
    room_again = room_frame(5, width=320, height=240)
    np.testing.assert_array_equal(room.sparse, room_again.sparse)
    np.testing.assert_array_equal(room.rgb, room_again.rgb)


def test_different_seeds_differ(street, room):
    assert not np.array_equal(street.gt_depth, street_frame(4, width=320, height=128).gt_depth)
    assert not np.array_equal(room.gt_depth, room_frame(6, width=320, height=240).gt_depth)


def test_street_frame_contract(street):
    assert street.kind == 'street'
    assert street.rgb.shape == (128, 320, 3) and street.rgb.dtype == np.uint8
    assert street.gt_depth.dtype == np.float32 and street.sparse.dtype == np.float32
    assert street.camera.width == 320 and street.camera.height == 128
    valid = street.gt_depth > 0
    assert valid.mean() > 0.5 and not valid[0].all()        # sky at the top has no ground truth
    assert np.all(street.gt_depth[valid] > 0.5)
    assert street.points.shape[1] == 4 and street.points.dtype == np.float32
    # Sparse = LiDAR projected with a z-buffer: mostly within noise of the GT, a few parallax outliers.
    measured = street.sparse > 0
    err = np.abs(street.sparse[measured] - street.gt_depth[measured])
    assert np.median(err) < 0.1
    assert 0.0 < (err > 1.0).mean() < 0.15


def test_lidar_rows_are_distinct_beams(street):
    # Elevation angles of returns cluster on the 64 beam angles (noise 0.02 deg), not on a continuum.
    xyz = street.points[:, :3]
    elevation = np.degrees(np.arctan2(xyz[:, 2], np.hypot(xyz[:, 0], xyz[:, 1])))
    nearest = np.abs(elevation[:, None] - LIDAR_ELEVATIONS_DEG[None]).min(axis=1)
    assert np.percentile(nearest, 95) < 0.1
    # The lowest beams reach into the image: the sparse map has empty rows between beam rows near the top.
    rows_hit = (street.sparse > 0).any(axis=1)
    assert rows_hit.sum() < rows_hit.size


def test_room_kinect_holes_at_depth_edges(room):
    assert room.kind == 'room' and room.points is None and room.T_cam_lidar is None
    gt, sensed = room.gt_depth, room.sparse
    assert np.all(gt > 0)
    gy, gx = np.gradient(gt)
    edges = np.hypot(gx, gy) > 0.1 * gt
    holes = sensed == 0
    assert holes[edges].mean() > 2 * holes[~edges].mean()
    measured = sensed > 0
    assert 0.4 < measured.mean() < 0.98
    err = np.abs(sensed[measured] - gt[measured])
    assert np.median(err) < 0.05


def test_street_sequence_moves_forward():
    frames = list(street_sequence(7, 2, width=160, height=64, rate_hz=10.0))
    assert len(frames) == 2
    assert not np.array_equal(frames[0].rgb, frames[1].rgb)
    # The camera moves forward, so the ground in the bottom rows keeps its depth; far structure gets closer.
    far0 = np.median(frames[0].gt_depth[frames[0].gt_depth > 0])
    far1 = np.median(frames[1].gt_depth[frames[1].gt_depth > 0])
    assert far1 < far0 + 0.5
