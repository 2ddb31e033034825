"""Training pairs with sparsity augmentation (training/mix.py) on real frames."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from depth_completion_ros.data.datasets import parse_mix
from depth_completion_ros.training import mix
from depth_completion_ros.training.mix import SparsityMixDataset


def test_depth_camera_frames_become_sampled_points_or_holes(nyu_dir: Path) -> None:
    data = SparsityMixDataset(parse_mix(f'rgbd:{nyu_dir}?intrinsics=518,519,325.5,253.5=1'), (120, 160), 12, seed=3,
                              augment=False)
    counts = []
    for index in range(len(data)):
        item = data[index]
        sparse, target = item['sparse'][0].numpy(), item['gt'][0].numpy()
        fed = sparse > 0
        assert np.array_equal(sparse[fed], target[fed])            # inputs are measured pixels of the target
        assert (target > 0).sum() > fed.sum()                       # and the target is the (denser) sensor map
        counts.append(int(fed.sum()))
    full_crop = 120 * 160 / mix.VGA_PIXELS
    assert min(counts) >= 8 and len(set(counts)) > 3                # 50..5000 per VGA: varied point counts
    assert max(counts) <= mix.POINTS_PER_VGA[1] * full_crop or max(counts) > 0.3 * 120 * 160   # or a holed map


def test_lidar_scans_lose_rings_and_hide_points(shared_data: Path, monkeypatch) -> None:
    monkeypatch.setattr(mix, 'FEWER_BEAMS_P', 1.0)
    monkeypatch.setattr(mix, 'DROPOUT_P', 0.0)
    spec = f'kitti-raw:{shared_data}/kitti_raw_2011_09_26_udacity_seq?frames=0-1=1'
    reduced = [SparsityMixDataset(parse_mix(spec), (375, 1242), 4, seed=5, augment=False)[i] for i in range(4)]
    monkeypatch.setattr(mix, 'FEWER_BEAMS_P', 0.0)
    full = [SparsityMixDataset(parse_mix(spec), (375, 1242), 4, seed=5, augment=False)[i] for i in range(4)]
    for a, b in zip(reduced, full, strict=True):
        for item in (a, b):                                         # self-supervised: input and target disjoint
            assert not bool(((item['sparse'] > 0) & (item['gt'] > 0)).any())
        points_reduced = int((a['sparse'] > 0).sum() + (a['gt'] > 0).sum())
        points_full = int((b['sparse'] > 0).sum() + (b['gt'] > 0).sum())
        assert points_reduced < 0.6 * points_full                   # 32 or 16 of 64 rings kept (whole frame)
