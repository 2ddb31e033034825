"""Frame sources: synthetic scenes, KITTI depth completion, KITTI object/raw, RGB-D folders and rosbag2 files.

Every source is a sequence of :class:`Sample` (numpy, metres, 0 = none). Sources know nothing about training;
``data.datasets`` turns them into torch tensors, crops and augments. ``open_source('kind:location')`` parses the
``--data`` syntax shared by ``depth-completion train`` and ``eval``.
"""
from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
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
from depth_completion_ros.core.kitti import (
    kitti_sparse_depth,
    list_kitti_object_frames,
    load_kitti_object_frame,
    read_calib,
    read_image,
)
from depth_completion_ros.core.transforms import RigidTransform

KITTI_DEFAULT_FX = 721.5377          # used only when a KITTI-DC frame comes without any calibration file
NYU_INTRINSICS = (518.0, 519.0, 325.5, 253.5)
SYNTHETIC_EVAL_SEED_OFFSET = 1_000_000   # validation scenes never collide with training seeds (< 1e6)


@dataclass
class Sample:
    rgb: np.ndarray             # HxWx3 uint8
    sparse: np.ndarray          # HxW float32 m: what the depth sensor measured, 0 = none
    gt: np.ndarray | None       # HxW float32 m: (semi-)dense reference, 0 = none; None when the data has none
    camera: CameraModel
    name: str


def crop_sample(sample: Sample, y0: int, x0: int, height: int, width: int) -> Sample:
    rows, cols = slice(y0, y0 + height), slice(x0, x0 + width)
    return Sample(rgb=sample.rgb[rows, cols], sparse=sample.sparse[rows, cols],
                  gt=None if sample.gt is None else sample.gt[rows, cols],
                  camera=sample.camera.cropped(x0, y0, width, height), name=sample.name)


def bottom_crop(sample: Sample, height: int) -> Sample:
    """The LRRU/KITTI evaluation crop: the bottom ``height`` rows (the top has no LiDAR)."""
    full = sample.rgb.shape[0]
    return sample if full <= height else crop_sample(sample, full - height, 0, height, sample.rgb.shape[1])


def _natural_key(path: Path) -> list[Any]:
    """'2.png' before '10.png'."""
    return [int(tok) if tok.isdigit() else tok for tok in re.split(r'(\d+)', path.name)]


def read_depth_png(path: Path, scale: float) -> np.ndarray:
    """16-bit PNG/PGM -> float32 metres (``value / scale``; 0 stays 0)."""
    from PIL import Image

    with Image.open(path) as image:
        raw = np.asarray(image)
    if raw.ndim != 2 or raw.dtype.kind not in 'ui':
        raise ValueError(f'{path}: expected a single-channel 16-bit depth image, got {raw.dtype} {raw.shape}')
    return (raw.astype(np.float32) / np.float32(scale)).astype(np.float32)


# ------------------------------------------------------------------------------------------------- synthetic
class SyntheticSource:
    """``count`` synthetic frames (seed = ``seed + index``), rendered on demand."""

    def __init__(self, kind: str = 'street', count: int = 8, seed: int = SYNTHETIC_EVAL_SEED_OFFSET,
                 width: int | None = None, height: int | None = None) -> None:
        if kind not in ('street', 'room'):
            raise ValueError(f'synthetic kind must be street or room, got {kind!r}')
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

    def __init__(self, root: str | Path, split: str = 'val', raw_root: str | Path | None = None) -> None:
        root = Path(root)
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
        if not self.items:
            raise FileNotFoundError(f'no KITTI depth-completion frames under {root}')

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
    """``image_2/``, ``velodyne/``, ``calib/`` (KITTI object or raw frames): LiDAR projected into camera 2.
    No ground truth: use the ``holdout-points`` protocol / self-supervised training."""

    def __init__(self, root: str | Path) -> None:

        self.root = Path(root)
        self.frame_ids = list_kitti_object_frames(self.root)
        if not self.frame_ids:
            raise FileNotFoundError(f'no KITTI frames (image_2 + velodyne + calib) under {root}')

    def __len__(self) -> int:
        return len(self.frame_ids)

    def __getitem__(self, index: int) -> Sample:

        frame = load_kitti_object_frame(self.root, self.frame_ids[index])
        return Sample(rgb=frame.rgb, sparse=kitti_sparse_depth(frame).astype(np.float32), gt=None,
                      camera=frame.camera, name=frame.frame_id)


