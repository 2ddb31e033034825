"""Lens distortion (core/projection.py + CameraModel.for_image): our maths against OpenCV's projectPoints on
synthetic cameras with known geometry, round trips, torch = numpy, and the undistorted path unchanged."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from depth_completion_ros.core.camera import CameraModel, CameraModelError
from depth_completion_ros.core.projection import (
    backproject,
    distort_normalized,
    pixel_coordinates,
    project_points,
    undistort_normalized,
)

WIDTH, HEIGHT = 640, 480
K = np.array([[420.0, 0.0, 318.7], [0.0, 415.0, 243.2], [0.0, 0.0, 1.0]])
CASES = {
    # a wide-angle lens with strong barrel distortion and some decentering
    'plumb_bob': [-0.32, 0.12, 0.0012, -0.0008, -0.02],
    'rational_polynomial': [0.47, -2.6, 0.0007, -0.0002, 1.6, 0.35, -2.4, 1.5],  # Azure-Kinect-like colour lens
    'equidistant': [-0.05, 0.012, -0.004, 0.0007],
}


def _camera(model: str) -> CameraModel:
    return CameraModel(width=WIDTH, height=HEIGHT, K=K, P=np.hstack([K, np.zeros((3, 1))]), D=CASES[model],
                       distortion_model=model, frame_id='cam')


def _scene_points(seed: int = 0, n: int = 4000) -> np.ndarray:
    """Points in front of the camera spread over (and a little beyond) the field of view."""
    rng = np.random.default_rng(seed)
    z = rng.uniform(0.5, 30.0, n)
    x = rng.uniform(-1.0, 1.0, n) * z
    y = rng.uniform(-0.8, 0.8, n) * z
    return np.stack([x, y, z], axis=1)


def _opencv_pixels(points: np.ndarray, model: str) -> np.ndarray:
    zero = np.zeros(3)
    if model == 'equidistant':
        pixels, _ = cv2.fisheye.projectPoints(points.reshape(-1, 1, 3), zero, zero, K, np.asarray(CASES[model]))
    else:
        pixels, _ = cv2.projectPoints(points, zero, zero, K, np.asarray(CASES[model]))
    return pixels.reshape(-1, 2)


@pytest.mark.parametrize('model', list(CASES))
def test_projected_points_land_where_opencv_puts_them(model: str) -> None:
    camera = _camera(model)
    points = _scene_points()
    u, v, ok = pixel_coordinates(points, camera)
    reference = _opencv_pixels(points, model)
    in_image = ok & (u > -0.5) & (u < WIDTH - 0.5) & (v > -0.5) & (v < HEIGHT - 0.5)
    assert in_image.sum() > 1500
    error = np.hypot(u[in_image] - reference[in_image, 0], v[in_image] - reference[in_image, 1])
    assert error.max() < 0.5, error.max()  # the brief: within 0.5 px; in practice float64 round-off
    assert error.max() < 1e-6
    # the sparse depth image: every point lands in the pixel OpenCV's coordinates round to (nearest wins)
    sparse = project_points(points, camera, min_range=0.1)
    columns = np.floor(reference[in_image, 0] + 0.5).astype(int)
    rows = np.floor(reference[in_image, 1] + 0.5).astype(int)
    expected = np.zeros((HEIGHT, WIDTH), np.float32)
    order = np.argsort(-points[in_image, 2])  # far first, so the nearest point of a pixel is written last
    expected[rows[order], columns[order]] = points[in_image, 2][order]
    np.testing.assert_array_equal(sparse, expected)


@pytest.mark.parametrize('model', list(CASES))
def test_undistortion_inverts_distortion_and_the_cloud_reprojects_onto_its_pixels(model: str) -> None:
    camera = _camera(model)
    rng = np.random.default_rng(1)
    x = rng.uniform(-0.7, 0.7, 2000)
    y = rng.uniform(-0.55, 0.55, 2000)
    x_d, y_d = distort_normalized(x, y, camera)
    x_back, y_back = undistort_normalized(x_d, y_d, camera)
    assert np.abs(x_back - x).max() < 1e-7 and np.abs(y_back - y).max() < 1e-7
    # organized cloud of a raw image: each pixel's ray, projected again by OpenCV, hits the pixel centre
    depth = np.full((HEIGHT, WIDTH), 4.0, np.float32)
    cloud = backproject(depth, camera)
    sample = cloud[::37, ::41].reshape(-1, 3).astype(np.float64)
    pixels = _opencv_pixels(sample, model).reshape(len(range(0, HEIGHT, 37)), len(range(0, WIDTH, 41)), 2)
    grid_u, grid_v = np.meshgrid(np.arange(0, WIDTH, 41), np.arange(0, HEIGHT, 37))
    assert np.abs(pixels[..., 0] - grid_u).max() < 1e-3 and np.abs(pixels[..., 1] - grid_v).max() < 1e-3
    np.testing.assert_allclose(cloud[..., 2], 4.0)
    # and the z-buffer projection of that cloud gives back the depth image exactly
    np.testing.assert_array_equal(project_points(cloud.reshape(-1, 3), camera, min_range=0.1), depth)


@pytest.mark.parametrize('model', list(CASES))
def test_torch_and_numpy_agree_on_a_distorted_camera(model: str) -> None:
    camera = _camera(model)
    points = _scene_points(seed=2)
    from_numpy = project_points(points, camera)
    from_torch = project_points(torch.as_tensor(points), camera)
    assert isinstance(from_torch, torch.Tensor)
    np.testing.assert_array_equal(from_torch.numpy(), from_numpy)
    depth = torch.full((HEIGHT, WIDTH), 3.0)
    np.testing.assert_allclose(backproject(depth, camera).numpy(), backproject(depth.numpy(), camera), atol=1e-6)


def test_points_beyond_the_lens_model_do_not_fold_back_into_the_image() -> None:
    # barrel distortion turns around at large radii: a point 80 deg off-axis would wrap back inside
    camera = _camera('plumb_bob')
    far_off_axis = np.array([[6.0, 0.0, 1.0], [0.0, 5.0, 1.0]])
    wrapped = _opencv_pixels(far_off_axis, 'plumb_bob')
    assert ((wrapped[:, 0] > 0) & (wrapped[:, 0] < WIDTH)).any()  # OpenCV's formula does put one inside
    assert not project_points(far_off_axis, camera).any()


def test_an_undistorted_camera_projects_exactly_as_the_pinhole_formula() -> None:
    """All-zero D (or none) takes the same code as before distortion existed: bit-for-bit identical output."""
    points = _scene_points(seed=3)
    no_d = CameraModel(width=WIDTH, height=HEIGHT, K=K, P=np.hstack([K, np.zeros((3, 1))]))
    zero_d = CameraModel(width=WIDTH, height=HEIGHT, K=K, P=np.hstack([K, np.zeros((3, 1))]), D=np.zeros(5))
    assert not zero_d.has_distortion
    a, b = project_points(points, no_d), project_points(points, zero_d)
    np.testing.assert_array_equal(a, b)
    # the pinhole formula written out (the code path every undistorted camera has always taken)
    z = points[:, 2]
    u = np.floor((points @ K[0]) / z + 0.5).astype(int)
    v = np.floor((points @ K[1]) / z + 0.5).astype(int)
    inside = (u >= 0) & (u < WIDTH) & (v >= 0) & (v < HEIGHT)
    expected = np.full(HEIGHT * WIDTH, np.inf, np.float32)
    np.minimum.at(expected, v[inside] * WIDTH + u[inside], z[inside].astype(np.float32))
    expected[np.isinf(expected)] = 0
    np.testing.assert_array_equal(a, expected.reshape(HEIGHT, WIDTH))
    np.testing.assert_array_equal(backproject(a, no_d), backproject(a, zero_d))


def test_for_image_decides_raw_or_rectified_from_the_camera_info() -> None:
    pinhole = CameraModel(width=WIDTH, height=HEIGHT, K=K, P=np.hstack([K, np.zeros((3, 1))]), D=np.zeros(5))
    same, reason = pinhole.for_image()
    assert same is pinhole and 'pinhole' in reason
    raw = _camera('plumb_bob')
    raw.P = np.array([[400.0, 0, 320.0, 0], [0, 400.0, 240.0, 0], [0, 0, 1.0, 0]])  # the rectified camera
    chosen, reason = raw.for_image()
    assert chosen is raw and 'raw' in reason and 'plumb_bob' in reason
    rectified, reason = raw.for_image(image_rectified=True)
    assert not rectified.has_distortion and 'P' in reason
    np.testing.assert_array_equal(rectified.K, raw.P[:, :3])
    with pytest.raises(CameraModelError, match='not supported'):
        CameraModel(width=WIDTH, height=HEIGHT, K=K, P=np.hstack([K, np.zeros((3, 1))]), D=[0.1, 0, 0, 0, 0],
                    distortion_model='weird_model')
    with pytest.raises(CameraModelError, match='takes 4'):
        CameraModel(width=WIDTH, height=HEIGHT, K=K, P=np.hstack([K, np.zeros((3, 1))]), D=[0.1, 0, 0, 0, 0.2],
                    distortion_model='equidistant')
