"""``depth-completion bench cpu``: the node's inference path on a shared CPU, side by side in one run.

For every configuration (torch threads x OpenMP wait policy x malloc mode) one fresh child process sets the
environment *before* importing torch (libgomp reads the wait policy once), then: a matmul probe of the
machine's fp32 compute (GFLOPS, same threads), and ``DepthCompleter.complete`` (prefill + fused LRRU, what the
node runs) on a real KITTI frame: ms per frame, and minor page faults per frame (``getrusage`` ``ru_minflt``).
The whole sweep runs twice: idle, and under load (``--load-procs`` busy-loop processes this bench starts and
stops), the configurations interleaved so a drifting machine hits all of them alike. The compute limit of a
frame = the network's FLOPs (``torch.utils.flop_counter``; convolutions and matmuls) / the probe's GFLOPS.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

# (threads, wait policy, malloc); threads 0 = torch's default; wait 'unset' = OMP_WAIT_POLICY unset (libgomp's own).
BEFORE = (0, 'unset', 'system')                     # what the node did before issue 11
DEFAULT_CONFIGS = [BEFORE, (2, 'active', 'tuned'), (2, 'passive', 'system'), (2, 'passive', 'tuned'),
                   (1, 'unset', 'system'), (1, 'passive', 'tuned')]
BURNER = 'while True:\n    pass\n'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--variant', default='mini', choices=['mini', 'tiny', 'small', 'base'],
                        help='LRRU variant (shipped weights)')
    parser.add_argument('--size', default='375x1242', help='HxW of the frame (KITTI frame 000003, cropped/padded)')
    parser.add_argument('--runs', type=int, default=3, help='timed frames per configuration (after 1 warm-up)')
    parser.add_argument('--band', default='auto', choices=('auto', 'off'),
                        help='network.band as the node runs it (auto: only the rows validity can keep; the fp32 '
                             'limit is always the full frame\'s FLOPs, so auto shows its saving)')
    parser.add_argument('--configs', default=None,
                        help='semicolon list of threads,wait,malloc, e.g. "2,passive,tuned;1,unset,system" '
                             '(threads 0 = torch\'s own count; wait passive|active|unset; malloc tuned|system)')
    parser.add_argument('--load-procs', type=int, default=os.cpu_count() or 2,
                        help='busy-loop processes of the "loaded" sweep (0: idle sweep only)')
    parser.add_argument('--child', default=None, help=argparse.SUPPRESS)


def parse_configs(text: str | None) -> list[tuple[int, str, str]]:
    if not text:
        return list(DEFAULT_CONFIGS)
    configs = []
    for item in text.split(';'):
        threads, wait, malloc = (part.strip() for part in item.split(','))
        if wait not in ('passive', 'active', 'unset') or malloc not in ('tuned', 'system'):
            raise ValueError(f'bad configuration {item!r}: wait passive|active|unset, malloc tuned|system')
        configs.append((int(threads), wait, malloc))
    return configs


def child_env(threads: int, wait: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop('OMP_WAIT_POLICY', None)
    env.pop('OMP_NUM_THREADS', None)
    if wait != 'unset':
        env['OMP_WAIT_POLICY'] = wait.upper()
    if threads:
        env['OMP_NUM_THREADS'] = str(threads)
    return env


def run_child(config: dict[str, Any], timeout_s: float = 900.0) -> dict[str, Any]:
    env = child_env(config['threads'], config['wait'])
    done = subprocess.run([sys.executable, '-m', 'depth_completion_ros.tools.bench.cpu', '--child',
                           json.dumps(config)], env=env, capture_output=True, text=True, timeout=timeout_s)
    lines = [line for line in done.stdout.splitlines() if line.startswith('{')]
    if done.returncode != 0 or not lines:
        return {**config, 'error': (done.stderr or done.stdout).strip().splitlines()[-1:]}
    return json.loads(lines[-1])


def kitti_frame(height: int, width: int) -> tuple[Any, Any, str]:
    """RGB + sparse metres of KITTI object frame 000003 (bottom-left crop / zero pad to HxW)."""
    import numpy as np

    from depth_completion_ros.core.kitti import kitti_sparse_depth, load_kitti_object_frame
    from depth_completion_ros.tools.bench.shared_data import shared_data_dir

    root = shared_data_dir() / 'kitti_object'
    frame = load_kitti_object_frame(root, '000003')
    sparse = np.asarray(kitti_sparse_depth(frame), np.float32)
    rgb_canvas = np.zeros((height, width, 3), np.uint8)
    sparse_canvas = np.zeros((height, width), np.float32)
    h, w = min(height, sparse.shape[0]), min(width, sparse.shape[1])
    rgb_canvas[-h:, :w] = frame.rgb[-h:, :w]
    sparse_canvas[-h:, :w] = sparse[-h:, :w]
    return rgb_canvas, sparse_canvas, 'KITTI object 000003'


def matmul_gflops(seconds: float = 1.0, n: int = 1024) -> float:
    """Best fp32 GFLOPS of n x n matmuls with the current torch threads (the machine's compute roof)."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        for _ in range(4):
            torch.mm(a, b)
        best = max(best, 4 * 2 * n ** 3 / (time.perf_counter() - start) / 1e9)
    return best


def network_gflop(completer: Any, rgb: Any, sparse: Any) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        completer.complete(rgb, sparse, band='off')                  # the full frame's work, whatever band runs
    return counter.get_total_flops() / 1e9


def child_main(config: dict[str, Any]) -> int:
    import resource

    from depth_completion_ros.core.cpu_runtime import configure_cpu

    wait = 'env' if config['wait'] == 'unset' else config['wait']
    settings = configure_cpu(threads=config['threads'], wait_policy=wait, malloc=config['malloc'])
    import numpy as np
    import torch

    from depth_completion_ros.core.band import validity_rows
    from depth_completion_ros.core.validity import ValiditySettings
    from depth_completion_ros.model.inference import DepthCompleter

    height, width = config['height'], config['width']
    rgb, sparse, source = kitti_frame(height, width)
    completer = DepthCompleter(variant=config['variant'], weights=f'lrru_{config["variant"]}', device='cpu',
                               band=config.get('band', 'off'))
    # the rows the node's default validity keeps around the measurements (as the pipeline passes them)
    band_rows = validity_rows(ValiditySettings())
    gflops = matmul_gflops()
    completer.complete(rgb, sparse, **band_rows)                      # warm-up: lazy init, fused copy, grid
    frames, networks, prefills = [], [], []
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(config['runs']):
        start = time.perf_counter()
        result = completer.complete(rgb, sparse, **band_rows)
        frames.append((time.perf_counter() - start) * 1e3)
        networks.append(result.timings_ms['network'])
        prefills.append(result.timings_ms['prefill'])
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / config['runs']
    # the limit is the full frame's work, whatever band runs: a band's saving shows as a lower x_limit
    gflop = network_gflop(completer, rgb, sparse) if config.get('count_flops') else None
    network_rows = list(result.band) if getattr(result, 'band', None) else None
    print(json.dumps({**config, 'settings': settings, 'torch_threads': torch.get_num_threads(), 'source': source,
                      'gflops_probe': round(gflops, 1), 'frame_ms': round(float(np.median(frames)), 1),
                      'frame_ms_min': round(min(frames), 1), 'network_ms': round(float(np.median(networks)), 1),
                      'prefill_ms': round(float(np.median(prefills)), 1), 'minflt_per_frame': round(faults),
                      'network_gflop': round(gflop, 2) if gflop else None, 'band': config.get('band', 'off'),
                      'network_rows': network_rows, 'machine': machine_profile()}), flush=True)
    return 0


def machine_profile() -> dict[str, Any]:
    """What this CPU is, as the settings depend on it: model and vendor, the SIMD level torch's kernels
    dispatch to (e.g. AVX512 on an Intel Xeon, AVX2 on this project's AMD EPYC VM), oneDNN, and the thread and
    allocator settings in effect (core.cpu_runtime)."""
    import platform

    import torch

    from depth_completion_ros.tools.bench.machine import cpu_model, cpuinfo_field

    return {'cpu_model': cpu_model(), 'vendor': cpuinfo_field('vendor_id'),
            'simd': torch.backends.cpu.get_cpu_capability(),
            'onednn': bool(torch.backends.mkldnn.is_available()), 'torch_threads': torch.get_num_threads(),
            'omp_wait_policy': os.environ.get('OMP_WAIT_POLICY', ''), 'machine': platform.machine()}


def label(threads: int, wait: str, malloc: str) -> str:
    return f'{threads or "default"} thr, wait {wait}, malloc {malloc}'


def main(args: argparse.Namespace) -> int:
    if args.child:
        return child_main(json.loads(args.child))
    from depth_completion_ros.tools.common import CliError

    try:
        height, width = (int(v) for v in args.size.lower().split('x'))
        configs = parse_configs(args.configs)
    except ValueError as exc:
        raise CliError(f'{exc} (--size HxW, --configs "threads,wait,malloc;...")') from None
    loads = ['idle'] + (['loaded'] if args.load_procs > 0 else [])
    results: list[dict[str, Any]] = []
    flops_counted = False
    for load in loads:
        burners = [subprocess.Popen([sys.executable, '-c', BURNER]) for _ in range(args.load_procs)] \
            if load == 'loaded' else []
        try:
            for threads, wait, malloc in configs:
                config = {'threads': threads, 'wait': wait, 'malloc': malloc, 'load': load,
                          'load_procs': len(burners), 'variant': args.variant, 'height': height, 'width': width,
                          'runs': args.runs, 'count_flops': not flops_counted, 'band': args.band}
                row = run_child(config)
                flops_counted = flops_counted or bool(row.get('network_gflop'))
                results.append(row)
                print(f'bench cpu: {load:6s} {label(threads, wait, malloc):38s} '
                      f'{row.get("frame_ms", "error")} ms/frame, {row.get("minflt_per_frame", "-")} faults/frame, '
                      f'probe {row.get("gflops_probe", "-")} GFLOPS', file=sys.stderr, flush=True)
        finally:
            for burner in burners:
                burner.terminate()
                burner.wait(timeout=10)
    gflop = next((r['network_gflop'] for r in results if r.get('network_gflop')), None)
    for row in results:
        if gflop and 'frame_ms' in row:
            row['limit_ms'] = round(gflop / row['gflops_probe'] * 1e3, 1)
            row['x_limit'] = round(row['frame_ms'] / row['limit_ms'], 2)
    # the children report the machine; only if none did does this process import torch to read it
    machine = next((r['machine'] for r in results if r.get('machine')), None) or machine_profile()
    report = {'cpu_count': os.cpu_count(), 'network_gflop': gflop, 'band': args.band, 'machine': machine,
              'results': results}
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{machine['cpu_model']} ({machine['vendor']}), torch kernels {machine['simd']}, oneDNN "
          f"{'on' if machine['onednn'] else 'off'}; network.band {args.band}")
    print(markdown(report))
    return 0


