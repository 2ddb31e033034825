"""Exact geometry on constructed scenes: transforms, projection with z-buffer, back-projection, registration."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from depth_completion_ros.core.camera import CameraModel
from depth_completion_ros.core.projection import backproject, project_points, register_depth
from depth_completion_ros.core.transforms import RigidTransform, kitti_velo_to_cam

CAMERA = CameraModel.from_intrinsics(fx=100.0, fy=120.0, cx=31.5, cy=23.5, width=64, height=48, frame_id='cam')


def pixel_centre_rays(camera: CameraModel) -> np.ndarray:
    """HxWx3 direction (x/z, y/z, 1) through every pixel centre, computed in float64."""
    v, u = np.mgrid[0:camera.height, 0:camera.width].astype(np.float64)
    return np.stack([(u - camera.cx) / camera.fx, (v - camera.cy) / camera.fy, np.ones_like(u)], axis=-1)


# ------------------------------------------------------------------------------------------------- transforms

def test_quaternion_rotation_and_inverse() -> None:
    # 90 degrees about z: x -> y
    T = RigidTransform.from_quaternion([1.0, 2.0, 3.0], [0.0, 0.0, math.sin(math.pi / 4), math.cos(math.pi / 4)])
    np.testing.assert_allclose(T.apply(np.array([[1.0, 0.0, 0.0]])), [[1.0, 3.0, 3.0]], atol=1e-12)
    points = np.random.default_rng(0).normal(size=(10, 3))
    np.testing.assert_allclose(T.inverse().apply(T.apply(points)), points, atol=1e-12)
    np.testing.assert_allclose((T @ T.inverse()).matrix, np.eye(4), atol=1e-12)
    np.testing.assert_allclose(RigidTransform.from_matrix(T.matrix).quaternion_xyzw,
                               [0.0, 0.0, math.sin(math.pi / 4), math.cos(math.pi / 4)], atol=1e-12)


def test_compose_matches_matrix_product_and_torch_apply() -> None:
    rng = np.random.default_rng(1)
    A = RigidTransform.from_quaternion(rng.normal(size=3), rng.normal(size=4))
    B = RigidTransform.from_matrix(RigidTransform.from_quaternion(rng.normal(size=3), rng.normal(size=4)).matrix[:3])
    np.testing.assert_allclose((A @ B).matrix, A.matrix @ B.matrix, atol=1e-12)
    points = rng.normal(size=(50, 3))
    expected = (A.matrix @ np.c_[points, np.ones(50)].T).T[:, :3]
    np.testing.assert_allclose(A.apply(points), expected, atol=1e-12)
    as_torch = A.apply(torch.from_numpy(points))
    assert isinstance(as_torch, torch.Tensor) and as_torch.dtype == torch.float64
    np.testing.assert_allclose(as_torch.numpy(), expected, atol=1e-12)


def test_bad_transforms_raise() -> None:
    with pytest.raises(ValueError, match='rotation'):
        RigidTransform(np.diag([1.0, 2.0, 1.0]))
    with pytest.raises(ValueError, match='rotation'):
        RigidTransform(np.diag([1.0, 1.0, -1.0]))  # a reflection
    with pytest.raises(ValueError, match='norm'):
        RigidTransform.from_quaternion([0, 0, 0], [0, 0, 0, 0])


def test_kitti_chain_folds_p2_offset() -> None:
    rng = np.random.default_rng(2)
    K = np.array([[700.0, 0, 600.0], [0, 700.0, 180.0], [0, 0, 1]])
    P2 = np.hstack([K, (K @ np.array([0.06, -0.001, 0.003]))[:, None]])
    R0 = RigidTransform.from_quaternion([0, 0, 0], [0.01, -0.02, 0.005, 1.0]).rotation
    Tr = RigidTransform.from_quaternion([0.3, -0.08, -0.27], [0.5, -0.5, 0.5, -0.5]).matrix[:3]
    T_cam_velo, K_out = kitti_velo_to_cam({'P2': P2.reshape(-1), 'R0_rect': R0.reshape(-1), 'Tr_velo_to_cam': Tr})
    np.testing.assert_array_equal(K_out, K)
    points = rng.uniform(-20, 20, (100, 3))
    expected = P2 @ np.vstack([np.c_[R0, np.zeros(3)], [0, 0, 0, 1]]) @ np.vstack([Tr, [0, 0, 0, 1]]) \
        @ np.c_[points, np.ones(100)].T
    np.testing.assert_allclose((K_out @ T_cam_velo.apply(points).T), expected, rtol=1e-12, atol=1e-9)


# ------------------------------------------------------------------------------------------------- projection

@pytest.mark.parametrize('depth_m', [0.5, 3.25, 17.0])
def test_fronto_parallel_plane_projects_to_its_depth(depth_m: float) -> None:
    points = (pixel_centre_rays(CAMERA) * depth_m).reshape(-1, 3)
    depth = project_points(points, CAMERA)
    assert depth.dtype == np.float32 and depth.shape == (48, 64)
    np.testing.assert_array_equal(depth, np.full((48, 64), depth_m, np.float32))


def test_points_behind_or_outside_are_dropped() -> None:
    points = np.array([
        [0.0, 0.0, -2.0],        # behind the camera, on the optical axis
        [0.0, 0.0, 0.05],        # in front but closer than min_range
        [10.0, 0.0, 1.0],        # outside the image (u = 1031)
        [np.nan, 0.0, 2.0],      # non-finite
        [0.0, 0.0, np.inf],      # infinitely far
    ])
    assert not project_points(points, CAMERA).any()
    kept = project_points(np.array([[0.0, 0.0, 2.0]]), CAMERA)
    assert kept[round(CAMERA.cy), round(CAMERA.cx)] == 2.0 and np.count_nonzero(kept) == 1


def test_behind_camera_point_does_not_mirror_into_image() -> None:
    # (x, y, z) = (-0.1, -0.1, -1) would land at (41.5, 35.5) if z were not checked
    assert not project_points(np.array([[-0.1, -0.1, -1.0]]), CAMERA, min_range=0.0).any()


def test_nearest_point_wins_regardless_of_order() -> None:
    ray = np.array([0.1, -0.05, 1.0])
    for depths in ([5.0, 2.0, 9.0], [2.0, 9.0, 5.0], [9.0, 5.0, 2.0]):
        depth = project_points(ray[None, :] * np.array(depths)[:, None], CAMERA)
        assert np.count_nonzero(depth) == 1 and depth.max() == 2.0


def test_min_and_max_range() -> None:
    rays = pixel_centre_rays(CAMERA)[10, 5:10]
    points = rays * np.array([0.5, 1.0, 2.0, 4.0, 8.0])[:, None]
    depth = project_points(points, CAMERA, min_range=1.0, max_range=4.0)
    np.testing.assert_array_equal(depth[10, 5:10], [0.0, 1.0, 2.0, 4.0, 0.0])


def test_projection_matrix_option_uses_p() -> None:
    # a right stereo camera: P = [K | -fx * baseline] shifts u by -fx*b/z
    P = np.hstack([CAMERA.K, [[-100.0 * 0.2], [0.0], [0.0]]])
    stereo = CameraModel(width=64, height=48, K=CAMERA.K, P=P)
    point = np.array([[0.0, 0.0, 4.0]])  # u = cx - 100*0.2/4 = 26.5 -> rounds to 27
    with_p = project_points(point, stereo, use_projection_matrix=True)
    without_p = project_points(point, stereo)
    assert with_p[24, 27] == 4.0 and np.count_nonzero(with_p) == 1
    assert without_p[24, 32] == 4.0 and np.count_nonzero(without_p) == 1


def test_rounding_to_pixel_centres() -> None:
    # u = 31.5 + 100 * x / z: x/z = 0.0049 -> u = 31.99 -> pixel 32; x/z = -0.0051 -> 30.99 -> pixel 31
    points = np.array([[0.0049, 0.0, 1.0], [-0.0051, 0.0, 2.0]])
    depth = project_points(points, CAMERA)
    assert depth[24, 32] == 1.0 and depth[24, 31] == 2.0


# ------------------------------------------------------------------------------------------------- back-projection

def random_sparse_depth(camera: CameraModel, seed: int = 3, fraction: float = 0.3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    depth = rng.uniform(0.3, 60.0, camera.size).astype(np.float32)
    depth[rng.random(camera.size) > fraction] = 0.0
    return depth


def test_backproject_formula_and_invalid_pixels() -> None:
    depth = random_sparse_depth(CAMERA)
    depth[0, 0], depth[0, 1], depth[0, 2] = np.nan, np.inf, -1.0
    cloud = backproject(depth, CAMERA)
    assert cloud.shape == (48, 64, 3) and cloud.dtype == np.float32
    valid = np.isfinite(depth) & (depth > 0)
    assert np.isnan(cloud[~valid]).all()
    expected = pixel_centre_rays(CAMERA) * depth[..., None].astype(np.float64)
    np.testing.assert_allclose(cloud[valid], expected[valid], rtol=1e-6, atol=1e-6)


def test_depth_cloud_depth_round_trip_is_exact() -> None:
    depth = random_sparse_depth(CAMERA)
    cloud = backproject(depth, CAMERA).reshape(-1, 3)
    again = project_points(cloud[np.isfinite(cloud[:, 2])], CAMERA, min_range=0.0)
    np.testing.assert_array_equal(again, depth)


def test_register_identity_is_identity() -> None:
    depth = random_sparse_depth(CAMERA, seed=4)
    np.testing.assert_array_equal(register_depth(depth, CAMERA, CAMERA, RigidTransform.identity()), depth)


def test_register_translation_shifts_plane() -> None:
    # plane at 4 m, destination camera 0.4 m to the right: in its frame points move by -0.4 m in x,
    # i.e. u shifts by -fx*0.4/4 = -10 px; and 1 m further back (depth 5 m in the destination).
    depth = np.full(CAMERA.size, 4.0, np.float32)
    T_dst_src = RigidTransform(translation=[-0.4, 0.0, 1.0])
    registered = register_depth(depth, CAMERA, CAMERA, T_dst_src)
    x_src = (np.arange(64) - CAMERA.cx) * 4.0 / CAMERA.fx          # source pixel centres on the plane
    expected_u = np.floor(CAMERA.fx * (x_src - 0.4) / 5.0 + CAMERA.cx + 0.5)
    assert set(np.unique(registered)) <= {0.0, 5.0}
    row = registered[24]
    landed = np.unique(expected_u[(expected_u >= 0) & (expected_u < 64)]).astype(int)
    assert (row[landed] == 5.0).all()
    assert np.count_nonzero(row) == landed.size


def test_register_occlusion_keeps_nearest() -> None:
    # a near box in front of a far wall; from a camera shifted sideways the box hides part of the wall
    depth = np.full(CAMERA.size, 10.0, np.float32)
    depth[:, 28:36] = 2.0
    registered = register_depth(depth, CAMERA, CAMERA, RigidTransform(translation=[0.1, 0.0, 0.0]))
    # box moves by +fx*0.1/2 = 5 px, wall by 1 px: box columns 33..40 must show the box, not the wall
    assert (registered[:, 33:41] == 2.0).all()


# ------------------------------------------------------------------------------------------------- numpy vs torch

def test_torch_and_numpy_agree() -> None:
    rng = np.random.default_rng(5)
    points = rng.uniform([-8, -6, -2], [8, 6, 30], (5000, 3))
    numpy_depth = project_points(points, CAMERA, min_range=0.5, max_range=25.0)
    torch_depth = project_points(torch.from_numpy(points), CAMERA, min_range=0.5, max_range=25.0)
    assert isinstance(torch_depth, torch.Tensor) and torch_depth.dtype == torch.float32
    assert np.count_nonzero(numpy_depth) > 500
    np.testing.assert_array_equal(torch_depth.numpy(), numpy_depth)
    # float32 tensors: same pixels except possibly a rounding boundary
    float32_depth = project_points(torch.from_numpy(points).float(), CAMERA, min_range=0.5, max_range=25.0).numpy()
    assert ((float32_depth > 0) != (numpy_depth > 0)).sum() <= 2

    depth = random_sparse_depth(CAMERA, seed=6)
    np.testing.assert_array_equal(backproject(torch.from_numpy(depth), CAMERA).numpy(), backproject(depth, CAMERA))
    T = RigidTransform.from_quaternion([0.05, -0.02, 0.1], [0.0, 0.02, 0.0, 1.0])
    registered_numpy = register_depth(depth, CAMERA, CAMERA, T)
    registered_torch = register_depth(torch.from_numpy(depth), CAMERA, CAMERA, T).numpy()
    # float32 (torch) against float64 (numpy) arithmetic: the same pixels except possibly a rounding boundary,
    # and the same depth to float32 rounding (a last-bit difference depends on the CPU's FMA/BLAS kernels)
    assert ((registered_numpy > 0) != (registered_torch > 0)).sum() <= 3
    both = (registered_numpy > 0) & (registered_torch > 0)
    assert both.sum() > 300
    far_apart = ~np.isclose(registered_numpy[both], registered_torch[both], rtol=1e-6, atol=0.0)
    assert far_apart.sum() <= 3, far_apart.sum()


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_matches_cpu() -> None:
    points = torch.from_numpy(np.random.default_rng(7).uniform([-8, -6, 0], [8, 6, 30], (5000, 3)))
    on_gpu = project_points(points.cuda(), CAMERA)
    assert on_gpu.device.type == 'cuda'
    np.testing.assert_array_equal(on_gpu.cpu().numpy(), project_points(points, CAMERA).numpy())
    depth = torch.from_numpy(random_sparse_depth(CAMERA))
    cloud = backproject(depth.cuda(), CAMERA)
    assert cloud.device.type == 'cuda'
    torch.testing.assert_close(cloud.cpu(), backproject(depth, CAMERA), equal_nan=True)
