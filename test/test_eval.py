"""Evaluation: JSON schema of ``depth-completion eval --json`` and the guarantees of the protocols."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from depth_completion_ros.data.loaders import Sample
from depth_completion_ros.training.evaluate import Protocol, protocol_inputs

METRIC_KEYS = {'rmse_mm', 'mae_mm', 'irmse', 'imae', 'rel', 'd1', 'd2', 'd3'}


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
    assert set(result) == {'protocol', 'frames', 'frames_requested', 'interrupted', 'prefill_method', 'sparsity',
                           'methods', 'prefill', 'model'}
    assert result['frames'] == result['frames_requested'] == 1 and result['interrupted'] is False
    assert result['prefill_method'] == 'ipbasic'
    assert set(result['methods']) == {'ipbasic', 'nearest', 'linear', 'network'}
    assert result['prefill'] == result['methods']['ipbasic'] and result['model'] == result['methods']['network']
    for side in result['methods'].values():
        assert METRIC_KEYS <= set(side)
        assert all(np.isfinite(side[k]) for k in METRIC_KEYS)
    assert sorted(p.name for p in (tmp_path / 'panels').iterdir()) == [   # with the marker of an eval output
        '.depth_completion_output.json', 'index.html', 'metrics.png', 'street_1000000_depth.png',
        'street_1000000_error.png']


def test_eval_peer_columns_equal_direct_scipy_calls(random_weights: Path, nyu_dir: Path) -> None:
    """NYU protocol on a real Kinect frame: the linear column is griddata on the same 500 points, the nearest
    column scipy's exact Euclidean feature transform (it equals griddata's nearest in distance; on a pixel grid
    ties between equally near points are common and the two pick differently, test_interpolation.py; the
    prefill runs the transform on the transposed mask, so the reference does too: ties follow the layout),
    scored on the same pixels."""
    from scipy.interpolate import griddata
    from scipy.ndimage import distance_transform_edt

    from depth_completion_ros.core.metrics import depth_metrics
    from depth_completion_ros.data.loaders import open_source
    from depth_completion_ros.training.evaluate import evaluate

    source = open_source(f'rgbd:{nyu_dir}', intrinsics=(518, 519, 325.5, 253.5), depth_scale=1000)
    protocol = Protocol.parse('sample-points:500')
    result = evaluate(source, protocol, weights=random_weights, device='cpu', seed=4, max_frames=1)
    _, sparse_in, target = protocol_inputs(source[0], protocol, 4)
    points = np.argwhere(sparse_in > 0).astype(np.float64)
    values = sparse_in[sparse_in > 0].astype(np.float64)
    pixels = np.argwhere(np.ones_like(sparse_in, bool)).astype(np.float64)
    _, (cols, rows) = distance_transform_edt((sparse_in <= 0).T, return_indices=True)
    nearest = sparse_in[rows, cols].T.astype(np.float64)
    linear = griddata(points, values, pixels, method='linear').reshape(sparse_in.shape)
    linear = np.where(np.isnan(linear), nearest, linear)                  # outside the hull: nearest (documented)
    for name, direct in (('nearest', nearest), ('linear', linear)):
        expected = depth_metrics(direct, target)
        for key in ('rmse_mm', 'mae_mm', 'rel', 'd1'):
            assert result['methods'][name][key] == pytest.approx(expected[key], rel=1e-4, abs=1e-6), (name, key)
    assert result['methods']['linear']['rmse_mm'] < result['methods']['ipbasic']['rmse_mm']   # the finding


def test_sweep_parsing_and_points_sweep_changes_only_the_input() -> None:
    from depth_completion_ros.training.evaluate import Sparsity

    assert Sparsity.parse('lines=64,32,16') == Sparsity('lines', (64, 32, 16))
    for bad in ('lines=', 'beams=4', 'points=0,5', 'points=a'):
        with pytest.raises(ValueError):
            Sparsity.parse(bad)
    sample = _sample()
    sample.gt = np.where(sample.sparse > 0, sample.sparse, 5.0).astype(np.float32)
    for level in (10, 40):
        _, network_input, target = protocol_inputs(sample, Protocol.parse('sample-points:500'), 0, ('points', level))
        assert (network_input > 0).sum() == level and np.array_equal(target, sample.gt)
    _, network_input, target = protocol_inputs(sample, Protocol.parse('holdout-points'), 0, ('points', 100))
    assert (network_input > 0).sum() + (target > 0).sum() == 100


def test_eval_cli_bad_sweep_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from depth_completion_ros.cli import main

    assert main(['eval', '--data', 'synthetic:room', '--sweep', 'beams=3']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'lines=64,32,16' in err[0]


class _CtrlCAt:
    """A source whose frame ``at`` is where the user pressed Ctrl-C."""

    def __init__(self, source, at: int) -> None:
        self.source, self.at = source, at

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int):
        if index == self.at:
            raise KeyboardInterrupt
        return self.source[index]


def test_ctrl_c_keeps_the_frames_scored_so_far(random_weights: Path, nyu_dir: Path, monkeypatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Ctrl-C on frame 3 of real Kinect frames: the metrics of frames 1-2 are printed (equal to an eval of just
    those two), the exit is 130 with one line saying what they cover; at frame 1 nothing was scored: plain
    interrupt."""
    from depth_completion_ros.cli import main
    from depth_completion_ros.data import loaders
    from depth_completion_ros.training.evaluate import Sparsity, evaluate, sweep

    source = loaders.open_source(f'rgbd:{nyu_dir}', intrinsics=(518, 519, 325.5, 253.5), depth_scale=1000)
    assert len(source) >= 3
    protocol = Protocol.parse('sample-points:500')
    cut = evaluate(_CtrlCAt(source, 2), protocol, weights=random_weights, device='cpu')
    two = evaluate(source, protocol, weights=random_weights, device='cpu', max_frames=2)
    assert cut['interrupted'] is True and cut['frames'] == 2 and cut['frames_requested'] == len(source)
    assert cut['methods'] == two['methods'] and two['interrupted'] is False
    levels = sweep(_CtrlCAt(source, 2), protocol, Sparsity.parse('points=50,200'), weights=random_weights,
                   device='cpu')
    assert [(r['sparsity'], r['frames'], r['interrupted']) for r in levels] == [('points=50', 2, True)]

    monkeypatch.setattr(loaders, 'open_source', lambda *args, **kwargs: _CtrlCAt(source, 2))
    code = main(['eval', '--data', f'rgbd:{nyu_dir}', '--weights', str(random_weights), '--json'])
    captured = capsys.readouterr()
    assert code == 130
    assert json.loads(captured.out.strip().splitlines()[-1])['frames'] == 2
    assert captured.err.strip().splitlines()[-1] == (f'depth-completion eval: interrupted: the metrics above cover '
                                                     f'2 of {len(source)} frames')
    monkeypatch.setattr(loaders, 'open_source', lambda *args, **kwargs: _CtrlCAt(source, 0))
    assert main(['eval', '--data', f'rgbd:{nyu_dir}', '--weights', str(random_weights)]) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == 'depth-completion eval: interrupted'
