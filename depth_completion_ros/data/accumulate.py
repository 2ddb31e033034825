"""Denser LiDAR targets from a sequence: ego-motion by KISS-ICP (the maintained ``kiss-icp`` package), the
neighbouring scans moved into each frame, and a consistency check against the frame's own scan that drops
occluded and moving points (the KITTI depth-completion ground truth was built from 11 scans the same way, with
stereo as the check; here the frame's own scan is the check).

Public API::

    estimate_poses(scans) -> (N, 4, 4)                    world <- scan, first scan = identity (KISS-ICP)
    accumulate_depth(index, scans, poses, T_cam_lidar, camera, window=5, ...) -> HxW target (m, 0 = none)
    KittiRawAccumulated(root, frames, window)             the ``kitti-raw-accum:DIR`` source (cached)

Consistency check (per pixel, vectorised): a neighbour's return is kept only if some return of the frame's
own scan within a ``support_px`` window around it (rows x columns; it must bridge the gap between two rings)
agrees with it within ``tolerance`` (relative). Farther than every own return nearby = seen through the
foreground from the other viewpoint (occluded here); nearer = something that is not there any more (a moving
object); no own return nearby = unverifiable. Own returns are always kept; other pixels take the median of the
kept neighbour returns. docs/DATA.md reports the measured quality.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from depth_completion_ros.core.camera import CameraModel
from depth_completion_ros.core.kitti import read_velodyne
from depth_completion_ros.core.prefill import remove_outliers
from depth_completion_ros.core.transforms import RigidTransform
from depth_completion_ros.data.errors import DataError
from depth_completion_ros.data.sample import Sample
from depth_completion_ros.data.sparsity import scan_depth
from depth_completion_ros.data.spec import FrameSelection

KISS_ICP_VOXEL_M = 1.0     # KISS-ICP's own default for 100 m range (max_range / 100)
KISS_ICP_MIN_RANGE_M = 3.0  # drops the returns from the ego car's roof / mirrors
CACHE_VERSION = 1


def cache_dir() -> Path:
    """``$DEPTH_COMPLETION_CACHE`` or ``~/.cache/depth_completion_ros`` (the data folders may be read-only)."""
    root = os.environ.get('DEPTH_COMPLETION_CACHE') or Path.home() / '.cache' / 'depth_completion_ros'
    return Path(root)


def estimate_poses(scans: Sequence[np.ndarray], threads: int = 2, progress: bool = False) -> np.ndarray:
    """World <- scan poses (N x 4 x 4, scan 0 = identity) of consecutive scans by KISS-ICP.

    Scans are used as recorded (no deskew: KITTI stores no per-point times and the accumulated points are the
    raw ones too)."""
    from kiss_icp.config import KISSConfig
    from kiss_icp.config.config import DataConfig, MappingConfig, RegistrationConfig
    from kiss_icp.kiss_icp import KissICP

    config = KISSConfig(data=DataConfig(max_range=100.0, min_range=KISS_ICP_MIN_RANGE_M, deskew=False),
                        mapping=MappingConfig(voxel_size=KISS_ICP_VOXEL_M),
                        registration=RegistrationConfig(max_num_threads=threads))
    odometry = KissICP(config)
    poses = np.empty((len(scans), 4, 4))
    iterator = scans
    if progress:
        from tqdm import tqdm

        iterator = tqdm(scans, desc='KISS-ICP odometry', unit='scan')
    for i, scan in enumerate(iterator):
        odometry.register_frame(np.ascontiguousarray(np.asarray(scan)[:, :3], np.float64), np.array([]))
        poses[i] = odometry.last_pose
    return poses


def _agreement(depth: np.ndarray, own: np.ndarray, support_px: tuple[int, int]) -> np.ndarray:
    """Per pixel of ``depth`` that has a value, the smallest relative difference to an own return within the
    ``support_px`` window (inf where the window holds none; 0-depth pixels get inf). Vectorised over the
    measured pixels, one pass per window offset."""
    rows, cols = support_px
    padded = np.pad(own, ((rows // 2, rows // 2), (cols // 2, cols // 2)))
    r, c = np.nonzero(depth > 0)
    values = depth[r, c]
    best = np.full(values.shape, np.inf, np.float32)
    for dy in range(rows):
        for dx in range(cols):
            shifted = padded[r + dy, c + dx]
            with np.errstate(divide='ignore', invalid='ignore'):
                np.minimum(best, np.where(shifted > 0, np.abs(values - shifted) / shifted, np.inf), out=best)
    out = np.full(depth.shape, np.inf, np.float32)
    out[r, c] = best
    return out


def _median_of_returns(stack: np.ndarray) -> np.ndarray:
    """Per pixel, the median of the non-zero values of a KxHxW stack (0 where none)."""
    merged = np.zeros(stack.shape[1:], np.float32)
    counts = (stack > 0).sum(axis=0)
    has = counts > 0
    if not has.any():
        return merged
    values = np.sort(np.where(stack[:, has] > 0, stack[:, has], np.inf), axis=0)   # returns first, inf after
    n = counts[has]
    columns = np.arange(n.size)
    merged[has] = 0.5 * (values[(n - 1) // 2, columns] + values[n // 2, columns])
    return merged


def accumulate_depth(index: int, scans: Sequence[np.ndarray], poses: np.ndarray, T_cam_lidar: RigidTransform,
                     camera: CameraModel, window: int = 5, neighbours: Sequence[int] | None = None,
                     own_depth: np.ndarray | None = None, tolerance: float = 0.03,
                     support_px: tuple[int, int] = (9, 5), check: bool = True,
                     remove_parallax: bool = True) -> np.ndarray:
    """Target depth (HxW float32 m, 0 = none) of frame ``index``: its own scan plus the consistent returns of
    the scans ``index ± 1 .. window`` (or the given ``neighbours`` positions). ``own_depth`` replaces the
    frame's own projected scan (e.g. with held-out points removed); ``check=False`` keeps every neighbour
    return (plain accumulation, for comparison); ``remove_parallax`` applies ``core.prefill.remove_outliers``
    to the result."""
    own = scan_depth(scans[index], T_cam_lidar, camera) if own_depth is None else np.asarray(own_depth, np.float32)
    if neighbours is None:
        neighbours = [j for j in range(index - window, index + window + 1) if j != index and 0 <= j < len(scans)]
    world_from_here = poses[index]
    stack = np.zeros((len(neighbours), *own.shape), np.float32)
    for k, j in enumerate(neighbours):            # a handful of scans; each projection is vectorised
        here_from_there = RigidTransform.from_matrix(np.linalg.solve(world_from_here, poses[j]))
        depth = scan_depth(scans[j], T_cam_lidar @ here_from_there, camera)
        if check:
            depth = np.where((depth > 0) & (_agreement(depth, own, support_px) <= tolerance), depth, 0.0)
        stack[k] = depth
    merged = _median_of_returns(stack)
    target = np.where(own > 0, own, merged).astype(np.float32)
    if remove_parallax:
        # Far points seen through a near object (the LiDAR sits behind and above the camera) agree with the own
        # scan's equally far points, so the check above keeps them; LRRU's outlier removal drops them.
        target = remove_outliers(torch.from_numpy(target)[None, None]).numpy()[0, 0]
    return target


class KittiRawAccumulated:
    """``kitti-raw-accum:DIR[?frames=..&window=5]``: KITTI raw frames whose ``gt`` is the accumulated target.

    Neighbours are the frames within ``window`` frame numbers (±5 at 10 Hz = KITTI's 11 scans; the every-4th
    frames 40..76 get the two within ±4). Odometry runs once over the consecutive span of frames the selection
    needs, in frame-number order; poses and targets are cached under :func:`cache_dir`, so training does not
    rerun it."""

    def __init__(self, root: str | Path, frames: FrameSelection | None = None, window: int = 5,
                 progress: bool = True) -> None:
        from depth_completion_ros.data.kitti_raw import KittiRawDrive

        self.drive = KittiRawDrive(root)
        if self.drive.multiple_drives:
            raise DataError(f'kitti-raw-accum: {root} holds several drives; pass one drive folder')
        if window < 1:
            raise DataError(f'kitti-raw-accum: window={window}; use 1 or more (frames on each side)')
        self.window = window
        self.numbers = np.array(self.drive.frame_numbers())
        selection = frames or FrameSelection()
        self.positions = [i for i, n in enumerate(self.numbers) if int(n) in selection]
        if not self.positions:
            raise DataError(f'kitti-raw-accum: the frame selection leaves no frame of {root}')
        needed = [j for i in self.positions for j in (i, *self.neighbours(i))]
        self.span = range(min(needed), max(needed) + 1)          # positions the odometry runs over
        scans = [self.drive.items[i][1] for i in self.span]
        key = hashlib.sha1(repr((CACHE_VERSION, str(Path(root).resolve()), KISS_ICP_VOXEL_M, KISS_ICP_MIN_RANGE_M,
                                 [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in scans])).encode())
        self.cache = cache_dir() / 'kitti_raw_accum' / key.hexdigest()[:16]
        self._poses: np.ndarray | None = None
        self.progress = progress

    def __len__(self) -> int:
        return len(self.positions)

    def frame_numbers(self) -> list[int]:
        return [int(self.numbers[i]) for i in self.positions]

    def poses(self) -> np.ndarray:
        """World <- scan of the positions in ``self.span`` (cached)."""
        if self._poses is None:
            path = self.cache / 'poses.npy'
            if path.is_file():
                self._poses = np.load(path)
            else:
                scans = [read_velodyne(self.drive.items[i][1]) for i in self.span]
                self._poses = estimate_poses(scans, progress=self.progress)
                self.cache.mkdir(parents=True, exist_ok=True)
                np.save(path, self._poses)
        return self._poses

    def neighbours(self, position: int) -> list[int]:
        number = int(self.numbers[position])
        return [j for j in range(len(self.numbers))
                if j != position and abs(int(self.numbers[j]) - number) <= self.window]

    def __getitem__(self, index: int) -> Sample:
        position = self.positions[index]
        sample = self.drive[position]
        path = self.cache / f'target_w{self.window}_{sample.name}.npz'
        if path.is_file():
            with np.load(path) as stored:
                sample.gt = stored['target_cm'].astype(np.float32) / np.float32(100.0)
            return sample
        neighbours = self.neighbours(position)
        scans = [read_velodyne(self.drive.items[j][1]) for j in neighbours]
        poses = self.poses()[[p - self.span.start for p in (position, *neighbours)]]
        target = accumulate_depth(0, [sample.points, *scans], poses, sample.T_cam_points, sample.camera,
                                  neighbours=list(range(1, len(scans) + 1)), own_depth=sample.sparse)
        # Centimetres in uint16 (up to 655 m): 5 mm rounding, far below the LiDAR's noise.
        target_cm = np.round(target * 100).astype(np.uint16)
        self.cache.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, target_cm=target_cm)
        sample.gt = target_cm.astype(np.float32) / np.float32(100.0)
        return sample
