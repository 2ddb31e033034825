"""ONNX export of the whole network (TDU included) and onnxruntime agreement at two input sizes."""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch

from depth_completion_ros.model import build_model
from depth_completion_ros.tools import export

pytest.importorskip('onnx')
pytest.importorskip('onnxruntime')


def test_onnx_export_matches_eager_at_two_sizes(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model('mini').eval()
    path = export.export_onnx(model, tmp_path / 'mini.onnx', height=32, width=48)
    diffs = export.verify_onnx(model, path, [(32, 48), (37, 61)])    # the second size is not the traced one
    assert set(diffs) == {'32x48', '37x61'}
    assert all(diff < 1e-3 for diff in diffs.values()), diffs


def test_cli_main_writes_and_verifies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    export.add_arguments(parser)
    args = parser.parse_args(['--variant', 'mini', '--out', str(tmp_path / 'm.onnx'),
                              '--height', '32', '--width', '32'])
    assert export.main(args) == 0
    out = capsys.readouterr().out
    assert 'max abs difference' in out and (tmp_path / 'm.onnx').is_file()
