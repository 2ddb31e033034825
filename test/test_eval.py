"""Evaluation: JSON schema of ``depth-completion eval --json`` and the guarantees of the protocols."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from depth_completion_ros.data.loaders import Sample
from depth_completion_ros.training.evaluate import Protocol, protocol_inputs

METRIC_KEYS = {'rmse_mm', 'mae_mm', 'irmse', 'imae', 'rel', 'd1', 'd2', 'd3'}


@pytest.fixture(scope='module')
def random_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from depth_completion_ros.model import build_model, save_weights

    path = tmp_path_factory.mktemp('w') / 'mini.safetensors'
    save_weights(build_model('mini'), path, {'training': {'note': 'random init, tests only'}})
    return path


def _sample(seed: int = 0) -> Sample:
    from depth_completion_ros.core.camera import CameraModel

    rng = np.random.default_rng(seed)
    sparse = np.where(rng.random((40, 60)) < 0.2, rng.uniform(1, 60, (40, 60)), 0).astype(np.float32)
    return Sample(rgb=rng.integers(0, 255, (40, 60, 3), dtype=np.uint8), sparse=sparse, gt=None,
                  camera=CameraModel.from_intrinsics(50, 50, 30, 20, 60, 40), name='x')


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_holdout_never_scores_an_input_point(seed: int) -> None:
    sample = _sample(seed)
    _, network_input, target = protocol_inputs(sample, Protocol.parse('holdout-points'), seed)
    fed, scored = network_input > 0, target > 0
    assert not np.any(fed & scored)
    assert np.array_equal(fed | scored, sample.sparse > 0)          # nothing lost, nothing invented
    assert scored.sum() == round(0.2 * (sample.sparse > 0).sum())


def test_sample_points_protocol_scores_all_valid_pixels() -> None:
    sample = _sample()
    sample.gt = np.where(sample.sparse > 0, sample.sparse, 5.0).astype(np.float32)
    _, network_input, target = protocol_inputs(sample, Protocol.parse('sample-points:50'), 0)
    assert (network_input > 0).sum() == 50
    assert np.array_equal(target, sample.gt)


def test_kitti_protocol_bottom_crop() -> None:
    from depth_completion_ros.core.camera import CameraModel

    big = Sample(rgb=np.zeros((300, 60, 3), np.uint8), sparse=np.ones((300, 60), np.float32),
                 gt=np.arange(300, dtype=np.float32)[:, None].repeat(60, 1) + 1,
                 camera=CameraModel.from_intrinsics(50, 50, 30, 150, 60, 300), name='k')
    cropped, _, target = protocol_inputs(big, Protocol.parse('kitti'), 0)
    assert target.shape == (256, 60) and target[0, 0] == 45.0       # rows 44..299 kept
    assert cropped.camera.cy == pytest.approx(150 - 44) and cropped.camera.height == 256


def test_eval_cli_json_schema(random_weights: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from depth_completion_ros.cli import main

    code = main(['eval', '--data', 'synthetic:street', '--synthetic-frames', '1', '--protocol', 'holdout-points',
                 '--weights', str(random_weights), '--json', '--save', str(tmp_path / 'panels')])
    assert code == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert set(result) == {'prefill', 'model', 'frames'} and result['frames'] == 1
    for side in ('prefill', 'model'):
        assert METRIC_KEYS <= set(result[side])
        assert all(np.isfinite(result[side][k]) for k in METRIC_KEYS)
    assert sorted(p.name for p in (tmp_path / 'panels').iterdir()) == ['street_1000000_depth.png',
                                                                       'street_1000000_error.png']
