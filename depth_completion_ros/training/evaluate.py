"""Evaluation protocols: the network, its prefill and the classical peers side by side, on the same inputs and
the same scored pixels.

- ``kitti``: the sensor map is the input, the (semi-)dense ground truth is scored; frames taller than 256 rows
  are bottom-cropped to 256 rows as LRRU's validation does (LRRU.md §2.7).
- ``holdout-points[:FRACTION]``: a seeded FRACTION (default 0.2) of the measured points is hidden from the input
  and only those hidden points are scored (frames without ground truth: KITTI object/raw, rosbags).
- ``sample-points:N``: N valid reference pixels are the input; all valid reference pixels are scored
  (NYUv2 protocol, N = 500).

Methods (columns): ``network`` (``DepthCompleter``: prefill + LRRU, what the node runs) and the classical fills
of ``core.prefill`` — ``ipbasic``, ``nearest``, ``linear`` (scipy) — one of which is the network's own prefill
(stored in its weights). A guided/bilateral filter peer is not included: OpenCV's ``ximgproc`` is not in
``opencv-python-headless``.

Sparsity sweep (``Sparsity``): ``lines=64,32,16`` keeps that many LiDAR rings before the protocol is applied
(scans with their points: ``data.sparsity.reduce_beams``; ground-truth-only KITTI-DC frames: the line pattern
is simulated with that many rings), ``points=50,200,500`` feeds that many sampled points (replaces N of
``sample-points``; with other protocols it samples the sensor map first).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from depth_completion_ros.data.holdout import hide_points, sample_points
from depth_completion_ros.data.loaders import Sample, bottom_crop

KITTI_EVAL_ROWS = 256
CLASSICAL = ('ipbasic', 'nearest', 'linear')
NETWORK = 'network'


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


@dataclass(frozen=True)
class Sparsity:
    kind: str                 # 'lines' | 'points'
    levels: tuple[int, ...]

    @classmethod
    def parse(cls, text: str) -> Sparsity:
        kind, _, values = text.partition('=')
        try:
            levels = tuple(int(v) for v in values.split(',') if v.strip())
        except ValueError:
            levels = ()
        if kind not in ('lines', 'points') or not levels or min(levels) <= 0:
            raise ValueError(f'bad sweep {text!r}: use lines=64,32,16 or points=50,200,500,5000')
        return cls(kind, levels)


def reduce_input(sample: Sample, kind: str, level: int, seed: int) -> Sample:
    """``sample`` with a sparser sensor map: ``level`` LiDAR lines or ``level`` sampled points."""
    if kind == 'points':
        return replace(sample, sparse=sample_points(sample.sparse, level, seed))
    from depth_completion_ros.data import sparsity

    points = getattr(sample, 'points', None)
    if points is not None and getattr(sample, 'T_cam_points', None) is not None:
        fewer = sparsity.reduce_beams(points, level)
        return replace(sample, sparse=sparsity.scan_depth(fewer, sample.T_cam_points, sample.camera))
    if sample.gt is not None and not np.array_equal(sample.gt, sample.sparse):   # GT-only KITTI-DC frames
        rings = sparsity.HDL64_ELEVATIONS_DEG
        kept = rings[np.unique(np.floor(np.arange(min(level, rings.size)) * rings.size / min(level, rings.size))
                               .astype(np.int64))]
        return replace(sample, sparse=sparsity.simulate_lidar_lines(sample.gt, sample.camera, elevations_deg=kept))
    raise ValueError(f'{sample.name}: a lines sweep needs LiDAR scans (KITTI raw/object) or KITTI-DC ground truth')


def protocol_inputs(sample: Sample, protocol: Protocol, seed: int,
                    sparsity: tuple[str, int] | None = None) -> tuple[Sample, np.ndarray, np.ndarray]:
    """``(sample (possibly cropped), network input sparse, scored target)`` for one frame; ``sparsity``
    (kind, level) thins the input first (see :func:`reduce_input`)."""
    if sparsity is not None and not (sparsity[0] == 'points' and protocol.name == 'sample-points'):
        sample = reduce_input(sample, sparsity[0], sparsity[1], seed)
    if protocol.name == 'kitti':
        if sample.gt is None:
            raise ValueError(f'{sample.name}: the kitti protocol needs ground truth; use holdout-points')
        sample = bottom_crop(sample, KITTI_EVAL_ROWS)
        return sample, sample.sparse, sample.gt
    if protocol.name == 'holdout-points':
        visible, hidden = hide_points(sample.sparse, protocol.fraction, seed)
        return sample, visible, hidden
    n_points = sparsity[1] if sparsity is not None and sparsity[0] == 'points' else protocol.n_points
    reference = sample.gt if sample.gt is not None else sample.sparse
    return sample, sample_points(reference, n_points, seed), reference


def classical_fill(sparse: np.ndarray, method: str) -> np.ndarray:
    """One classical method on a numpy map (``core.prefill.dense_prefill``: the node's own code path)."""
    import torch

    from depth_completion_ros.core.prefill import dense_prefill

    return dense_prefill(torch.from_numpy(np.ascontiguousarray(sparse, np.float32)), method).numpy()


def evaluate(source: Any, protocol: Protocol, weights: str | Path | None = 'lrru_mini', variant: str | None = None,
             device: str = 'auto', seed: int = 0, max_frames: int | None = None,
             save_dir: str | Path | None = None, sparsity: tuple[str, int] | None = None,
             peers: tuple[str, ...] = CLASSICAL,
             progress: Callable[[range], Iterable[int]] | None = None) -> dict[str, Any]:
    """Runs every frame of ``source``; returns ``{'methods': {name: metrics}, 'prefill_method', 'prefill': metrics,
    'model': metrics, 'frames': N, 'protocol', 'sparsity', 'per_frame': [...]}`` (metrics = core.metrics keys,
    averaged over frames). ``methods`` holds ``network`` and every classical method of ``peers`` plus the
    network's prefill; all are scored on the same pixels of the same inputs. ``progress`` wraps the frame
    indices (the CLI passes a tqdm bar)."""
    from depth_completion_ros.core.metrics import MetricAccumulator
    from depth_completion_ros.model import DepthCompleter
    from depth_completion_ros.model.weights import read_metadata, resolve_weights

    if variant is None:
        variant = str(read_metadata(resolve_weights(weights))['variant']) if weights is not None else 'mini'
    completer = DepthCompleter(variant=variant, weights=weights, device=device)
    prefill_method = completer.prefill_method
    classical = tuple(m for m in CLASSICAL if m in peers or m == prefill_method)
    if prefill_method not in classical:                        # e.g. multiscale
        classical = (prefill_method, *classical)
    methods = (*classical, NETWORK)
    accumulators = {name: MetricAccumulator() for name in methods}
    per_frame = []
    count = len(source) if max_frames is None else min(len(source), max_frames)
    interrupted = False
    complete = {name: 0 for name in methods}     # images each accumulator holds from fully scored frames
    try:
        for index in (progress or iter)(range(count)):
            sample, sparse_in, target = protocol_inputs(source[index], protocol, seed + index, sparsity)
            if protocol.name == 'holdout-points' and np.any((sparse_in > 0) & (target > 0)):
                raise AssertionError('holdout protocol would score a point that was fed to the network')
            result = completer.complete(sample.rgb, sparse_in)
            outputs = {name: (result.prefill if name == prefill_method else classical_fill(sparse_in, name))
                       for name in classical}
            outputs[NETWORK] = result.depth
            scored = {name: accumulators[name].add(depth, target) for name, depth in outputs.items()}
            row = {'name': sample.name, 'scored_pixels': int((target > 0).sum()),
                   'input_points': int((sparse_in > 0).sum()),
                   'rmse_mm': {name: m['rmse_mm'] for name, m in scored.items()}}
            complete = {name: len(accumulators[name]) for name in methods}
            per_frame.append(row)
            if save_dir is not None:
                _save_panels(Path(save_dir), sample, sparse_in, target, outputs, prefill_method)
    except KeyboardInterrupt:
        # Ctrl-C on a long eval: the frames scored so far are still worth printing (the caller says it was cut).
        # A frame is counted only once all methods have scored it, so the columns stay comparable.
        if not per_frame:
            raise
        interrupted = True
        for name, accumulator in accumulators.items():
            del accumulator.per_image[complete[name]:]
    metrics = {name: accumulators[name].mean() for name in methods}
    summary = {'protocol': str(protocol), 'frames': len(per_frame), 'frames_requested': count,
               'interrupted': interrupted, 'prefill_method': prefill_method,
               'sparsity': None if sparsity is None else f'{sparsity[0]}={sparsity[1]}',
               'methods': metrics, 'prefill': metrics[prefill_method], 'model': metrics[NETWORK],
               'per_frame': per_frame}
    if save_dir is not None and count:
        write_index(Path(save_dir), summary)
    return summary


def sweep(source: Any, protocol: Protocol, levels: Sparsity, **kwargs: Any) -> list[dict[str, Any]]:
    """:func:`evaluate` at every level of the sweep (same seeds, so level k and k+1 differ only in sparsity).
    After Ctrl-C the levels scored so far are returned (fewer than ``levels.levels``; the last may be cut short,
    its ``interrupted`` says so)."""
    save_dir = kwargs.pop('save_dir', None)
    results = []
    for level in levels.levels:
        level_dir = None if save_dir is None else Path(save_dir) / f'{levels.kind}_{level}'
        try:
            results.append(evaluate(source, protocol, sparsity=(levels.kind, level), save_dir=level_dir, **kwargs))
        except KeyboardInterrupt:        # cut before this level scored a frame: the finished levels stand
            if not results:
                raise
            break
        if results[-1]['interrupted']:
            break
    return results


# ------------------------------------------------------------------------------------------------- outputs
def _label(name: str, prefill_method: str) -> str:
    return f'{name} (prefill)' if name == prefill_method else name


def _save_panels(out: Path, sample: Sample, sparse_in: np.ndarray, target: np.ndarray,
                 outputs: dict[str, np.ndarray], prefill_method: str) -> None:
    """``<name>_depth.png``: RGB, input and every method on one scale; ``<name>_error.png``: the error maps of
    every method on one scale."""
    from depth_completion_ros.core.visualize import colorize_depth, error_map, save_png, side_by_side

    out.mkdir(parents=True, exist_ok=True)
    network = outputs[NETWORK]
    valid = network[np.isfinite(network) & (network > 0)]
    vmax = float(np.percentile(valid, 98)) if valid.size else 1.0
    labels = [_label(name, prefill_method) for name in outputs]
    panels = [sample.rgb, colorize_depth(sparse_in, 0.0, vmax)] + [colorize_depth(d, 0.0, vmax)
                                                                   for d in outputs.values()]
    save_png(out / f'{sample.name}_depth.png', side_by_side(panels, ['rgb', 'input', *labels], vertical=True))
    scored = target > 0
    reference = outputs[prefill_method]
    err_max = float(np.percentile(np.abs(reference[scored] - target[scored]), 95)) if scored.any() else 1.0
    save_png(out / f'{sample.name}_error.png',
             side_by_side([error_map(d, target, err_max) for d in outputs.values()],
                          [f'|{label} - target|' for label in labels], vertical=True))


def write_index(out: Path, summary: dict[str, Any]) -> None:
    """``index.html`` (table + every frame's panels) and ``metrics.png`` (RMSE/MAE per method) in ``out``."""
    import html

    plot_metrics(summary, out / 'metrics.png')
    rows = ''.join(f'<tr><td>{html.escape(name)}</td><td>{m["rmse_mm"]:.1f}</td><td>{m["mae_mm"]:.1f}</td>'
                   f'<td>{m["irmse"]:.2f}</td><td>{m["rel"]:.4f}</td><td>{m["d1"]:.4f}</td></tr>'
                   for name, m in summary['methods'].items())
    frames = ''.join(f'<h3>{html.escape(f["name"])}</h3><p>RMSE mm: '
                     + ', '.join(f'{k} {v:.1f}' for k, v in f['rmse_mm'].items())
                     + f'</p><img src="{html.escape(f["name"])}_depth.png" width="100%">'
                     f'<img src="{html.escape(f["name"])}_error.png" width="100%">' for f in summary['per_frame'])
    title = f'{summary["protocol"]}, {summary["frames"]} frames, prefill {summary["prefill_method"]}' + \
        (f', {summary["sparsity"]}' if summary.get('sparsity') else '')
    (out / 'index.html').write_text(
        f'<!doctype html><meta charset="utf-8"><title>{html.escape(title)}</title><h2>{html.escape(title)}</h2>'
        '<table border="1" cellpadding="4"><tr><th>method</th><th>RMSE mm</th><th>MAE mm</th><th>iRMSE 1/km</th>'
        f'<th>REL</th><th>&delta;1</th></tr>{rows}</table><img src="metrics.png">{frames}\n')


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    return plt


def plot_metrics(summary: dict[str, Any], path: Path) -> None:
    plt = _pyplot()
    names = list(summary['methods'])
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for ax, key, unit in zip(axes, ('rmse_mm', 'mae_mm'), ('RMSE mm', 'MAE mm'), strict=True):
        values = [summary['methods'][n][key] for n in names]
        ax.bar(names, values, color=['tab:blue' if n == 'network' else 'tab:gray' for n in names])
        ax.set_ylabel(unit)
        ax.tick_params(axis='x', rotation=20)
    fig.suptitle(f'{summary["protocol"]}, {summary["frames"]} frames (prefill: {summary["prefill_method"]})')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_sweep(results: list[dict[str, Any]], levels: Sparsity, path: Path) -> None:
    """RMSE of every method over the sweep levels (one line per method)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name in results[0]['methods']:
        ax.plot(levels.levels, [r['methods'][name]['rmse_mm'] for r in results], marker='o',
                lw=2.0 if name == NETWORK else 1.0, label=_label(name, results[0]['prefill_method']))
    ax.set_xlabel('LiDAR lines' if levels.kind == 'lines' else 'input points')
    if levels.kind == 'points':
        ax.set_xscale('log')
    ax.set_ylabel('RMSE mm')
    ax.set_title(f'{results[0]["protocol"]} sweep, {results[0]["frames"]} frames')
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def format_table(result: dict[str, Any]) -> str:
    """Plain-text table: one row per metric, one column per method, and the network's change vs its prefill."""
    from depth_completion_ros.core.metrics import METRIC_NAMES

    names = list(result['methods'])
    header = f'protocol {result.get("protocol", "?")}, {result["frames"]} frames, prefill ' \
             f'{result["prefill_method"]}' + (f', {result["sparsity"]}' if result.get('sparsity') else '')
    labels = [('*' + n) if n == result['prefill_method'] else n for n in names]
    lines = [header, f'{"metric":<10}' + ''.join(f'{label:>12}' for label in labels) + f'{"net/prefill":>13}']
    for metric in METRIC_NAMES:
        values = [result['methods'][n][metric] for n in names]
        pre, net = result['prefill'][metric], result['model'][metric]
        change = f'{(net - pre) / pre * 100:+.1f}%' if pre and np.isfinite(pre) else ''
        lines.append(f'{metric:<10}' + ''.join(f'{v:>12.4g}' for v in values) + f'{change:>13}')
    lines.append('(* = the network\'s prefill, from its weights)')
    return '\n'.join(lines)


def format_sweep(results: list[dict[str, Any]]) -> str:
    names = list(results[0]['methods'])
    lines = [f'sweep, protocol {results[0]["protocol"]}, {results[0]["frames"]} frames: RMSE mm',
             f'{"level":<12}' + ''.join(f'{n:>12}' for n in names)]
    for r in results:
        lines.append(f'{r["sparsity"]:<12}' + ''.join(f'{r["methods"][n]["rmse_mm"]:>12.1f}' for n in names))
    return '\n'.join(lines)
