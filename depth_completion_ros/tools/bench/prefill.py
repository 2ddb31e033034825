"""``depth-completion bench prefill``: every prefill method on a real KITTI scan and a real Kinect map, beside
OpenCV's ``fill_in_fast`` and scipy's ``griddata`` (linear) timed in the same run.

Rows (``--json`` prints them as a list): each method of ``core.prefill.PREFILL_METHODS`` (read when the command
runs, so a method added there is benched without touching this file) through ``dense_prefill``, the node's
own call ``prefill(sparse, 'ipbasic')`` (dense map + outlier-cleaned anchors) as ``node_ipbasic``, and the
references ``opencv_fill_in_fast`` (ip_basic's OpenCV steps without our hole pass, as ``bench model``) and
``scipy_griddata_linear`` (griddata over every measured pixel, evaluated at the empty ones: how a scipy user
would fill the map; NaN outside the hull). Frames: KITTI object 000003 (375x1242) and NYU Kinect frame 1
(480x640) from ../shared/data ($DEPTH_COMPLETION_SHARED_DATA). The host is shared, so only ratios within one
run mean anything; the runs go round-robin over the methods, so drift lands on every row alike.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from depth_completion_ros.tools.bench.machine import cpu_model
from depth_completion_ros.tools.bench.shared_data import shared_data_dir

REFERENCES = ('opencv_fill_in_fast', 'scipy_griddata_linear')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--runs', type=int, default=5, help='timed runs per method and frame (after 1 warm-up)')
    parser.add_argument('--frames', default='lidar,kinect', help='comma-separated: lidar, kinect')
    parser.add_argument('--methods', default='',
                        help='comma-separated subset of the rows (default: every prefill method, node_ipbasic '
                             'and both references)')


def load_frame(name: str) -> tuple[np.ndarray, str]:
    """``(HxW float32 metres, where it came from)`` for ``lidar`` or ``kinect``."""
    from depth_completion_ros.tools.common import CliError

    root = shared_data_dir()
    try:
        if name == 'lidar':
            from depth_completion_ros.core.kitti import kitti_sparse_depth, load_kitti_object_frame

            frame = load_kitti_object_frame(root / 'kitti_object', '000003')
            return np.asarray(kitti_sparse_depth(frame), np.float32), 'KITTI object 000003'
        if name == 'kinect':
            from depth_completion_ros.data.loaders import read_depth_png

            return read_depth_png(root / 'nyu_kinect_slambook' / 'depth' / '1.pgm', 1000.0), 'NYU Kinect frame 1'
    except (OSError, ValueError) as error:
        raise CliError(f'bench prefill: cannot read the {name} frame under {root} ({error}); '
                       'set DEPTH_COMPLETION_SHARED_DATA') from error
    raise CliError(f'bench prefill: unknown frame {name!r}; choose from lidar, kinect')


def griddata_linear(sparse: np.ndarray) -> np.ndarray:
    """scipy's linear griddata over every measured pixel, at every empty pixel (NaN outside the hull)."""
    from scipy.interpolate import griddata

    valid = sparse > 0.1
    out = np.where(valid, sparse, 0).astype(np.float64)
    out[~valid] = griddata(np.argwhere(valid).astype(np.float64), sparse[valid].astype(np.float64),
                           np.argwhere(~valid).astype(np.float64), method='linear')
    return out


def method_functions(sparse: np.ndarray) -> dict[str, Callable[[], Any]]:
    """Name -> a call that prefills ``sparse`` the way the row's name says."""
    import torch

    from depth_completion_ros.core import prefill as core_prefill

    tensor = torch.from_numpy(sparse)[None, None]
    functions: dict[str, Callable[[], Any]] = {
        method: (lambda method=method: core_prefill.dense_prefill(tensor, method))
        for method in core_prefill.PREFILL_METHODS}
    functions['node_ipbasic'] = lambda: core_prefill.prefill(tensor, 'ipbasic')
    functions['opencv_fill_in_fast'] = lambda: core_prefill.fill_in_fast_cv2(sparse, fill_holes=False)
    functions['scipy_griddata_linear'] = lambda: griddata_linear(sparse)
    return functions


def bench(frames: list[str], runs: int, only: list[str] | None = None) -> list[dict[str, Any]]:
    """One row per (method, frame): median/min ms over ``runs`` and the ratio to each same-run reference."""
    rows = []
    cpu = cpu_model()
    for frame in frames:
        sparse, source = load_frame(frame)
        functions = method_functions(sparse)
        names = [name for name in functions if not only or name in only]
        # Round-robin: run k of every method, then run k+1 of every method, so that a shared host's drift over
        # the minutes of a bench lands on all rows alike instead of on whichever block ran during it.
        timed: dict[str, list[float]] = {name: [] for name in names}
        for name in names:
            functions[name]()                                                    # warm-up
        for _ in range(runs):
            for name in names:
                start = time.perf_counter()
                functions[name]()
                timed[name].append((time.perf_counter() - start) * 1e3)
        for name, times in timed.items():
            row: dict[str, Any] = {'method': name, 'frame': frame, 'median_ms': round(statistics.median(times), 2),
                                   'min_ms': round(min(times), 2), 'runs': runs,
                                   'size': f'{sparse.shape[0]}x{sparse.shape[1]}', 'source': source, 'cpu': cpu}
            for reference in REFERENCES:
                if reference in timed:
                    row[f'vs_{reference}'] = round(statistics.median(times) / statistics.median(timed[reference]), 3)
            rows.append(row)
    return rows


def main(args: argparse.Namespace) -> int:
    from depth_completion_ros.tools.common import CliError

    if args.runs < 1:
        raise CliError('bench prefill: --runs must be >= 1')
    frames = [name.strip() for name in args.frames.split(',') if name.strip()]
    only = [name.strip() for name in args.methods.split(',') if name.strip()] or None
    rows = bench(frames, args.runs, only)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f'CPU: {cpu_model()} ({os.cpu_count()} logical); median of {args.runs} runs; ratios are same-run')
    print(f"{'method':24s} {'frame':7s} {'size':>9s} {'median ms':>10s} {'vs fill_in_fast':>16s} "
          f"{'vs griddata':>12s}")
    for row in rows:
        ratios = [f"{row[key]:.3f}x" if key in row else '-' for key in ('vs_opencv_fill_in_fast',
                                                                        'vs_scipy_griddata_linear')]
        print(f"{row['method']:24s} {row['frame']:7s} {row['size']:>9s} {row['median_ms']:10.1f} "
              f"{ratios[0]:>16s} {ratios[1]:>12s}")
    return 0
