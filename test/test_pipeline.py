"""pipeline.py on a real KITTI frame (prefill only: the real ip_basic fill, no network) and on edge cases."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from depth_completion_ros.core.camera import CameraModel
from depth_completion_ros.core.kitti import kitti_sparse_depth, load_kitti_object_frame
from depth_completion_ros.core.transforms import RigidTransform
from depth_completion_ros.pipeline import DepthCompletionPipeline, FrameError, PipelineSettings, run_frame


@pytest.fixture(scope='module')
def pipeline() -> DepthCompletionPipeline:
    return DepthCompletionPipeline(PipelineSettings(prefill_only=True, max_range=90.0), device='cpu')


@pytest.fixture(scope='module')
def kitti_frame(kitti_object_dir: Path):
    return load_kitti_object_frame(kitti_object_dir, '000003')


def test_real_kitti_frame_dense_depth_matches_lidar_at_measured_pixels(pipeline, kitti_frame) -> None:
    output = run_frame(pipeline, kitti_frame.rgb, kitti_frame.camera, kitti_frame.points, kitti_frame.T_cam_velo)
    h, w = kitti_frame.rgb.shape[:2]
    assert output.depth.shape == (h, w) and output.depth.dtype == np.float32
    # the sparse map is exactly the z-buffered projection of the scan
    reference = kitti_sparse_depth(kitti_frame, min_range=0.1, max_range=90.0)
    np.testing.assert_array_equal(output.sparse, reference)
    measured = reference > 0
    assert measured.sum() > 10_000  # ~19k LiDAR pixels in this frame (README of the data)
    relative = np.abs(output.depth[measured] - reference[measured]) / reference[measured]
    # ip_basic keeps measurements up to its final blur (and outlier removal at occlusion edges)
    assert np.median(relative) < 5e-3
    assert np.mean(relative < 0.05) > 0.95
    # dense: the lower part of the image (road, cars) is filled except where the LiDAR has no return within
    # validity.max_distance_px (the black windows of the car on the left); the sky rows stay unknown
    assert (output.depth[h // 2:] > 0).mean() > 0.9
    assert set(output.timings_ms) >= {'project', 'prefill', 'network', 'cloud'}
    assert output.timings_ms['network'] == 0.0 and not output.used_network


def test_organized_cloud_has_pixel_grid_nan_invalid_and_stride(pipeline, kitti_frame) -> None:
    output = run_frame(pipeline, kitti_frame.rgb, kitti_frame.camera, kitti_frame.points, kitti_frame.T_cam_velo)
    h, w = output.depth.shape
    xyz = output.cloud_xyz
    assert xyz.shape == (h, w, 3) and output.cloud_rgb.shape == (h, w, 3)
    invalid = output.depth == 0
    assert np.isnan(xyz[invalid]).all()
    valid = ~invalid
    np.testing.assert_allclose(xyz[valid][:, 2], output.depth[valid], rtol=1e-5)
    # back-projection: X = (u - cx) z / fx at a filled pixel
    v, u = np.argwhere(valid)[len(np.argwhere(valid)) // 2]
    cam = kitti_frame.camera
    assert xyz[v, u, 0] == pytest.approx((u - cam.cx) * output.depth[v, u] / cam.fx, rel=1e-4)

    pipeline.settings.cloud_stride = 4
    try:
        strided = pipeline.organized_cloud(output.depth, kitti_frame.rgb, cam)
    finally:
        pipeline.settings.cloud_stride = 1
    assert strided[0].shape == ((h + 3) // 4, (w + 3) // 4, 3)
    np.testing.assert_array_equal(strided[0], xyz[::4, ::4])


def test_malformed_inputs_raise_frame_error(pipeline) -> None:
    camera = CameraModel.from_intrinsics(100.0, 100.0, 32.0, 24.0, 64, 48)
    identity = RigidTransform.identity()
    with pytest.raises(FrameError, match='empty'):
        pipeline.sparse_from_points(np.zeros((0, 3), np.float32), camera, identity)
    with pytest.raises(FrameError, match='finite'):
        pipeline.sparse_from_points(np.full((10, 3), np.nan, np.float32), camera, identity)
    with pytest.raises(FrameError, match='size mismatch'):
        pipeline.complete(np.zeros((48, 64, 3), np.uint8), np.zeros((40, 64), np.float32), camera)
    with pytest.raises(FrameError, match='registered depth'):
        pipeline.sparse_from_depth(np.ones((10, 10), np.float32), None, camera, None)


def test_nan_points_are_ignored_and_depth_images_pass_through(pipeline) -> None:
    camera = CameraModel.from_intrinsics(100.0, 100.0, 32.0, 24.0, 64, 48)
    points = np.array([[0.0, 0.0, 5.0], [np.nan, 0.0, 3.0], [0.0, 0.0, 4.0]], np.float32)
    sparse, _ms = pipeline.sparse_from_points(points, camera, RigidTransform.identity())
    assert sparse[24, 32] == pytest.approx(4.0)  # nearest return wins, the NaN point is gone
    assert (sparse > 0).sum() == 1

    depth = np.zeros((48, 64), np.float32)
    depth[10, 10], depth[20, 20], depth[30, 30] = 2.0, np.nan, 500.0  # 500 m is beyond max_range
    registered, _ms = pipeline.sparse_from_depth(depth, None, camera, None)
    assert registered[10, 10] == 2.0 and registered[20, 20] == 0.0 and registered[30, 30] == 0.0


def test_linear_prefill_on_a_lidar_is_named_at_start_up() -> None:
    """The RGB-D weights on a LiDAR (their scipy linear prefill costs 0.6-0.9 s per scan): one warning that names
    the LiDAR weights; the LiDAR weights on a LiDAR and the RGB-D weights on a depth camera: none."""
    from depth_completion_ros.pipeline import DepthCompletionPipeline, PipelineSettings, prefill_mismatch

    def method(weights: str) -> str:
        return DepthCompletionPipeline(PipelineSettings(prefill_only=True), weights=weights).resolved_prefill_method()

    assert method('lrru_mini_rgbd') == 'linear' and method('lrru_mini') == 'ipbasic'
    warning = prefill_mismatch('points', method('lrru_mini_rgbd'), 'lrru_mini_rgbd')
    assert warning is not None and "'lrru_mini_rgbd'" in warning and 'model.weights: lrru_mini' in warning
    assert prefill_mismatch('points', method('lrru_mini'), 'lrru_mini') is None
    assert prefill_mismatch('depth', method('lrru_mini_rgbd'), 'lrru_mini_rgbd') is None


def test_weights_name_is_the_file_that_runs() -> None:
    """Logs and stats name the weights: the variant's shipped file when unset, a path by its stem, '' when a
    prefill-only variant ships none."""
    from depth_completion_ros.model.weights import resolve_weights
    from depth_completion_ros.pipeline import DepthCompletionPipeline, PipelineSettings

    def name(**kwargs) -> str:
        return DepthCompletionPipeline(PipelineSettings(prefill_only=True), **kwargs).weights_name

    assert name() == 'lrru_mini'
    assert name(weights=str(resolve_weights('lrru_mini_rgbd'))) == 'lrru_mini_rgbd'
    assert name(variant='base') == ''
