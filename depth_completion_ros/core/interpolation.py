"""Classical scattered-data fills of a sparse depth map: nearest neighbour and linear (Delaunay).

They are the prefills for inputs that ip_basic's LiDAR-line morphology does not fit (a few hundred scattered
points, depth-camera maps with holes), and the classical peers that ``depth-completion eval`` prints beside the
network. Both take and return ``HxW`` float32 numpy metres (0 = no measurement); measured pixels keep their
values exactly.

- ``nearest``: every empty pixel takes the depth of the nearest measured pixel (Euclidean in pixel
  coordinates), from one exact Euclidean distance transform with indices
  (``scipy.ndimage.distance_transform_edt``): the same distances as ``griddata(method='nearest')``'s k-d tree
  query; only which of several equidistant pixels wins may differ.
- ``linear``: barycentric interpolation in the Delaunay triangulation of the measured pixels (Qhull through
  ``scipy.spatial.Delaunay``, as ``griddata(method='linear')``). Outside the convex hull of the points linear
  interpolation is undefined; there the map takes the *nearest* measured depth, so the prefill is dense like
  ip_basic's (the network needs a value everywhere; the node masks by ``max_range``). With
  ``outside='unknown'`` those pixels stay 0 instead. A degenerate (zero-area) triangle gives no value, as in
  griddata (NaN there), and its pixels are treated as outside. Eval uses the dense default, so every method
  is scored on the same pixels.

Cost, and why the result is griddata's (argument in :func:`_border`): only measured pixels with an empty
8-neighbour (or on the image edge) are triangulated, which for a LiDAR scan is every point and for a
depth camera the hole borders (~14k of ~200k pixels on a Kinect frame). The triangles are then scan-converted
in numpy and only the empty pixels inside them are evaluated, with exact integer geometry; this replaces
``find_simplex`` + ``Delaunay.transform``, whose per-triangle LAPACK inversion alone costs 50 ms per KITTI
scan on one thread and seconds when OpenBLAS threads contend for a busy 2-core CPU.
"""
from __future__ import annotations

import numpy as np

from .cpu_runtime import spare_core_worker

VALID_THRESHOLD = 0.1          # as core.prefill: depths <= 0.1 m are "empty"
INTERPOLATION_METHODS = ('nearest', 'linear')


