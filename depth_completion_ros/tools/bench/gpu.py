"""``depth-completion bench gpu``: the GPU path measured in one prepared run (≤ 10 min on one H100/H200).

1. The network (``bench model``'s timing: BatchNorm folded as the node runs it, CUDA-synchronised, peak
   ``max_memory_allocated``) for every variant at 352x1216 and 375x1242 in fp32 / fp16 / bf16, eager and
   ``torch.compile`` (compile at ``--compile-sizes`` only, and only while ``--budget-s`` lasts: its first call
   is the compilation, recorded as ``first_call_s``), plus channels_last eager at the first size.
2. The torch prefill on the device vs OpenCV's ``fill_in_fast`` on the CPU (real KITTI frame).
3. ``bench node`` (prefill only, Mini, Base) on the device, as a child process.

Writes ``gpu_bench.json`` and ``gpu_bench.md`` into ``--out`` (default ``$OUT`` when set, else
``bench_gpu_output``). ``--device cpu --dry-run`` runs the same plumbing at 32x48, fp32, 1 run, without compile
and node stages (seconds), which is what the test suite checks.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

VARIANTS = ('mini', 'tiny', 'small', 'base')
SIZES = ('352x1216', '375x1242')
PRECISIONS = ('fp32', 'fp16', 'bf16')
DRY_RUN_SIZES = ('32x48',)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--out', default=os.environ.get('OUT') or 'bench_gpu_output',
                        help='output folder for gpu_bench.json / gpu_bench.md (default: $OUT when set)')
    parser.add_argument('--device', default='cuda', choices=['cuda', 'cpu'], help='cpu: only with --dry-run')
    parser.add_argument('--variants', default=','.join(VARIANTS), help='comma-separated variants')
    parser.add_argument('--sizes', default=','.join(SIZES), help='comma-separated HxW')
    parser.add_argument('--compile-sizes', default=SIZES[0], help='sizes that also get torch.compile rows')
    parser.add_argument('--runs', type=int, default=20, help='timed runs per row (after the warm-up call)')
    parser.add_argument('--budget-s', type=float, default=480.0,
                        help='stop adding compile rows once this many seconds have passed (the rest: skipped)')
    parser.add_argument('--node-configs', default='prefill,mini,base', help='bench node configurations')
    parser.add_argument('--dry-run', action='store_true',
                        help='32x48, 1 run, no compile, no node stage: checks the plumbing in seconds')


def _sizes(text: str) -> list[tuple[int, int]]:
    return [tuple(int(v) for v in size.lower().split('x')) for size in text.split(',') if size]


def plan(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every network row: variant, size, precision, channels_last, compiled."""
    sizes = _sizes(','.join(DRY_RUN_SIZES)) if args.dry_run else _sizes(args.sizes)
    compile_sizes = set() if args.dry_run else set(_sizes(args.compile_sizes))
    precisions = ('fp32',) if args.dry_run else PRECISIONS      # CPU fp16 autocast takes seconds per call
    rows = []
    for variant in (v.strip() for v in args.variants.split(',') if v.strip()):
        for height, width in sizes:
            for precision in precisions:
                rows.append({'variant': variant, 'height': height, 'width': width, 'precision': precision,
                             'channels_last': False, 'compiled': False})
                if (height, width) == sizes[0]:
                    rows.append({**rows[-1], 'channels_last': True})
        for height, width in sizes:
            if (height, width) in compile_sizes:
                rows += [{'variant': variant, 'height': height, 'width': width, 'precision': precision,
                          'channels_last': False, 'compiled': True} for precision in precisions]
    return rows


def run_node_bench(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    command = [sys.executable, '-m', 'depth_completion_ros.cli', 'bench', 'node', '--json', '--device', args.device,
               '--configs', args.node_configs, '--max-steps', '8', '--start-hz', '1']
    if args.dry_run:
        return {'skipped': 'dry run', 'command': ' '.join(command[1:])}
    with open(out / 'bench_node.log', 'w') as log:
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=log, text=True, timeout=300)
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        return {'error': f'bench node exited {done.returncode}; see bench_node.log', 'command': ' '.join(command)}


