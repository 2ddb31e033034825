"""Depth completion metrics with the KITTI / NYU conventions: per image over valid ground truth, then averaged.

Units: ``rmse_mm`` and ``mae_mm`` in millimetres; ``irmse`` and ``imae`` in 1/km (inverse depth); ``rel`` is the
mean absolute relative error; ``d1..d3`` are the fractions with ``max(p/g, g/p) < 1.25^k``.
Valid pixels: ``gt > min_depth`` with ``min_depth = 1e-3`` m by default. LRRU's own evaluation uses 1e-4 m
(LRRU.md §2.7); both thresholds select exactly the same pixels on KITTI (16-bit PNG / 256 -> smallest non-zero
depth 3.9 mm) and NYU (mm resolution), so the choice only matters for synthetic data with sub-millimetre depths.
Predictions are clamped to ``>= min_depth`` inside the inverse metrics so a zero prediction cannot divide by 0.
"""
from __future__ import annotations

from typing import Any

import numpy as np

METRIC_NAMES = ('rmse_mm', 'mae_mm', 'irmse', 'imae', 'rel', 'd1', 'd2', 'd3')


def _to_numpy(array: Any) -> np.ndarray:
    if hasattr(array, 'detach'):                       # torch tensor, on any device and dtype
        array = array.detach().float().cpu().numpy()
    return np.asarray(array, dtype=np.float64)


def depth_metrics(pred: Any, gt: Any, min_depth: float = 1e-3) -> dict[str, float]:
    """Metrics of one image (numpy or torch, any shape that squeezes to the same HxW). NaN if no valid GT."""
    pred_np = np.squeeze(_to_numpy(pred))
    gt_np = np.squeeze(_to_numpy(gt))
    if pred_np.shape != gt_np.shape:
        raise ValueError(f'prediction {pred_np.shape} and ground truth {gt_np.shape} differ in shape')
    valid = np.isfinite(gt_np) & (gt_np > min_depth)
    if not valid.any():
        return {name: float('nan') for name in METRIC_NAMES}
    p = np.nan_to_num(pred_np[valid], nan=0.0, posinf=0.0, neginf=0.0)
    g = gt_np[valid]
    error = p - g
    p_safe = np.maximum(p, min_depth)
    inverse_error = 1.0 / p_safe - 1.0 / g                     # 1/m
    ratio = np.maximum(p_safe / g, g / p_safe)
    return {
        'rmse_mm': float(np.sqrt(np.mean(error ** 2)) * 1e3),
        'mae_mm': float(np.mean(np.abs(error)) * 1e3),
        'irmse': float(np.sqrt(np.mean(inverse_error ** 2)) * 1e3),   # 1/km
        'imae': float(np.mean(np.abs(inverse_error)) * 1e3),
        'rel': float(np.mean(np.abs(error) / g)),
        'd1': float(np.mean(ratio < 1.25)),
        'd2': float(np.mean(ratio < 1.25 ** 2)),
        'd3': float(np.mean(ratio < 1.25 ** 3)),
    }


class MetricAccumulator:
    """Collects per-image metrics and averages them over images (images without valid GT are skipped)."""

    def __init__(self, min_depth: float = 1e-3) -> None:
        self.min_depth = min_depth
        self.per_image: list[dict[str, float]] = []

    def add(self, pred: Any, gt: Any) -> dict[str, float]:
        """Add one image, or a batch (B,1,H,W / B,H,W): each batch item counts as one image."""
        pred_np = _to_numpy(pred)
        gt_np = _to_numpy(gt)
        if gt_np.ndim == 4 or (gt_np.ndim == 3 and gt_np.shape[0] > 1):
            results = [self.add(p, g) for p, g in zip(pred_np, gt_np, strict=True)]
            return results[-1]
        metrics = depth_metrics(pred_np, gt_np, self.min_depth)
        if not np.isnan(metrics['rmse_mm']):
            self.per_image.append(metrics)
        return metrics

    def __len__(self) -> int:
        return len(self.per_image)

    def mean(self) -> dict[str, float]:
        if not self.per_image:
            return {name: float('nan') for name in METRIC_NAMES} | {'count': 0}
        result: dict[str, float] = {name: float(np.mean([m[name] for m in self.per_image])) for name in METRIC_NAMES}
        result['count'] = len(self.per_image)
        return result
