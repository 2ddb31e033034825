"""Self-supervision and evaluation inputs for data without dense ground truth.

- ``hide_points``: split measured points into an input part and a hidden (target) part. Training on real data
  learns to predict the hidden points; the ``holdout-points`` protocol scores exactly those and nothing else.
- ``sample_points``: N valid ground-truth pixels as a sparse input (the NYUv2 "500 samples" protocol).
Both are seeded and deterministic; they never modify their inputs.
"""
from __future__ import annotations

import numpy as np


def hide_points(sparse: np.ndarray, fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(input, hidden)`` HxW float32 maps: every measured pixel lands in exactly one of them.

    Exactly ``round(fraction * n_measured)`` points are hidden, chosen by a seeded permutation.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f'fraction must be in [0, 1], got {fraction}')
    measured = np.flatnonzero(sparse.reshape(-1) > 0)
    n_hidden = int(round(fraction * measured.size))
    hidden_idx = np.random.default_rng(seed).permutation(measured)[:n_hidden]
    flat = sparse.reshape(-1).astype(np.float32)
    hidden = np.zeros_like(flat)
    hidden[hidden_idx] = flat[hidden_idx]
    visible = flat.copy()
    visible[hidden_idx] = 0.0
    return visible.reshape(sparse.shape), hidden.reshape(sparse.shape)


def sample_points(depth: np.ndarray, n_points: int, seed: int | np.random.Generator = 0) -> np.ndarray:
    """HxW float32 map holding ``n_points`` randomly chosen valid pixels of ``depth`` (all of them if fewer);
    ``seed`` may also be a Generator (augmentation draws from its own stream)."""
    valid = np.flatnonzero(depth.reshape(-1) > 0)
    chosen = np.random.default_rng(seed).choice(valid, size=min(n_points, valid.size), replace=False)
    out = np.zeros(depth.size, np.float32)
    out[chosen] = depth.reshape(-1)[chosen]
    return out.reshape(depth.shape)
