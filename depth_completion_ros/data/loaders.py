"""Frame sources: synthetic scenes, KITTI depth completion, KITTI object, RGB-D folders and rosbag2 files here;
KITTI raw drives (data.kitti_raw), ground-truth-only KITTI-DC frames (data.kitti_dc_gt) and 7-Scenes
(data.sevenscenes) in their own modules.

Every source is a sequence of :class:`Sample` (numpy, metres, 0 = none). Sources know nothing about training;
``data.datasets`` turns them into torch tensors, crops and augments. ``open_source('kind:location[?options]')``
parses the ``--data`` syntax shared by ``depth-completion train`` and ``eval`` (docs/DATA.md lists kinds and
options); every user mistake raises :class:`DataError` with a message that names the fix.
"""
from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from depth_completion_ros.core.camera import CameraModel
from depth_completion_ros.core.conversions import (
    depth_image_to_metres,
    image_to_rgb,
    pointcloud2_to_arrays,
    stamp_to_ns,
)
from depth_completion_ros.core.image_files import read_image_array
from depth_completion_ros.core.kitti import (
    kitti_sparse_depth,
    list_kitti_object_frames,
    load_kitti_object_frame,
    read_calib,
    read_image,
)
from depth_completion_ros.core.transforms import RigidTransform
from depth_completion_ros.data.errors import DataError
from depth_completion_ros.data.sample import Sample, bottom_crop, crop_sample
from depth_completion_ros.data.spec import DATA_KINDS, DataSpec, FrameSelection, frame_number

__all__ = ['DataError', 'Sample', 'bottom_crop', 'crop_sample', 'open_source', 'read_depth_png', 'KINDS',
           'SyntheticSource', 'KittiDepthCompletionFolder', 'KittiObjectFolder', 'RGBDFolder', 'RosbagSource']

KITTI_DEFAULT_FX = 721.5377          # used only when a KITTI-DC frame comes without any calibration file
NYU_INTRINSICS = (518.0, 519.0, 325.5, 253.5)
SYNTHETIC_EVAL_SEED_OFFSET = 1_000_000   # validation scenes never collide with training seeds (< 1e6)


def _natural_key(path: Path) -> list[Any]:
    """'2.png' before '10.png'."""
    return [int(tok) if tok.isdigit() else tok for tok in re.split(r'(\d+)', path.name)]


def read_depth_png(path: Path, scale: float) -> np.ndarray:
    """16-bit PNG/PGM -> float32 metres (``value / scale``; 0 stays 0)."""
    raw = read_image_array(path)
    if raw.ndim != 2 or raw.dtype.kind not in 'ui':
        raise DataError(f'{path}: expected a single-channel 16-bit depth image, got {raw.dtype} {raw.shape}')
    return (raw.astype(np.float32) / np.float32(scale)).astype(np.float32)


# ------------------------------------------------------------------------------------------------- synthetic
class SyntheticSource:
    """``count`` synthetic frames (seed = ``seed + index``), rendered on demand."""

    def __init__(self, kind: str = 'street', count: int = 8, seed: int = SYNTHETIC_EVAL_SEED_OFFSET,
                 width: int | None = None, height: int | None = None) -> None:
        if kind not in ('street', 'room'):
            raise DataError(f'synthetic kind must be street or room (synthetic:street), got {kind!r}')
        self.kind, self.count, self.seed = kind, count, seed
        default = (1242, 375) if kind == 'street' else (640, 480)
        self.width, self.height = width or default[0], height or default[1]

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> Sample:
        from depth_completion_ros.data.synthetic import room_frame, street_frame

        if not 0 <= index < self.count:
            raise IndexError(index)
        make = street_frame if self.kind == 'street' else room_frame
        frame = make(self.seed + index, width=self.width, height=self.height)
        return Sample(rgb=frame.rgb, sparse=frame.sparse, gt=frame.gt_depth, camera=frame.camera,
                      name=f'{self.kind}_{self.seed + index}')


