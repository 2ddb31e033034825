"""Measurements of data quality used by the tests and docs/DATA.md: how well a depth map lines up with its
colour image, and the row structure of a sparse LiDAR-like input."""
from __future__ import annotations

import numpy as np


def depth_edges(depth: np.ndarray, relative_jump: float = 0.1) -> np.ndarray:
    """HxW bool: pixels next to a neighbour (4-connected) whose depth differs by more than ``relative_jump``
    of the nearer one; both pixels must be valid (> 0)."""
    edges = np.zeros(depth.shape, bool)
    for a, b, mark_a, mark_b in ((depth[1:], depth[:-1], edges[1:], edges[:-1]),
                                 (depth[:, 1:], depth[:, :-1], edges[:, 1:], edges[:, :-1])):
        jump = (a > 0) & (b > 0) & (np.abs(a - b) > relative_jump * np.minimum(a, b))
        mark_a |= jump
        mark_b |= jump
    return edges


def edge_alignment_px(rgb: np.ndarray, depth: np.ndarray, border: int = 8) -> float:
    """Median distance (px) from the depth map's discontinuities to the nearest strong colour edge (the top 10 %
    of the smoothed grey-level gradient). Well registered RGB-D frames score ~1-2 px; misregistration adds
    its shift."""
    from scipy import ndimage

    grey = ndimage.gaussian_filter(rgb.astype(np.float32).mean(axis=2), 1.0)
    magnitude = np.hypot(ndimage.sobel(grey, 0), ndimage.sobel(grey, 1))
    distance = ndimage.distance_transform_edt(magnitude <= np.percentile(magnitude, 90))
    edges = depth_edges(depth)
    edges[:border] = edges[-border:] = False
    edges[:, :border] = edges[:, -border:] = False
    return float(np.median(distance[edges])) if edges.any() else float('nan')


def line_structure(sparse: np.ndarray, rows: int = 256) -> dict[str, float]:
    """Row structure of a LiDAR-like sparse map in its bottom ``rows`` rows (the KITTI evaluation crop):
    ``density`` (fraction of pixels with a value), ``points_per_column`` (median over columns that have any),
    ``vertical_gap_px`` (median row gap between consecutive points of one column)."""
    crop = sparse[-rows:] > 0
    counts = crop.sum(axis=0)
    r, c = np.nonzero(crop)
    order = np.lexsort((r, c))
    r, c = r[order], c[order]
    gaps = np.diff(r)[np.diff(c) == 0]
    return {'density': float(crop.mean()),
            'points_per_column': float(np.median(counts[counts > 0])) if counts.any() else 0.0,
            'vertical_gap_px': float(np.median(gaps)) if gaps.size else float('nan')}
