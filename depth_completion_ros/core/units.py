"""Depth unit mistakes: a depth scale that puts most measurements outside the sensor's range.

A millimetre image read as metres (``--depth-scale 1``, or a driver writing millimetres into 32FC1) gives depths of
hundreds of metres: everything beyond max_range is dropped, and the output is all unknown with no other sign. The
check here names the factor that brings the depths back into range, so the warning can say the likely scale.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Factors to try on the depths as read (metres): millimetres, KITTI's 1/256 m, centimetres, decimetres and the
# reverse mistakes. TUM's 1/5000 m is close enough to millimetres that 1/1000 brings it into any indoor range.
CANDIDATE_FACTORS = (1e-3, 1.0 / 256.0, 1e-2, 1e-1, 10.0, 100.0, 1000.0)
# Warn when more than this share of the measurements is outside [min_range, max_range]: a few far or near
# returns are normal; most of them is a unit mistake (or the wrong range preset).
OUT_OF_RANGE_SHARE = 0.5


@dataclass(frozen=True)
class UnitProblem:
    """``out_of_range``: share of measurements outside the range; ``factor``: multiplying the depths by it puts
    ``fixed`` of them in range (None when no candidate does better)."""
    out_of_range: float
    median_m: float
    factor: float | None
    fixed: float

    def describe(self, min_range: float, max_range: float) -> str:
        line = (f'{self.out_of_range:.0%} of the valid depths are outside [{min_range:g}, {max_range:g}] m '
                f'(median {self.median_m:.3g} m)')
        if self.factor is None:
            return line + ': check the depth units and the range'
        size = f'{1.0 / self.factor:g}x too large' if self.factor < 1.0 else f'{self.factor:g}x too small'
        return line + f': the depths look {size} (x{self.factor:g} puts {self.fixed:.0%} in range)'


def check_depth_units(depth_m: np.ndarray, min_range: float, max_range: float) -> UnitProblem | None:
    """None when most valid depths (finite, > 0) are within [min_range, max_range] or there are none; else
    the problem and the candidate factor that fixes most of it."""
    depth = np.asarray(depth_m, dtype=np.float32)
    with np.errstate(invalid='ignore'):
        values = depth[np.isfinite(depth) & (depth > 0)]
    if values.size == 0:
        return None
    in_range = float(np.count_nonzero((values >= min_range) & (values <= max_range))) / values.size
    if 1.0 - in_range <= OUT_OF_RANGE_SHARE:
        return None
    shares = [float(np.count_nonzero((values * f >= min_range) & (values * f <= max_range))) / values.size
              for f in CANDIDATE_FACTORS]
    best = int(np.argmax(shares))
    factor = CANDIDATE_FACTORS[best] if shares[best] > in_range and shares[best] > OUT_OF_RANGE_SHARE else None
    return UnitProblem(out_of_range=1.0 - in_range, median_m=float(np.median(values)), factor=factor,
                       fixed=shares[best] if factor is not None else in_range)


def likely_depth_scale(units_per_metre: float, factor: float) -> float:
    """The ``--depth-scale`` (stored units per metre) that applies ``factor`` to depths read with
    ``units_per_metre``: metres = raw / scale, so the right scale is ``units_per_metre / factor``."""
    return units_per_metre / factor