# -------------------------------------------------------------------------------------------- KITTI depth (DC)
class KittiDepthCompletionFolder:
    """KITTI depth-completion layout (uint16 PNG, depth = value / 256 m).

    Accepted roots:
    - ``val_selection_cropped`` (or a folder containing it): ``image/``, ``velodyne_raw/``, ``groundtruth_depth/``,
      ``intrinsics/`` with the official file names;
    - a split folder of the annotated release, ``<root>/<split>/<drive>/proj_depth/{velodyne_raw,groundtruth}/
      image_0X/<frame>.png``, RGB from ``<drive>/image_0X/data/`` or ``<raw_root>/<date>/<drive>/image_0X/data/``
      and intrinsics from ``<raw_root>/<date>/calib_cam_to_cam.txt`` when present.
    """

    def __init__(self, root: str | Path, split: str = 'val', raw_root: str | Path | None = None,
                 frames: FrameSelection | None = None) -> None:
        root = Path(root)
        if not root.is_dir():
            raise DataError(f'kitti-dc: {root} is not a folder; pass val_selection_cropped or the annotated '
                            'release folder')
        self.raw_root = Path(raw_root) if raw_root else None
        self.items: list[tuple[Path, Path, Path | None, Path | None]] = []   # rgb, sparse, gt, intrinsics/calib
        selection = root / 'val_selection_cropped' if (root / 'val_selection_cropped').is_dir() else root
        if (selection / 'velodyne_raw').is_dir() and (selection / 'image').is_dir():
            for rgb in sorted((selection / 'image').glob('*.png')):
                sparse = selection / 'velodyne_raw' / rgb.name.replace('_image_', '_velodyne_raw_', 1)
                gt = selection / 'groundtruth_depth' / rgb.name.replace('_image_', '_groundtruth_depth_', 1)
                intr = selection / 'intrinsics' / (rgb.stem + '.txt')
                if sparse.is_file():
                    self.items.append((rgb, sparse, gt if gt.is_file() else None, intr if intr.is_file() else None))
        else:
            split_root = root / split if (root / split).is_dir() else root
            for sparse in sorted(split_root.glob('*/proj_depth/velodyne_raw/image_0[23]/*.png')):
                drive_dir, cam = sparse.parents[3], sparse.parent.name
                gt = drive_dir / 'proj_depth' / 'groundtruth' / cam / sparse.name
                rgb_candidates = [drive_dir / cam / 'data' / sparse.name]
                if self.raw_root is not None:
                    rgb_candidates.append(self.raw_root / drive_dir.name[:10] / drive_dir.name / cam / 'data'
                                          / sparse.name)
                rgb = next((p for p in rgb_candidates if p.is_file()), None)
                if rgb is None:
                    continue
                calib = rgb.parents[3] / 'calib_cam_to_cam.txt'
                self.items.append((rgb, sparse, gt if gt.is_file() else None, calib if calib.is_file() else None))
        selection = frames or FrameSelection()
        # The frame number is the 10-digit one ('..._sync_image_0000000005_image_02' -> 5).
        self.items = selection.select(self.items, [int(m[-1]) if (m := re.findall(r'\d{10}', rgb.stem))
                                                   else frame_number(rgb.stem, i)
                                                   for i, (rgb, *_) in enumerate(self.items)])
        if not self.items:
            hint = ('; these frames have ground truth but no velodyne_raw: use kitti-dc-gt:DIR (input simulated '
                    'from the ground truth)' if any(root.glob('**/proj_depth/groundtruth')) else '')
            raise DataError(f'kitti-dc: no KITTI depth-completion frames (velodyne_raw + image) under {root}{hint}')

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Sample:
        rgb_path, sparse_path, gt_path, intr_path = self.items[index]
        rgb = read_image(rgb_path)
        height, width = rgb.shape[:2]
        K = np.array([[KITTI_DEFAULT_FX, 0, width / 2], [0, KITTI_DEFAULT_FX, height / 2], [0, 0, 1]])
        if intr_path is not None and intr_path.name.endswith('calib_cam_to_cam.txt'):

            cam = 'P_rect_0' + rgb_path.parents[1].name[-1]
            K = read_calib(intr_path)[cam][:3, :3]
        elif intr_path is not None:
            K = np.loadtxt(intr_path).reshape(-1)[:9].reshape(3, 3)
        camera = CameraModel.from_intrinsics(K[0, 0], K[1, 1], K[0, 2], K[1, 2], width, height, frame_id='camera')
        return Sample(rgb=rgb, sparse=read_depth_png(sparse_path, 256.0),
                      gt=read_depth_png(gt_path, 256.0) if gt_path is not None else None,
                      camera=camera, name=rgb_path.stem)


