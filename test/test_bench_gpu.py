"""The prepared GPU benchmark: its full plan covers every variant x size x precision (eager and compiled), and
its CPU dry run writes the JSON and markdown with real timings; without CUDA it says how to dry-run."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from depth_completion_ros import cli
from depth_completion_ros.tools.bench import gpu as bench_gpu


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench_gpu.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_full_plan_covers_variants_sizes_precisions_and_compile() -> None:
    rows = bench_gpu.plan(parse())
    eager = {(r['variant'], r['height'], r['width'], r['precision']) for r in rows
             if not r['compiled'] and not r['channels_last']}
    assert eager == {(v, h, w, p) for v in ('mini', 'tiny', 'small', 'base') for h, w in ((352, 1216), (375, 1242))
                     for p in ('fp32', 'fp16', 'bf16')}
    compiled = {(r['variant'], r['height'], r['precision']) for r in rows if r['compiled']}
    assert compiled == {(v, 352, p) for v in ('mini', 'tiny', 'small', 'base') for p in ('fp32', 'fp16', 'bf16')}
    assert sum(r['channels_last'] for r in rows) == 12


def test_cpu_dry_run_writes_json_and_markdown(tmp_path: Path) -> None:
    assert bench_gpu.main(parse('--device', 'cpu', '--dry-run', '--out', str(tmp_path))) == 0
    report = json.loads((tmp_path / 'gpu_bench.json').read_text())
    assert report['dry_run'] and report['device'] == 'cpu'
    assert {row['variant'] for row in report['network']} == {'mini', 'tiny', 'small', 'base'}
    assert all(row['median_ms'] > 0 and row['size'] == '32x48' for row in report['network'])
    names = {row['name'] for row in report['prefill']}
    assert 'torch fill_in_fast' in names and any('OpenCV' in name for name in names)
    assert report['node']['skipped'] == 'dry run' and 'bench node' in report['node']['command']
    table = (tmp_path / 'gpu_bench.md').read_text()
    assert table.count('| 32x48 | fp32 |') == 8 and '(dry run)' in table


@pytest.mark.skipif(torch.cuda.is_available(), reason='a CUDA device is present')
def test_without_cuda_one_line_names_the_dry_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(['bench', 'gpu', '--out', str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and '--device cpu --dry-run' in err
