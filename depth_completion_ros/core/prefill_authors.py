"""The LRRU authors' prefill and anchors (LRRU.md §2.2-2.3), for running their trained checkpoints exactly.

Their network learned to correct *this* fill, so imported checkpoints run with it (prefill method
``lrru_authors``, stored in the imported file's metadata). Written here from the published description; it
differs from :func:`core.prefill.fill_in_fast` in two places:

* **Holes.** After ip_basic's steps (shared with ``fill_in_fast_cv2``) every 4-connected region of pixels
  <= 0.1 m is visited in label order (scipy's raster order of first pixels). The region's 7x7 dilation is set
  to the mean of the ring between its 7x7 and 13x13 dilations, read from the map *as already filled by the
  regions before it*: the fill overwrites measured pixels next to a hole and later rings see earlier fills, so
  the order matters and no vectorised push-pull reproduces it. Regions are few after the 31x31 fill (the
  corners and columns the scan never reaches), and each is worked on in its own bounding box plus the 6-pixel
  dilation margin, so the Python loop is per region, never per pixel. A region whose ring is empty (a map
  without any measurement) stays 0 where the authors' code would write NaN.
* **Outliers.** A point is dropped when it exceeds the mean of its diamond neighbourhood (7, 9 and 13 wide,
  the point itself included, OpenCV's reflect-101 border) by more than 1 m; points count as valid above 0.1 m
  while the sums take every value. The authors multiply by ``1 - (number of windows that flag it)``, which
  leaves -d or -2d for a point flagged twice or three times; only values > 0 are ever re-imposed, so here a
  flagged point is simply 0 (equal to their map clipped at 0).

Both run in numpy/OpenCV/scipy on the CPU whatever device the frame lives on: one code path, hence the same
anchors and prefill on every device the node can use.
"""
from __future__ import annotations

import numpy as np

from .interpolation import depth_and_valid
from .prefill import VALID_THRESHOLD, diamond_mask, fill_in_fast_cv2

MAX_DEPTH_M = 100.0               # the authors' inversion constant (fill_in_fast(max_depth=100))
OUTLIER_THRESHOLD_M = 1.0
OUTLIER_WINDOWS = (7, 9, 13)
HOLE_INNER, HOLE_OUTER = 7, 13    # a hole's fill area (its 7x7 dilation) and the outer edge of its ring


def fill_holes_by_ring_mean(depth: np.ndarray) -> np.ndarray:
    """The authors' final pass (module docstring): float64 ``HxW`` in, every pixel > 0.1 m out (if any data)."""
    import cv2
    from scipy import ndimage

    filled = np.array(depth, dtype=np.float64)
    labels, count = ndimage.label(filled <= VALID_THRESHOLD)          # default structure: 4-connectivity
    if count == 0:
        return filled
    inner = np.ones((HOLE_INNER, HOLE_INNER), np.uint8)
    outer = np.ones((HOLE_OUTER, HOLE_OUTER), np.uint8)
    margin = HOLE_OUTER // 2
    height, width = filled.shape
    for index, (rows, cols) in enumerate(ndimage.find_objects(labels), start=1):
        top, bottom = max(rows.start - margin, 0), min(rows.stop + margin, height)
        left, right = max(cols.start - margin, 0), min(cols.stop + margin, width)
        region = (labels[top:bottom, left:right] == index).astype(np.uint8)
        near = cv2.dilate(region, inner) > 0                           # outside the image is ignored
        ring = (cv2.dilate(region, outer) > 0) & ~near
        window = filled[top:bottom, left:right]                        # a view: filled in place
        if ring.any():
            window[near] = window[ring].mean()
    return filled


def authors_fill(sparse: np.ndarray) -> np.ndarray:
    """The authors' ip_basic variant on an ``HxW`` metres map (0 = none) -> dense float32 ``HxW``.

    ``fill_in_fast(max_depth=100, extrapolate=True, blur_type='gaussian')`` then the ring-mean hole pass. The
    ip_basic steps are ``fill_in_fast_cv2``'s (the same OpenCV calls in float32; the authors blur and re-invert
    in float64, a difference of float32 rounding, ~1e-5 m); their re-inversion leaves values <= 0.1 as they are
    where ours zeroes them, and the hole pass overwrites exactly those pixels, so the outputs agree.
    """
    dense = fill_in_fast_cv2(sparse, max_depth=MAX_DEPTH_M, extrapolate=True, blur='gaussian', fill_holes=False)
    return fill_holes_by_ring_mean(dense).astype(np.float32)


def authors_anchors(sparse: np.ndarray) -> np.ndarray:
    """The authors' outlier removal (``dep_clear``, clipped at 0) of an ``HxW`` metres map -> float32 ``HxW``."""
    import cv2

    depth, measured = depth_and_valid(sparse)
    valid = measured.astype(np.float64)
    flagged = np.zeros(depth.shape, bool)
    for size in OUTLIER_WINDOWS:
        kernel = diamond_mask(size).numpy()                             # centre included, as theirs
        total = cv2.filter2D(depth, -1, kernel, borderType=cv2.BORDER_REFLECT_101)      # float32 sums
        count = cv2.filter2D(valid, -1, kernel, borderType=cv2.BORDER_REFLECT_101)
        flagged |= (depth - total / (count + 1e-5)) > OUTLIER_THRESHOLD_M
    return np.where(flagged | (depth < 0), np.float32(0.0), depth).astype(np.float32)
