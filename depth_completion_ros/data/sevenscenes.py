"""Microsoft 7-Scenes sequences: ``frame-NNNNNN.color.{jpg,png}``, ``frame-NNNNNN.depth.png`` (uint16 mm,
0 or 65535 = invalid), ``frame-NNNNNN.pose.txt`` (4x4 camera-to-world) and ``camera-intrinsics.txt`` (3x3, the
*depth* camera: fx = fy = 585, cx = 320, cy = 240).

Colour and depth of 7-Scenes are not registered (the dataset ships raw Kinect v1 images, uncalibrated). By
default the depth is re-rendered into the colour camera (``core.projection.register_depth``) with an
approximate Kinect v1 calibration fitted on the shared frames: colour intrinsics fx = fy = 530, cx = 319.5,
cy = 239.5 (the OpenNI default for the Kinect v1 RGB camera is 525) and the depth camera
:data:`DEPTH_IN_COLOUR_M` from the colour camera, no rotation (Kinect v1: IR camera ~2.5 cm beside the RGB
camera). docs/DATA.md gives the fit and the residual error (depth edges 1.5 px from colour edges, 6.4 px
unregistered);
``registration=off`` keeps the depth as recorded (depth intrinsics, no warp) and then colour and depth disagree
by up to ~30 px near the image border.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from depth_completion_ros.core.camera import CameraModel
from depth_completion_ros.core.image_files import read_image_array
from depth_completion_ros.core.kitti import read_image
from depth_completion_ros.core.projection import register_depth
from depth_completion_ros.core.transforms import RigidTransform
from depth_completion_ros.data.errors import DataError
from depth_completion_ros.data.sample import Sample
from depth_completion_ros.data.spec import FrameSelection, frame_number

# Fitted by grid search (fx 510..585, x -5..5 cm, y -0.5..0.5 cm, cx/cy +-4 px) minimising the median distance
# from depth edges to colour edges (data.quality.edge_alignment_px) over every 6th shared frame.
KINECT_V1_COLOUR_INTRINSICS = (530.0, 530.0, 319.5, 239.5)
DEPTH_IN_COLOUR_M = (-0.02, -0.005, 0.0)   # depth (IR) camera origin in the colour camera frame
INVALID_DEPTH_VALUES = (0, 65535)
REGISTERED_CACHE_FRAMES = 256   # registered maps kept in memory as uint16 mm (0.6 MB each at 640x480)


def read_sevenscenes_depth(path: Path) -> np.ndarray:
    """uint16 mm -> float32 m; 0 and 65535 (7-Scenes' invalid marker) become 0."""
    raw = read_image_array(path)
    if raw.ndim != 2 or raw.dtype.kind not in 'ui':
        raise DataError(f'{path}: expected a 16-bit single-channel depth PNG, got {raw.dtype} {raw.shape}')
    metres = raw.astype(np.float32) / np.float32(1000.0)
    metres[np.isin(raw, INVALID_DEPTH_VALUES)] = 0.0
    return metres


class SevenScenesFolder:
    """Frames of one 7-Scenes sequence folder (or its parent holding ``data/``)."""

    depth_camera = True   # sparse and gt are the same dense sensor map: training samples points from it

    def __init__(self, root: str | Path, frames: FrameSelection | None = None, register: bool = True,
                 colour_intrinsics: tuple[float, float, float, float] = KINECT_V1_COLOUR_INTRINSICS,
                 depth_in_colour_m: tuple[float, float, float] = DEPTH_IN_COLOUR_M) -> None:
        root = Path(root)
        folder = root / 'data' if (root / 'data').is_dir() else root
        if not folder.is_dir():
            raise DataError(f'7scenes: {root} is not a folder; pass a 7-Scenes sequence folder (frame-*.depth.png)')
        intrinsics_file = next((p for p in (folder / 'camera-intrinsics.txt', root / 'camera-intrinsics.txt')
                                if p.is_file()), None)
        if intrinsics_file is None:
            raise DataError(f'7scenes: no camera-intrinsics.txt in {folder}; write the depth camera 3x3 K there '
                            '(7-Scenes: 585 0 320 / 0 585 240 / 0 0 1)')
        self.K_depth = np.loadtxt(intrinsics_file).reshape(3, 3)
        selection = frames or FrameSelection()
        self.items: list[tuple[Path, Path, Path | None, int]] = []
        for depth in sorted(folder.glob('frame-*.depth.png')):
            stem = depth.name[:-len('.depth.png')]
            colour = next((p for ext in ('jpg', 'png') if (p := folder / f'{stem}.color.{ext}').is_file()), None)
            pose = folder / f'{stem}.pose.txt'
            number = frame_number(stem, len(self.items))
            if colour is not None and number in selection:
                self.items.append((colour, depth, pose if pose.is_file() else None, number))
        if not self.items:
            raise DataError(f'7scenes: no frame-*.color.jpg + frame-*.depth.png pairs under {root} '
                            f'(frame selection {selection.ranges or "all"})')
        self.register = register
        self.colour_intrinsics = colour_intrinsics
        self.T_colour_depth = RigidTransform(np.eye(3), np.asarray(depth_in_colour_m, np.float64))
        self._registered: dict[int, np.ndarray] = {}   # training reads each frame many times

    def __len__(self) -> int:
        return len(self.items)

    def pose(self, index: int) -> np.ndarray | None:
        """4x4 camera-to-world of the depth camera (KinectFusion track, metres); None when the file is missing."""
        path = self.items[index][2]
        return None if path is None else np.loadtxt(path).reshape(4, 4)

    def __getitem__(self, index: int) -> Sample:
        colour_path, depth_path, _, number = self.items[index]
        rgb = read_image(colour_path)
        depth = read_sevenscenes_depth(depth_path)
        height, width = depth.shape
        K = self.K_depth
        depth_camera = CameraModel.from_intrinsics(K[0, 0], K[1, 1], K[0, 2], K[1, 2], width, height,
                                                   frame_id='depth')
        if self.register:
            fx, fy, cx, cy = self.colour_intrinsics
            camera = CameraModel.from_intrinsics(fx, fy, cx, cy, rgb.shape[1], rgb.shape[0], frame_id='camera')
            if index not in self._registered:
                registered = register_depth(depth, depth_camera, camera, self.T_colour_depth)
                if len(self._registered) >= REGISTERED_CACHE_FRAMES:
                    self._registered.pop(next(iter(self._registered)))
                self._registered[index] = np.round(np.asarray(registered) * 1000).astype(np.uint16)
            depth = self._registered[index].astype(np.float32) / np.float32(1000.0)   # mm, as recorded
        else:
            if depth.shape != rgb.shape[:2]:
                raise DataError(f'{depth_path}: depth {depth.shape} and colour {rgb.shape[:2]} differ; '
                                'leave registration on')
            camera = depth_camera
        depth = np.asarray(depth, np.float32)
        return Sample(rgb=rgb, sparse=depth, gt=depth, camera=camera, name=colour_path.name.split('.')[0],
                      index=number)
