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

SEQUENCE_KINDS = ('kitti-raw',)
SEQUENCE_DATA_HELP = ("kitti-raw:DIR[?frames=0-29]: a KITTI raw drive with image_02/data, velodyne_points/data and "
                      "the day's calib_cam_to_cam.txt + calib_velo_to_cam.txt; camera motion from KISS-ICP odometry "
                      "over the scans (cached), turned into the camera frame with the calibration. Only frames whose "
                      "neighbours are all selected are trained on. Bags are not supported yet.")


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


def open_sequence(spec: str, neighbours: int = 1, progress: bool = True) -> KittiRawSequence:
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
    return KittiRawSequence(parsed.location, frames, neighbours=neighbours, progress=progress)
