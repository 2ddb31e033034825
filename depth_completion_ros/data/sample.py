"""One frame of any source (:class:`Sample`) and the crops every consumer shares."""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from depth_completion_ros.core.camera import CameraModel
from depth_completion_ros.core.transforms import RigidTransform


@dataclass
class Sample:
    rgb: np.ndarray             # HxWx3 uint8
    sparse: np.ndarray          # HxW float32 m: what the depth sensor measured, 0 = none
    gt: np.ndarray | None       # HxW float32 m: (semi-)dense reference, 0 = none; None when the data has none
    camera: CameraModel
    name: str
    # LiDAR sources only: the raw scan (Nx4 x, y, z in m, reflectance; sensor frame, in the scan's own point
    # order, which data.sparsity uses to find the rings) and sensor -> camera, so that a changed scan (fewer beams,
    # accumulated neighbours) can be projected again with data.sparsity.scan_depth.
    points: np.ndarray | None = None
    T_cam_points: RigidTransform | None = None
    index: int | None = None    # frame number in the sequence (the number in the file name), when there is one


def crop_sample(sample: Sample, y0: int, x0: int, height: int, width: int) -> Sample:
    rows, cols = slice(y0, y0 + height), slice(x0, x0 + width)
    return replace(sample, rgb=sample.rgb[rows, cols], sparse=sample.sparse[rows, cols],
                   gt=None if sample.gt is None else sample.gt[rows, cols],
                   camera=sample.camera.cropped(x0, y0, width, height))


def bottom_crop(sample: Sample, height: int) -> Sample:
    """The LRRU/KITTI evaluation crop: the bottom ``height`` rows (the top has no LiDAR)."""
    full = sample.rgb.shape[0]
    return sample if full <= height else crop_sample(sample, full - height, 0, height, sample.rgb.shape[1])