# ----------------------------------------------------------------------------------------------- RGB-D folder
class RGBDFolder:
    """``color/`` + ``depth/`` (16-bit PNG or PGM) paired by sorted name, ``intrinsics.json`` (fx, fy, cx, cy,
    depth_scale = stored units per metre). Arguments override / replace the JSON. The sensor depth is both the
    measurement and the reference (protocols decide what is fed and what is scored)."""

    def __init__(self, root: str | Path, intrinsics: Sequence[float] | None = None,
                 depth_scale: float | None = None) -> None:
        self.root = Path(root)
        meta: dict[str, Any] = {}
        if (self.root / 'intrinsics.json').is_file():
            meta = json.loads((self.root / 'intrinsics.json').read_text())
        if intrinsics is None:
            if not all(k in meta for k in ('fx', 'fy', 'cx', 'cy')):
                raise ValueError(f'{root}: no intrinsics.json with fx, fy, cx, cy; pass the intrinsics explicitly')
            intrinsics = (meta['fx'], meta['fy'], meta['cx'], meta['cy'])
        self.intrinsics = tuple(float(v) for v in intrinsics)
        self.depth_scale = float(depth_scale if depth_scale is not None else meta.get('depth_scale', 1000.0))
        colors = sorted((p for p in (self.root / 'color').iterdir() if p.suffix.lower() in ('.png', '.jpg', '.jpeg')),
                        key=_natural_key)
        depths = sorted((p for p in (self.root / 'depth').iterdir() if p.suffix.lower() in ('.png', '.pgm')),
                        key=_natural_key)
        if not colors or len(colors) != len(depths):
            raise FileNotFoundError(f'{root}: {len(colors)} colour and {len(depths)} depth images; need equal, > 0')
        self.pairs = list(zip(colors, depths, strict=True))

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> Sample:
        color_path, depth_path = self.pairs[index]
        rgb = read_image(color_path)
        depth = read_depth_png(depth_path, self.depth_scale)
        if depth.shape != rgb.shape[:2]:
            raise ValueError(f'{depth_path}: depth {depth.shape} does not match colour {rgb.shape[:2]}')
        fx, fy, cx, cy = self.intrinsics
        camera = CameraModel.from_intrinsics(fx, fy, cx, cy, rgb.shape[1], rgb.shape[0], frame_id='camera')
        return Sample(rgb=rgb, sparse=depth, gt=depth, camera=camera, name=color_path.stem)


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
            self._info: Any = None
            self._tf: dict[tuple[str, str], RigidTransform] = {}
            connections = [c for c in reader.connections if c.topic in wanted]
            for conn, _t, raw in reader.messages(connections=connections):
                msg = reader.deserialize(raw, conn.msgtype)
                if conn.topic == image_topic:
                    self._images.append((stamp_to_ns(msg.header.stamp), msg))
                elif conn.topic in (points_topic, depth_topic):
                    self._depths.append((stamp_to_ns(msg.header.stamp), msg))
                elif conn.topic == info_topic:
                    if self._info is None:
                        self._info = msg
                else:
                    for tf in msg.transforms:
                        self._tf.setdefault((tf.header.frame_id, tf.child_frame_id),
                                            RigidTransform.from_transform_msg(tf))
        self.camera = CameraModel.from_camera_info(self._info)
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

    def __getitem__(self, index: int) -> Sample:
        from depth_completion_ros.core.projection import project_points

        i, j = self.pairs[index]
        stamp, image_msg = self._images[i]
        depth_msg = self._depths[j][1]
        rgb = image_to_rgb(image_msg)
        if self.points_topic is not None:
            xyz = pointcloud2_to_arrays(depth_msg).xyz
            T = self.T_cam_sensor or _find_transform(self._tf, self.camera.frame_id or image_msg.header.frame_id,
                                                     depth_msg.header.frame_id)
            if T is None:
                raise ValueError(f'{self.path}: no transform {depth_msg.header.frame_id} -> '
                                 f'{self.camera.frame_id}; pass T_cam_sensor')
            sparse = project_points(T.apply(xyz[np.isfinite(xyz).all(axis=1)].astype(np.float64)), self.camera)
        else:
            sparse = depth_image_to_metres(depth_msg)
            if sparse.shape != rgb.shape[:2]:
                raise ValueError(f'{self.path}: depth {sparse.shape} is not registered to the image {rgb.shape[:2]}')
        return Sample(rgb=rgb, sparse=sparse.astype(np.float32), gt=None, camera=self.camera, name=str(stamp))


# ---------------------------------------------------------------------------------------------- spec parsing
KINDS = ('synthetic', 'kitti-dc', 'kitti-object', 'rgbd', 'bag')


def open_source(spec: str, intrinsics: Sequence[float] | None = None, depth_scale: float | None = None,
                synthetic_count: int = 8, synthetic_size: tuple[int, int] | None = None,
                kitti_split: str = 'val', **bag_options: Any) -> Any:
    """``'synthetic:street'``, ``'kitti-dc:DIR'``, ``'kitti-object:DIR'``, ``'rgbd:DIR'``, ``'bag:PATH'``."""
    kind, sep, location = spec.partition(':')
    if not sep or kind not in KINDS:
        raise ValueError(f'data spec {spec!r}: expected <kind>:<location> with kind in {", ".join(KINDS)}')
    if kind == 'synthetic':
        width, height = synthetic_size or (None, None)
        return SyntheticSource(location or 'street', count=synthetic_count, width=width, height=height)
    if kind == 'kitti-dc':
        return KittiDepthCompletionFolder(location, split=kitti_split)
    if kind == 'kitti-object':
        return KittiObjectFolder(location)
    if kind == 'rgbd':
        return RGBDFolder(location, intrinsics=intrinsics, depth_scale=depth_scale)
    return RosbagSource(location, **bag_options)