# ---------------------------------------------------------------------------------------- KITTI object / raw
class KittiObjectFolder:
    """``image_2/``, ``velodyne/`` (or ``velodyne_reduced/``: the scan cut to the camera frustum), ``calib/``
    (KITTI object layout): LiDAR projected into camera 2. A root holding ``training/`` and/or ``testing/`` takes
    the frames of both (named ``training/000114``). Samples carry the scan and the Velodyne -> camera transform.
    No ground truth: use the ``holdout-points`` protocol / self-supervised training."""

    def __init__(self, root: str | Path, frames: FrameSelection | None = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f'kitti-object: {root} is not a folder; pass the folder holding image_2/, velodyne/, '
                            'calib/ (or its training/ testing/ parent)')
        subsets = [''] + [name for name in ('training', 'testing') if (self.root / name).is_dir()]
        selection = frames or FrameSelection()
        self.frames = [(subset, frame_id) for subset in subsets
                       for frame_id in list_kitti_object_frames(self.root / subset)
                       if frame_number(frame_id, 0) in selection]
        if not self.frames:
            raise DataError(f'kitti-object: no KITTI frames (image_2/*.png + velodyne[_reduced]/*.bin + calib/*.txt) '
                            f'under {root} (frame selection {selection.ranges or "all"})')
        self.frame_ids = [f'{subset}/{frame_id}' if subset else frame_id for subset, frame_id in self.frames]

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> Sample:
        subset, frame_id = self.frames[index]
        frame = load_kitti_object_frame(self.root / subset, frame_id)
        return Sample(rgb=frame.rgb, sparse=kitti_sparse_depth(frame).astype(np.float32), gt=None,
                      camera=frame.camera, name=self.frame_ids[index], points=frame.points,
                      T_cam_points=frame.T_cam_velo, index=frame_number(frame_id, index))


# ----------------------------------------------------------------------------------------------- RGB-D folder
def read_camera_json(root: Path) -> dict[str, float]:
    """Intrinsics stored with an RGB-D folder: ``intrinsics.json`` ({fx, fy, cx, cy[, depth_scale]}) or an
    Open3D ``PinholeCameraIntrinsic`` file (``camera*.json``: width, height, column-major ``intrinsic_matrix``).
    Empty when the folder has neither."""
    if (root / 'intrinsics.json').is_file():
        return json.loads((root / 'intrinsics.json').read_text())
    for path in sorted(root.glob('camera*.json')):
        meta = json.loads(path.read_text())
        if isinstance(meta, dict) and len(meta.get('intrinsic_matrix', ())) == 9:
            K = np.asarray(meta['intrinsic_matrix'], np.float64).reshape(3, 3).T   # stored column-major
            return {'fx': K[0, 0], 'fy': K[1, 1], 'cx': K[0, 2], 'cy': K[1, 2]}
    return {}


