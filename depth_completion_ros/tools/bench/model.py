"""``depth-completion bench model``: LRRU forward latency/peak memory per variant, and torch prefill vs OpenCV.

CPU: fp32 with ``--threads`` (default 2) threads; peak memory = peak RSS increase during the timed runs (sampled
every 2 ms from /proc/self/statm). CUDA (when available): fp32 / fp16 / bf16 autocast, with and without
channels_last, optionally torch.compile; every timing is bracketed by ``torch.cuda.synchronize`` and memory is
``max_memory_allocated``. Prefill and outlier removal are timed separately (they are outside the network).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

DEFAULT_SIZES = ['256x1216', '375x1242']


def add_arguments(parser: argparse.ArgumentParser) -> None:
    if not any(action.dest == 'json' for action in parser._actions):
        parser.add_argument('--json', action='store_true', help='print one JSON object instead of a table')
    parser.add_argument('--variants', default='mini,tiny,small,base', help='comma-separated variants')
    parser.add_argument('--sizes', default=','.join(DEFAULT_SIZES), help='comma-separated HxW')
    parser.add_argument('--runs', type=int, default=5, help='timed runs per configuration (after 1 warm-up)')
    parser.add_argument('--threads', type=int, default=2, help='CPU threads (torch.set_num_threads)')
    parser.add_argument('--device', default='auto', choices=['auto', 'cpu', 'cuda'],
                        help='inference device (auto: cuda if available)')
    parser.add_argument('--compile', action='store_true', help='also time torch.compile on CUDA')
    parser.add_argument('--skip-prefill', action='store_true', help='do not time the prefill (torch vs OpenCV)')


class RssSampler:
    """Peak resident-set-size increase (bytes) while active; Linux /proc only (0 elsewhere)."""

    def __init__(self) -> None:
        self.page = os.sysconf('SC_PAGE_SIZE') if hasattr(os, 'sysconf') else 4096
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> int:
        try:
            return int(Path('/proc/self/statm').read_text().split()[1]) * self.page
        except OSError:
            return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(0.002)

    def __enter__(self) -> RssSampler:
        self.base = self._rss()
        self.peak = self.base
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def delta_mb(self) -> float:
        return max(self.peak - self.base, 0) / 2 ** 20


def _timed(fn: Callable[[], Any], runs: int, device: torch.device) -> list[float]:
    def sync() -> None:
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
    fn()                                               # warm-up (allocations, cudnn/compile)
    sync()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def _inputs(height: int, width: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    from depth_completion_ros.tools.export import example_inputs
    return tuple(t.to(device) for t in example_inputs(height, width))


def bench_network(variant: str, height: int, width: int, device: torch.device, runs: int, precision: str = 'fp32',
                  channels_last: bool = False, compiled: bool = False, fused: bool = False) -> dict[str, Any]:
    from depth_completion_ros.model import build_model
    from depth_completion_ros.model.inference import fuse_for_inference

    model = build_model(variant).eval().to(device)
    if fused:                    # what DepthCompleter (and so the node) runs: BatchNorm folded into the convs
        model = fuse_for_inference(model)
    inputs = _inputs(height, width, device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        inputs = (inputs[0].contiguous(memory_format=torch.channels_last), *inputs[1:])
    runner = torch.compile(model) if compiled else model
    dtype = {'fp16': torch.float16, 'bf16': torch.bfloat16}.get(precision)
    autocast = torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()

    def forward() -> None:
        with torch.inference_mode(), autocast:
            runner(*inputs)

    row: dict[str, Any] = {'variant': variant, 'size': f'{height}x{width}', 'device': device.type,
                           'precision': precision, 'channels_last': channels_last, 'compile': compiled,
                           'fused': fused}
    start = time.perf_counter()
    forward()                    # first call: lazy initialisation, cuDNN autotuning, torch.compile
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    row['first_call_s'] = round(time.perf_counter() - start, 2)
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
        times = _timed(forward, runs, device)
        row['peak_mem_mb'] = torch.cuda.max_memory_allocated(device) / 2 ** 20
    else:
        with RssSampler() as sampler:
            times = _timed(forward, runs, device)
        row['peak_mem_mb'] = sampler.delta_mb
    row.update(median_ms=statistics.median(times), min_ms=min(times), runs=runs)
    return row


def _sample_sparse(height: int, width: int) -> tuple[np.ndarray, str]:
    """A real KITTI frame from ../shared/data when present (cropped/padded to size), else a synthetic scan."""
    from depth_completion_ros.tools.bench.shared_data import shared_data_dir

    root = shared_data_dir() / 'kitti_object'
    try:
        from depth_completion_ros.core.kitti import kitti_sparse_depth, load_kitti_object_frame
        sparse = np.asarray(kitti_sparse_depth(load_kitti_object_frame(root, '000003')), np.float32)
        canvas = np.zeros((height, width), np.float32)
        h, w = min(height, sparse.shape[0]), min(width, sparse.shape[1])
        canvas[-h:, :w] = sparse[-h:, :w]
        return canvas, 'KITTI object 000003'
    except Exception:
        rng = np.random.default_rng(0)
        sparse = np.zeros((height, width), np.float32)
        rows = np.linspace(height * 0.35, height - 1, 64).astype(int)        # 64 scan lines, lower part
        sparse[rows[:, None], np.arange(0, width, 2)[None, :]] = 5 + 60 * rng.random((64, (width + 1) // 2))
        return sparse, 'synthetic 64-line scan'


def bench_prefill(height: int, width: int, device: torch.device, runs: int) -> list[dict[str, Any]]:
    from depth_completion_ros.core.prefill import fill_in_fast, prefill, remove_outliers

    sparse_np, source = _sample_sparse(height, width)
    sparse = torch.from_numpy(sparse_np).to(device)[None, None]
    rows = []
    for name, fn in (('torch fill_in_fast', lambda: fill_in_fast(sparse)),
                     ('torch remove_outliers', lambda: remove_outliers(sparse)),
                     # what DepthCompleter runs: ip_basic on OpenCV for a CPU frame, torch on CUDA + the anchors
                     ('prefill() ipbasic, the node path', lambda: prefill(sparse, 'ipbasic'))):
        times = _timed(fn, runs, device)
        rows.append({'name': name, 'size': f'{height}x{width}', 'device': device.type, 'source': source,
                     'median_ms': statistics.median(times)})
    try:
        import cv2  # noqa: F401  (optional: only for the reference row)

        from depth_completion_ros.core.prefill import fill_in_fast_cv2

        # ip_basic's own OpenCV steps, without our hole pass (LRRU's addition): the yardstick of issue 11
        def reference(depth: np.ndarray) -> np.ndarray:
            return fill_in_fast_cv2(depth, fill_holes=False)
    except ImportError:
        return rows
    times = _timed(lambda: reference(sparse_np), runs, torch.device('cpu'))
    reference_ms = statistics.median(times)
    rows.append({'name': 'OpenCV fill_in_fast (reference, CPU)', 'size': f'{height}x{width}', 'device': 'cpu',
                 'source': source, 'median_ms': reference_ms})
    # What the node runs on a CPU frame (core.prefill.dense_prefill: ipbasic on OpenCV + the hole pass; the
    # scipy fills for scattered input), with the ratio to the reference steps above (issue 11: <= 2x).
    from depth_completion_ros.core.prefill import dense_prefill

    sparse_cpu = torch.from_numpy(sparse_np)
    for method in ('ipbasic', 'linear', 'nearest'):
        times = _timed(lambda method=method: dense_prefill(sparse_cpu, method), runs, torch.device('cpu'))
        rows.append({'name': f'core prefill {method} (CPU)', 'size': f'{height}x{width}', 'device': 'cpu',
                     'source': source, 'median_ms': statistics.median(times),
                     'vs_opencv_reference': round(statistics.median(times) / reference_ms, 2)})
    return rows


def machine_description(device: torch.device) -> dict[str, Any]:
    info = {'torch': torch.__version__, 'python': platform.python_version(), 'cpu_count': os.cpu_count(),
            'threads': torch.get_num_threads(), 'processor': platform.processor() or platform.machine()}
    if device.type == 'cuda':
        info['gpu'] = torch.cuda.get_device_name(device)
    return info


def main(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    device = torch.device('cuda' if args.device == 'auto' and torch.cuda.is_available()
                          else ('cpu' if args.device == 'auto' else args.device))
    sizes = [tuple(int(v) for v in size.lower().split('x')) for size in args.sizes.split(',') if size]
    variants = [v.strip() for v in args.variants.split(',') if v.strip()]
    # Eager as trained, then the node's path (BatchNorm folded; channels_last, which oneDNN prefers on CPU too).
    configs: list[dict[str, Any]] = [{'precision': 'fp32', 'channels_last': False, 'compiled': False},
                                     {'precision': 'fp32', 'channels_last': True, 'compiled': False, 'fused': True}]
    if device.type == 'cuda':
        configs = [{'precision': p, 'channels_last': cl, 'compiled': False, 'fused': cl}
                   for p in ('fp32', 'fp16', 'bf16') for cl in (False, True)]
        if args.compile:
            configs += [{'precision': p, 'channels_last': True, 'compiled': True, 'fused': True}
                        for p in ('fp32', 'fp16')]
    network_rows = []
    for variant in variants:
        for height, width in sizes:
            for config in configs:
                row = bench_network(variant, height, width, device, args.runs, **config)
                network_rows.append(row)
                if not args.json:
                    print(f"{variant:6s} {row['size']:>9s} {device.type:4s} {config['precision']:4s} "
                          f"cl={int(config['channels_last'])} compile={int(config['compiled'])} "
                          f"fused={int(config.get('fused', False))}  "
                          f"median {row['median_ms']:9.1f} ms   peak {row['peak_mem_mb']:8.1f} MB", flush=True)
    prefill_rows = []
    if not args.skip_prefill:
        for height, width in sizes:
            for row in bench_prefill(height, width, device, max(args.runs, 5)):
                prefill_rows.append(row)
                if not args.json:
                    print(f"{row['name']:38s} {row['size']:>9s} {row['device']:4s} median {row['median_ms']:8.1f} ms"
                          f"  ({row['source']})", flush=True)
    if args.json:
        print(json.dumps({'machine': machine_description(device), 'network': network_rows,
                          'prefill': prefill_rows}, indent=1))
    return 0
