"""Pinhole camera model built from sensor_msgs/CameraInfo (rclpy or rosbags), like image_geometry's.

K and P are stored *as seen by the image that arrives*: binning and ROI are already folded in, so pixel
coordinates of the published image can be used directly (image_geometry::PinholeCameraModel semantics).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ['CameraModel', 'CameraModelError', 'DISTORTION_MODELS']

# sensor_msgs/distortion_models names -> how many coefficients the maths uses (more given must be zero).
# rational_polynomial: k1 k2 p1 p2 k3 k4 k5 k6 [s1 s2 s3 s4] (OpenCV's order; thin prism terms included);
# equidistant: k1 k2 k3 k4 (OpenCV's fisheye model).
DISTORTION_MODELS: dict[str, int] = {'plumb_bob': 5, 'rational_polynomial': 12, 'equidistant': 4}


class CameraModelError(ValueError):
    """A CameraInfo / intrinsics that cannot describe a usable pinhole camera."""


def _matrix(values: Any, rows: int, cols: int, name: str) -> np.ndarray:
    flat = np.asarray(values, dtype=np.float64).reshape(-1)
    if flat.size != rows * cols:
        raise CameraModelError(f'{name} must have {rows * cols} values, got {flat.size}')
    return flat.reshape(rows, cols).copy()


@dataclass(eq=False)  # numpy fields: compare K/P explicitly, not with ==
class CameraModel:
    width: int
    height: int
    K: np.ndarray
    P: np.ndarray
    D: np.ndarray = field(default_factory=lambda: np.zeros(0))
    distortion_model: str = 'plumb_bob'
    frame_id: str = ''

    def __post_init__(self) -> None:
        self.width, self.height = int(self.width), int(self.height)
        self.K = _matrix(self.K, 3, 3, 'K')
        self.P = _matrix(self.P, 3, 4, 'P')
        self.D = np.asarray(self.D, dtype=np.float64).reshape(-1)
        self.validate()

    # ------------------------------------------------------------------------------------------------ basics
    @property
    def fx(self) -> float:
        return float(self.K[0, 0])

    @property
    def fy(self) -> float:
        return float(self.K[1, 1])

    @property
    def cx(self) -> float:
        return float(self.K[0, 2])

    @property
    def cy(self) -> float:
        return float(self.K[1, 2])

    @property
    def size(self) -> tuple[int, int]:
        """(height, width), the shape of a depth image of this camera."""
        return self.height, self.width

    def validate(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise CameraModelError(f'image size must be positive, got {self.width}x{self.height}')
        if not np.all(np.isfinite(self.K)) or not np.all(np.isfinite(self.P)):
            raise CameraModelError(f'K/P contain non-finite values: K={self.K.tolist()} P={self.P.tolist()}')
        if self.K[0, 0] == 0.0 or self.K[1, 1] == 0.0:
            raise CameraModelError(f'zero focal length in K (fx={self.K[0, 0]}, fy={self.K[1, 1]}): '
                                   'the camera is uncalibrated')
        if self.K[2, 2] != 1.0 or self.K[2, 0] != 0.0 or self.K[2, 1] != 0.0 or self.K[1, 0] != 0.0:
            raise CameraModelError(f'K is not an upper-triangular intrinsic matrix with K[2,2]=1: {self.K.tolist()}')
        if self.P[0, 0] == 0.0 or self.P[1, 1] == 0.0 or self.P[2, 2] == 0.0:
            raise CameraModelError(f'P has a zero focal length or P[2,2]=0: {self.P.tolist()}')
        if self.has_distortion:
            used = DISTORTION_MODELS.get(self.distortion_model)
            if used is None:
                raise CameraModelError(f'distortion model {self.distortion_model!r} is not supported (supported: '
                                       f'{", ".join(DISTORTION_MODELS)}); publish a rectified image and set '
                                       f'image_rectified')
            if not np.all(np.isfinite(self.D)) or np.any(self.D[used:] != 0.0):
                raise CameraModelError(f'{self.distortion_model} takes {used} coefficients, got D={self.D.tolist()}')

    # ------------------------------------------------------------------------------------------- distortion
    @property
    def has_distortion(self) -> bool:
        """Any non-zero coefficient in D (image_geometry: all-zero D means the image needs no rectification)."""
        return bool(np.any(self.D != 0.0))

    def distortion_coefficients(self) -> np.ndarray:
        """D padded with zeros to the length the model's maths uses."""
        used = DISTORTION_MODELS.get(self.distortion_model, self.D.size)
        padded = np.zeros(max(used, self.D.size), dtype=np.float64)
        padded[:self.D.size] = self.D
        return padded[:used]

    def for_image(self, image_rectified: bool = False) -> tuple[CameraModel, str]:
        """The camera to project points into the image that comes with this camera_info, and why.

        Decided as image_proc does: all-zero D means the image is already rectified, so K is used (what the
        node always did). A non-zero D means the image is the raw one (``image_raw``): points are projected
        with K and D. ``image_rectified`` says the image is the rectified one (``image_rect``) although the
        camera_info carries D: then P's 3x3 is the pinhole camera (its stereo column, a baseline, is ignored:
        the extrinsics must point at this camera's optical frame).
        """
        if not self.has_distortion:
            return self, 'camera_info has no distortion (D all zero): pinhole projection with K'
        if image_rectified:
            K = self.P[:, :3].copy()
            return (CameraModel(width=self.width, height=self.height, K=K, P=np.hstack([K, np.zeros((3, 1))]),
                                D=np.zeros(0), distortion_model=self.distortion_model, frame_id=self.frame_id),
                    f'image_rectified=true: the image is rectified, projection with P (camera_info D of '
                    f'{self.distortion_model} ignored)')
        return self, (f'camera_info has {self.distortion_model} distortion D={np.round(self.D, 6).tolist()}: '
                      f'the image is raw, points are projected with K and D (set image_rectified:=true for '
                      f'an image_rect topic)')

    # ------------------------------------------------------------------------------------------ constructors
    @classmethod
    def from_intrinsics(cls, fx: float, fy: float, cx: float, cy: float, width: int, height: int,
                        frame_id: str = '') -> CameraModel:
        K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=np.float64)
        return cls(width=width, height=height, K=K, P=np.hstack([K, np.zeros((3, 1))]), frame_id=frame_id)

    @classmethod
    def from_camera_info(cls, msg: Any) -> CameraModel:
        """Camera of the image that goes with ``msg``: binning and ROI applied as image_geometry does.

        Works on rclpy and rosbags CameraInfo (fields k, p, d, width, height, binning_x/y, roi,
        distortion_model, header.frame_id). An all-zero P (common from uncalibrated drivers) becomes [K | 0].
        """
        full_width, full_height = int(msg.width), int(msg.height)
        if full_width <= 0 or full_height <= 0:
            raise CameraModelError(f'CameraInfo has image size {full_width}x{full_height}')
        K = _matrix(msg.k, 3, 3, 'CameraInfo.k')
        P = _matrix(msg.p, 3, 4, 'CameraInfo.p')
        if not np.any(K):
            raise CameraModelError('CameraInfo.k is all zeros: the camera is uncalibrated')
        if not np.any(P):
            P = np.hstack([K, np.zeros((3, 1))])
        # Binning 0 and 1 both mean "none" (sensor_msgs/CameraInfo docs).
        binning_x = max(int(getattr(msg, 'binning_x', 0) or 0), 1)
        binning_y = max(int(getattr(msg, 'binning_y', 0) or 0), 1)

        roi = getattr(msg, 'roi', None)
        x0, y0, roi_width, roi_height = 0, 0, 0, 0
        if roi is not None:
            x0, y0 = int(roi.x_offset), int(roi.y_offset)
            roi_width, roi_height = int(roi.width), int(roi.height)
        if roi_width == 0 or roi_height == 0:  # all-zero ROI = the full image
            x0, y0, roi_width, roi_height = 0, 0, full_width, full_height
        if x0 < 0 or y0 < 0 or x0 + roi_width > full_width or y0 + roi_height > full_height:
            raise CameraModelError(f'ROI (x={x0}, y={y0}, w={roi_width}, h={roi_height}) lies outside the '
                                   f'{full_width}x{full_height} image')

        # ROI offsets are in full-resolution pixels; shift the principal point, then scale for binning.
        K[0, 2] -= x0
        K[1, 2] -= y0
        P[0, 2] -= x0
        P[1, 2] -= y0
        scale_x, scale_y = 1.0 / binning_x, 1.0 / binning_y
        K[0, :] *= scale_x
        K[1, :] *= scale_y
        P[0, :] *= scale_x
        P[1, :] *= scale_y
        header = getattr(msg, 'header', None)
        return cls(width=roi_width // binning_x, height=roi_height // binning_y, K=K, P=P,
                   D=np.asarray(msg.d, dtype=np.float64), distortion_model=str(msg.distortion_model or 'plumb_bob'),
                   frame_id=str(header.frame_id) if header is not None else '')

    # --------------------------------------------------------------------------------------------- derived
    def scaled(self, sx: float, sy: float | None = None) -> CameraModel:
        """Camera of the image resized by (sx, sy): pixel edges scale, so c' = (c + 0.5) * s - 0.5."""
        sy = sx if sy is None else sy
        scale = np.diag([sx, sy, 1.0])
        offset = np.array([[0.0, 0.0, 0.5 * (sx - 1.0)], [0.0, 0.0, 0.5 * (sy - 1.0)], [0.0, 0.0, 0.0]])
        K = scale @ self.K + offset @ self.K
        P = scale @ self.P + offset @ self.P
        return CameraModel(width=int(round(self.width * sx)), height=int(round(self.height * sy)), K=K, P=P,
                           D=self.D.copy(), distortion_model=self.distortion_model, frame_id=self.frame_id)

    def cropped(self, x0: int, y0: int, width: int, height: int) -> CameraModel:
        """Camera of the sub-image [y0:y0+height, x0:x0+width]."""
        if x0 < 0 or y0 < 0 or width <= 0 or height <= 0 or x0 + width > self.width or y0 + height > self.height:
            raise CameraModelError(f'crop (x={x0}, y={y0}, w={width}, h={height}) is outside the '
                                   f'{self.width}x{self.height} image')
        K, P = self.K.copy(), self.P.copy()
        K[0, 2] -= x0
        K[1, 2] -= y0
        # P[:, 3] holds K*t; shifting the principal point of [K | K t] row-wise keeps it consistent.
        P[0, :] -= x0 * P[2, :]
        P[1, :] -= y0 * P[2, :]
        return CameraModel(width=width, height=height, K=K, P=P, D=self.D.copy(),
                           distortion_model=self.distortion_model, frame_id=self.frame_id)

    def to_camera_info(self, stamp: Any = None, msg_cls: type | None = None) -> Any:
        """sensor_msgs/CameraInfo (rclpy by default; ``msg_cls`` may be a rosbags class) with no binning/ROI."""
        from depth_completion_ros.core.conversions import _default_msg_cls, _header_values, _make_message

        return _make_message(msg_cls or _default_msg_cls('CameraInfo'), {
            'header': _header_values(None, self.frame_id, stamp),
            'height': self.height, 'width': self.width,
            'distortion_model': self.distortion_model,
            'd': self.D.copy(), 'k': self.K.copy(), 'r': np.eye(3), 'p': self.P.copy(),
            'binning_x': 0, 'binning_y': 0,
            'roi': {'x_offset': 0, 'y_offset': 0, 'height': 0, 'width': 0, 'do_rectify': False},
        })
