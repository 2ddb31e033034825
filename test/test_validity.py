"""core/validity.py: unknown where no measurement supports the depth, and the confidence image.

Known geometry on small synthetic maps, then the real KITTI frame through the pipeline (prefill only)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from depth_completion_ros.core.camera import CameraModel
from depth_completion_ros.core.kitti import load_kitti_object_frame
from depth_completion_ros.core.projection import backproject
from depth_completion_ros.core.transforms import RigidTransform
from depth_completion_ros.core.validity import (
    SensorFov,
    ValiditySettings,
    apply_validity,
    column_top_rows,
    measurement_support,
    valid_mask,
)
from depth_completion_ros.pipeline import DepthCompletionPipeline, PipelineSettings, run_frame

CAMERA = CameraModel.from_intrinsics(50.0, 50.0, 39.5, 29.5, 80, 60)


def _sparse_rows(rows: list[int], depth: float = 5.0, every: int = 2) -> np.ndarray:
    sparse = np.zeros((60, 80), np.float32)
    for row in rows:
        sparse[row, ::every] = depth
    return sparse


def test_column_rule_cuts_everything_above_the_highest_measurement() -> None:
    sparse = _sparse_rows([20, 24, 28])
    sparse[10, 40] = 7.0                       # one column reaches higher
    dense = np.full((60, 80), 5.0, np.float32)
    top = column_top_rows(sparse)
    assert top[0] == 20 and top[40] == 10 and top[1] == 60  # odd columns have no measurement at all
    valid = valid_mask(dense, sparse, CAMERA, ValiditySettings(max_distance_px=0.0, column_window_px=0))
    assert not valid[:20, 0].any() and valid[20:, 0].all()
    assert not valid[:10, 40].any() and valid[10:, 40].all()
    assert not valid[:, 1].any()                # a column without measurement is unsupported
    with_margin = valid_mask(dense, sparse, CAMERA, ValiditySettings(max_distance_px=0.0, top_margin_px=3,
                                                                    column_window_px=0))
    assert with_margin[17:, 0].all() and not with_margin[:17, 0].any()
    # the default window: a column between two measured ones takes their top (no 1-px NaN streaks), and the
    # one high return supports exactly the columns within the window
    windowed = valid_mask(dense, sparse, CAMERA, ValiditySettings(max_distance_px=0.0))
    window = ValiditySettings().column_window_px
    assert window >= 1
    assert windowed[20:, 1].all() and not windowed[:20, 1].any()
    assert (column_top_rows(sparse, window)[40 - window:41 + window] == 10).all()
    assert column_top_rows(sparse, window)[40 - window - 1] == 20 and column_top_rows(sparse, window)[41 + window] == 20
    assert not windowed[:10].any()
    disabled = valid_mask(dense, sparse, CAMERA, ValiditySettings(enable=False))
    assert disabled.all()


def test_distance_rule_uses_pixel_distance_to_the_nearest_measurement() -> None:
    sparse = np.zeros((60, 80), np.float32)
    sparse[30, :] = 4.0                         # one full row: distance = |row - 30|
    dense = np.full((60, 80), 4.0, np.float32)
    valid = valid_mask(dense, sparse, CAMERA, ValiditySettings(max_distance_px=6.0))
    rows = np.flatnonzero(valid.all(axis=1))
    assert rows.min() == 30 and rows.max() == 36  # above row 30 by the column rule, below by distance
    support = measurement_support(sparse)
    assert np.all(np.abs(support.distance_px[30:, 0] - np.arange(30)) <= 0.05 * np.arange(30) + 1e-3)
    assert (support.nearest_depth == 4.0).all()


def test_confidence_is_one_on_measurements_falls_with_distance_and_at_depth_edges() -> None:
    sparse = np.zeros((60, 80), np.float32)
    sparse[20:60:5, :40] = 4.0                  # near surface on the left (every fifth row: LiDAR-like)
    sparse[20:60:5, 40:] = 20.0                 # far surface on the right
    # the completion put the edge two columns off the measured one
    dense = np.where(np.arange(80)[None, :] < 38, 4.0, 20.0).astype(np.float32) * np.ones((60, 1), np.float32)
    depth, confidence = apply_validity(dense, sparse, CAMERA, ValiditySettings(max_distance_px=10.0))
    assert confidence.dtype == np.float32 and confidence.shape == dense.shape
    assert (confidence >= 0).all() and (confidence <= 1).all()
    assert (confidence[depth == 0] == 0).all() and (depth[:20] == 0).all()
    reproduced = (sparse > 0) & (dense == sparse)
    np.testing.assert_allclose(confidence[reproduced], 1.0)
    assert (confidence[(sparse > 0) & ~reproduced] < 1e-6).all()  # a measurement the output contradicts
    one_away, two_away = confidence[21, 10], confidence[22, 10]  # 1 and 2 rows from a measurement, same surface
    assert one_away == pytest.approx(np.exp(-0.5 * (1 / 4) ** 2), abs=0.01)  # confidence.distance_px = 4
    assert two_away == pytest.approx(np.exp(-0.5 * (2 / 4) ** 2), abs=0.01)
    # (21, 38) says 20 m where its nearest measurement says 4 m: a depth edge, low confidence
    assert confidence[21, 38] < 0.01 and confidence[21, 42] > 0.9


def test_sensor_fov_from_a_lidar_scan_and_from_a_depth_camera() -> None:
    # a LiDAR whose scan spans elevation -10..+2 deg and azimuth -45..45 deg (x forward, z up)
    elevation, azimuth = np.meshgrid(np.radians(np.linspace(-10, 2, 13)), np.radians(np.linspace(-45, 45, 91)))
    scan = np.stack([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth),
                     np.sin(elevation)], -1).reshape(-1, 3) * 10.0
    T_cam_lidar = RigidTransform.from_matrix(np.array([[0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0], [0, 0, 0, 1.0]]))
    fov = SensorFov.from_points(scan, T_cam_lidar, margin_deg=1.0)

    def camera_point(elevation_deg: float, azimuth_deg: float) -> np.ndarray:
        e, a = np.radians(elevation_deg), np.radians(azimuth_deg)
        lidar = np.array([[np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)]]) * 8.0
        return T_cam_lidar.apply(lidar)

    assert fov.contains(camera_point(0.0, 0.0))[0]
    assert fov.contains(camera_point(2.5, 10.0))[0]          # within the 1 deg margin
    assert not fov.contains(camera_point(5.0, 0.0))[0]       # above the top beam
    assert not fov.contains(camera_point(-15.0, 0.0))[0]     # below the lowest beam
    assert not fov.contains(camera_point(0.0, 60.0))[0]      # beside the scanned sector

    depth_camera = CameraModel.from_intrinsics(40.0, 40.0, 19.5, 14.5, 40, 30)
    camera_fov = SensorFov.from_camera(depth_camera, RigidTransform.identity(), margin_deg=0.0)
    points = np.array([[0.0, 0.0, 2.0], [2.0, 0.0, 2.0], [0.0, 0.0, -2.0]])  # centre, 45 deg aside, behind
    assert camera_fov.contains(points).tolist() == [True, False, False]


def test_depth_camera_fov_is_its_image_seen_from_the_rgb_camera() -> None:
    # the RGB camera sees a wall at 3 m; the depth camera looks at the same wall but only covers its left half
    rgb_camera = CameraModel.from_intrinsics(50.0, 50.0, 39.5, 29.5, 80, 60)
    depth_camera = CameraModel.from_intrinsics(50.0, 50.0, 19.5, 29.5, 40, 60)  # half as wide, same axis
    dense = np.full((60, 80), 3.0, np.float32)
    fov = SensorFov.from_camera(depth_camera, RigidTransform.identity(), margin_deg=0.0)
    inside = fov.contains(backproject(dense, rgb_camera).reshape(-1, 3)).reshape(60, 80)
    # columns 0..39 of the depth camera sit at x = (u - 39.5) z / 50: RGB columns 20..59 see that
    assert inside[:, 22:58].all() and not inside[:, :18].any() and not inside[:, 62:].any()


@pytest.fixture(scope='module')
def kitti_output(kitti_object_dir: Path):
    frame = load_kitti_object_frame(kitti_object_dir, '000003')
    pipeline = DepthCompletionPipeline(PipelineSettings(prefill_only=True, max_range=90.0), device='cpu')
    return frame, run_frame(pipeline, frame.rgb, frame.camera, frame.points, frame.T_cam_velo)


def test_real_kitti_frame_has_no_valid_pixel_above_the_highest_lidar_return(kitti_output) -> None:
    frame, output = kitti_output
    valid = output.depth > 0
    rows = np.arange(valid.shape[0])[:, None]
    top = column_top_rows(output.sparse, ValiditySettings().column_window_px)
    assert not (valid & (rows < top[None, :])).any()
    # against each pixel column alone: the ring's azimuth gaps make single columns jagged; the window lifts a
    # typical column by a few rows only, and nothing is valid above the scan's highest return anywhere
    own_top = column_top_rows(output.sparse)
    assert np.median(own_top - top) <= 10
    assert not valid[:own_top.min()].any()
    # the sky and the rows above the HDL-64's top beam (about a third of the image) are unknown now
    nan_fraction = 1.0 - valid.mean()
    assert 0.3 < nan_fraction < 0.6, nan_fraction
    assert not valid[:60].any()
    # ... while what the LiDAR covers stays filled: the road and the car in front
    assert valid[-60:, 200:1000].mean() > 0.98
    # confidence: 1 at the LiDAR's own pixels, 0 where unknown, in between elsewhere
    measured = output.sparse > 0
    assert np.median(output.confidence[measured]) > 0.95
    assert (output.confidence[~valid] == 0).all()
    between = valid & ~measured
    assert 0.3 < np.median(output.confidence[between]) < 0.99
    assert output.cloud_xyz is not None
    assert np.array_equal(np.isfinite(output.cloud_xyz[..., 2]), valid)  # the cloud keeps only valid points


def test_demo_summary_reports_unknown_fraction_columns_and_confidence_histogram(kitti_output) -> None:
    from depth_completion_ros.tools.demo import ValidityReport

    _frame, output = kitti_output
    report = ValidityReport()
    report.add(output.depth, output.sparse, output.confidence)
    leaky = output.prefill.copy()  # the raw fill: it has depth above the top beam
    report_leaky = ValidityReport()
    report_leaky.add(leaky, output.sparse, None)
    summary, summary_leaky = report.summary(), report_leaky.summary()
    assert summary['nan_fraction'] == pytest.approx(float((output.depth == 0).mean()), abs=1e-4)
    assert summary['valid_pixels_above_highest_measurement'] == 0
    assert summary_leaky['valid_pixels_above_highest_measurement'] > 100_000
    histogram = summary['confidence_histogram']
    assert list(histogram) == ['0.0-0.2', '0.2-0.4', '0.4-0.6', '0.6-0.8', '0.8-1.0']
    assert sum(histogram.values()) == pytest.approx(1.0, abs=1e-3) and histogram['0.8-1.0'] > 0.3


def test_confidence_ranks_the_error_against_ground_truth() -> None:
    """On a synthetic street with exact ground truth, the higher the confidence, the smaller the error."""
    from depth_completion_ros.data.synthetic import street_sequence

    pipeline = DepthCompletionPipeline(PipelineSettings(prefill_only=True), device='cpu')
    (frame,) = street_sequence(11, 1, width=320, height=96)
    output = run_frame(pipeline, frame.rgb, frame.camera, frame.points, frame.T_cam_lidar)
    scored = (output.depth > 0) & (frame.gt_depth > 0)
    error = np.abs(output.depth - frame.gt_depth)[scored] / frame.gt_depth[scored]
    confidence = output.confidence[scored]
    medians = [np.median(error[(confidence >= low) & (confidence < high)])
               for low, high in ((0.0, 0.3), (0.3, 0.6), (0.6, 0.9), (0.9, 1.01))]
    assert all(a > b for a, b in zip(medians, medians[1:], strict=False)), medians
    assert medians[0] > 4 * medians[-1], medians
