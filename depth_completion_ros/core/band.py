"""The row band of a frame the network has to run on: every row validity can keep, plus a margin (numpy only).

On a LiDAR frame the scan reaches only the lower part of the image (KITTI: the bottom ~260-300 of 375 rows) and
core/validity.py makes every pixel above a column's highest measurement unknown (``top_margin_px`` rows
excepted), so the network's output there is thrown away. Running the network on the band alone saves that
compute; the rows above it are unknown exactly as validity would have made them.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ['BAND_MULTIPLE', 'BAND_MARGIN_PX', 'network_band', 'validity_rows']

# LRRU downsamples 4 times by 2: a band whose first row is a multiple of 16 puts its stride-16 feature grid on
# the full frame's (the network pads at the bottom/right only), so inside the band the two runs differ only
# through the band's top edge, where the full frame has image content and the band has the encoder's padding.
BAND_MULTIPLE = 16
# Rows of context above the highest kept row. The encoder's receptive field spans most of the frame, so no
# margin makes the band bit-equal; what matters is how far the band's top edge still reaches into the kept rows.
# Measured on 8 real KITTI frames (kitti_object 000000-000006, 000142; raw drive frames 0, 15, 30, 45), |band -
# full| inside the valid region (core.validity defaults), AMD EPYC, fp32:
#   margin    shipped lrru_mini         authors' LRRU-mini checkpoint (imported)
#     0     max 0.0038 m, mean 2e-6    max 0.217 m, mean 2.4e-4, 5.2e-4 of pixels > 0.05 m
#    16     max 0.0012 m, mean 1e-6    max 0.118 m, mean 1.0e-4, 6.5e-5 of pixels > 0.05 m
#    32     max 0.0002 m, mean 1e-6    max 0.042 m, mean 4.0e-5, none > 0.05 m
#    48     max 0.0001 m, mean <1e-6   max 0.012 m, mean 1.5e-5, none > 0.05 m
# 32 rows (two stride-16 cells) is the smallest margin with no kept pixel off by more than 0.05 m for either
# weights; 48 would cost 16 more rows of ~250-300 for a difference already far below the LiDAR's own noise.
# test/test_band.py holds the tolerance at this margin.
BAND_MARGIN_PX = 32


def network_band(sparse: np.ndarray, rows_above: int = 0, rows_below: int | None = None,
                 margin_px: int = BAND_MARGIN_PX, multiple: int = BAND_MULTIPLE) -> tuple[int, int]:
    """``(start, stop)`` rows of ``sparse`` (HxW, > 0 = measured) the network must see.

    ``rows_above``: rows above the highest measurement validity still keeps (``validity.top_margin_px``);
    ``rows_below``: rows below the lowest measurement it keeps (``validity.max_distance_px`` rounded up), None =
    down to the last row. ``start`` is rounded down to a multiple of ``multiple`` (same feature grid as the full
    frame); ``stop - start`` is a multiple of it unless the band reaches the bottom. No measurement at all:
    the whole frame (validity keeps nothing then, and the result is what band=off gives)."""
    height = int(np.shape(sparse)[0])
    measured_rows = np.flatnonzero((np.asarray(sparse) > 0).any(axis=1))
    if measured_rows.size == 0:
        return 0, height
    first, last = int(measured_rows[0]), int(measured_rows[-1])
    start = max(0, first - max(0, int(rows_above)) - max(0, int(margin_px)))
    start -= start % multiple
    if rows_below is None:
        return start, height
    stop = min(height, last + 1 + max(0, int(rows_below)) + max(0, int(margin_px)))
    stop += (-(stop - start)) % multiple
    return start, min(height, stop)


def validity_rows(validity: Any) -> dict[str, int | None]:
    """:func:`network_band`'s ``rows_above`` / ``rows_below`` for ``core.validity`` settings: rule 1 (column)
    keeps ``top_margin_px`` rows above a column's highest measurement, rule 2 (distance) bounds the rows below
    the lowest by ``max_distance_px`` (none when it is off)."""
    below = math.ceil(validity.max_distance_px) if validity.max_distance_px > 0 else None
    return {'rows_above': int(validity.top_margin_px), 'rows_below': below}
