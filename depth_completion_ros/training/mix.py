"""The training mix with sparsity augmentation (issue 8 item 4) on top of ``data.datasets.MixedDepthDataset``.

``data/`` owns the sources and the pure sparsity functions (``data.sparsity``); this adapter decides how a real
frame becomes an (input, target) pair during training:

- depth-camera frames (``rgbd:``, ``7scenes:``; the sensor map is its own reference): input = N sampled points
  with N log-uniform over 50..5000 per 640x480 (NYU's 500 in the middle; scaled to the crop area), or, with
  probability ``FULL_MAP_P``, the full map with Kinect-style holes added (``kinect_holes``); target = the map.
- LiDAR frames with their scan (``kitti-raw``, ``kitti-raw-accum``, ``kitti-object``): with probability
  ``FEWER_BEAMS_P`` the scan keeps 32 or 16 of its rings (``reduce_beams``, re-projected before the crop) and,
  with probability ``DROPOUT_P``, loses a random 0..50 % of its points; target = the accumulated neighbours when
  the source has them (``kitti-raw-accum``), else a random 10..30 % of the (thinned) points is hidden and becomes
  the target (self-supervision, parallax outliers removed from the target).
- KITTI-DC ground-truth-only frames: the line pattern is re-simulated with 64, 32 or 16 rings.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from depth_completion_ros.core.prefill import remove_outliers
from depth_completion_ros.data.datasets import MixedDepthDataset, sample_to_tensors
from depth_completion_ros.data.holdout import hide_points, sample_points
from depth_completion_ros.data.loaders import Sample

FULL_MAP_P = 0.15
FEWER_BEAMS_P = 0.4          # then 32 or 16 rings, equally likely
DROPOUT_P = 0.2
POINTS_PER_VGA = (50, 5000)  # sampled-point range per 640x480 image (log-uniform)
VGA_PIXELS = 640 * 480


def is_depth_camera(sample: Sample) -> bool:
    """The sensor map is its own reference (RGB-D folders, 7-Scenes)."""
    return sample.gt is not None and (sample.gt is sample.sparse or np.array_equal(sample.gt, sample.sparse))


def thin_scan(sample: Sample, rng: np.random.Generator) -> Sample:
    """The sparsity augmentation of a LiDAR frame (module docstring): fewer rings, then point dropout."""
    from depth_completion_ros.data import sparsity

    points = getattr(sample, 'points', None)
    if points is not None and sample.T_cam_points is not None and rng.random() < FEWER_BEAMS_P:
        fewer = sparsity.reduce_beams(points, int(rng.choice((32, 16))), offset=int(rng.integers(4)))
        sample = replace(sample, sparse=sparsity.scan_depth(fewer, sample.T_cam_points, sample.camera))
    elif points is None and sample.gt is not None and rng.random() < FEWER_BEAMS_P:   # KITTI-DC GT only
        rings = sparsity.HDL64_ELEVATIONS_DEG
        step = int(rng.choice((2, 4)))
        sample = replace(sample, sparse=sparsity.simulate_lidar_lines(sample.gt, sample.camera,
                                                                      elevations_deg=rings[::step]))
    if rng.random() < DROPOUT_P:
        sample = replace(sample, sparse=sparsity.drop_points(sample.sparse, float(rng.uniform(0, 0.5)), rng))
    return sample


def hidden_points_target(sparse: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``(input, target)``: a random 10..30 % of the measured points hidden from the input; the target is those
    points less the parallax outliers (a far surface the LiDAR sees through a near object)."""
    visible, hidden = hide_points(sparse, float(rng.uniform(0.1, 0.3)), seed=int(rng.integers(1 << 31)))
    cleaned = remove_outliers(torch.from_numpy(sparse)[None, None]).numpy()[0, 0]
    return visible, np.where(cleaned > 0, hidden, 0.0).astype(np.float32)


class SparsityMixDataset(MixedDepthDataset):
    """``MixedDepthDataset`` whose real frames are made sparser at random (module docstring)."""

    def _real(self, source: object, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        sample: Sample = source[int(rng.integers(len(source)))]  # type: ignore[index]
        if is_depth_camera(sample):
            return self._depth_camera(self._random_crop(sample, rng), rng)
        sample = self._random_crop(thin_scan(sample, rng), rng)
        if sample.gt is not None:
            return sample_to_tensors(sample.rgb, sample.sparse, sample.gt, sample.camera.K)
        visible, target = hidden_points_target(sample.sparse, rng)
        return sample_to_tensors(sample.rgb, visible, target, sample.camera.K)

    def _depth_camera(self, sample: Sample, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        from depth_completion_ros.data.sparsity import kinect_holes

        reference = sample.sparse
        if rng.random() < FULL_MAP_P:
            sparse = kinect_holes(reference, rng)
        else:
            low, high = np.log(POINTS_PER_VGA[0]), np.log(POINTS_PER_VGA[1])
            per_vga = float(np.exp(rng.uniform(low, high)))
            n_points = max(8, int(per_vga * reference.size / VGA_PIXELS))
            sparse = sample_points(reference, n_points, seed=int(rng.integers(1 << 31)))
        return sample_to_tensors(sample.rgb, sparse, reference, sample.camera.K)