class RGBDFolder:
    """``color/`` + ``depth/`` (16-bit PNG or PGM) paired by sorted name, intrinsics from ``intrinsics.json``
    (fx, fy, cx, cy, depth_scale = stored units per metre) or an Open3D ``camera*.json``. Arguments override /
    replace the file. The sensor depth is both the measurement and the reference (protocols decide what is
    fed and what is scored)."""

    depth_camera = True   # sparse and gt are the same dense sensor map: training samples points from it

    def __init__(self, root: str | Path, intrinsics: Sequence[float] | None = None,
                 depth_scale: float | None = None, frames: FrameSelection | None = None) -> None:
        self.root = Path(root)
        if not (self.root / 'color').is_dir() or not (self.root / 'depth').is_dir():
            raise DataError(f'rgbd: {root} needs color/ and depth/ folders (images paired by sorted name)')
        meta: dict[str, Any] = read_camera_json(self.root)
        if intrinsics is None:
            if not all(k in meta for k in ('fx', 'fy', 'cx', 'cy')):
                raise DataError(f'rgbd: {root} has no intrinsics.json or camera*.json; pass --intrinsics FX FY CX CY '
                                'or add ?intrinsics=fx,fy,cx,cy to the spec')
            intrinsics = (meta['fx'], meta['fy'], meta['cx'], meta['cy'])
        self.intrinsics = tuple(float(v) for v in intrinsics)
        self.depth_scale = float(depth_scale if depth_scale is not None else meta.get('depth_scale', 1000.0))
        colors = sorted((p for p in (self.root / 'color').iterdir() if p.suffix.lower() in ('.png', '.jpg', '.jpeg')),
                        key=_natural_key)
        depths = sorted((p for p in (self.root / 'depth').iterdir() if p.suffix.lower() in ('.png', '.pgm')),
                        key=_natural_key)
        if not colors or len(colors) != len(depths):
            raise DataError(f'rgbd: {root}: {len(colors)} colour and {len(depths)} depth images; need the same '
                            'number (> 0), paired by sorted name')
        pairs = list(zip(colors, depths, strict=True))
        self.pairs = (frames or FrameSelection()).select(pairs, [frame_number(c.stem, i)
                                                                 for i, (c, _) in enumerate(pairs)])
        if not self.pairs:
            raise DataError(f'rgbd: the frame selection leaves no frame of {root}')

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> Sample:
        color_path, depth_path = self.pairs[index]
        rgb = read_image(color_path)
        depth = read_depth_png(depth_path, self.depth_scale)
        if depth.shape != rgb.shape[:2]:
            raise DataError(f'{depth_path}: depth {depth.shape} does not match colour {rgb.shape[:2]}; rgbd: needs '
                            'depth registered to colour')
        fx, fy, cx, cy = self.intrinsics
        camera = CameraModel.from_intrinsics(fx, fy, cx, cy, rgb.shape[1], rgb.shape[0], frame_id='camera')
        return Sample(rgb=rgb, sparse=depth, gt=depth, camera=camera, name=color_path.stem,
                      index=frame_number(color_path.stem, index))


# ------------------------------------------------------------------------------------------------------ rosbag
def _find_transform(edges: dict[tuple[str, str], RigidTransform], target: str, source: str) -> RigidTransform | None:
    """T_target_source through the TF tree (edges hold T_parent_child); breadth-first over both directions."""
    if target == source:
        return RigidTransform.identity()
    graph: dict[str, list[tuple[str, RigidTransform]]] = {}
    for (parent, child), T in edges.items():
        graph.setdefault(child, []).append((parent, T))             # child -> parent: T_parent_child
        graph.setdefault(parent, []).append((child, T.inverse()))   # parent -> child
    frontier: list[tuple[str, RigidTransform]] = [(source, RigidTransform.identity())]
    seen = {source}
    while frontier:
        frame, T_frame_source = frontier.pop(0)
        for nxt, T_next_frame in graph.get(frame, []):
            if nxt in seen:
                continue
            T_next_source = T_next_frame @ T_frame_source
            if nxt == target:
                return T_next_source
            seen.add(nxt)
            frontier.append((nxt, T_next_source))
    return None


