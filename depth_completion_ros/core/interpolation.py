"""Classical scattered-data fills of a sparse depth map (scipy): nearest neighbour and linear (Delaunay).

They are the prefills for inputs that ip_basic's LiDAR-line morphology does not fit (a few hundred scattered
points, depth-camera maps with holes), and the classical peers that ``depth-completion eval`` prints beside the
network. Both take and return ``HxW`` float32 numpy metres (0 = no measurement); measured pixels keep their
values exactly.

- ``nearest``: every empty pixel takes the depth of the nearest measured pixel (Euclidean in pixel
  coordinates; ``scipy.spatial.cKDTree``, as ``scipy.interpolate.griddata(method='nearest')``).
- ``linear``: barycentric interpolation in the Delaunay triangulation of the measured pixels
  (``scipy.spatial.Delaunay``; the same numbers as ``griddata(method='linear')``). Outside the convex hull of
  the points linear interpolation is undefined; there the map takes the *nearest* measured depth, so the
  prefill is dense like ip_basic's (the network needs a value everywhere; the node masks by ``max_range``).
  With ``outside='unknown'`` those pixels stay 0 instead. Eval uses the dense default, so every method is
  scored on the same pixels.

Cost: only measured pixels that touch an empty pixel (8-neighbourhood) become triangulation vertices, and
only empty pixels are queried. For LiDAR or sampled points that is every point (the result is exactly
``griddata``'s); for a depth-camera map it keeps the triangulation to the hole borders, which are the only
vertices a hole pixel's triangle can sensibly use, instead of ~300k interior pixels.
"""
from __future__ import annotations

import numpy as np

VALID_THRESHOLD = 0.1          # as core.prefill: depths <= 0.1 m are "empty"
INTERPOLATION_METHODS = ('nearest', 'linear')


def _split(sparse: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(vertex pixel coords Nx2, vertex depths N, empty-pixel coords Mx2)`` as float64 (row, col)."""
    if sparse.ndim != 2:
        raise ValueError(f'expected an HxW depth map, got shape {sparse.shape}')
    depth = np.nan_to_num(np.asarray(sparse, np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    valid = depth > VALID_THRESHOLD
    # A measured pixel is a useful vertex only if some 8-neighbour is empty (see the module docstring).
    padded = np.pad(valid, 1, constant_values=False)
    all_neighbours_valid = np.ones_like(valid)
    height, width = valid.shape
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            all_neighbours_valid &= padded[dy:dy + height, dx:dx + width]
    border = valid & ~all_neighbours_valid
    # C-contiguous copies: qhull's point location is ~6x slower on the transposed views argwhere returns.
    vertices = np.ascontiguousarray(np.argwhere(border), dtype=np.float64)
    queries = np.ascontiguousarray(np.argwhere(~valid), dtype=np.float64)
    return vertices, depth[border].astype(np.float64), queries


def _fill(sparse: np.ndarray, queries: np.ndarray, values: np.ndarray) -> np.ndarray:
    out = np.where(sparse > VALID_THRESHOLD, sparse, 0.0).astype(np.float32)
    rows, cols = queries[:, 0].astype(np.intp), queries[:, 1].astype(np.intp)
    out[rows, cols] = values
    return out


def fill_nearest(sparse: np.ndarray) -> np.ndarray:
    """Every empty pixel takes the nearest measured depth; a map without measurements stays 0."""
    from scipy.spatial import cKDTree

    vertices, depths, queries = _split(sparse)
    if vertices.shape[0] == 0 or queries.shape[0] == 0:
        return _fill(sparse, queries[:0], depths[:0])
    _, index = cKDTree(vertices).query(queries)
    return _fill(sparse, queries, depths[index].astype(np.float32))


def fill_linear(sparse: np.ndarray, outside: str = 'nearest') -> np.ndarray:
    """Delaunay (barycentric) interpolation of the measured depths; ``outside`` the convex hull:
    ``'nearest'`` (default, dense map) or ``'unknown'`` (0). Fewer than 3 non-collinear points: nearest."""
    from scipy.spatial import Delaunay, QhullError

    if outside not in ('nearest', 'unknown'):
        raise ValueError(f"outside must be 'nearest' or 'unknown', got {outside!r}")
    vertices, depths, queries = _split(sparse)
    if vertices.shape[0] == 0 or queries.shape[0] == 0:
        return _fill(sparse, queries[:0], depths[:0])
    values = np.full(queries.shape[0], np.nan)
    try:
        triangulation = Delaunay(vertices)
    except (QhullError, ValueError):          # < 3 points or all on one line: no triangle exists
        triangulation = None
    if triangulation is not None:
        # Barycentric weights written out for the located queries only: LinearNDInterpolator's __call__
        # falls back to a brute-force search for queries near or outside the hull, and Delaunay.transform
        # inverts every triangle (seconds per KITTI frame each); find_simplex alone takes milliseconds.
        simplex = triangulation.find_simplex(queries)
        found = np.flatnonzero(simplex >= 0)
        corners = triangulation.simplices[simplex[found]]                        # M x 3 vertex indices
        a, b, c = (vertices[corners[:, k]] for k in range(3))
        ab, ac, ap = b - a, c - a, queries[found] - a
        with np.errstate(divide='ignore', invalid='ignore'):
            area = ab[:, 0] * ac[:, 1] - ac[:, 0] * ab[:, 1]
            weight_b = (ap[:, 0] * ac[:, 1] - ac[:, 0] * ap[:, 1]) / area
            weight_c = (ab[:, 0] * ap[:, 1] - ap[:, 0] * ab[:, 1]) / area
        weight_a = 1.0 - weight_b - weight_c
        values[found] = (weight_a * depths[corners[:, 0]] + weight_b * depths[corners[:, 1]]
                         + weight_c * depths[corners[:, 2]])                   # degenerate triangle: NaN
    hull_outside = np.isnan(values)
    if hull_outside.any():
        if outside == 'unknown':
            values[hull_outside] = 0.0
        else:
            from scipy.spatial import cKDTree

            _, index = cKDTree(vertices).query(queries[hull_outside])
            values[hull_outside] = depths[index]
    return _fill(sparse, queries, values.astype(np.float32))


def interpolate(sparse: np.ndarray, method: str) -> np.ndarray:
    """``fill_nearest`` or ``fill_linear`` by name."""
    if method == 'nearest':
        return fill_nearest(sparse)
    if method == 'linear':
        return fill_linear(sparse)
    raise ValueError(f'unknown interpolation {method!r}; choose from {", ".join(INTERPOLATION_METHODS)}')
