"""issue 18 (3): eval, complete, demo and the node take the shipped weights that fit the input kind when none
are named (LiDAR scan -> lrru_mini; depth camera or scattered points -> lrru_mini_rgbd) and say which and why."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from depth_completion_ros import cli
from depth_completion_ros.core.kitti import kitti_sparse_depth, load_kitti_object_frame
from depth_completion_ros.data.loaders import open_source
from depth_completion_ros.tools.complete import choose_weights
from depth_completion_ros.weights_choice import by_data, by_input_mode

NYU_INTRINSICS = ['--intrinsics', '518', '519', '325.5', '253.5', '--depth-scale', '1000']


def test_the_rule_by_data_protocol_and_input_mode() -> None:
    assert by_data(None, 'rgbd:/x', 'sample-points:500').weights == 'lrru_mini_rgbd'
    assert by_data(None, '7scenes:/x', 'holdout-points:0.2').weights == 'lrru_mini_rgbd'
    assert by_data(None, 'synthetic:room', 'holdout-points:0.2').weights == 'lrru_mini_rgbd'
    assert by_data(None, 'kitti-object:/x?frames=0-3', 'sample-points:500').weights == 'lrru_mini_rgbd'  # scattered
    for lidar in ('kitti-object:/x', 'kitti-raw:/x', 'kitti-dc:/x', 'synthetic:street'):
        assert by_data(None, lidar, 'kitti').weights == 'lrru_mini', lidar
    assert by_data(None, 'bag:/b', 'holdout-points:0.2', bag_has_depth=True).weights == 'lrru_mini_rgbd'
    assert by_data(None, 'bag:/b', 'holdout-points:0.2').weights == 'lrru_mini'
    named = by_data('my.safetensors', 'rgbd:/x', 'sample-points:500')
    assert named.weights == 'my.safetensors' and not named.chosen
    assert by_input_mode(None, 'depth').weights == 'lrru_mini_rgbd'
    assert by_input_mode('', 'points').weights == 'lrru_mini'
    assert 'lrru_mini' in by_input_mode(None, 'depth').describe()  # names the other weights too


def test_complete_uses_the_shared_rule_on_real_frames(kitti_object_dir: Path, nyu_dir: Path) -> None:
    frame = load_kitti_object_frame(kitti_object_dir, '000003')
    weights, why = choose_weights('auto', kitti_sparse_depth(frame, min_range=0.1, max_range=90.0))
    assert weights == 'lrru_mini' and 'LiDAR' in why
    kinect = open_source(f'rgbd:{nyu_dir}', intrinsics=(518, 519, 325.5, 253.5), depth_scale=1000)[0]
    weights, why = choose_weights('auto', kinect.sparse)
    assert weights == 'lrru_mini_rgbd' and 'depth camera' in why
    assert choose_weights('lrru_mini', kinect.sparse) == ('lrru_mini', 'as requested')


def _eval(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[dict, str]:
    assert cli.main(['eval', *argv, '--max-frames', '1', '--device', 'cpu', '--peers', 'nearest', '--json']) == 0
    captured = capsys.readouterr()
    return json.loads(captured.out.strip().splitlines()[-1]), captured.err


def test_eval_without_weights_on_kinect_points_uses_the_rgbd_weights_and_says_so(
        nyu_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result, err = _eval(['--data', f'rgbd:{nyu_dir}', *NYU_INTRINSICS, '--protocol', 'sample-points:500'], capsys)
    assert 'weights lrru_mini_rgbd (protocol sample-points:500: scattered points' in err
    assert result['prefill_method'] == 'linear'          # the RGB-D weights' prefill ran (LiDAR's: ipbasic)
    assert np.isfinite(result['model']['rmse_mm'])


def test_eval_without_weights_on_a_lidar_set_keeps_the_lidar_weights(
        kitti_object_dir: Path, nyu_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result, err = _eval(['--data', f'kitti-object:{kitti_object_dir}?frames=3'], capsys)
    assert 'weights lrru_mini (data kitti-object: a LiDAR scan' in err
    assert result['prefill_method'] == 'ipbasic'
    # a named one is taken as it is, and nothing is said about choosing
    result, err = _eval(['--data', f'rgbd:{nyu_dir}', *NYU_INTRINSICS,
                         '--weights', 'lrru_mini'], capsys)
    assert result['prefill_method'] == 'ipbasic' and 'weights lrru_mini (' not in err

