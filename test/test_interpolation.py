"""Nearest / linear (Delaunay) fills: equal to scipy's griddata on real frames (a full KITTI scan, a Kinect
depth map), exact on known geometry."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.interpolate import griddata

from depth_completion_ros.core import interpolation
from depth_completion_ros.core.interpolation import _border, _scan_convert, fill_linear, fill_nearest
from depth_completion_ros.data.loaders import open_source, read_depth_png

RELATIVE_TOLERANCE = 1e-5     # float64 arithmetic both ways, then float32: <= 1 float32 ulp (6e-8) apart


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
    expected = _griddata(kitti_crop, 'linear')
    inside = ~np.isnan(griddata(np.argwhere(kitti_crop > 0.1).astype(np.float64), kitti_crop[kitti_crop > 0.1],
                                np.argwhere(np.ones_like(kitti_crop, bool)).astype(np.float64),
                                method='linear').reshape(kitti_crop.shape))
    linear = fill_linear(kitti_crop)
    assert np.allclose(linear[inside], expected[inside], rtol=RELATIVE_TOLERANCE, atol=0.0)
    assert not fill_linear(kitti_crop, outside='unknown')[~inside].any()
    # outside the hull both take a nearest measurement; equidistant ones may differ
    # (on a pixel lattice ~5 % of the empty pixels have equidistant nearest measurements: see
    # test_nearest_takes_a_nearest_measurement for the exact check)
    assert np.array_equal(linear[~inside], fill_nearest(kitti_crop)[~inside])


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


# ------------------------------------------------------------------------ full real frames vs griddata
@pytest.fixture(scope='module')
def real_frames(kitti_object_dir: Path, nyu_dir: Path) -> dict[str, np.ndarray]:
    """A full KITTI scan (object 000003, 375x1242, ~19k points) and a Kinect map (NYU, 480x640, ~200k)."""
    from depth_completion_ros.core.kitti import kitti_sparse_depth, load_kitti_object_frame

    lidar = np.asarray(kitti_sparse_depth(load_kitti_object_frame(kitti_object_dir, '000003')), np.float32)
    kinect = read_depth_png(nyu_dir / 'depth' / '1.pgm', 1000.0)
    assert lidar.shape == (375, 1242) and kinect.shape == (480, 640)
    return {'lidar': lidar, 'kinect': kinect}


def _griddata_full(sparse: np.ndarray, tmp_path: Path) -> np.ndarray:
    """griddata(linear) over *all* measured pixels, NaN outside the hull. In a child with one BLAS thread:
    its per-triangle LAPACK inversions take minutes when OpenBLAS threads contend for a busy 2-core VM."""
    source, result = tmp_path / 'sparse.npy', tmp_path / 'griddata.npy'
    np.save(source, sparse)
    code = ('import sys, numpy as np; from scipy.interpolate import griddata; s = np.load(sys.argv[1]); '
            'v = s > 0.1; out = np.where(v, s, 0).astype(np.float64); '
            'out[~v] = griddata(np.argwhere(v).astype(np.float64), s[v].astype(np.float64), '
            'np.argwhere(~v).astype(np.float64), method="linear"); np.save(sys.argv[2], out)')
    env = {**os.environ, 'OPENBLAS_NUM_THREADS': '1', 'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'}
    subprocess.run([sys.executable, '-c', code, str(source), str(result)], env=env, check=True, timeout=600)
    return np.load(result)


def _tie_pixels(sparse: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """For pixels (rows, cols): does the triangle of ours that holds it lie in a Delaunay cell of >= 4
    cocircular points (a neighbour's far vertex exactly on its circumcircle, exact integer incircle test)?"""
    from scipy.spatial import Delaunay

    valid = sparse > 0.1
    vertices = np.argwhere(_border(valid))
    triangulation = Delaunay(vertices.astype(np.float64))
    corners = vertices[triangulation.simplices]
    edge_b, edge_c = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    solid = np.flatnonzero(edge_b[:, 0] * edge_c[:, 1] - edge_c[:, 0] * edge_b[:, 1] != 0)
    wanted = np.zeros_like(valid)
    wanted[rows, cols] = True
    found_rows, found_cols, index = _scan_convert(vertices, triangulation.simplices[solid], wanted)
    simplex = solid[index]
    own = triangulation.simplices[simplex]                                           # M x 3
    a, b, c = (vertices[own[:, i]] for i in range(3))
    tie = np.zeros(len(simplex), bool)
    for k in range(3):                                  # the neighbour across the edge opposite corner k
        neighbour = triangulation.neighbors[simplex, k]
        theirs = triangulation.simplices[np.maximum(neighbour, 0)]
        not_shared = ~(theirs[:, :, None] == own[:, None, :]).any(axis=2)
        d = vertices[theirs[np.arange(len(theirs)), not_shared.argmax(axis=1)]]
        (ar, ac), (br, bc), (cr, cc) = ((p - d).T for p in (a, b, c))
        al, bl, cl = ar * ar + ac * ac, br * br + bc * bc, cr * cr + cc * cc
        incircle = ar * (bc * cl - bl * cc) - ac * (br * cl - bl * cr) + al * (br * cc - bc * cr)   # exact
        tie |= (neighbour >= 0) & (incircle == 0)
    by_pixel = np.zeros(valid.shape, bool)
    by_pixel[found_rows[tie], found_cols[tie]] = True
    return by_pixel[rows, cols]


def test_linear_equals_griddata_on_a_full_kitti_scan(real_frames: dict[str, np.ndarray], tmp_path: Path) -> None:
    """Every point is a border pixel, so Qhull gets griddata's points in griddata's order: same triangles,
    ties included; every pixel agrees to float rounding and the hull (NaN in griddata) is the same."""
    sparse = real_frames['lidar']
    expected = _griddata_full(sparse, tmp_path)
    ours = fill_linear(sparse, outside='unknown')
    outside = np.isnan(expected)
    assert 0 < outside.sum() < outside.size
    assert not ours[outside].any() and bool((ours[~outside & (sparse <= 0.1)] > 0).all())
    inside = ~outside
    assert np.allclose(ours[inside], expected[inside], rtol=RELATIVE_TOLERANCE, atol=0.0)
    dense = fill_linear(sparse)                                      # the default: nearest outside the hull
    assert np.array_equal(dense[inside], ours[inside])
    assert np.array_equal(dense[outside], fill_nearest(sparse)[outside])


def test_linear_equals_griddata_on_a_kinect_map(real_frames: dict[str, np.ndarray], tmp_path: Path) -> None:
    """Triangulating the hole borders only (~7 % of the measured pixels): every pixel griddata defines
    uniquely agrees to float rounding; the rest lie in cells of >= 4 cocircular pixels, where griddata's own
    value depends on the order of its input points (module docstring)."""
    sparse = real_frames['kinect']
    valid = sparse > 0.1
    assert _border(valid).sum() < 0.1 * valid.sum()
    expected = _griddata_full(sparse, tmp_path)
    outside = np.isnan(expected)
    # Both ways the holes are triangulated: in two groups at once (a second core) and all together.
    groups = interpolation._hole_groups(~valid)
    if os.cpu_count() >= 2:
        assert len(groups) == 2 and not (groups[0] & groups[1]).any()
        assert np.array_equal(groups[0] | groups[1], ~valid)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(interpolation, 'spare_core_worker', lambda: None)
        together = fill_linear(sparse, outside='unknown')
    for ours in (fill_linear(sparse, outside='unknown'), together):
        assert not ours[outside].any() and bool((ours[~outside & ~valid] > 0).all())
        assert np.array_equal(ours[valid], sparse[valid])
        differ = ~outside & ~np.isclose(ours, np.nan_to_num(expected), rtol=RELATIVE_TOLERANCE, atol=0.0)
        rows, cols = np.nonzero(differ)
        # ~5 % here; griddata itself moves ~1,600 pixels of this frame when its input points are permuted
        assert rows.size < 0.1 * (~outside & ~valid).sum()
        assert bool(_tie_pixels(sparse, rows, cols).all()), 'a pixel off griddata lies in a triangle no tie explains'


@pytest.mark.parametrize('name', ['lidar', 'kinect'])
def test_nearest_takes_a_nearest_measurement(real_frames: dict[str, np.ndarray], name: str) -> None:
    """The distance transform picks a measured pixel at griddata's (k-d tree's) nearest distance; which of
    several equidistant ones it picks is the only freedom."""
    from scipy.spatial import cKDTree

    sparse = real_frames[name]
    valid = sparse > 0.1
    ours = fill_nearest(sparse)
    assert np.array_equal(ours[valid], sparse[valid])
    points, queries = np.argwhere(valid), np.argwhere(~valid)
    distance, index = cKDTree(points).query(queries, k=8)
    candidates = sparse[valid][index]                                                   # M x 8, nearest first
    at_nearest = np.isclose(distance, distance[:, :1], rtol=0, atol=1e-9)
    match = ((candidates == ours[~valid][:, None]) & at_nearest).any(axis=1)
    assert bool(match.all()), f'{(~match).sum()} pixels took a measurement that is not a nearest one'
