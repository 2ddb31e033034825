"""KITTI raw drives: ``<date>/<date>_drive_<id>_sync/{image_02/data,velodyne_points/data}`` with the day's
``calib_cam_to_cam.txt`` + ``calib_velo_to_cam.txt`` beside the drive folders (the raw-data devkit layout).

Each :class:`Sample` carries the full scan (``points``, Velodyne frame, point order as recorded), the
Velodyne -> camera-2 transform and the frame number; ``sparse`` is the scan projected with
``P_rect_02 · R_rect_00 · [R|T]`` (nearest return per pixel). No ground truth (``gt`` None): train by hiding
points, or use ``kitti-raw-accum`` for targets accumulated from neighbouring scans.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from depth_completion_ros.core.camera import CameraModel
from depth_completion_ros.core.kitti import read_image, read_raw_calib, read_velodyne
from depth_completion_ros.core.projection import project_points
from depth_completion_ros.core.transforms import RigidTransform, kitti_velo_to_cam
from depth_completion_ros.data.errors import DataError
from depth_completion_ros.data.sample import Sample
from depth_completion_ros.data.spec import FrameSelection, frame_number

CALIB_FILES = ('calib_cam_to_cam.txt', 'calib_velo_to_cam.txt')


def find_drives(root: Path) -> list[Path]:
    """Drive folders (holding ``image_02/data`` and ``velodyne_points/data``) at ``root`` or up to two levels
    below it (``<root>/<date>/<drive>``)."""
    candidates = [root, *sorted(root.glob('*')), *sorted(root.glob('*/*'))]
    return [d for d in candidates
            if (d / 'image_02' / 'data').is_dir() and (d / 'velodyne_points' / 'data').is_dir()]


def _calib_dir(drive: Path) -> Path:
    for folder in (drive, drive.parent, drive.parent.parent):
        if all((folder / name).is_file() for name in CALIB_FILES):
            return folder
    raise DataError(f'{drive}: no {" + ".join(CALIB_FILES)} in the drive folder or above it; copy the '
                    "day's calibration files from the KITTI raw download next to the drive folder")


class KittiRawDrive:
    """All frames with both an image and a scan, in every drive found under ``root``; ``frames`` selects by
    frame number (e.g. ``FrameSelection.parse('0-35')``)."""

    def __init__(self, root: str | Path, frames: FrameSelection | None = None, camera: str = '02') -> None:
        """``camera``: the colour camera, '02' (left, the default) or '03' (right, 0.54 m beside it)."""
        if camera not in ('02', '03'):
            raise DataError(f'kitti-raw: camera {camera!r} is not a colour camera (02 or 03)')
        self.root = Path(root)
        self.camera = camera
        if not self.root.is_dir():
            raise DataError(f'kitti-raw: {root} is not a folder; pass the drive folder or its date folder')
        drives = find_drives(self.root)
        if not drives:
            raise DataError(f'kitti-raw: no drive (image_02/data + velodyne_points/data) under {root}; pass the '
                            'folder of a KITTI raw drive (<date>/<date>_drive_<id>_sync)')
        selection = frames or FrameSelection()
        self.items: list[tuple[Path, Path, int, str]] = []     # image, scan, frame number, drive name
        self.calib: dict[str, tuple[RigidTransform, np.ndarray]] = {}
        for drive in drives:
            calib = read_raw_calib(*(_calib_dir(drive) / n for n in CALIB_FILES))
            if camera == '03' and 'P_rect_03' not in calib:
                raise DataError(f'{_calib_dir(drive)}: calib_cam_to_cam.txt has no P_rect_03 (camera 3)')
            T_cam_velo, K = kitti_velo_to_cam(calib, camera=int(camera))   # camera 3: its baseline in P_rect_03
            self.calib[drive.name] = (T_cam_velo, K)
            images = drive / f'image_{camera}' / 'data'
            if not images.is_dir():
                raise DataError(f'kitti-raw: {drive} has no image_{camera}/data (download the drive with both '
                                'colour cameras)')
            for image in sorted(images.glob('*.png')):
                scan = drive / 'velodyne_points' / 'data' / f'{image.stem}.bin'
                number = frame_number(image.stem, len(self.items))
                if scan.is_file() and number in selection:
                    self.items.append((image, scan, number, drive.name))
        if not self.items:
            raise DataError(f'kitti-raw: no frame with both image_02/data/*.png and velodyne_points/data/*.bin '
                            f'under {root} (frame selection {selection.ranges or "all"})')
        self.multiple_drives = len(drives) > 1

    def __len__(self) -> int:
        return len(self.items)

    def frame_numbers(self) -> list[int]:
        return [number for _, _, number, _ in self.items]

    def __getitem__(self, index: int) -> Sample:
        image_path, scan_path, number, drive = self.items[index]
        rgb = read_image(image_path)
        points = read_velodyne(scan_path)
        T_cam_velo, K = self.calib[drive]
        height, width = rgb.shape[:2]
        camera = CameraModel(width=width, height=height, K=K, P=np.hstack([K, np.zeros((3, 1))]),
                             frame_id=f'camera_{int(self.camera)}')
        sparse = project_points(T_cam_velo.apply(points[:, :3]), camera)
        name = f'{drive}/{image_path.stem}' if self.multiple_drives else image_path.stem
        return Sample(rgb=rgb, sparse=sparse.astype(np.float32), gt=None, camera=camera, name=name,
                      points=points, T_cam_points=T_cam_velo, index=number)
