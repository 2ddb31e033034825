"""issue 17 (6): one name per option across commands (the old name a hidden alias for one release), one
--frames default, and README claims that had drifted (dependency count, kitti_hdl64 extrinsics, prefill-only)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from depth_completion_ros.cli import sub_parser

README = (Path(__file__).resolve().parents[1] / 'README.md').read_text()


def test_eval_takes_camera_info_topic_like_demo_and_the_old_name_still_works(
        capsys: pytest.CaptureFixture[str]) -> None:
    parser = sub_parser('eval')
    assert parser.parse_args(['--data', 'bag:b', '--camera-info-topic', '/a']).camera_info_topic == '/a'
    assert parser.parse_args(['--data', 'bag:b', '--info-topic', '/b']).camera_info_topic == '/b'
    assert 'note: --info-topic is now --camera-info-topic' in capsys.readouterr().err
    assert parser.parse_args(['--data', 'bag:b']).camera_info_topic is None
    help_text = parser.format_help()
    assert '--camera-info-topic' in help_text and '--info-topic' not in help_text
    assert '--camera-info-topic' in sub_parser('demo').format_help()


def test_train_takes_intrinsics_and_depth_scale_like_eval_and_make_bag() -> None:
    parser = sub_parser('train')
    args = parser.parse_args(['--intrinsics', '1', '2', '3', '4', '--depth-scale', '1000'])
    assert args.intrinsics == [1.0, 2.0, 3.0, 4.0] and args.depth_scale == 1000.0
    old = parser.parse_args(['--rgbd-intrinsics', '5', '6', '7', '8', '--rgbd-depth-scale', '5000'])
    assert old.intrinsics == [5.0, 6.0, 7.0, 8.0] and old.depth_scale == 5000.0
    help_text = parser.format_help()
    assert '--rgbd-intrinsics' not in help_text and '--rgbd-depth-scale' not in help_text
    for command in ('eval', 'make-bag'):
        assert '--intrinsics' in sub_parser(command).format_help() and '--depth-scale' in \
            sub_parser(command).format_help()


def test_frames_default_is_the_same_in_demo_and_make_bag() -> None:
    assert sub_parser('demo').parse_args([]).frames == sub_parser('make-bag').parse_args(['--out', 'x']).frames


def test_readme_counts_its_pip_dependencies_and_says_where_extrinsics_come_from() -> None:
    sentence = re.search(r'(\w+) Python dependencies have no rosdep key.*?the venv', README, re.S)
    assert sentence is not None
    listed = re.findall(r'\*\*([\w-]+)\*\*', sentence.group(0))
    words = {'three': 3, 'four': 4, 'five': 5}
    assert words[sentence.group(1).lower()] == len(listed), listed
    assert '-p extrinsics.source:=tf' in README and 'kitti_hdl64.yaml` sets `extrinsics.source: parameters`' in README
    prefill_only = README[README.index('**Network or prefill only (LiDAR).**'):]
    assert 'docs/MODEL_CARD.md' in prefill_only.split('\n\n')[0] and 'prefill_only: true' in prefill_only
