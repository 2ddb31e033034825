"""``depth-completion make-bag --from <kind>[:<dir>] --out <bag>``: a rosbag2 of a camera + LiDAR rig, or of an
RGB-D (Kinect-style) camera, from the synthetic generator or any loader of :data:`MAKE_BAG_KINDS` (KITTI
object, raw and depth completion, 7-Scenes, RGB-D folders).

Topics: ``/camera/image_raw`` (rgb8, or ``--image-encoding`` yuv422/uyvy/yuyv/bayer_*8; jpeg/png go to
``/camera/image_raw/compressed`` as sensor_msgs/CompressedImage), ``/camera/camera_info``; for LiDAR sources
``/lidar/points`` (x, y, z, intensity float32) and ``/tf_static`` (camera <- lidar, recorded with a
transient-local offered QoS as ``ros2 bag record`` stores it); for depth cameras (``rgbd:``, ``7scenes:``)
``/camera/depth/image_raw``
(16UC1 mm, registered to the colour image) and ``/camera/depth/camera_info``; for synthetic and KITTI-DC
bags ``/camera/depth_gt`` (32FC1 m, NaN = no ground truth) for scoring. LiDAR extrinsics are also stored as bag
metadata and as a node parameter file ``<bag>/depth_completion_params.yaml`` (for installs without tf2_ros).

One static transform must hold for the whole bag. The sources do not quite give that (KITTI frames come from
different drives and calibrations; the synthetic camera pitches with the suspension, the LiDAR does not), so
each frame's points are expressed in the *first* frame's LiDAR frame: p' = T0^-1 T_i p. The transform is then
exact for every frame and the camera sees exactly what the source says.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from depth_completion_ros.core.camera import CameraModel
from depth_completion_ros.core.transforms import RigidTransform
from depth_completion_ros.data.errors import DataError
from depth_completion_ros.data.sample import Sample
from depth_completion_ros.data.spec import DataSpec, kinds_help, kinds_table
from depth_completion_ros.ros import bagio
from depth_completion_ros.tools.common import CliError, depth_scale_warning, print_written
from depth_completion_ros.tools.output_dir import OutputDir, check_output_dir

BAG_START_NS = 1_700_000_000 * 1_000_000_000  # a plausible epoch stamp (never 0: zero stamps are rejected)
CAMERA_FRAME = 'camera_optical_frame'
LIDAR_FRAME = 'lidar'


@dataclass
class BagFrame:
    rgb: np.ndarray               # HxWx3 uint8
    camera: CameraModel
    points: np.ndarray | None     # Nx4 float32 x, y, z, intensity in the sensor frame (LiDAR sources)
    T_cam_lidar: RigidTransform | None
    gt_depth: np.ndarray | None   # HxW float32 m, 0 = none
    depth: np.ndarray | None = None  # HxW float32 m, 0 = none: a registered depth camera (rgbd sources)


# The data kinds make-bag writes (data.spec.DATA_KINDS is the table): every loader with a camera and a depth
# sensor; kitti-raw-accum (its targets need kiss-icp) and bag (already a bag) are left out.
MAKE_BAG_KINDS = ('synthetic', 'kitti-dc', 'kitti-dc-gt', 'kitti-object', 'kitti-raw', '7scenes', 'rgbd')
MAKE_BAG_SYNTAX = {'synthetic': 'synthetic'}   # one generator here: the street sequence, written without a location

IMAGE_ENCODINGS = ('rgb8', 'yuv422', 'uyvy', 'yuyv', 'yuv422_yuy2', 'bayer_rggb8', 'bayer_bggr8', 'bayer_gbrg8',
                   'bayer_grbg8', 'jpeg', 'png')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--from', dest='source', default='synthetic', metavar='KIND[:DIR][?frames=...]',
                        help=f'what to write (data kinds below): {kinds_help(MAKE_BAG_KINDS, MAKE_BAG_SYNTAX)}')
    parser.epilog = 'data kinds (--from):\n' + kinds_table(MAKE_BAG_KINDS, MAKE_BAG_SYNTAX)
    parser.add_argument('--intrinsics', type=float, nargs=4, default=None, metavar=('FX', 'FY', 'CX', 'CY'),
                        help='rgbd: colour camera intrinsics (default: <dir>/intrinsics.json)')
    parser.add_argument('--depth-scale', type=float, default=None,
                        help='rgbd: stored depth units per metre (default: intrinsics.json or 1000 = mm)')
    parser.add_argument('--image-encoding', default='rgb8', choices=IMAGE_ENCODINGS,
                        help='how the camera image is stored: a raw encoding, or jpeg/png as CompressedImage on '
                             '<image topic>/compressed (run the node with image_transport:=compressed)')
    parser.add_argument('--out', required=True,
                        help='output bag folder: a new one, or a previous make-bag output (replaced on success)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace --out even when it holds files make-bag did not write')
    parser.add_argument('--frames', type=int, default=20,
                        help='synthetic: number of frames; other kinds: at most this many')
    parser.add_argument('--rate', type=float, default=10.0, help='frame rate of the bag (Hz)')
    parser.add_argument('--width', type=int, default=1242, help='synthetic image width')
    parser.add_argument('--height', type=int, default=375, help='synthetic image height')
    parser.add_argument('--seed', type=int, default=7, help='synthetic scene seed')
    parser.add_argument('--cameras', type=int, default=1,
                        help='cameras around the one LiDAR: synthetic 1-4 (cam0..cam3, own intrinsics and '
                             'extrinsics), kitti-raw 2 (image_02 + image_03 where the drive has both); >1 writes '
                             '/<camera>/image_raw, /<camera>/camera_info and the node\'s cameras parameter')
    parser.add_argument('--lidar-offset-ms', type=float, default=3.0,
                        help='LiDAR stamp offset from the camera stamp (exercises approximate sync)')


def synthetic_frames(n_frames: int, width: int, height: int, seed: int, rate_hz: float) -> Iterator[BagFrame]:
    from depth_completion_ros.data.synthetic import street_sequence

    for frame in street_sequence(seed, n_frames, width=width, height=height, rate_hz=rate_hz):
        assert frame.points is not None and frame.T_cam_lidar is not None
        yield BagFrame(frame.rgb, frame.camera, frame.points, frame.T_cam_lidar, frame.gt_depth)


def synthetic_rig_frames(n_frames: int, n_cameras: int, width: int, height: int, seed: int,
                         rate_hz: float) -> Iterator[list[BagFrame]]:
    from depth_completion_ros.data.synthetic import street_rig_sequence

    for views in street_rig_sequence(seed, n_frames, n_cameras, width=width, height=height, rate_hz=rate_hz):
        yield [BagFrame(v.rgb, v.camera, v.points, v.T_cam_lidar, v.gt_depth) for v in views]


def kitti_raw_rig_frames(spec: DataSpec, max_frames: int) -> Iterator[list[BagFrame]]:
    """KITTI raw's two colour cameras (image_02, image_03) with the one scan of each frame."""
    from depth_completion_ros.data.kitti_raw import KittiRawDrive
    from depth_completion_ros.data.spec import FrameSelection

    selection = FrameSelection.parse(spec.take('frames'))
    spec.check_used()
    path = spec.location
    left, right = (KittiRawDrive(path, selection, camera) for camera in ('02', '03'))
    right_position: dict[int, int] = {}
    for j, number in enumerate(right.frame_numbers()):
        right_position.setdefault(number, j)                         # the first, as list.index gave
    pairs = [(i, right_position[n]) for i, n in enumerate(left.frame_numbers()) if n in right_position]
    if not pairs:
        raise DataError(f'kitti-raw: no frame of {path} has both image_02 and image_03')
    for i, j in pairs[:max_frames]:
        views = [left[i], right[j]]
        yield [BagFrame(s.rgb, s.camera, s.points, s.T_cam_points, s.gt) for s in views]