def markdown(report: dict[str, Any]) -> str:
    lines = ['| load | threads | wait | malloc | frame ms (median) | x before | x fp32 limit | network ms | '
             'prefill ms | faults/frame | probe GFLOPS |', '|---|---|---|---|---|---|---|---|---|---|---|']
    for row in report['results']:
        if 'error' in row:
            lines.append(f'| {row["load"]} | {row["threads"]} | {row["wait"]} | {row["malloc"]} | error | | | | | | |')
            continue
        before = next((r for r in report['results'] if r['load'] == row['load'] and 'frame_ms' in r
                       and (r['threads'], r['wait'], r['malloc']) == BEFORE), None)
        speedup = f'{before["frame_ms"] / row["frame_ms"]:.2f}' if before else '–'
        lines.append(f'| {row["load"]} | {row["threads"] or "default"} ({row["torch_threads"]}) | {row["wait"]} | '
                     f'{row["malloc"]} | {row["frame_ms"]} | {speedup} | {row.get("x_limit", "–")} | '
                     f'{row["network_ms"]} | {row["prefill_ms"]} | {row["minflt_per_frame"]} | '
                     f'{row["gflops_probe"]} |')
    return '\n'.join(lines)


if __name__ == '__main__':
    parser = argparse.ArgumentParser()
    parser.add_argument('--json', action='store_true')
    add_arguments(parser)
    sys.exit(main(parser.parse_args()))