def depth_and_valid(sparse: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(float32 depth with NaN/inf as 0, measured mask)`` of an ``HxW`` map: the one input clean-up of every
    CPU prefill (this module's, ``prefill.fill_in_fast_cv2``, ``prefill_authors``). Not a copy when finite."""
    if sparse.ndim != 2:
        raise ValueError(f'expected an HxW depth map, got shape {sparse.shape}')
    depth = np.asarray(sparse, np.float32)
    if not np.isfinite(depth).all():                         # a copy only where there is something to clear
        depth = np.nan_to_num(depth, nan=0.0, posinf=0.0, neginf=0.0)
    return depth, depth > VALID_THRESHOLD


def _nearest_depths(depth: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Each pixel's nearest measured depth (its own where measured), ``HxW`` C order.

    One exact feature transform (scipy), run on the transposed mask: on wide camera images (375x1242 KITTI)
    scipy's transform is ~20 % faster in the tall layout (BENCHMARKS.md), and the depths are then gathered in
    that layout, where a pixel's source is close in memory. Which of several equidistant pixels wins depends on
    the layout (~1 % of a KITTI scan's empty pixels); the distance never does.
    """
    from scipy.ndimage import distance_transform_edt

    cols, rows = distance_transform_edt(~valid.T, return_distances=False, return_indices=True)   # W,H each
    cols *= valid.shape[0]
    cols += rows                                                       # flat index into depth.T
    return np.ascontiguousarray(np.take(np.ascontiguousarray(depth.T), cols).T)


def _border(valid: np.ndarray, holes: np.ndarray | None = None) -> np.ndarray:
    """Measured pixels with an 8-neighbour in ``holes`` (default: every empty pixel) or on the image edge: the
    only vertices those holes need.

    Why this gives griddata's values. P = measured pixels, B = this border subset, q an empty pixel. All are
    lattice points, and the Delaunay cells (triangles, or polygons of cocircular points) are those whose open
    circumdisk holds no point of the set.
    (1) A triangle with lattice vertices that contains the lattice point q without q being a vertex has
        circumradius r >= 1: q on an edge makes that edge >= 2 long; q inside gives area >= 3/2 (Pick), and a
        triangle in a circle of radius r has area <= 1.3 r^2.
    (2) A point v on a circle of radius r >= 1 has an 8-neighbour inside the open disk: the neighbour u
        within 22.5 degrees of the inward normal n satisfies |v + u - centre|^2 = r^2 - |u| (2 r cos(angle)
        - |u|) < r^2, since 2 r cos(22.5) >= 1.85 > sqrt(2) >= |u|.
    So a Delaunay cell of P containing q cannot have a vertex v in P \\ B (all of v's neighbours are measured,
    and by (1)+(2) one lies in the open disk): its vertices are in B and it is a Delaunay cell of B. Conversely,
    let a cell of B contain q with open disk D and suppose D holds some p in P \\ B. The lattice points of an
    open disk are 4-connected, every neighbour of a P \\ B pixel is measured (and in the image, because image
    edge pixels are in B), and D holds no B point, so every lattice point of D is in P \\ B; by (2) one of
    them neighbours q, which is empty, so it is in B: a contradiction. Hence the cells that contain empty
    pixels, and the convex hull (its corners are extreme, so in B), are the same for P and B, and so is the
    linear interpolant at every empty pixel in a triangular cell (or on an edge between two).
    The one freedom left is Qhull's: inside a cell of >= 4 cocircular points (lattice data has many) the
    diagonal is a tie that Qhull breaks by its insertion order, so there griddata itself changes when its
    points are merely permuted. For a LiDAR scan B == P and the points go to Qhull in griddata's order, so the
    triangulation, ties included, is griddata's; on a depth-camera map such tie pixels take a value of an
    equally valid Delaunay triangulation (test/test_interpolation.py checks both on real frames).
    Holes in groups (``holes`` = some whole 4-connected holes, B_g = their border; :func:`fill_linear` runs two
    groups at once). For q in one of them: the lattice points of an open disk that lie in the image are
    4-connected (each row of them is one run centred on the disk's column, nested in the runs of the rows
    nearer the centre, and clipping to the image keeps that). (i) A Delaunay cell of P containing q has no P
    point in its open disk, so those points are all empty and in q's hole; a vertex off the image edge has
    all its 8-neighbours in the image, one of them in the disk by (2), so every vertex is in B_g. (ii) If a
    cell of B_g containing q had a measured pixel p in its open disk, the first measured pixel on a 4-path
    from q to p inside the disk and the image would border q's hole, so it would be in B_g: impossible. So a
    group's triangulation gives the whole map's values at the group's holes, ties aside.
    """
    # Only the pixels of the holes at hand count as empty (outside the image too: edge = border).
    padded = np.pad(valid if holes is None else ~holes, 1, constant_values=False)
    height, width = valid.shape
    interior = np.ones_like(valid)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            interior &= padded[dy:dy + height, dx:dx + width]
    return valid & ~interior


def _scan_convert(vertices: np.ndarray, triangles: np.ndarray, wanted: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(rows, cols, triangle index)`` of every ``wanted`` pixel inside a closed triangle (a pixel on a shared
    edge may appear once per triangle: the interpolant is the same on either side).

    Vectorised per (triangle, row): the row meets the closed triangle in one column interval bounded by the
    crossings of the long edge (top to bottom vertex) and of the short edge on that side of the middle vertex.
    A crossing lies on an integer numerator over a row difference < 2^11, so one that is not an integer is
    >= 2^-11 from every integer while float64 slopes err by < 1e-9 here: snapping crossings within 1e-6 of an
    integer makes ceil/floor exact, so pixels exactly on an edge or on the hull are never lost to rounding.
    The wanted pixels of an interval are read off a running count of wanted pixels in raster order, so covered
    but unwanted pixels (a depth camera's measured areas under a big border triangle) cost nothing.
    Degenerate (zero-area) triangles must already be removed."""
    vertex_rows, vertex_cols = vertices[:, 0].astype(np.float64), vertices[:, 1].astype(np.float64)
    by_row = np.take_along_axis(triangles, np.argsort(vertex_rows[triangles], axis=1, kind='stable'), axis=1)
    top, mid, bottom = by_row[:, 0], by_row[:, 1], by_row[:, 2]
    top_row, top_col, mid_col = vertex_rows[top], vertex_cols[top], vertex_cols[mid]
    to_mid, to_bottom = vertex_rows[mid] - top_row, vertex_rows[bottom] - top_row    # rows below the top
    slope_long = (vertex_cols[bottom] - top_col) / to_bottom                # to_bottom > 0: not flat
    slope_upper = (mid_col - top_col) / np.maximum(to_mid, 1)
    slope_lower = (vertex_cols[bottom] - mid_col) / np.maximum(to_bottom - to_mid, 1)
    spans = to_bottom.astype(np.int64) + 1
    owner = np.repeat(np.arange(len(triangles)), spans)                      # one entry per (triangle, row)
    down = (np.arange(owner.size) - np.repeat(np.cumsum(spans) - spans, spans)).astype(np.float64)
    start_col = top_col[owner]
    long_edge = start_col + down * slope_long[owner]
    below = down - to_mid[owner]
    # at the middle row both short edges meet at the middle vertex, so the lower formula covers it (and a
    # horizontal top or bottom edge, whose other end the long edge supplies)
    short_edge = np.where(below < 0, start_col + down * slope_upper[owner],
                          mid_col[owner] + below * slope_lower[owner])
    low, high = np.minimum(long_edge, short_edge), np.maximum(long_edge, short_edge)
    low = np.where(np.abs(low - np.rint(low)) < 1e-6, np.rint(low), low)
    high = np.where(np.abs(high - np.rint(high)) < 1e-6, np.rint(high), high)
    row = (top_row[owner] + down).astype(np.int64)
    first, last = np.ceil(low).astype(np.int64), np.floor(high).astype(np.int64)
    height, width = wanted.shape
    first, last = np.clip(first, 0, width), np.clip(last + 1, 0, width)      # half-open [first, last)
    # rank[i] = wanted pixels before raster position i: an interval's wanted pixels are ranks [a, b)
    flat_wanted = np.flatnonzero(wanted)
    rank = np.concatenate(([0], np.cumsum(wanted.ravel(), dtype=np.int64)))
    base = row * width
    begin, stop = rank[base + first], rank[base + last]
    count = np.maximum(stop - begin, 0)
    pair = np.repeat(np.arange(owner.size), count)
    flat = flat_wanted[begin[pair] + np.arange(pair.size) - np.repeat(np.cumsum(count) - count, count)]
    rows, cols = np.divmod(flat, width)
    return rows, cols, owner[pair]


def fill_nearest(sparse: np.ndarray) -> np.ndarray:
    """Every empty pixel takes the nearest measured depth; a map without measurements stays 0."""
    depth, valid = depth_and_valid(sparse)
    if not valid.any():
        return np.zeros_like(depth)
    return _nearest_depths(depth, valid)


def _hole_groups(empty: np.ndarray) -> list[np.ndarray]:
    """The empty pixels as one mask, or as two masks of whole 4-connected holes with about half the border
    points each (raster order of the holes), when a second core can triangulate one of them (Qhull releases
    the GIL for part of its work). A LiDAR scan's empty pixels are one connected region: one mask."""
    import cv2
    from scipy import ndimage

    if spare_core_worker() is None:
        return [empty]
    labels, count = ndimage.label(empty)                                      # 4-connectivity
    if count < 2 or count >= 1 << 24:                                         # (labels exact in float32)
        return [empty]
    # each border pixel counted for the highest-numbered hole among its 8 neighbours: enough to balance
    touching = cv2.dilate(labels.astype(np.float32), np.ones((3, 3), np.uint8)).astype(np.int64)
    per_hole = np.bincount(touching[~empty], minlength=count + 1)[1:]
    last_first = int(np.searchsorted(np.cumsum(per_hole), per_hole.sum() / 2)) + 1   # holes 1..last_first
    if last_first >= count:
        return [empty]
    first = (labels > 0) & (labels <= last_first)
    return [first, empty & ~first]


def _linear_in_holes(depth: np.ndarray, valid: np.ndarray, holes: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(rows, cols, depths)`` of the ``holes`` pixels inside the Delaunay triangulation of their border
    (:func:`_border`; the measured pixels and griddata's values, see there)."""
    from scipy.spatial import Delaunay, QhullError

    vertices = np.argwhere(_border(valid, holes))                # row-major: griddata's order when B == P
    try:
        # float64 and C order, as griddata hands the points to Qhull (same input, same triangulation)
        triangles = Delaunay(np.ascontiguousarray(vertices, dtype=np.float64)).simplices
    except (QhullError, ValueError):          # < 3 points or all on one line: no triangle exists
        return np.zeros(0, np.intp), np.zeros(0, np.intp), np.zeros(0)
    corners = vertices[triangles]                                            # T x 3 x 2, exact integers
    edge_b, edge_c = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    area = edge_b[:, 0] * edge_c[:, 1] - edge_c[:, 0] * edge_b[:, 1]
    solid = area != 0                                                        # griddata: NaN in a flat one
    triangles, corners, area = triangles[solid], corners[solid], area[solid]
    rows, cols, index = _scan_convert(vertices, triangles, holes)
    a, ab, ac = corners[index, 0], corners[index, 1] - corners[index, 0], corners[index, 2] - corners[index, 0]
    ap_row, ap_col = rows - a[:, 0], cols - a[:, 1]
    # integer cross products (exact), one division each: the weights are correctly rounded
    weight_b = (ap_row * ac[:, 1] - ac[:, 0] * ap_col) / area[index]
    weight_c = (ab[:, 0] * ap_col - ap_row * ab[:, 1]) / area[index]
    weight_a = 1.0 - weight_b - weight_c
    values = depth.astype(np.float64)[vertices[:, 0], vertices[:, 1]][triangles[index]]
    return rows, cols, weight_a * values[:, 0] + weight_b * values[:, 1] + weight_c * values[:, 2]


def fill_linear(sparse: np.ndarray, outside: str = 'nearest') -> np.ndarray:
    """Delaunay (barycentric) interpolation of the measured depths; ``outside`` the convex hull:
    ``'nearest'`` (default, dense map) or ``'unknown'`` (0). Fewer than 3 non-collinear points: nearest.

    Holes of a depth-camera map are triangulated in two groups at once where a second core exists
    (:func:`_hole_groups`); each group's values are those of the whole map's triangulation (:func:`_border`)."""
    if outside not in ('nearest', 'unknown'):
        raise ValueError(f"outside must be 'nearest' or 'unknown', got {outside!r}")
    depth, valid = depth_and_valid(sparse)
    out = np.where(valid, depth, np.float32(0.0))
    empty = ~valid
    if not valid.any() or not empty.any():
        return out
    groups = _hole_groups(empty)
    pending = [spare_core_worker().submit(_linear_in_holes, depth, valid, holes) for holes in groups[1:]]
    parts = [_linear_in_holes(depth, valid, groups[0])] + [part.result() for part in pending]
    filled = np.zeros_like(valid)
    for rows, cols, values in parts:
        out[rows, cols] = values
        filled[rows, cols] = True
    hull_outside = empty & ~filled
    if outside == 'nearest' and hull_outside.any():
        out[hull_outside] = _nearest_depths(depth, valid)[hull_outside]
    return out


def interpolate(sparse: np.ndarray, method: str) -> np.ndarray:
    """``fill_nearest`` or ``fill_linear`` by name."""
    if method == 'nearest':
        return fill_nearest(sparse)
    if method == 'linear':
        return fill_linear(sparse)
    raise ValueError(f'unknown interpolation {method!r}; choose from {", ".join(INTERPOLATION_METHODS)}')
