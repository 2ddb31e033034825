"""``depth-completion bench prefill``: its rows cover every prefill method, the node's call and both same-run
references on the real KITTI and Kinect frames, in the documented JSON schema."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from depth_completion_ros import cli
from depth_completion_ros.core.prefill import PREFILL_METHODS
from depth_completion_ros.tools.bench import prefill as bench_prefill


def test_rows_name_every_prefill_method_and_both_references() -> None:
    names = set(bench_prefill.method_functions(np.zeros((8, 8), np.float32)))
    assert names == set(PREFILL_METHODS) | {'node_ipbasic', 'opencv_fill_in_fast', 'scipy_griddata_linear'}
    sparse = np.zeros((20, 30), np.float32)
    sparse[5, 5], sparse[5, 20], sparse[15, 12] = 2.0, 3.0, 4.0
    filled = bench_prefill.griddata_linear(sparse)
    assert np.isnan(filled[0, 0]) and filled[5, 5] == 2.0 and 2.0 < filled[8, 12] < 4.0


def test_json_schema_on_the_real_frames(shared_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # griddata over the Kinect frame's ~200k points takes seconds: its row is covered above and in the docs run
    methods = [*PREFILL_METHODS, 'node_ipbasic', 'opencv_fill_in_fast']
    status = cli.main(['bench', 'prefill', '--json', '--runs', '1', '--methods', ','.join(methods)])
    rows = json.loads(capsys.readouterr().out)
    assert status == 0 and isinstance(rows, list)
    assert {(row['method'], row['frame']) for row in rows} == {(m, f) for m in methods for f in ('lidar', 'kinect')}
    sizes = {row['frame']: row['size'] for row in rows}
    assert sizes == {'lidar': '375x1242', 'kinect': '480x640'}
    for row in rows:
        assert isinstance(row['median_ms'], float) and row['median_ms'] > 0 and row['runs'] == 1
        assert row['vs_opencv_fill_in_fast'] > 0 and 'vs_scipy_griddata_linear' not in row
