"""Metrics on hand-computed values; numpy and torch inputs; per-image averaging."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from depth_completion_ros.core.metrics import MetricAccumulator, depth_metrics


def test_known_values() -> None:
    gt = np.array([[10.0, 20.0], [0.0, 40.0]], np.float32)        # the 0 is not valid ground truth
    pred = np.array([[11.0, 20.0], [5.0, 32.0]], np.float32)
    m = depth_metrics(pred, gt)
    assert m['mae_mm'] == pytest.approx((1.0 + 0.0 + 8.0) / 3 * 1e3)
    assert m['rmse_mm'] == pytest.approx(math.sqrt((1.0 + 64.0) / 3) * 1e3)
    inv = [1 / 11 - 1 / 10, 0.0, 1 / 32 - 1 / 40]
    assert m['imae'] == pytest.approx(np.mean(np.abs(inv)) * 1e3)
    assert m['irmse'] == pytest.approx(math.sqrt(np.mean(np.square(inv))) * 1e3)
    assert m['rel'] == pytest.approx((0.1 + 0.0 + 0.2) / 3)
    assert m["d1"] == pytest.approx(2 / 3)         # 40/32 = 1.25 exactly is not < 1.25
    pred[1, 1] = 30.0                              # 40/30 = 1.33: fails d1, passes d2
    m = depth_metrics(pred, gt)
    assert m['d1'] == pytest.approx(2 / 3) and m['d2'] == pytest.approx(1.0) and m['d3'] == 1.0


def test_torch_input_and_batches_average_per_image() -> None:
    gt = torch.full((2, 1, 4, 4), 10.0)
    pred = gt.clone()
    pred[0] += 1.0                                  # image 0: 1 m error everywhere, image 1 perfect
    gt[1, 0, 0, :] = 0.0                            # fewer valid pixels in image 1 must not change the average
    acc = MetricAccumulator()
    acc.add(pred, gt)
    mean = acc.mean()
    assert len(acc) == 2 and mean['count'] == 2
    assert mean['rmse_mm'] == pytest.approx(500.0) and mean['mae_mm'] == pytest.approx(500.0)
    assert depth_metrics(pred[0], gt[0])['rmse_mm'] == pytest.approx(1000.0)


def test_no_valid_ground_truth_is_nan_and_skipped() -> None:
    acc = MetricAccumulator()
    m = acc.add(np.ones((3, 3)), np.zeros((3, 3)))
    assert math.isnan(m['rmse_mm']) and len(acc) == 0


def test_shape_mismatch_raises() -> None:
    with pytest.raises(ValueError):
        depth_metrics(np.ones((3, 3)), np.ones((3, 4)))
