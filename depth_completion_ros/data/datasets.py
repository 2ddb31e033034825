"""Torch datasets for training: a seeded mix of sources, each item a dict of tensors.

Item: ``rgb`` 3xHxW float 0..255, ``sparse`` 1xHxW m (network input, 0 = none), ``gt`` 1xHxW m (training target,
0 = none), ``K`` 3x3 float32. How the input/target pair is made depends on the source:

- ``synthetic:street``: rendered at the crop size with random KITTI-like intrinsics (random fx, principal point
  = a random crop of a larger KITTI-like image); input = simulated LiDAR, target = dense ground truth.
- ``synthetic:room``: input = a few hundred samples of the simulated Kinect depth (density as NYU's 500 points
  at 640x480, x0.5..x2) or, sometimes, the full Kinect map; target = dense ground truth.
- sources with ground truth (``kitti-dc``): input = sensor, target = ground truth, random crop.
- depth-camera sources (``rgbd``, ``7scenes``): input = sampled points of the sensor depth, target = the sensor
  depth.
- ``kitti-dc-gt``: input = the simulated line pattern, ``kitti-raw-accum``: target = the accumulated scans.
- sources without ground truth (``kitti-object``, ``bag``): self-supervised — a random 10..30% of the measured
  points is hidden from the input and becomes the target (data/holdout.py).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from depth_completion_ros.core.prefill import remove_outliers
from depth_completion_ros.data.errors import DataError
from depth_completion_ros.data.holdout import hide_points, sample_points
from depth_completion_ros.data.loaders import Sample, crop_sample, open_source

NYU_POINT_DENSITY = 500 / (640 * 480)
MAX_TARGET_DEPTH_M = 100.0   # KITTI ground truth ends around 85 m; far synthetic facades would dominate L2


def lidar_covered_gt(gt: np.ndarray, sparse: np.ndarray, column_window: int = 31) -> np.ndarray:
    """Ground truth restricted to where a LiDAR-based reference exists (as KITTI's semi-dense GT): below the
    top-most LiDAR return of the neighbouring columns, and nearer than MAX_TARGET_DEPTH_M."""
    from scipy.ndimage import minimum_filter1d

    height = gt.shape[0]
    measured = sparse > 0
    top = np.where(measured.any(axis=0), measured.argmax(axis=0), height)
    top = minimum_filter1d(top, column_window, mode='nearest')
    rows = np.arange(height)[:, None]
    return np.where((rows >= top[None]) & (gt < MAX_TARGET_DEPTH_M), gt, 0.0).astype(np.float32)


@dataclass
class SourceSpec:
    spec: str          # e.g. 'synthetic:street', 'kitti-object:/data/kitti_object'
    weight: float


def parse_mix(text: str) -> list[SourceSpec]:
    """``'synthetic:street=0.6,synthetic:room=0.2,kitti-object:/path=0.2'`` (weights default to 1).

    Specs may carry options with commas and '=' (``kitti-raw:DIR?frames=0-35,40=0.5``): a new spec starts only
    at a comma followed by ``<kind>:``, and a trailing ``=number`` is a weight unless it is the value of the
    spec's last option (``kitti-raw:DIR?frames=12`` has weight 1)."""
    from depth_completion_ros.data.loaders import KINDS

    starts = '|'.join(re.escape(kind) for kind in sorted(KINDS, key=len, reverse=True))
    specs = []
    for part in filter(None, (p.strip() for p in re.split(rf',(?=\s*(?:{starts}):)', text))):
        spec, sep, weight = part.rpartition('=')
        query = spec.partition('?')[2]
        if not sep or ('?' in spec and '=' not in query.rpartition('&')[2]) or not _is_number(weight):
            spec, weight = part, '1'
        specs.append(SourceSpec(spec, float(weight)))
    if not specs or any(s.weight < 0 for s in specs) or sum(s.weight for s in specs) <= 0:
        raise DataError(f'bad data mix {text!r}: write spec=weight,spec=weight (weights >= 0, not all 0)')
    return specs


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def sample_to_tensors(rgb: np.ndarray, sparse: np.ndarray, gt: np.ndarray, K: np.ndarray) -> dict[str, torch.Tensor]:
    return {
        'rgb': torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float(),
        'sparse': torch.from_numpy(np.ascontiguousarray(sparse, np.float32))[None],
        'gt': torch.from_numpy(np.ascontiguousarray(gt, np.float32))[None],
        'K': torch.from_numpy(np.asarray(K, np.float32)),
    }


class MixedDepthDataset(Dataset):
    """``length`` items; item ``i`` is a pure function of (seed, i), so runs and DDP ranks are reproducible."""

    def __init__(self, sources: list[SourceSpec], crop: tuple[int, int], length: int, seed: int = 0,
                 augment: bool = True, rgbd_intrinsics: tuple[float, float, float, float] | None = None,
                 rgbd_depth_scale: float | None = None) -> None:
        self.crop, self.length, self.seed, self.augment = crop, length, seed, augment
        self.specs = sources
        weights = np.array([s.weight for s in sources], np.float64)
        self.probabilities = weights / weights.sum()
        # Real sources are opened once (lazily per worker for bags would be nicer; they are small here).
        self.sources = [None if s.spec.startswith('synthetic:') else
                        self._open(s.spec, rgbd_intrinsics, rgbd_depth_scale) for s in sources]

    def _open(self, spec: str, intrinsics: tuple[float, float, float, float] | None,
              depth_scale: float | None) -> object:
        """The frame source of one spec (subclasses open other kinds of source, e.g. sequences)."""
        return open_source(spec, intrinsics=intrinsics, depth_scale=depth_scale)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        from depth_completion_ros.data.augment import augment

        rng = np.random.default_rng([self.seed, index])
        which = int(rng.choice(len(self.specs), p=self.probabilities))
        spec = self.specs[which].spec
        if spec.startswith('synthetic:'):
            item = self._synthetic(spec.partition(':')[2] or 'street', rng)
        else:
            item = self._real(self.sources[which], rng)
        return augment(item, rng) if self.augment else item

    # -------------------------------------------------------------------------------------------- synthetic
    def _synthetic(self, kind: str, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        from depth_completion_ros.data.synthetic import room_frame, street_frame

        height, width = self.crop
        scene_seed = int(rng.integers(0, 1_000_000))   # < SYNTHETIC_EVAL_SEED_OFFSET: disjoint from validation
        if kind == 'street':
            fx = 721.5377 * rng.uniform(0.5, 1.05)
            intrinsics = (fx, fx, width * rng.uniform(0.2, 0.8), height * rng.uniform(-0.6, 0.5))
            frame = street_frame(scene_seed, width=width, height=height, intrinsics=intrinsics)
            return sample_to_tensors(frame.rgb, frame.sparse, lidar_covered_gt(frame.gt_depth, frame.sparse),
                                     frame.camera.K)
        fx = 518.0 * rng.uniform(0.45, 1.0)
        intrinsics = (fx, fx * 1.002, width * rng.uniform(0.35, 0.65), height * rng.uniform(0.35, 0.65))
        frame = room_frame(scene_seed, width=width, height=height, intrinsics=intrinsics,
                           border=bool(rng.random() < 0.5))
        if rng.random() < 0.8:  # NYU protocol: a few hundred samples of the sensor depth
            n_points = max(8, int(NYU_POINT_DENSITY * rng.uniform(0.5, 2.0) * width * height))
            sparse = sample_points(frame.sparse, n_points, seed=int(rng.integers(1 << 31)))
        else:                   # ToF / Kinect use: the full sensor map with its holes
            sparse = frame.sparse
        return sample_to_tensors(frame.rgb, sparse, frame.gt_depth, frame.camera.K)

    # ------------------------------------------------------------------------------------------------- real
    def _random_crop(self, sample: Sample, rng: np.random.Generator) -> Sample:
        height, width = self.crop
        full_h, full_w = sample.rgb.shape[:2]
        if full_h < height or full_w < width:
            raise ValueError(f'{sample.name}: frame {full_w}x{full_h} is smaller than the crop {width}x{height}')
        # Keep crops where the sensor has data: start no higher than a quarter crop above the first measured row.
        rows = np.flatnonzero((sample.sparse > 0).any(axis=1))
        top = max(0, min(full_h - height, int(rows[0]) - height // 4)) if rows.size else 0
        y0 = int(rng.integers(top, full_h - height + 1))
        x0 = int(rng.integers(0, full_w - width + 1))
        return crop_sample(sample, y0, x0, height, width)

    def _real(self, source: object, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        sample = self._random_crop(source[int(rng.integers(len(source)))], rng)  # type: ignore[index]
        if getattr(source, 'depth_camera', False):   # input and reference are the same sensor map
            n_points = max(8, int(NYU_POINT_DENSITY * rng.uniform(0.5, 2.0) * self.crop[0] * self.crop[1]))
            sparse = sample_points(sample.sparse, n_points, seed=int(rng.integers(1 << 31)))
            return sample_to_tensors(sample.rgb, sparse, sample.sparse, sample.camera.K)
        if sample.gt is not None:
            return sample_to_tensors(sample.rgb, sample.sparse, sample.gt, sample.camera.K)
        visible, hidden = hide_points(sample.sparse, float(rng.uniform(0.1, 0.3)), seed=int(rng.integers(1 << 31)))
        # Hidden points that are parallax outliers (far surface seen through a near object by the LiDAR) are
        # unpredictable from the camera; drop them from the target so they do not dominate the L2 term.
        cleaned = remove_outliers(torch.from_numpy(sample.sparse)[None, None]).numpy()[0, 0]
        return sample_to_tensors(sample.rgb, visible, np.where(cleaned > 0, hidden, 0.0), sample.camera.K)
