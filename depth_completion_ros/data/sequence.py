"""Consecutive frames with camera motion, for photometric self-supervision (``train --self-supervised``).

A :class:`SequenceFrame` is a target frame (:class:`Sample`, with its scan), the full images of its neighbours
(frame numbers ``t-1, t+1`` and, with ``neighbours=k``, up to ``t±k``) and, per neighbour, the camera motion
``T_source_target`` that maps target-camera points into that neighbour's camera.

Sources (what each needs):

- ``kitti-raw:DIR[?frames=..]``: a KITTI raw drive (``image_02/data``, ``velodyne_points/data``, the day's
  calibration beside it). Ego-motion is KISS-ICP odometry over the scans (``data.accumulate``, cached), in the
  LiDAR frame; the drive's ``T_cam_velo`` turns it into camera motion (:func:`relative_camera_pose`). Only frames
  whose neighbours are all in the selection are targets, so a neighbour is never a frame outside it (e.g. a
  validation frame).
- ``bag:PATH[?frames=..]``: a rosbag2 with a rectified camera image (camera_info D all zero), its camera_info
  and a LiDAR PointCloud2 topic with camera <- LiDAR in /tf_static (what ``make-bag`` writes). Ego-motion is
  KISS-ICP over the bag's clouds, converted the same way; ``frames`` selects image/cloud pairs by position.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from depth_completion_ros.core.kitti import read_image
from depth_completion_ros.core.transforms import RigidTransform
from depth_completion_ros.data.errors import DataError
from depth_completion_ros.data.sample import Sample
from depth_completion_ros.data.spec import DataSpec, FrameSelection

SEQUENCE_KINDS = ('kitti-raw', 'bag')
SEQUENCE_DATA_HELP = ("kitti-raw:DIR[?frames=0-29]: a KITTI raw drive with image_02/data, velodyne_points/data and "
                      "the day's calib_cam_to_cam.txt + calib_velo_to_cam.txt; bag:PATH[?frames=0-29]: a rosbag2 "
                      "with a rectified image (camera_info D all zero), camera_info, a LiDAR PointCloud2 topic and "
                      "camera <- LiDAR in /tf_static (as make-bag writes; frames = pair positions). Camera motion "
                      "comes from KISS-ICP odometry over the scans, turned into the camera frame with the "
                      "extrinsics. Only frames whose neighbours are all selected are trained on.")


def relative_camera_pose(world_from_lidar_target: np.ndarray, world_from_lidar_source: np.ndarray,
                         T_cam_lidar: RigidTransform) -> RigidTransform:
    """``T_source_target`` in the camera frame: maps target-camera points into the source camera.

    LiDAR odometry gives each scan's pose in the LiDAR frame; the camera moves with the rigid rig, so
    ``T_cs_ct = T_cam_lidar · (W<-L_s)^-1 · (W<-L_t) · T_cam_lidar^-1``."""
    lidar_source_from_target = np.linalg.solve(np.asarray(world_from_lidar_source, np.float64),
                                               np.asarray(world_from_lidar_target, np.float64))
    return T_cam_lidar @ RigidTransform.from_matrix(lidar_source_from_target) @ T_cam_lidar.inverse()


@dataclass
class SequenceFrame:
    sample: Sample                         # the target frame (full size, with its scan)
    neighbours: list[np.ndarray]           # HxWx3 uint8 full images, in the order of ``offsets``
    T_source_target: list[RigidTransform]  # per neighbour: target camera -> that neighbour's camera
    offsets: list[int]                     # frame-number offsets of the neighbours (-1, 1, -2, 2, ...)


class KittiRawSequence:
    """Targets of a KITTI raw drive with their neighbours and KISS-ICP camera motion (module docstring)."""

    def __init__(self, root: str | Path, frames: FrameSelection | None = None, neighbours: int = 1,
                 progress: bool = True) -> None:
        from depth_completion_ros.data.accumulate import KittiRawAccumulated

        if neighbours < 1:
            raise DataError(f'neighbours={neighbours}: use 1 or more frames on each side')
        # The accumulated-target source already runs and caches KISS-ICP over the span the frames need.
        self.odometry = KittiRawAccumulated(root, frames, window=neighbours, progress=progress)
        self.drive = self.odometry.drive
        selection = frames or FrameSelection()
        by_number = {int(n): i for i, n in enumerate(self.odometry.numbers) if int(n) in selection}
        self.offsets = [sign * k for k in range(1, neighbours + 1) for sign in (-1, 1)]
        self.targets = [(position, [by_number[number + o] for o in self.offsets])
                        for number, position in sorted(by_number.items())
                        if all(number + o in by_number for o in self.offsets)]
        if not self.targets:
            raise DataError(f'kitti-raw:{root}: no selected frame has all its neighbours (frame numbers '
                            f'{self.offsets}) selected too; select consecutive frames, e.g. ?frames=0-29')

    def __len__(self) -> int:
        return len(self.targets)

    def frame_numbers(self) -> list[int]:
        return [int(self.odometry.numbers[position]) for position, _ in self.targets]

    def __getitem__(self, index: int) -> SequenceFrame:
        position, sources = self.targets[index]
        sample = self.drive[position]
        assert sample.T_cam_points is not None
        poses, start = self.odometry.poses(), self.odometry.span.start
        motions = [relative_camera_pose(poses[position - start], poses[j - start], sample.T_cam_points)
                   for j in sources]
        images = [read_image(self.drive.items[j][0]) for j in sources]
        return SequenceFrame(sample=sample, neighbours=images, T_source_target=motions, offsets=list(self.offsets))


class BagSequence:
    """Targets of a LiDAR + camera rosbag2 with their neighbours (pair positions ±k) and KISS-ICP camera motion
    over the bag's clouds (module docstring). Odometry runs once when the source opens (not cached: a bag can
    change under the same name)."""

    def __init__(self, path: str | Path, frames: FrameSelection | None = None, neighbours: int = 1,
                 progress: bool = True) -> None:
        from depth_completion_ros.data.accumulate import estimate_poses
        from depth_completion_ros.data.loaders import RosbagSource

        if neighbours < 1:
            raise DataError(f'neighbours={neighbours}: use 1 or more frames on each side')
        self.bag = RosbagSource(path)
        if self.bag.points_topic is None:
            raise DataError(f'bag:{path}: --self-supervised needs a PointCloud2 topic for the odometry (this bag has '
                            f'a depth image)')
        if self.bag.camera.has_distortion:
            raise DataError(f'bag:{path}: the camera_info has distortion D; --self-supervised warps rectified '
                            'images (record image_rect with its camera_info)')
        selection = frames or FrameSelection()
        chosen = [i for i in range(len(self.bag)) if i in selection]
        self.offsets = [sign * k for k in range(1, neighbours + 1) for sign in (-1, 1)]
        self.targets = [(i, [i + o for o in self.offsets]) for i in chosen
                        if all(i + o in selection and 0 <= i + o < len(self.bag) for o in self.offsets)]
        if not self.targets:
            raise DataError(f'bag:{path}: no selected frame has all its neighbours ({self.offsets}) selected too')
        self.first = min(chosen)
        span = range(self.first, max(chosen) + 1)   # consecutive clouds: odometry needs every step between
        self.poses = estimate_poses([self.bag.lidar_scan(i)[0] for i in span], progress=progress)

    def __len__(self) -> int:
        return len(self.targets)

    def frame_numbers(self) -> list[int]:
        return [position for position, _ in self.targets]

    def __getitem__(self, index: int) -> SequenceFrame:
        position, sources = self.targets[index]
        _, T_cam_lidar = self.bag.lidar_scan(position)
        sample = self.bag[position]
        sample.T_cam_points, sample.index = T_cam_lidar, position
        motions = [relative_camera_pose(self.poses[position - self.first], self.poses[j - self.first], T_cam_lidar)
                   for j in sources]
        images = [self.bag[j].rgb for j in sources]
        return SequenceFrame(sample=sample, neighbours=images, T_source_target=motions, offsets=list(self.offsets))


def open_sequence(spec: str, neighbours: int = 1, progress: bool = True) -> KittiRawSequence | BagSequence:
    """A sequence source from a ``--data`` spec (kinds in :data:`SEQUENCE_KINDS`); :class:`DataError` names
    what the other kinds lack."""
    parsed = DataSpec.parse(spec)
    if parsed.kind not in SEQUENCE_KINDS:
        raise DataError(f'{spec}: --self-supervised needs consecutive frames with ego-motion; supported: '
                        f'{SEQUENCE_DATA_HELP}')
    if not parsed.location:
        raise DataError(f'data spec {spec!r}: no location; write {parsed.kind}:<folder>')
    frames = FrameSelection.parse(parsed.take('frames'))
    parsed.check_used()
    if parsed.kind == 'bag':
        if not Path(parsed.location).exists():
            raise DataError(f'bag: {parsed.location} does not exist; pass a rosbag2 folder (with metadata.yaml)')
        return BagSequence(parsed.location, frames, neighbours=neighbours, progress=progress)
    return KittiRawSequence(parsed.location, frames, neighbours=neighbours, progress=progress)