class RosbagSource:
    """Camera image + camera_info + (PointCloud2 points | depth Image) from a rosbag2, paired by nearest stamp.

    Topics are auto-detected by message type when not given (one of each). Point clouds are moved into the
    camera frame with ``T_cam_sensor`` or, when absent, with /tf_static (+ /tf) from the bag. Depth images are
    taken as registered to the camera (same size). No ground truth: self-supervised / ``holdout-points``.
    Each frame is projected with its own camera_info (the one with the image's stamp, else the newest before
    it): a bag may change size between frames (KITTI object frames are 1242 or 1224 pixels wide).
    """

    def __init__(self, path: str | Path, image_topic: str | None = None, info_topic: str | None = None,
                 points_topic: str | None = None, depth_topic: str | None = None, max_dt: float = 0.05,
                 T_cam_sensor: RigidTransform | None = None) -> None:
        from rosbags.highlevel import AnyReader

        self.path = Path(path)
        types = {'sensor_msgs/msg/Image': [], 'sensor_msgs/msg/CameraInfo': [], 'sensor_msgs/msg/PointCloud2': []}
        with AnyReader([self.path]) as reader:
            for conn in reader.connections:
                types.setdefault(conn.msgtype, []).append(conn.topic)
            images = types['sensor_msgs/msg/Image']
            if image_topic is None:
                candidates = [t for t in images if t != depth_topic and 'depth' not in t]
                image_topic = candidates[0] if len(candidates) >= 1 else None
            if points_topic is None and depth_topic is None:
                clouds = types['sensor_msgs/msg/PointCloud2']
                depth_candidates = [t for t in images if 'depth' in t]
                points_topic = clouds[0] if clouds else None
                depth_topic = None if clouds else (depth_candidates[0] if depth_candidates else None)
            if info_topic is None:
                infos = types['sensor_msgs/msg/CameraInfo']
                prefix = image_topic.rsplit('/', 1)[0] if image_topic else ''
                matching = [t for t in infos if t.startswith(prefix)] or infos
                info_topic = matching[0] if matching else None
            if image_topic is None or info_topic is None or (points_topic or depth_topic) is None:
                raise ValueError(f'{path}: need an image, a camera_info and a points or depth topic; found {types}')
            self.image_topic, self.info_topic = image_topic, info_topic
            self.points_topic, self.depth_topic = points_topic, depth_topic
            wanted = {image_topic, info_topic, points_topic or depth_topic, '/tf_static', '/tf'}
            self._images: list[tuple[int, Any]] = []
            self._depths: list[tuple[int, Any]] = []
            self._infos: list[tuple[int, Any]] = []
            self._tf: dict[tuple[str, str], RigidTransform] = {}
            connections = [c for c in reader.connections if c.topic in wanted]
            for conn, _t, raw in reader.messages(connections=connections):
                msg = reader.deserialize(raw, conn.msgtype)
                if conn.topic == image_topic:
                    self._images.append((stamp_to_ns(msg.header.stamp), msg))
                elif conn.topic in (points_topic, depth_topic):
                    self._depths.append((stamp_to_ns(msg.header.stamp), msg))
                elif conn.topic == info_topic:
                    self._infos.append((stamp_to_ns(msg.header.stamp), msg))
                else:
                    for tf in msg.transforms:
                        self._tf.setdefault((tf.header.frame_id, tf.child_frame_id),
                                            RigidTransform.from_transform_msg(tf))
        if not self._infos:
            raise ValueError(f'{path}: the camera_info topic {info_topic} has no message')
        self._infos.sort(key=lambda item: item[0])
        self._info_stamps = np.array([stamp for stamp, _ in self._infos], np.int64)
        self._cameras: dict[int, CameraModel] = {}
        self.camera = self._camera_at(0)                       # the first frame's, for callers that want one
        self.T_cam_sensor = T_cam_sensor
        # Pair every image with the nearest depth message in time (within max_dt).
        depth_stamps = np.array([s for s, _ in self._depths], np.int64)
        self.pairs: list[tuple[int, int]] = []
        if depth_stamps.size:
            for i, (stamp, _) in enumerate(self._images):
                j = int(np.abs(depth_stamps - stamp).argmin())
                if abs(int(depth_stamps[j]) - stamp) <= max_dt * 1e9:
                    self.pairs.append((i, j))
        if not self.pairs:
            raise ValueError(f'{path}: no image/{points_topic or depth_topic} pairs within {max_dt} s')

    def __len__(self) -> int:
        return len(self.pairs)

    def _camera_at(self, info_index: int) -> CameraModel:
        if info_index not in self._cameras:
            self._cameras[info_index] = CameraModel.from_camera_info(self._infos[info_index][1])
        return self._cameras[info_index]

    def camera_for(self, index: int) -> CameraModel:
        """Pair ``index``'s camera: the camera_info stamped like its image, else the newest one before it (else
        the first)."""
        stamp = self._images[self.pairs[index][0]][0]
        position = int(np.searchsorted(self._info_stamps, stamp, side='right')) - 1
        return self._camera_at(max(position, 0))

    def depth_stamp_and_frame(self, index: int) -> tuple[int, str]:
        """Pair ``index``'s depth message (cloud or depth image): its stamp in ns and its frame_id."""
        msg = self._depths[self.pairs[index][1]][1]
        return stamp_to_ns(msg.header.stamp), str(msg.header.frame_id)

    def lidar_scan(self, index: int) -> tuple[np.ndarray, RigidTransform]:
        """Pair ``index``'s point cloud (Nx3 float64, finite points, in the sensor frame) and camera <- sensor
        (``T_cam_sensor`` or the bag's /tf_static + /tf). Point-cloud bags only."""
        if self.points_topic is None:
            raise ValueError(f'{self.path}: no point-cloud topic (depth-image bag)')
        i, j = self.pairs[index]
        image_msg = self._images[i][1]
        depth_msg = self._depths[j][1]
        xyz = pointcloud2_to_arrays(depth_msg).xyz
        camera = self.camera_for(index)
        T = self.T_cam_sensor or _find_transform(self._tf, camera.frame_id or image_msg.header.frame_id,
                                                 depth_msg.header.frame_id)
        if T is None:
            raise ValueError(f'{self.path}: no transform {depth_msg.header.frame_id} -> '
                             f'{camera.frame_id}; pass T_cam_sensor')
        return xyz[np.isfinite(xyz).all(axis=1)].astype(np.float64), T

    def __getitem__(self, index: int) -> Sample:
        from depth_completion_ros.core.projection import project_points

        i, j = self.pairs[index]
        stamp = self._images[i][0]
        depth_msg = self._depths[j][1]
        rgb = self.image(index)
        camera = self.camera_for(index)
        if (camera.height, camera.width) != rgb.shape[:2]:
            raise ValueError(f'{self.path}: image {stamp} is {rgb.shape[1]}x{rgb.shape[0]} but its camera_info says '
                             f'{camera.width}x{camera.height}; record the camera_info of every frame')
        T: RigidTransform | None = None
        if self.points_topic is not None:
            xyz, T = self.lidar_scan(index)
            sparse = project_points(T.apply(xyz), camera)
        else:
            sparse = depth_image_to_metres(depth_msg)
            if sparse.shape != rgb.shape[:2]:
                raise ValueError(f'{self.path}: depth {sparse.shape} is not registered to the image {rgb.shape[:2]}')
        return Sample(rgb=rgb, sparse=sparse.astype(np.float32), gt=None, camera=camera, name=str(stamp),
                      T_cam_points=T)

    def image(self, index: int) -> np.ndarray:
        """Pair ``index``'s camera image alone (HxWx3 uint8 RGB), without decoding its cloud."""
        return image_to_rgb(self._images[self.pairs[index][0]][1])


