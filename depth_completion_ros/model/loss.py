"""Training loss of LRRU (LRRU.md §2.8): L1 + L2 on every iteration output, later outputs weighted more."""
from __future__ import annotations

from collections.abc import Sequence

import torch


def iteration_weights(num_outputs: int, gamma: float = 0.8) -> list[float]:
    """``gamma^(N - i - 1)`` for i = 0..N-1: (0.512, 0.64, 0.8, 1.0) for 4 outputs and gamma 0.8."""
    return [gamma ** (num_outputs - index - 1) for index in range(num_outputs)]


def masked_l1_l2(pred: torch.Tensor, gt: torch.Tensor, l2_weight: float = 1.0) -> torch.Tensor:
    """Mean absolute + ``l2_weight`` x mean squared error over pixels with ``gt > 0`` (0 when there are none)."""
    valid = gt > 0
    count = valid.sum().clamp(min=1).to(pred.dtype)
    diff = torch.where(valid, pred - gt, torch.zeros_like(pred))
    return diff.abs().sum() / count + l2_weight * diff.pow(2).sum() / count


def lrru_loss(outputs: Sequence[torch.Tensor], gt: torch.Tensor, gamma: float = 0.8,
              l2_weight: float = 1.0) -> torch.Tensor:
    """Weighted sum over the iteration outputs (ordered first -> last) of masked L1 + L2 against ``gt``.
    ``l2_weight`` < 1 (e.g. 0 on noisy self-supervised or accumulated targets) tempers the squared term, which
    otherwise follows the few metres-off target pixels at depth edges."""
    if len(outputs) == 0:
        raise ValueError('lrru_loss needs at least one output')
    weights = iteration_weights(len(outputs), gamma)
    gt = gt.float()
    return sum(w * masked_l1_l2(out.float(), gt, l2_weight)  # type: ignore[return-value]
               for w, out in zip(weights, outputs, strict=True))  # type: ignore[return-value]