def markdown(report: dict[str, Any]) -> str:
    lines = [f'Device: {report["machine"].get("gpu", report["device"])}, torch {report["machine"]["torch"]}'
             f'{" (dry run)" if report["dry_run"] else ""}.', '',
             '| variant | size | precision | channels_last | compile | median ms | min ms | first call s | peak MB |',
             '|---|---|---|---|---|---|---|---|---|']
    for row in report['network']:
        if 'median_ms' not in row:
            why = row.get('error', row.get('skipped'))
            lines.append(f'| {row["variant"]} | {row["height"]}x{row["width"]} | {row["precision"]} | '
                         f'{int(row["channels_last"])} | {int(row["compiled"])} | {why} | | | |')
            continue
        lines.append(f'| {row["variant"]} | {row["size"]} | {row["precision"]} | {int(row["channels_last"])} | '
                     f'{int(row["compile"])} | {row["median_ms"]:.2f} | {row["min_ms"]:.2f} | {row["first_call_s"]} | '
                     f'{row["peak_mem_mb"]:.0f} |')
    lines += ['', '| prefill | size | device | median ms |', '|---|---|---|---|']
    lines += [f'| {r["name"]} | {r["size"]} | {r["device"]} | {r["median_ms"]:.2f} |' for r in report['prefill']]
    node = report['node']
    lines += ['', '| node config | max sustained Hz | latency p50/p95 ms | stages ms |', '|---|---|---|---|']
    for r in node.get('results', []):
        lines.append(f'| {r["config"]} | {r.get("max_sustained_hz")} | {r.get("latency_ms_p50_sustained")}/'
                     f'{r.get("latency_ms_p95_sustained")} | {r.get("stages_ms_sustained")} |')
    if 'results' not in node:
        lines.append(f'| {node.get("skipped") or node.get("error")} | | | `{node.get("command", "")}` |')
    return '\n'.join(lines) + '\n'


def main(args: argparse.Namespace) -> int:
    import torch

    from depth_completion_ros.tools.bench.model import bench_network, bench_prefill, machine_description
    from depth_completion_ros.tools.common import CliError

    if args.device == 'cuda' and not torch.cuda.is_available():
        raise CliError('no CUDA device (torch.cuda.is_available() is False); on a CPU machine use '
                       '--device cpu --dry-run to check the script')
    device = torch.device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = 1 if args.dry_run else args.runs
    started = time.monotonic()
    network = []
    for item in plan(args):
        if item['compiled'] and time.monotonic() - started > args.budget_s:
            network.append({**item, 'skipped': f'over --budget-s {args.budget_s:g}'})
            continue
        try:
            row = bench_network(item['variant'], item['height'], item['width'], device, runs,
                                precision=item['precision'], channels_last=item['channels_last'],
                                compiled=item['compiled'], fused=True)
        except Exception as exc:      # one row failing (e.g. fp16 on a CPU build) must not lose the others
            row = {**item, 'error': f'{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ""}'}
        network.append(row)
        print(f'bench gpu: {item["variant"]} {item["height"]}x{item["width"]} {item["precision"]} '
              f'cl={int(item["channels_last"])} compile={int(item["compiled"])}: '
              f'{row.get("median_ms", row.get("error"))}', file=sys.stderr, flush=True)
        if device.type == 'cuda':
            torch.cuda.empty_cache()
    prefill = []
    for height, width in (_sizes(','.join(DRY_RUN_SIZES)) if args.dry_run else _sizes(args.sizes)):
        prefill += bench_prefill(height, width, device, max(runs, 1 if args.dry_run else 20))
    report = {'device': device.type, 'dry_run': args.dry_run, 'machine': machine_description(device),
              'network': network, 'prefill': prefill, 'node': run_node_bench(args, out),
              'wall_s': round(time.monotonic() - started, 1)}
    (out / 'gpu_bench.json').write_text(json.dumps(report, indent=1))
    (out / 'gpu_bench.md').write_text(markdown(report))
    print(f'bench gpu: wrote {out / "gpu_bench.json"} and {out / "gpu_bench.md"} in {report["wall_s"]} s')
    return 0
