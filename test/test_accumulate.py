"""Accumulated LiDAR targets: a planted moving car on a synthetic sequence with known poses is removed by the
consistency check; on the real KITTI drive (KISS-ICP odometry) the target is denser, agrees with held-out own
points, and is cached."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from depth_completion_ros.data import accumulate
from depth_completion_ros.data.accumulate import accumulate_depth
from depth_completion_ros.data.holdout import hide_points
from depth_completion_ros.data.loaders import open_source
from depth_completion_ros.data.synthetic import street_sequence

N_FRAMES, SPEED_MPS, RATE_HZ = 11, 8.0, 10.0


def test_accumulation_removes_a_planted_moving_car() -> None:
    moving = list(street_sequence(3, N_FRAMES, width=621, height=188, moving_car_mps=-6.0))
    static = list(street_sequence(3, N_FRAMES, width=621, height=188))
    # Known ego-motion: straight ahead (LiDAR x axis) at SPEED_MPS, no rotation.
    poses = np.tile(np.eye(4), (N_FRAMES, 1, 1))
    poses[:, 0, 3] = np.arange(N_FRAMES) * SPEED_MPS / RATE_HZ
    here = N_FRAMES // 2
    frame = moving[here]
    car_now = np.abs(frame.gt_depth - static[here].gt_depth) > 0.01
    swept = np.zeros_like(car_now)                      # where the car was in a neighbour frame, not now
    for m, s in zip(moving, static, strict=True):
        swept |= np.abs(m.gt_depth - s.gt_depth) > 0.01
    swept &= ~car_now
    assert car_now.sum() > 500 and swept.sum() > 3000   # the car is in view and moves across the image

    def wrong(target: np.ndarray, region: np.ndarray) -> int:
        return int(((target > 0) & region & (np.abs(target - frame.gt_depth) > 0.05 * frame.gt_depth)).sum())

    scans = [f.points for f in moving]
    checked = accumulate_depth(here, scans, poses, frame.T_cam_lidar, frame.camera, window=5)
    unchecked = accumulate_depth(here, scans, poses, frame.T_cam_lidar, frame.camera, window=5, check=False)
    assert (checked > 0).sum() > 2.5 * (frame.sparse > 0).sum()          # denser than one scan
    assert (checked[swept] > 0).sum() > 0.5 * (unchecked[swept] > 0).sum()   # the road behind it stays
    ghosts, ghosts_unchecked = wrong(checked, swept), wrong(unchecked, swept)
    assert ghosts < 0.3 * ghosts_unchecked and ghosts < 0.02 * (checked[swept] > 0).sum()
    assert wrong(checked, car_now) < 0.3 * wrong(unchecked, car_now)   # no road seen through the car now
    new = (checked > 0) & (frame.sparse == 0) & (frame.gt_depth > 0)
    relative = np.abs(checked[new] - frame.gt_depth[new]) / frame.gt_depth[new]
    assert np.median(relative) < 0.01 and (relative > 0.05).mean() < 0.08


def test_kitti_raw_accum_real_drive_cached(shared_data: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv('DEPTH_COMPLETION_CACHE', str(tmp_path))
    spec = f'kitti-raw-accum:{shared_data / "kitti_raw_2011_09_26_udacity_seq"}?frames=10&window=3'
    source = open_source(spec)
    assert len(source) == 1 and list(source.span) == list(range(7, 14))
    sample = source[0]
    assert sample.index == 10 and sample.gt.shape == sample.sparse.shape
    own, target = sample.sparse > 0, sample.gt > 0
    assert target.sum() > 3.0 * own.sum()
    kept_own = own & target                             # own returns stay (less the parallax outliers)
    assert kept_own.sum() > 0.9 * own.sum()
    np.testing.assert_allclose(sample.gt[kept_own], sample.sparse[kept_own], atol=0.006)
    steps = np.linalg.norm(np.diff(source.poses()[:, :3, 3], axis=0), axis=1)
    assert ((steps > 0.05) & (steps < 0.5)).all()       # slow city traffic: 0.5..5 m/s at 10 Hz
    # Held-out own points: accumulate from the neighbours with 20 % of the own scan hidden.
    visible, hidden = hide_points(sample.sparse, 0.2, seed=0)
    scans = [sample.points, *(open_source(f'kitti-raw:{source.drive.root}?frames={n}')[0].points
                              for n in (7, 8, 9, 11, 12, 13))]
    poses = source.poses()[[3, 0, 1, 2, 4, 5, 6]]
    held_out = accumulate_depth(0, scans, poses, sample.T_cam_points, sample.camera, neighbours=range(1, 7),
                                own_depth=visible)
    scored = (hidden > 0) & (held_out > 0)
    relative = np.abs(held_out[scored] - hidden[scored]) / hidden[scored]
    assert scored.sum() > 0.15 * (hidden > 0).sum() and (relative > 0.05).mean() < 0.08   # 3 frames a side
    # Second open: poses and target come from the cache, no odometry.
    monkeypatch.setattr(accumulate, 'estimate_poses', lambda *a, **k: pytest.fail('odometry ran again'))
    again = open_source(spec)[0]
    np.testing.assert_array_equal(again.gt, sample.gt)
