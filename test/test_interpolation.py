"""Nearest / linear (Delaunay) fills: equal to scipy's griddata on a real KITTI scan, exact on known geometry."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.interpolate import griddata

from depth_completion_ros.core.interpolation import fill_linear, fill_nearest
from depth_completion_ros.data.loaders import open_source


@pytest.fixture(scope='module')
def kitti_crop(kitti_object_dir: Path) -> np.ndarray:
    """Bottom-right 160x400 of KITTI object frame 000000's projected scan (about 2,500 points)."""
    return open_source(f'kitti-object:{kitti_object_dir}')[0].sparse[-160:, -400:].copy()


def _griddata(sparse: np.ndarray, method: str) -> np.ndarray:
    points = np.argwhere(sparse > 0.1).astype(np.float64)
    values = sparse[sparse > 0.1].astype(np.float64)
    queries = np.argwhere(sparse <= 0.1).astype(np.float64)
    out = sparse.astype(np.float64).copy()
    filled = griddata(points, values, queries, method=method)
    if method == 'linear':                 # our documented extrapolation outside the hull: nearest
        outside = np.isnan(filled)
        filled[outside] = griddata(points, values, queries[outside], method='nearest')
    out[queries[:, 0].astype(int), queries[:, 1].astype(int)] = filled
    return out


def test_linear_and_nearest_equal_griddata_on_kitti(kitti_crop: np.ndarray) -> None:
    assert 1000 < int((kitti_crop > 0).sum()) < 6000
    linear = fill_linear(kitti_crop)
    expected = _griddata(kitti_crop, 'linear')
    # float32 output of float64 arithmetic: |diff| <= 1 ulp at 80 m; pixels exactly on the hull may be located
    # on the other side of it by qhull's tolerance (then nearest): allow a handful.
    close = np.abs(linear - expected) <= 1e-5
    assert close.mean() >= 0.9999, f'{(~close).sum()} pixels differ'
    nearest = fill_nearest(kitti_crop)
    ties = np.isclose(nearest, _griddata(kitti_crop, 'nearest'), atol=1e-5)
    assert ties.mean() >= 0.999                                          # equidistant neighbours may differ


def test_linear_reproduces_a_plane_and_fills_depth_camera_holes() -> None:
    rng = np.random.default_rng(3)
    rows, cols = np.mgrid[0:120, 0:160]
    plane = (2.0 + 0.01 * rows + 0.005 * cols).astype(np.float32)           # a tilted wall, 2..3.99 m
    scattered = np.zeros_like(plane)
    chosen = rng.choice(plane.size, 300, replace=False)
    scattered.flat[chosen] = plane.flat[chosen]
    dense = fill_linear(scattered)
    inside = fill_linear(scattered, outside='unknown') > 0
    assert inside.mean() > 0.8
    assert float(np.abs(dense - plane)[inside].max()) < 1e-4                 # linear is exact on a plane
    assert bool((dense > 0).all())                                         # outside the hull: nearest
    holes = plane.copy()
    holes[30:60, 40:100] = 0.0                                             # a Kinect-like hole (e.g. glass)
    holes[90:, :20] = 0.0                                                  # and one at the border
    filled = fill_linear(holes)
    assert float(np.abs(filled - plane)[30:60, 40:100].max()) < 1e-4
    assert bool((filled > 0).all())
    nearest = fill_nearest(holes)
    assert nearest[45, 41] == holes[45, 39] and nearest[45, 98] == holes[45, 100]


def test_degenerate_inputs() -> None:
    empty = np.zeros((10, 12), np.float32)
    assert not fill_linear(empty).any() and not fill_nearest(empty).any()
    one_row = np.zeros((10, 12), np.float32)
    one_row[5, ::3] = 4.0                                                  # collinear: no triangle exists
    assert np.all(fill_linear(one_row) == 4.0)
    with pytest.raises(ValueError):
        fill_linear(np.zeros((2, 3, 4), np.float32))
