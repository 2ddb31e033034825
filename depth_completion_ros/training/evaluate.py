"""Evaluation protocols: the ip_basic prefill alone and the network, side by side, on the same inputs.

- ``kitti``: the sensor map is the input, the (semi-)dense ground truth is scored; frames taller than 256 rows
  are bottom-cropped to 256 rows as LRRU's validation does (LRRU.md §2.7).
- ``holdout-points[:FRACTION]``: a seeded FRACTION (default 0.2) of the measured points is hidden from the input
  and only those hidden points are scored (frames without ground truth: KITTI object, rosbags).
- ``sample-points:N``: N valid reference pixels are the input; all valid reference pixels are scored
  (NYUv2 protocol, N = 500).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from depth_completion_ros.data.holdout import hide_points, sample_points
from depth_completion_ros.data.loaders import Sample, bottom_crop

KITTI_EVAL_ROWS = 256


@dataclass
class Protocol:
    name: str                 # 'kitti' | 'holdout-points' | 'sample-points'
    fraction: float = 0.2
    n_points: int = 500

    @classmethod
    def parse(cls, text: str) -> Protocol:
        name, _, arg = text.partition(':')
        if name == 'kitti':
            return cls('kitti')
        if name == 'holdout-points':
            return cls('holdout-points', fraction=float(arg) if arg else 0.2)
        if name == 'sample-points':
            return cls('sample-points', n_points=int(arg) if arg else 500)
        raise ValueError(f'unknown protocol {text!r}: kitti, holdout-points[:FRACTION], sample-points:N')

    def __str__(self) -> str:
        return {'kitti': 'kitti', 'holdout-points': f'holdout-points:{self.fraction:g}',
                'sample-points': f'sample-points:{self.n_points}'}[self.name]


def protocol_inputs(sample: Sample, protocol: Protocol, seed: int) -> tuple[Sample, np.ndarray, np.ndarray]:
    """``(sample (possibly cropped), network input sparse, scored target)`` for one frame."""
    if protocol.name == 'kitti':
        if sample.gt is None:
            raise ValueError(f'{sample.name}: the kitti protocol needs ground truth; use holdout-points')
        sample = bottom_crop(sample, KITTI_EVAL_ROWS)
        return sample, sample.sparse, sample.gt
    if protocol.name == 'holdout-points':
        visible, hidden = hide_points(sample.sparse, protocol.fraction, seed)
        return sample, visible, hidden
    reference = sample.gt if sample.gt is not None else sample.sparse
    return sample, sample_points(reference, protocol.n_points, seed), reference


def evaluate(source: Any, protocol: Protocol, weights: str | Path | None = 'lrru_mini', variant: str | None = None,
             device: str = 'auto', seed: int = 0, max_frames: int | None = None,
             save_dir: str | Path | None = None,
             progress: Callable[[range], Iterable[int]] | None = None) -> dict[str, Any]:
    """Runs every frame of ``source``; returns ``{'prefill': metrics, 'model': metrics, 'frames': N,
    'per_frame': [...]}`` (metrics = core.metrics keys, averaged over frames). ``progress`` wraps the frame
    indices (the CLI passes a tqdm bar)."""
    from depth_completion_ros.core.metrics import MetricAccumulator
    from depth_completion_ros.model import DepthCompleter
    from depth_completion_ros.model.weights import read_metadata, resolve_weights

    if variant is None:
        variant = str(read_metadata(resolve_weights(weights))['variant']) if weights is not None else 'mini'
    completer = DepthCompleter(variant=variant, weights=weights, device=device)
    prefill_acc, model_acc = MetricAccumulator(), MetricAccumulator()
    per_frame = []
    count = len(source) if max_frames is None else min(len(source), max_frames)
    for index in (progress or iter)(range(count)):
        sample, sparse_in, target = protocol_inputs(source[index], protocol, seed + index)
        if protocol.name == 'holdout-points' and np.any((sparse_in > 0) & (target > 0)):
            raise AssertionError('holdout protocol would score a point that was fed to the network')
        result = completer.complete(sample.rgb, sparse_in)
        pre = prefill_acc.add(result.prefill, target)
        net = model_acc.add(result.depth, target)
        per_frame.append({'name': sample.name, 'scored_pixels': int((target > 0).sum()),
                          'input_points': int((sparse_in > 0).sum()),
                          'prefill_rmse_mm': pre['rmse_mm'], 'model_rmse_mm': net['rmse_mm']})
        if save_dir is not None:
            _save_panels(Path(save_dir), sample, sparse_in, target, result.prefill, result.depth)
    return {'prefill': prefill_acc.mean(), 'model': model_acc.mean(), 'frames': count,
            'protocol': str(protocol), 'per_frame': per_frame}


def _save_panels(out: Path, sample: Sample, sparse_in: np.ndarray, target: np.ndarray, prefill: np.ndarray,
                 depth: np.ndarray) -> None:
    """RGB | input | prefill | network on one scale, and the two error maps on one scale."""
    from depth_completion_ros.core.visualize import colorize_depth, error_map, save_png, side_by_side

    out.mkdir(parents=True, exist_ok=True)
    valid = depth[np.isfinite(depth) & (depth > 0)]
    vmax = float(np.percentile(valid, 98)) if valid.size else 1.0
    depth_panels = [sample.rgb, colorize_depth(sparse_in, 0.0, vmax), colorize_depth(prefill, 0.0, vmax),
                    colorize_depth(depth, 0.0, vmax)]
    save_png(out / f'{sample.name}_depth.png',
             side_by_side(depth_panels, ['rgb', 'input', 'prefill', 'network'], vertical=True))
    scored = target > 0
    err_max = float(np.percentile(np.abs(prefill[scored] - target[scored]), 95)) if scored.any() else 1.0
    save_png(out / f'{sample.name}_error.png',
             side_by_side([error_map(prefill, target, err_max), error_map(depth, target, err_max)],
                          ['|prefill - target|', '|network - target|'], vertical=True))


def format_table(result: dict[str, Any]) -> str:
    """Plain-text table: one row per metric, prefill and network side by side, with the relative change."""
    from depth_completion_ros.core.metrics import METRIC_NAMES

    lines = [f'protocol {result.get("protocol", "?")}, {result["frames"]} frames',
             f'{"metric":<10}{"prefill":>12}{"network":>12}{"change":>10}']
    for name in METRIC_NAMES:
        pre, net = result['prefill'][name], result['model'][name]
        change = f'{(net - pre) / pre * 100:+.1f}%' if pre and np.isfinite(pre) else ''
        lines.append(f'{name:<10}{pre:>12.4g}{net:>12.4g}{change:>10}')
    return '\n'.join(lines)
