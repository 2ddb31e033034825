"""Huge or degenerate geometry is dropped without numpy RuntimeWarnings on stderr (issue 12, item 9), and the
sane points of the same frame still land where they should."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from depth_completion_ros.core.camera import CameraModel
from depth_completion_ros.core.projection import backproject, project_points
from depth_completion_ros.core.transforms import RigidTransform
from depth_completion_ros.pipeline import DepthCompletionPipeline, PipelineSettings

CAMERA = CameraModel.from_intrinsics(60.0, 60.0, 32.0, 24.0, 64, 48)
GOOD = np.array([[0.5, -0.25, 5.0]])  # lands on pixel (x=38, y=21) at 5 m


@pytest.fixture(autouse=True)
def warnings_are_errors():
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        yield


@pytest.mark.parametrize('bad', [
    [[3e38, 3e38, 5.0], [1e300, 1.0, 1e300], [-1e308, 1e308, 1e308]],  # overflow in the matmul
    [[1.0, 1.0, 1e-300], [1.0, 1.0, 1e-320]],                          # division by a denormal depth
    [[1e30, 1e30, 1.0], [-1e25, 3e20, 2.0]],                            # finite but far outside: int cast
])
def test_huge_points_are_dropped_quietly_and_the_good_one_projects(bad) -> None:
    points = np.vstack([bad, GOOD])
    depth = project_points(points, CAMERA, min_range=0.0)
    assert np.count_nonzero(depth) == 1 and depth[21, 38] == pytest.approx(5.0)
    pipeline = DepthCompletionPipeline(PipelineSettings(prefill_only=True, max_range=100.0))
    sparse, _ms = pipeline.sparse_from_points(points, CAMERA, RigidTransform.identity())  # float64 -> float32 inside
    assert np.count_nonzero(sparse) == 1 and sparse[21, 38] == pytest.approx(5.0)


def test_huge_extrinsic_translation_drops_every_point_quietly() -> None:
    pipeline = DepthCompletionPipeline(PipelineSettings(prefill_only=True))
    far = RigidTransform(np.eye(3), np.array([1e38, 1e38, 1e38]), check=False)
    sparse, _ms = pipeline.sparse_from_points(np.full((5, 3), 3e38, np.float32), CAMERA, far)
    assert not sparse.any()


@pytest.mark.parametrize('focal', [1e-300, 1e-30, 1e300])
def test_degenerate_focal_lengths(focal: float) -> None:
    camera = CameraModel.from_intrinsics(focal, focal, 32.0, 24.0, 64, 48)
    depth = project_points(GOOD, camera)
    assert np.count_nonzero(depth) <= 1
    cloud = backproject(np.full((48, 64), 5.0, np.float32), camera)
    assert np.all(cloud[..., 2] == 5.0)  # z is the depth whatever the focal length