# ---------------------------------------------------------------------------------------------- spec parsing
KINDS = tuple(DATA_KINDS)   # the one table is data.spec.DATA_KINDS


def _floats(text: str | None, count: int, what: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(','))
    except ValueError:
        values = ()
    if len(values) != count:
        raise DataError(f'{what}={text!r}: expected {count} comma-separated numbers')
    return values


def open_source(spec: str, intrinsics: Sequence[float] | None = None, depth_scale: float | None = None,
                synthetic_count: int = 8, synthetic_size: tuple[int, int] | None = None,
                kitti_split: str = 'val', **bag_options: Any) -> Any:
    """A frame source from ``kind:location[?key=value&...]`` (docs/DATA.md): ``synthetic:street``,
    ``kitti-dc:DIR``, ``kitti-dc-gt:DIR``, ``kitti-object:DIR``, ``kitti-raw:DIR``, ``kitti-raw-accum:DIR``,
    ``7scenes:DIR``, ``rgbd:DIR``, ``bag:PATH``. Every kind but synthetic and bag takes ``frames=`` (e.g.
    ``kitti-raw:DIR?frames=0-35``); ``intrinsics=fx,fy,cx,cy`` (rgbd, kitti-dc-gt) and ``depth_scale=`` (rgbd)
    override the arguments; ``registration=off`` (7scenes) keeps the depth unregistered; ``window=5``
    (kitti-raw-accum) is the number of neighbouring frames on each side. Raises :class:`DataError`."""
    parsed = DataSpec.parse(spec, KINDS)
    kind, location = parsed.kind, parsed.location
    if kind == 'synthetic':
        parsed.check_used()
        width, height = synthetic_size or (None, None)
        return SyntheticSource(location or 'street', count=synthetic_count, width=width, height=height)
    if kind == 'bag':
        parsed.check_used()
        if not Path(location).exists():
            raise DataError(f'bag: {location} does not exist; pass a rosbag2 folder (with metadata.yaml)')
        return RosbagSource(location, **bag_options)
    if not location:
        raise DataError(f'data spec {spec!r}: no location; write {kind}:<folder>')
    frames = FrameSelection.parse(parsed.take('frames'))
    intrinsics = _floats(parsed.take('intrinsics'), 4, 'intrinsics') or intrinsics
    scale = _floats(parsed.take('depth_scale'), 1, 'depth_scale')
    depth_scale = scale[0] if scale else depth_scale
    registration = parsed.take('registration', 'kinect')
    if kind != '7scenes' and registration != 'kinect':
        raise DataError(f'{kind}: registration= applies to 7scenes only')
    window_text = parsed.take('window')
    if window_text is not None and (kind != 'kitti-raw-accum' or not window_text.isdigit()):
        raise DataError(f'{kind}: window= takes a whole number of frames and applies to kitti-raw-accum only')
    parsed.check_used()
    if kind == 'kitti-dc':
        return KittiDepthCompletionFolder(location, split=kitti_split, frames=frames)
    if kind == 'kitti-dc-gt':
        from depth_completion_ros.data.kitti_dc_gt import KittiGroundTruthFolder

        return KittiGroundTruthFolder(location, frames=frames, intrinsics=intrinsics)
    if kind == 'kitti-object':
        return KittiObjectFolder(location, frames=frames)
    if kind == 'kitti-raw':
        from depth_completion_ros.data.kitti_raw import KittiRawDrive

        return KittiRawDrive(location, frames=frames)
    if kind == 'kitti-raw-accum':
        from depth_completion_ros.data.accumulate import KittiRawAccumulated

        return KittiRawAccumulated(location, frames=frames, window=int(window_text or 5))
    if kind == '7scenes':
        from depth_completion_ros.data.sevenscenes import SevenScenesFolder

        if registration not in ('kinect', 'off'):
            raise DataError(f'7scenes: registration={registration!r}; use kinect (default) or off')
        return SevenScenesFolder(location, frames=frames, register=registration == 'kinect')
    return RGBDFolder(location, intrinsics=intrinsics, depth_scale=depth_scale, frames=frames)
