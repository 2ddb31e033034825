"""KITTI object-benchmark frames: calibration text, Velodyne scans, images -> camera model + transform.

Layout: ``root/{image_2,velodyne,calib}/<id>.{png,bin,txt}`` (see ../shared/data/kitti_object/README.md);
``velodyne_reduced/`` (the scan cut to the camera frustum, as written by detection toolkits) stands in for
``velodyne/`` when a frame has no full scan.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from depth_completion_ros.core.camera import CameraModel
from depth_completion_ros.core.projection import project_points
from depth_completion_ros.core.transforms import RigidTransform, kitti_velo_to_cam

__all__ = ['KittiFrame', 'read_calib', 'read_velodyne', 'read_image', 'load_kitti_object_frame',
           'list_kitti_object_frames', 'kitti_scan_path', 'kitti_sparse_depth', 'read_raw_calib']


@dataclass(eq=False)
class KittiFrame:
    frame_id: str
    rgb: np.ndarray               # HxWx3 uint8 RGB (image_2, rectified)
    points: np.ndarray            # Nx4 float32 Velodyne x, y, z (m), reflectance
    camera: CameraModel           # camera 2, K of P2, size of the image
    T_cam_velo: RigidTransform    # Velodyne -> rectified camera-2 frame
    calib: dict[str, np.ndarray]


def read_calib(path: str | Path) -> dict[str, np.ndarray]:
    """``KEY: v1 v2 ...`` lines -> {KEY: array}; 12 values become 3x4, 9 values 3x3, others stay flat."""
    calib: dict[str, np.ndarray] = {}
    for line in Path(path).read_text().splitlines():
        key, sep, values = line.partition(':')
        if not sep or not key.strip():
            continue
        try:
            numbers = np.array([float(v) for v in values.split()], dtype=np.float64)
        except ValueError:  # non-numeric entries (e.g. calib_time in raw-dataset files)
            continue
        shape = {12: (3, 4), 9: (3, 3)}.get(numbers.size, (numbers.size,))
        calib[key.strip()] = numbers.reshape(shape)
    return calib


def read_velodyne(path: str | Path) -> np.ndarray:
    """Nx4 float32 (x, y, z in metres, reflectance) from a little-endian KITTI .bin scan."""
    raw = np.fromfile(Path(path), dtype='<f4')
    if raw.size % 4:
        raise ValueError(f'{path}: {raw.size} floats is not a multiple of 4 (x, y, z, reflectance)')
    return raw.reshape(-1, 4).astype(np.float32, copy=False)


def read_image(path: str | Path) -> np.ndarray:
    """HxWx3 uint8 RGB; a truncated or corrupt file raises the loaders' DataError naming it."""
    from depth_completion_ros.core.image_files import read_image_array

    return read_image_array(path, 'RGB').astype(np.uint8, copy=False)


def _frame_name(frame_id: str | int) -> str:
    return f'{int(frame_id):06d}' if isinstance(frame_id, int) or str(frame_id).isdigit() else str(frame_id)


SCAN_FOLDERS = ('velodyne', 'velodyne_reduced')   # preference order: the full scan first


def kitti_scan_path(root: str | Path, frame_id: str) -> Path | None:
    """The frame's scan: ``velodyne/<id>.bin``, else ``velodyne_reduced/<id>.bin``; None when neither exists."""
    return next((path for folder in SCAN_FOLDERS if (path := Path(root) / folder / f'{frame_id}.bin').is_file()),
                None)


def list_kitti_object_frames(root: str | Path) -> list[str]:
    """Frame ids (e.g. '000003') that have an image, a Velodyne scan (full or reduced) and a calibration file."""
    root = Path(root)
    ids = sorted({p.stem for folder in SCAN_FOLDERS for p in (root / folder).glob('*.bin')})
    return [i for i in ids if (root / 'image_2' / f'{i}.png').is_file() and (root / 'calib' / f'{i}.txt').is_file()]


def load_kitti_object_frame(root: str | Path, frame_id: str | int) -> KittiFrame:
    root, name = Path(root), _frame_name(frame_id)
    calib = read_calib(root / 'calib' / f'{name}.txt')
    rgb = read_image(root / 'image_2' / f'{name}.png')
    scan = kitti_scan_path(root, name)
    if scan is None:
        raise FileNotFoundError(f'{root}: no velodyne/{name}.bin or velodyne_reduced/{name}.bin')
    points = read_velodyne(scan)
    T_cam_velo, K = kitti_velo_to_cam(calib)
    height, width = rgb.shape[:2]
    camera = CameraModel(width=width, height=height, K=K, P=np.hstack([K, np.zeros((3, 1))]), frame_id='camera_2')
    return KittiFrame(frame_id=name, rgb=rgb, points=points, camera=camera, T_cam_velo=T_cam_velo, calib=calib)


def kitti_sparse_depth(frame: KittiFrame, min_range: float = 0.1, max_range: float = math.inf) -> np.ndarray:
    """HxW float32 sparse depth (m, 0 = none) of the frame's scan in camera 2, nearest return per pixel."""
    points_cam = frame.T_cam_velo.apply(frame.points[:, :3])
    return project_points(points_cam, frame.camera, min_range=min_range, max_range=max_range)


def read_raw_calib(cam_to_cam: str | Path, velo_to_cam: str | Path) -> dict[str, np.ndarray]:
    """The raw-data devkit's two files merged into one dict; ``velo_to_cam``'s R, T become ``Tr_velo_cam`` (3x4),
    so :func:`kitti_velo_to_cam` gives ``P_rect_02 · R_rect_00 · [R|T]``."""
    calib = read_calib(cam_to_cam)
    velo = read_calib(velo_to_cam)
    if 'R' not in velo or 'T' not in velo:
        raise ValueError(f'{velo_to_cam}: expected R (9 values) and T (3 values)')
    calib['Tr_velo_cam'] = np.hstack([velo['R'].reshape(3, 3), velo['T'].reshape(3, 1)])
    return calib