RIG_KINDS = {'synthetic': 4, 'kitti-raw': 2}   # kinds with several cameras: the most they have


def source_frames(source: Sequence[Sample], max_frames: int, depth_camera: bool) -> Iterator[BagFrame]:
    """Bag frames of any loader's samples: a LiDAR scan with its transform as points; a depth camera's map as
    the registered depth image; a projected LiDAR depth image without its scan (KITTI-DC) as points again, its
    pixels back-projected in the camera frame (identity extrinsics), so the node sees the same measurements."""
    from depth_completion_ros.core.projection import backproject

    for index in range(min(len(source), max_frames)):
        sample = source[index]
        if sample.points is not None and sample.T_cam_points is not None:
            yield BagFrame(sample.rgb, sample.camera, sample.points, sample.T_cam_points, sample.gt)
        elif depth_camera:
            yield BagFrame(sample.rgb, sample.camera, None, None, None, depth=sample.sparse)
        else:
            cloud = np.asarray(backproject(sample.sparse, sample.camera)).reshape(-1, 3)
            xyz = cloud[np.isfinite(cloud).all(axis=1)]
            points = np.hstack([xyz, np.zeros((len(xyz), 1), xyz.dtype)]).astype(np.float32)  # no intensity
            yield BagFrame(sample.rgb, sample.camera, points, RigidTransform.identity(), sample.gt)


