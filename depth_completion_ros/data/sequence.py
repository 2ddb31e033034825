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

Ego-motion other than KISS-ICP (``?poses=``):

- ``poses=FILE`` (both kinds): given poses, one per line, world <- LiDAR as 12 numbers (the 3x4 matrix row by
  row, KITTI odometry's layout) for frame 0, 1, ... in order, or ``index`` + 12 numbers (index = the KITTI frame
  number, or the bag's pair position). Every target and neighbour needs its pose.
- ``poses=tf`` (bags): the bag's own odometry on ``/tf`` (e.g. odom -> base_link from wheel or visual odometry),
  chained with ``/tf_static`` up from the cloud's frame and interpolated at each cloud's stamp (linear
  translation, spherical rotation); a cloud outside the recorded ``/tf`` span is an error, not extrapolated.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from depth_completion_ros.core.conversions import stamp_to_ns
from depth_completion_ros.core.kitti import read_image
from depth_completion_ros.core.transforms import RigidTransform
from depth_completion_ros.data.errors import DataError
from depth_completion_ros.data.sample import Sample
from depth_completion_ros.data.spec import DataSpec, FrameSelection

SEQUENCE_KINDS = ('kitti-raw', 'bag')
POSE_SOURCES = ('kiss-icp', 'tf', 'FILE')
SEQUENCE_DATA_HELP = ("kitti-raw:DIR[?frames=0-29]: a KITTI raw drive with image_02/data, velodyne_points/data and "
                      "the day's calib_cam_to_cam.txt + calib_velo_to_cam.txt; bag:PATH[?frames=0-29]: a rosbag2 "
                      "with a rectified image (camera_info D all zero), camera_info, a LiDAR PointCloud2 topic and "
                      "camera <- LiDAR in /tf_static (as make-bag writes; frames = pair positions). Camera motion "
                      "comes from KISS-ICP odometry over the scans, turned into the camera frame with the "
                      "extrinsics, or from ?poses=FILE (world <- LiDAR, 12 numbers a line) or, for bags, "
                      "?poses=tf (the bag's /tf odometry). Only frames whose neighbours are all selected are "
                      "trained on.")


def read_pose_file(path: str | Path) -> dict[int, np.ndarray]:
    """``{index: 4x4 world <- LiDAR}`` from a text file of 12 (3x4 row-major) or 13 (index first) numbers a line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f'poses={path}: no such file; pass a text file of world <- LiDAR poses, 12 numbers a line')
    poses: dict[int, np.ndarray] = {}
    for line_number, line in enumerate(path.read_text().splitlines(), start=1):
        values = line.split('#', 1)[0].split()
        if not values:
            continue
        try:
            numbers = [float(v) for v in values]
        except ValueError:
            raise DataError(f'{path}:{line_number}: not numbers; a pose is 12 numbers (3x4 row by row), '
                            'optionally after its frame index') from None
        if len(numbers) not in (12, 13):
            raise DataError(f'{path}:{line_number}: {len(numbers)} numbers; a pose is 12 (3x4 row by row), '
                            'optionally after its frame index')
        index = int(numbers[0]) if len(numbers) == 13 else len(poses)
        matrix = np.eye(4)
        matrix[:3] = np.asarray(numbers[-12:]).reshape(3, 4)
        poses[index] = matrix
    if not poses:
        raise DataError(f'{path}: no pose in the file')
    return poses


def _need_poses(poses: dict[int, np.ndarray], indices: set[int], what: str) -> None:
    missing = sorted(indices - set(poses))
    if missing:
        raise DataError(f'poses: no pose for {what} {missing[0]} (and {len(missing) - 1} more); the file must cover '
                        'every target frame and its neighbours')


def tf_trajectory_poses(path: str | Path, child_frame: str, stamps_ns: list[int]) -> np.ndarray:
    """world <- ``child_frame`` at each stamp (N,4,4) from a bag's /tf (interpolated) and /tf_static, walking
    from the child up to the root of its tree (module docstring, ``poses=tf``)."""
    from rosbags.highlevel import AnyReader
    from scipy.spatial.transform import Rotation, Slerp

    static: dict[str, tuple[str, np.ndarray]] = {}                 # child -> (parent, parent <- child)
    dynamic: dict[str, tuple[str, list[int], list[np.ndarray]]] = {}
    with AnyReader([Path(path)]) as reader:                          # the loaders' reader (data/ stays ROS-free)
        connections = [c for c in reader.connections if c.topic in ('/tf', '/tf_static')]
        for connection, _time, raw in reader.messages(connections=connections):
            for tf in reader.deserialize(raw, connection.msgtype).transforms:
                matrix = RigidTransform.from_transform_msg(tf).matrix
                parent, child = tf.header.frame_id.lstrip('/'), tf.child_frame_id.lstrip('/')
                if connection.topic == '/tf_static':
                    static[child] = (parent, matrix)
                else:
                    stamp = stamp_to_ns(tf.header.stamp)
                    entry = dynamic.setdefault(child, (parent, [], []))
                    entry[1].append(stamp)
                    entry[2].append(matrix)
    if not dynamic:
        raise DataError(f'bag:{path}: poses=tf needs odometry on /tf (e.g. odom -> base_link); the bag has none')
    stamps = np.asarray(stamps_ns, np.int64)
    result = np.repeat(np.eye(4)[None], len(stamps), axis=0)
    frame, seen = child_frame.lstrip('/'), set()
    moved = False
    while frame in static or frame in dynamic:
        if frame in seen:
            raise DataError(f'bag:{path}: /tf has a loop at {frame!r}')
        seen.add(frame)
        if frame in dynamic:
            parent, times, matrices = dynamic[frame]
            # sorted, one pose per stamp (a stamp repeated, e.g. by two publishers, keeps its last pose)
            times_arr, last = np.unique(np.asarray(times, np.int64)[::-1], return_index=True)
            stack = np.asarray(matrices)[::-1][last]
            if stamps.min() < times_arr[0] or stamps.max() > times_arr[-1]:
                raise DataError(f'bag:{path}: /tf {parent} -> {frame} spans {times_arr[0]}..{times_arr[-1]} ns but '
                                f'clouds run {stamps.min()}..{stamps.max()} ns; record the odometry for the whole bag')
            seconds = (times_arr - times_arr[0]) / 1e9
            at = (stamps - times_arr[0]) / 1e9
            rotations = Slerp(seconds, Rotation.from_matrix(stack[:, :3, :3]))(at).as_matrix() \
                if len(seconds) > 1 else np.repeat(stack[:1, :3, :3], len(at), axis=0)
            translations = np.stack([np.interp(at, seconds, stack[:, axis, 3]) for axis in range(3)], axis=-1)
            step = np.repeat(np.eye(4)[None], len(stamps), axis=0)
            step[:, :3, :3], step[:, :3, 3] = rotations, translations
            moved = True
        else:
            parent, matrix = static[frame]
            step = np.broadcast_to(matrix, (len(stamps), 4, 4))
        result = step @ result                                     # parent <- ... <- child
        frame = parent
    if not moved:
        raise DataError(f'bag:{path}: no /tf odometry above {child_frame!r} (its frames: {sorted(seen)})')
    return result


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
                 progress: bool = True, poses: dict[int, np.ndarray] | None = None) -> None:
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
        self.given_poses = poses                 # world <- LiDAR by frame number; None: KISS-ICP
        if poses is not None:
            numbers = {int(self.odometry.numbers[i]) for target, sources in self.targets for i in (target, *sources)}
            _need_poses(poses, numbers, 'frame')
        else:
            # Now, in this process (as BagSequence does): DataLoader workers fork after this and would otherwise
            # each run KISS-ICP over the span, and race on its cache file.
            self.odometry.poses()

    def __len__(self) -> int:
        return len(self.targets)

    def frame_numbers(self) -> list[int]:
        return [int(self.odometry.numbers[position]) for position, _ in self.targets]

    def __getitem__(self, index: int) -> SequenceFrame:
        position, sources = self.targets[index]
        sample = self.drive[position]
        assert sample.T_cam_points is not None
        if self.given_poses is not None:
            number = {i: int(self.odometry.numbers[i]) for i in (position, *sources)}
            motions = [relative_camera_pose(self.given_poses[number[position]], self.given_poses[number[j]],
                                            sample.T_cam_points) for j in sources]
        else:
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
                 progress: bool = True, poses: str | dict[int, np.ndarray] = 'kiss-icp') -> None:
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
        if isinstance(poses, dict):
            _need_poses(poses, {i for target, sources in self.targets for i in (target, *sources)}, 'pair')
            self.poses = np.stack([poses.get(i, np.eye(4)) for i in span])
        elif poses == 'tf':
            stamps_frames = [self.bag.depth_stamp_and_frame(i) for i in span]
            self.poses = tf_trajectory_poses(path, stamps_frames[0][1], [stamp for stamp, _ in stamps_frames])
        else:
            self.poses = estimate_poses([self.bag.lidar_scan(i)[0] for i in span], progress=progress)

    def __len__(self) -> int:
        return len(self.targets)

    def frame_numbers(self) -> list[int]:
        return [position for position, _ in self.targets]

    def __getitem__(self, index: int) -> SequenceFrame:
        position, sources = self.targets[index]
        sample = self.bag[position]                  # a point-cloud bag: carries camera <- LiDAR (T_cam_points)
        sample.index = position
        T_cam_lidar = sample.T_cam_points
        assert T_cam_lidar is not None
        motions = [relative_camera_pose(self.poses[position - self.first], self.poses[j - self.first], T_cam_lidar)
                   for j in sources]
        images = [self.bag.image(j) for j in sources]  # the neighbours' pixels only: no cloud to decode
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
    pose_source = parsed.take('poses') or 'kiss-icp'
    parsed.check_used()
    if pose_source == 'tf' and parsed.kind != 'bag':
        raise DataError(f'{spec}: poses=tf reads a bag\'s /tf; a {parsed.kind} folder has none (use poses=FILE)')
    poses = pose_source if pose_source in ('kiss-icp', 'tf') else read_pose_file(pose_source)
    if parsed.kind == 'bag':
        if not Path(parsed.location).exists():
            raise DataError(f'bag: {parsed.location} does not exist; pass a rosbag2 folder (with metadata.yaml)')
        return BagSequence(parsed.location, frames, neighbours=neighbours, progress=progress, poses=poses)
    return KittiRawSequence(parsed.location, frames, neighbours=neighbours, progress=progress,
                            poses=None if isinstance(poses, str) else poses)
