"""KITTI depth-completion frames that ship only the annotated ground truth and the colour image
(``<drive>/proj_depth/groundtruth/image_0X/<frame>.png`` uint16, m = v / 256, + ``<drive>/image_0X/data/``),
without ``velodyne_raw`` and without calibration.

The network input is simulated from the ground truth with a 64-beam line pattern
(``data.sparsity.simulate_lidar_lines``: the pixels where KITTI's HDL-64E rings, seen from the KITTI Velodyne
mounting, cross the ground truth). Intrinsics: ``intrinsics=`` if given, else the recording day's P_rect_02
picked by image size (:data:`KITTI_INTRINSICS_BY_SIZE`). The simulated input is cleaner than real
``velodyne_raw`` (no parallax outliers, no returns where the ground truth has none): scores on it are not the
KITTI-DC protocol. docs/DATA.md compares its density and row structure with real scans.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from depth_completion_ros.core.camera import CameraModel
from depth_completion_ros.core.kitti import read_image
from depth_completion_ros.data.errors import DataError
from depth_completion_ros.data.loaders import read_depth_png
from depth_completion_ros.data.sample import Sample
from depth_completion_ros.data.sparsity import simulate_lidar_lines
from depth_completion_ros.data.spec import FrameSelection, frame_number

# (width, height) -> (fx, fy, cx, cy) of P_rect_02 for the KITTI recording days whose image size is unique
# (the camera-0/2 K of the KITTI odometry calibrations of those days).
KITTI_INTRINSICS_BY_SIZE: dict[tuple[int, int], tuple[float, float, float, float]] = {
    (1242, 375): (721.5377, 721.5377, 609.5593, 172.8540),   # 2011_09_26
    (1226, 370): (707.0912, 707.0912, 601.8873, 183.1104),   # 2011_09_30
    (1241, 376): (718.8560, 718.8560, 607.1928, 185.2157),   # 2011_10_03
}


class KittiGroundTruthFolder:
    """Every ``proj_depth/groundtruth/image_0X/*.png`` at ``root`` or up to two folder levels below it whose
    colour image exists."""

    def __init__(self, root: str | Path, frames: FrameSelection | None = None,
                 intrinsics: Sequence[float] | None = None) -> None:
        root = Path(root)
        if not root.is_dir():
            raise DataError(f'kitti-dc-gt: {root} is not a folder; pass a drive folder holding proj_depth/groundtruth')
        selection = frames or FrameSelection()
        self.intrinsics = None if intrinsics is None else tuple(float(v) for v in intrinsics)
        self.items: list[tuple[Path, Path, int]] = []
        for pattern in ('proj_depth/groundtruth/image_0[23]/*.png', '*/proj_depth/groundtruth/image_0[23]/*.png',
                        '*/*/proj_depth/groundtruth/image_0[23]/*.png'):
            for gt in sorted(root.glob(pattern)):
                drive, cam = gt.parents[3], gt.parent.name
                rgb = drive / cam / 'data' / gt.name
                number = frame_number(gt.stem, len(self.items))
                if rgb.is_file() and number in selection:
                    self.items.append((rgb, gt, number))
        if not self.items:
            raise DataError(f'kitti-dc-gt: no proj_depth/groundtruth/image_0X/*.png with its image_0X/data/*.png '
                            f'under {root} (frame selection {selection.ranges or "all"})')

    def __len__(self) -> int:
        return len(self.items)

    def camera_for(self, width: int, height: int) -> CameraModel:
        intrinsics = self.intrinsics or KITTI_INTRINSICS_BY_SIZE.get((width, height))
        if intrinsics is None:
            raise DataError(f'kitti-dc-gt: no known KITTI calibration for {width}x{height} images; pass '
                            '--intrinsics FX FY CX CY or add ?intrinsics=fx,fy,cx,cy to the spec')
        fx, fy, cx, cy = intrinsics
        return CameraModel.from_intrinsics(fx, fy, cx, cy, width, height, frame_id='camera_2')

    def __getitem__(self, index: int) -> Sample:
        rgb_path, gt_path, number = self.items[index]
        rgb = read_image(rgb_path)
        gt = read_depth_png(gt_path, 256.0)
        if gt.shape != rgb.shape[:2]:
            raise DataError(f'{gt_path}: ground truth {gt.shape} and image {rgb.shape[:2]} differ in size')
        camera = self.camera_for(rgb.shape[1], rgb.shape[0])
        sparse = simulate_lidar_lines(gt, camera)
        return Sample(rgb=rgb, sparse=sparse, gt=gt, camera=camera, name=gt_path.stem, index=number)