@dataclass(frozen=True)
class CameraTopics:
    """Where one camera of a bag goes: the single camera keeps the /camera/... names; a named camera of a
    multi-camera bag (``--cameras``) gets /<name>/image_raw, /<name>/camera_info, /<name>/depth_gt."""
    name: str = ''

    @property
    def base(self) -> str:
        return f'/{self.name}' if self.name else '/camera'

    @property
    def image(self) -> str:
        return self.base + '/image_raw' if self.name else bagio.IMAGE_TOPIC

    @property
    def camera_info(self) -> str:
        return self.base + '/camera_info' if self.name else bagio.CAMERA_INFO_TOPIC

    @property
    def gt_depth(self) -> str:
        return self.base + '/depth_gt' if self.name else bagio.GT_DEPTH_TOPIC

    @property
    def frame_id(self) -> str:
        return f'{self.name}_optical_frame' if self.name else CAMERA_FRAME


def _image_message(rgb: np.ndarray, encoding: str, stamp_ns: int,
                   topics: CameraTopics = CameraTopics()) -> tuple[str, str, object]:
    """(topic, type, message) of the camera image in ``encoding`` (rosbags classes)."""
    from depth_completion_ros.core.conversions import numpy_to_image
    from depth_completion_ros.core.image_decoding import COMPRESSED_FORMATS, encode_rgb

    stamp = (stamp_ns // 10**9, stamp_ns % 10**9)
    if encoding == 'rgb8':
        return topics.image, bagio.IMAGE_TYPE, numpy_to_image(
            rgb, 'rgb8', msg_cls=bagio.bag_class(bagio.IMAGE_TYPE), frame_id=topics.frame_id, stamp=stamp)
    data = encode_rgb(rgb, encoding)
    if encoding in COMPRESSED_FORMATS:
        header = bagio.bag_class('std_msgs/msg/Header')(
            stamp=bagio.bag_class('builtin_interfaces/msg/Time')(**bagio.stamp_of(stamp_ns)),
            frame_id=topics.frame_id)
        msg = bagio.bag_class(bagio.COMPRESSED_IMAGE_TYPE)(header=header, format=f'rgb8; {encoding} compressed bgr8',
                                                             data=data)
        return topics.image + '/compressed', bagio.COMPRESSED_IMAGE_TYPE, msg
    return topics.image, bagio.IMAGE_TYPE, numpy_to_image(
        data, encoding, msg_cls=bagio.bag_class(bagio.IMAGE_TYPE), frame_id=topics.frame_id, stamp=stamp)


def _pointcloud(points: np.ndarray, stamp_ns: int) -> object:
    """PointCloud2 (rosbags class) with float32 x, y, z, intensity, unorganized."""
    cloud_cls = bagio.bag_class('sensor_msgs/msg/PointCloud2')
    field_cls = bagio.bag_class('sensor_msgs/msg/PointField')
    header_cls = bagio.bag_class('std_msgs/msg/Header')
    time_cls = bagio.bag_class('builtin_interfaces/msg/Time')
    data = np.ascontiguousarray(points[:, :4], dtype='<f4')
    fields = [field_cls(name=name, offset=4 * i, datatype=7, count=1) for i, name in enumerate('xyz')]
    fields.append(field_cls(name='intensity', offset=12, datatype=7, count=1))
    return cloud_cls(header=header_cls(stamp=time_cls(**bagio.stamp_of(stamp_ns)), frame_id=LIDAR_FRAME),
                     height=1, width=int(data.shape[0]), fields=fields, is_bigendian=False, point_step=16,
                     row_step=16 * int(data.shape[0]), data=data.reshape(-1).view(np.uint8), is_dense=True)


def _tf_static(cameras: list[tuple[str, RigidTransform]], stamp_ns: int) -> object:
    """/tf_static with camera <- lidar for every (camera frame, T_cam_lidar)."""
    tf_cls = bagio.bag_class(bagio.TF_TYPE)
    stamped_cls = bagio.bag_class('geometry_msgs/msg/TransformStamped')
    transform_cls = bagio.bag_class('geometry_msgs/msg/Transform')
    vector_cls = bagio.bag_class('geometry_msgs/msg/Vector3')
    quaternion_cls = bagio.bag_class('geometry_msgs/msg/Quaternion')
    header_cls = bagio.bag_class('std_msgs/msg/Header')
    time_cls = bagio.bag_class('builtin_interfaces/msg/Time')
    transforms = []
    for frame_id, T_cam_lidar in cameras:
        t = T_cam_lidar.translation
        q = T_cam_lidar.quaternion_xyzw
        # TF convention: header.frame_id is the parent (camera), the transform maps child (lidar) points into it.
        transforms.append(stamped_cls(
            header=header_cls(stamp=time_cls(**bagio.stamp_of(stamp_ns)), frame_id=frame_id),
            child_frame_id=LIDAR_FRAME,
            transform=transform_cls(translation=vector_cls(x=float(t[0]), y=float(t[1]), z=float(t[2])),
                                    rotation=quaternion_cls(x=float(q[0]), y=float(q[1]), z=float(q[2]),
                                                            w=float(q[3])))))
    return tf_cls(transforms=transforms)


def write_bag(frames: Iterator[BagFrame] | Iterator[list[BagFrame]], out: Path, rate_hz: float,
              lidar_offset_ms: float = 3.0, source: str = '', expected_frames: int | None = None,
              image_encoding: str = 'rgb8', camera_names: Sequence[str] = ()) -> dict:
    """Write the frames (a progress bar once the first one exists); returns a report (frames, topics, size).
    With ``camera_names`` each item is a list of views, one per named camera, sharing one scan (the first
    view's ``points``), and the bag is a multi-camera one (topics per camera, ``cameras`` in its parameters)."""
    from depth_completion_ros.tools.common import progress

    topics = [CameraTopics(name) for name in camera_names] or [CameraTopics()]
    period_ns = int(round(1e9 / rate_hz))
    T_references: list[RigidTransform] = []
    count = 0
    bar = None
    with bagio.BagWriter(out) as writer:
        for index, item in enumerate(frames):
            views = item if isinstance(item, list) else [item]
            if bar is None:  # not before: a source error stays one clean line
                bar = progress(total=expected_frames, desc='make-bag', unit='frame')
            stamp = BAG_START_NS + index * period_ns
            lidar_stamp = stamp + int(lidar_offset_ms * 1e6)
            if not T_references and all(view.T_cam_lidar is not None for view in views):
                T_references = [view.T_cam_lidar for view in views if view.T_cam_lidar is not None]
                writer.write(bagio.TF_STATIC_TOPIC, bagio.TF_TYPE, stamp, _tf_static(
                    [(t.frame_id, T) for t, T in zip(topics, T_references, strict=True)], stamp), latched=True)
                writer.set_metadata(bagio.EXTRINSICS_METADATA_KEY, bagio.extrinsics_metadata(
                    T_references[0].matrix, topics[0].frame_id, LIDAR_FRAME))
            for view, camera_topics in zip(views, topics, strict=True):
                _write_view(writer, view, camera_topics, stamp, image_encoding)
            first = views[0]
            if first.points is not None and first.T_cam_lidar is not None and T_references:
                points = np.asarray(first.points, dtype=np.float32)
                T_common = T_references[0].inverse() @ first.T_cam_lidar  # lidar_i -> lidar_0 (identity when rigid)
                if not np.allclose(T_common.matrix, np.eye(4), atol=1e-9):
                    points = points.copy()
                    points[:, :3] = T_common.apply(points[:, :3].astype(np.float64)).astype(np.float32)
                writer.write(bagio.POINTS_TOPIC, bagio.POINTS_TYPE, lidar_stamp, _pointcloud(points, lidar_stamp))
            count += 1
            bar.update()
        if bar is not None:
            bar.close()
        if count == 0:
            raise ValueError('no frames to write')
        writer.set_metadata('depth_completion.source', source)
        counts = dict(writer.counts)
    if T_references and camera_names:
        # The node's multi-camera parameters: every camera with its own matrix (the node-wide one: the first's).
        extra: dict = {'cameras': list(camera_names)}
        for name, T in zip(camera_names, T_references, strict=True):
            extra[f'camera.{name}.extrinsics.matrix'] = [float(v) for v in T.matrix.reshape(-1)]
        bagio.write_extrinsics_params(out, T_references[0].matrix, extra)
    elif T_references:
        bagio.write_extrinsics_params(out, T_references[0].matrix)
    size = sum(p.stat().st_size for p in out.rglob('*') if p.is_file())
    return {'bag': str(out), 'frames': count, 'topics': counts, 'size_bytes': size}


def _write_view(writer: bagio.BagWriter, frame: BagFrame, topics: CameraTopics, stamp: int,
                image_encoding: str) -> None:
    """One camera's messages of one frame: camera_info, image, registered depth and ground truth if any."""
    from depth_completion_ros.core.conversions import metres_to_depth_image

    image_cls = bagio.bag_class(bagio.IMAGE_TYPE)
    info_cls = bagio.bag_class(bagio.CAMERA_INFO_TYPE)
    stamp_pair = (stamp // 10**9, stamp % 10**9)
    camera = CameraModel(width=frame.camera.width, height=frame.camera.height, K=frame.camera.K,
                         P=frame.camera.P, D=frame.camera.D, distortion_model=frame.camera.distortion_model,
                         frame_id=topics.frame_id)
    # camera_info first, so a node has it when the image arrives
    writer.write(topics.camera_info, bagio.CAMERA_INFO_TYPE, stamp,
                 camera.to_camera_info(stamp=stamp_pair, msg_cls=info_cls))
    image_topic, image_type, image_msg = _image_message(frame.rgb, image_encoding, stamp, topics)
    writer.write(image_topic, image_type, stamp, image_msg)
    if frame.depth is not None:  # a registered depth camera: same pixels and camera as the colour image
        writer.write(bagio.DEPTH_CAMERA_INFO_TOPIC, bagio.CAMERA_INFO_TYPE, stamp,
                     camera.to_camera_info(stamp=stamp_pair, msg_cls=info_cls))
        writer.write(bagio.DEPTH_TOPIC, bagio.IMAGE_TYPE, stamp,
                     metres_to_depth_image(frame.depth, '16UC1', msg_cls=image_cls, frame_id=topics.frame_id,
                                           stamp=stamp_pair))
    if frame.gt_depth is not None:
        writer.write(topics.gt_depth, bagio.IMAGE_TYPE, stamp,
                     metres_to_depth_image(frame.gt_depth, '32FC1', msg_cls=image_cls, frame_id=topics.frame_id,
                                           stamp=stamp_pair))


def make_bag(source: str, out: str | Path, frames: int = 30, rate_hz: float = 10.0, width: int = 1242,
             height: int = 375, seed: int = 7, lidar_offset_ms: float = 3.0, image_encoding: str = 'rgb8',
             intrinsics: list[float] | None = None, depth_scale: float | None = None,
             overwrite: bool = False, cameras: int = 1) -> dict:
    out = Path(out)
    check_output_dir(out, 'make-bag', overwrite)  # before the source is read
    if image_encoding not in IMAGE_ENCODINGS:
        raise ValueError(f'image encoding {image_encoding!r} is not one of {", ".join(IMAGE_ENCODINGS)}')
    spec = DataSpec.parse(source.replace('kitti:', 'kitti-object:', 1) if source.startswith('kitti:') else source,
                          MAKE_BAG_KINDS, MAKE_BAG_SYNTAX)
    names: list[str] = []
    iterator: Iterator[BagFrame] | Iterator[list[BagFrame]]
    if cameras != 1:
        most = RIG_KINDS.get(spec.kind, 1)
        if not 2 <= cameras <= most:
            where = ', '.join(f'{kind} up to {n}' for kind, n in RIG_KINDS.items())
            raise ValueError(f'--cameras {cameras}: {spec.kind} has {"one camera" if most == 1 else f"at most {most}"}'
                             f' (several cameras: {where})')
        if spec.kind == 'synthetic':
            names = [f'cam{i}' for i in range(cameras)]
            iterator = synthetic_rig_frames(frames, cameras, width, height, seed, rate_hz)
        else:
            names = ['image_02', 'image_03']
            iterator = kitti_raw_rig_frames(spec, frames)
    elif spec.kind == 'synthetic':
        if spec.location not in ('', 'street'):
            raise DataError(f'make-bag --from {source}: the synthetic bag is a street sequence; write synthetic')
        iterator = synthetic_frames(frames, width, height, seed, rate_hz)
    else:
        from depth_completion_ros.data.loaders import open_source

        loader = open_source(f'{spec.kind}:{source.split(":", 1)[1]}', intrinsics=intrinsics, depth_scale=depth_scale)
        scale_warning = depth_scale_warning(loader, 'make-bag')
        if scale_warning:
            print(scale_warning, file=sys.stderr, flush=True)
        iterator = source_frames(loader, frames, bool(getattr(loader, 'depth_camera', False)))
    # Written beside --out and renamed when complete: a failed run (a bad file midway) leaves no playable
    # partial bag and nothing that blocks the retry.
    with OutputDir(out, 'make-bag', overwrite, create=False) as output:
        report = write_bag(iterator, output.work, rate_hz, lidar_offset_ms, source, expected_frames=frames,
                           image_encoding=image_encoding, camera_names=names)
        output.commit()
    return {**report, 'bag': str(output.final)}


def main(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    try:
        report = make_bag(args.source, args.out, args.frames, args.rate, args.width, args.height, args.seed,
                          args.lidar_offset_ms, args.image_encoding, args.intrinsics, args.depth_scale,
                          args.overwrite, args.cameras)
    except ValueError as exc:  # unknown source, no frames, bad intrinsics
        raise CliError(str(exc)) from None
    print(f'wrote {report["frames"]} frames to {report["bag"]} ({report["size_bytes"] / 1e6:.1f} MB, '
          f'{time.perf_counter() - start:.1f} s): ' + ', '.join(f'{t} x{n}' for t, n in report['topics'].items()))
    print_written([('bag', report['bag']),
                   ('node parameters (extrinsics)', Path(report['bag']) / bagio.PARAMS_FILE_NAME)])
    return 0
