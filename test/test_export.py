"""ONNX export of the whole network (TDU included) and onnxruntime agreement at two input sizes."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
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


def test_cli_main_writes_verifies_and_describes_the_inputs(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    import onnxruntime as ort

    parser = argparse.ArgumentParser()
    export.add_arguments(parser)
    args = parser.parse_args(['--variant', 'mini', '--weights', 'lrru_mini', '--out', str(tmp_path / 'm.onnx'),
                              '--height', '32', '--width', '32'])
    assert export.main(args) == 0
    out = capsys.readouterr().out
    assert 'max abs difference' in out and (tmp_path / 'm.onnx').is_file()
    assert 'written:' in out and str(tmp_path / 'm.onnx') in out
    meta = ort.InferenceSession(str(tmp_path / 'm.onnx'), providers=['CPUExecutionProvider']).get_modelmeta()
    props = meta.custom_metadata_map
    assert props['variant'] == 'mini' and props['weights'] == 'lrru_mini'
    assert props['prefill_method'] == 'ipbasic' and 'core.prefill.prefill' in props['prefill']
    assert 'metres' in props['units']
    assert set(json.loads(props['inputs'])) == set(export.INPUT_NAMES)

    # docs/ONNX.md's onnxruntime example, run as written (at another size than the traced one): its depth is
    # the PyTorch network's, fed with the same prefill and anchors
    import re

    from depth_completion_ros.core.prefill import prefill
    from depth_completion_ros.model import load_model

    doc = (Path(__file__).resolve().parents[1] / 'docs' / 'ONNX.md').read_text()
    code = re.search(r'```python\n(.*?)```', doc, re.S).group(1)
    assert "'lrru_mini.onnx'" in code
    namespace: dict = {}
    exec(compile(code.replace("'lrru_mini.onnx'", repr(str(tmp_path / 'm.onnx'))), 'docs/ONNX.md', 'exec'),
         namespace)  # noqa: S102  (our own documentation)
    depth, rgb, sparse = namespace['depth'], namespace['rgb'], namespace['sparse']
    assert depth.shape == sparse.shape == (64, 96) and depth.dtype == np.float32
    model, _info = load_model('lrru_mini')
    sparse_t = torch.from_numpy(sparse)[None, None]
    fill, anchors = prefill(sparse_t, 'ipbasic')
    with torch.inference_mode():
        expected = model(torch.from_numpy(rgb).permute(2, 0, 1)[None].float(), sparse_t, fill, anchors)[-1][0, 0]
    expected = np.maximum(expected.numpy(), anchors[anchors > 0].min().item())
    assert np.abs(depth - expected).max() < 1e-3
