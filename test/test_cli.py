"""The command line a newcomer meets: every user mistake is one line `depth-completion <cmd>: error: ...` naming
the fix with exit status 2 (never a traceback), Ctrl-C exits 130 after saving what is done, help texts are
clean, and the previews carry a labelled colour bar."""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from depth_completion_ros import __version__, cli
from depth_completion_ros.tools.make_bag import make_bag

CLI = [sys.executable, '-m', 'depth_completion_ros.cli']


@pytest.fixture(scope='module')
def tiny_bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five synthetic camera + LiDAR frames at 320x96 (ground truth included): fast to play and to complete."""
    bag = tmp_path_factory.mktemp('bags') / 'tiny'
    make_bag('synthetic', bag, frames=5, width=320, height=96)
    return bag


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """cli.main in this process: (exit status, stdout, stderr); argparse exits count as statuses too."""
    try:
        status = cli.main(argv)
    except SystemExit as exit_info:
        status = int(exit_info.code or 0)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_one_line_error(status: int, err: str, command: str, *needles: str) -> None:
    lines = [line for line in err.splitlines() if line.strip() and '%|' not in line]  # tqdm bars aside
    assert status == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith(f'depth-completion {command}: error: '), lines[0]
    assert 'Traceback' not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


# ---------------------------------------------------------------------------------------------------------------
# one line per bad input
# ---------------------------------------------------------------------------------------------------------------

def test_demo_bag_without_the_topics_fails_fast_naming_the_option(tiny_bag: Path, tmp_path: Path) -> None:
    start = time.monotonic()
    out = subprocess.run([*CLI, 'demo', '--bag', str(tiny_bag), '--out', str(tmp_path / 'o'), '--prefill-only',
                          '--points-topic', '/velodyne_points'], capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - start
    assert_one_line_error(out.returncode, out.stderr, 'demo', "topics not in the bag: ['/velodyne_points']",
                          "'/lidar/points'", '--points-topic')
    assert 'Traceback' not in out.stdout
    assert not (tmp_path / 'o').exists()          # refused before anything started
    assert elapsed < 15.0, elapsed                # no node/recorder start-up wait (was 16-23 s)


@pytest.mark.ros
def test_demo_surfaces_the_nodes_first_error_line_in_its_output_and_summary(tiny_bag: Path, tmp_path: Path,
                                                                            capsys) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip('needs a machine without CUDA: the node must refuse --device cuda')
    start = time.monotonic()
    status, out, err = run_cli(['demo', '--bag', str(tiny_bag), '--out', str(tmp_path / 'o'), '--device', 'cuda'],
                               capsys)
    assert status == 1 and time.monotonic() - start < 60
    last = [line for line in err.splitlines() if line.strip() and '%|' not in line][-1]
    assert last.startswith('depth-completion demo: error: node did not become ready (exit 2): '
                           'depth_completion_node: error: model: device cuda requested'), last
    summary = json.loads((tmp_path / 'o' / 'summary.json').read_text())
    assert summary['error'] == last.removeprefix('depth-completion demo: error: ')
    assert summary['frames_out'] == 0 and 'demo: written under' in out and 'Traceback' not in out + err


def test_demo_refuses_a_variant_without_weights_like_the_node(tiny_bag: Path, tmp_path: Path, capsys) -> None:
    status, _out, err = run_cli(['demo', '--bag', str(tiny_bag), '--out', str(tmp_path / 'o'), '--variant', 'base'],
                                capsys)
    assert_one_line_error(status, err, 'demo', "no shipped weights for LRRU variant 'base'", '--weights',
                          '--prefill-only')


def test_demo_not_a_bag_and_unknown_config(tmp_path: Path, capsys) -> None:
    status, _out, err = run_cli(['demo', '--bag', str(tmp_path), '--out', str(tmp_path / 'o')], capsys)
    assert_one_line_error(status, err, 'demo', 'not a rosbag2 folder', str(tmp_path))
    status, _out, err = run_cli(['demo', '--config', 'no_such_preset', '--out', str(tmp_path / 'o')], capsys)
    assert_one_line_error(status, err, 'demo', "config 'no_such_preset'", 'kitti_hdl64')


def test_export_needs_weights_or_random(tmp_path: Path, capsys) -> None:
    status, _out, err = run_cli(['export', '--out', str(tmp_path / 'm.onnx')], capsys)
    assert_one_line_error(status, err, 'export', '--weights', '--random', '--help')
    assert not (tmp_path / 'm.onnx').exists()


def test_export_missing_and_corrupt_weights(tmp_path: Path, capsys) -> None:
    status, _out, err = run_cli(['export', '--out', str(tmp_path / 'm.onnx'), '--weights',
                                 str(tmp_path / 'none.safetensors')], capsys)
    assert_one_line_error(status, err, 'export', 'none.safetensors', 'lrru_mini')
    corrupt = tmp_path / 'corrupt.safetensors'
    corrupt.write_bytes(b'\x08\x00\x00\x00\x00\x00\x00\x00{"a": 1}garbage')
    status, _out, err = run_cli(['export', '--out', str(tmp_path / 'm.onnx'), '--weights', str(corrupt)], capsys)
    assert_one_line_error(status, err, 'export', 'corrupt.safetensors')


def test_play_not_a_bag_and_missing_topic(tiny_bag: Path, tmp_path: Path, capsys) -> None:
    status, _out, err = run_cli(['play', str(tmp_path / 'nothing')], capsys)
    assert_one_line_error(status, err, 'play', 'not a rosbag2 folder', 'nothing')
    status, _out, err = run_cli(['play', str(tiny_bag), '--rate', '0'], capsys)
    assert_one_line_error(status, err, 'play', '--rate must be > 0')


def test_make_bag_unknown_source_and_existing_output(tmp_path: Path, capsys) -> None:
    status, _out, err = run_cli(['make-bag', '--from', 'webcam', '--out', str(tmp_path / 'b')], capsys)
    assert_one_line_error(status, err, 'make-bag', "'webcam'", 'synthetic', 'kitti-object:DIR', 'kitti-raw:DIR')
    (tmp_path / 'mine').mkdir()
    (tmp_path / 'mine' / 'notes.txt').write_text('not a bag')
    status, _out, err = run_cli(['make-bag', '--out', str(tmp_path / 'mine'), '--frames', '1'], capsys)
    assert_one_line_error(status, err, 'make-bag', str(tmp_path / 'mine'), '--overwrite')


def test_eval_wrong_kind_wrong_folder_and_bad_protocol(tmp_path: Path, capsys) -> None:
    status, _out, err = run_cli(['eval', '--data', 'camera:/tmp'], capsys)
    assert_one_line_error(status, err, 'eval', "'camera:/tmp'", 'rgbd', 'kitti-dc')
    status, _out, err = run_cli(['eval', '--data', f'rgbd:{tmp_path}'], capsys)   # no frames, no camera file
    assert_one_line_error(status, err, 'eval', str(tmp_path))
    status, _out, err = run_cli(['eval', '--data', 'kitti-dc:' + str(tmp_path / 'missing')], capsys)
    assert_one_line_error(status, err, 'eval', 'missing')
    status, _out, err = run_cli(['eval', '--data', 'synthetic:room', '--protocol', 'nonsense'], capsys)
    assert_one_line_error(status, err, 'eval', 'nonsense')


def test_a_user_error_in_a_real_process_has_no_traceback(tmp_path: Path) -> None:
    out = subprocess.run([*CLI, 'make-bag', '--from', 'kitti-object:' + str(tmp_path / 'none'), '--out',
                          str(tmp_path / 'b')], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert 'Traceback' not in out.stderr + out.stdout
    # make-bag reads through the same loader as eval, so the message is the loader's
    assert out.stderr.strip().splitlines() == [f'depth-completion make-bag: error: kitti-object: {tmp_path / "none"} '
                                               'is not a folder; pass the folder holding image_2/, velodyne/, calib/ '
                                               '(or its training/ testing/ parent)']


# ---------------------------------------------------------------------------------------------------------------
# Ctrl-C: exit 130, no traceback, what was done is on disk
# ---------------------------------------------------------------------------------------------------------------

def _interrupt(argv: list[str], ready: callable, timeout_s: float = 90.0) -> subprocess.CompletedProcess:
    """Start the CLI in its own session, wait until ``ready()`` , then Ctrl-C it as a terminal does (SIGINT to
    the whole foreground process group)."""
    process = subprocess.Popen([*CLI, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    deadline = time.monotonic() + timeout_s
    while not ready() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert process.poll() is None, 'finished before the interrupt: ' + process.communicate()[1][-2000:]
    os.killpg(process.pid, signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)


@pytest.mark.ros
def test_demo_ctrl_c_exits_130_with_summary_and_previews_of_the_frames_so_far(tiny_bag: Path,
                                                                               tmp_path: Path) -> None:
    out = tmp_path / 'demo'

    def two_frames_done() -> bool:
        # the run writes beside --out (renamed to --out when it ends, Ctrl-C included)
        logs = list(tmp_path.glob('.demo.partial-*/logs/recorder.log'))
        return bool(logs) and logs[0].read_text().count('PROGRESS') >= 2

    # --rate 0.05: one frame every 2 s, so the interrupt lands mid-bag
    result = _interrupt(['demo', '--bag', str(tiny_bag), '--out', str(out), '--prefill-only', '--rate', '0.05'],
                        two_frames_done)
    assert result.returncode == 130, result.stderr[-3000:]
    assert 'Traceback' not in result.stdout + result.stderr
    assert result.stderr.strip().splitlines()[-1] == 'depth-completion demo: interrupted'
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['interrupted'] is True
    assert 2 <= summary['frames_out'] < 5
    previews = sorted((out / 'previews').glob('frame_*.png'))
    assert len(previews) == summary['frames_out']
    from PIL import Image

    with Image.open(previews[0]) as image:   # RGB, sparse, prefill, dense (+ confidence) of 96 rows, colour bar
        assert image.width == 320 and image.height > 4 * 96 + 30
    # metrics of the frames done, against the bag's ground truth, on the pixels the node published
    assert summary['metrics_frames'] == summary['frames_out'] and summary['rmse_mm']['prefill'] > 0
    assert 0.0 < summary['output_coverage'] <= 1.0
    assert summary['node_first_problem'] is None, summary['node_first_problem']
    assert 'demo: written under' in result.stdout and 'summary.json' in result.stdout
    assert json.loads((out / '.depth_completion_output.json').read_text())['status'] == 'interrupted'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['demo']   # nothing left beside it
    for log in (out / 'logs').glob('*.log'):
        text = log.read_text()
        assert 'Traceback' not in text and 'context is invalid' not in text, (log.name, text[-2000:])


@pytest.mark.ros
def test_play_ctrl_c_exits_130_with_report(tiny_bag: Path, tmp_path: Path) -> None:
    report = tmp_path / 'play.json'
    started = time.monotonic()
    result = _interrupt(['play', str(tiny_bag), '--rate', '0.05', '--report', str(report)],
                        lambda: time.monotonic() - started > 6.0)
    assert result.returncode == 130, result.stderr[-3000:]
    assert 'Traceback' not in result.stdout + result.stderr and 'RCLError' not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == 'depth-completion play: interrupted'
    published = json.loads(report.read_text())['published']
    assert 1 <= published['/camera/image_raw'] < 5


# ---------------------------------------------------------------------------------------------------------------
# help, version, bench targets
# ---------------------------------------------------------------------------------------------------------------

def _all_parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    found = []

    def walk(parser: argparse.ArgumentParser, name: str) -> None:
        found.append((name, parser))
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    walk(sub, f'{name} {sub_name}')

    for name in cli.SUBCOMMANDS:
        walk(cli.sub_parser(name), name)
    return found


def test_every_option_has_help_and_no_default_is_repeated_or_none() -> None:
    missing, repeated = [], []
    for name, parser in _all_parsers():
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction) or action.help == argparse.SUPPRESS:
                continue
            if not action.help:
                missing.append(f'{name} {action.option_strings or action.dest}')
            shown = cli.HelpFormatter(name)._get_help_string(action) % {'default': action.default}
            if shown.lower().count('default') > 1 or any(f'(default: {v})' in shown for v in ('None', 'False', '[]')):
                repeated.append(f'{name} {action.option_strings}: {shown}')
        assert '(default: None)' not in parser.format_help()
    assert not missing, missing
    assert not repeated, repeated
    assert {name for name, _ in _all_parsers()} >= {'bench geometry', 'bench model', 'bench node'}


def test_version_and_bench_target_help(capsys) -> None:
    status, out, _err = run_cli(['--version'], capsys)
    assert status == 0 and out.strip() == f'depth-completion {__version__}'
    status, out, _err = run_cli(['bench', 'model', '--help'], capsys)
    assert status == 0 and 'depth-completion bench model' in out and '--variants' in out and '--runs' in out
    status, out, _err = run_cli(['bench', '--help'], capsys)
    assert status == 0 and 'bench TARGET --help' in ' '.join(out.split())


# ---------------------------------------------------------------------------------------------------------------
# previews
# ---------------------------------------------------------------------------------------------------------------

def test_preview_has_a_colour_bar_in_metres_dilated_dots_and_an_optional_confidence_panel() -> None:
    from depth_completion_ros.core.visualize import _colormap_lut, colour_bar, completion_preview, dilate_points

    sparse = np.zeros((40, 60), np.float32)
    sparse[10, 10], sparse[10, 11], sparse[30, 50] = 20.0, 5.0, 60.0
    grown = dilate_points(sparse, 3)
    assert np.count_nonzero(grown) > 3 * np.count_nonzero(sparse)
    assert grown[9, 10] == 5.0 and grown[11, 12] == 5.0      # the nearer neighbour wins where dots meet
    assert grown[29, 49] == 60.0 and grown[30, 50] == 60.0
    bar = colour_bar(400, 0.0, 80.0)
    lut = _colormap_lut('turbo')
    strip_row = int(np.argmax(bar[:, 391].any(axis=1)))      # the caption does not reach the right end
    assert np.abs(bar[strip_row, 8].astype(int) - lut[0]).sum() < 10       # 0 m on the left
    assert np.abs(bar[strip_row, 391].astype(int) - lut[255]).sum() < 10   # 80 m on the right
    assert bar[strip_row + 20:].any()                                       # tick labels under the strip
    dense = np.full((40, 200), 30.0, np.float32)
    rgb = np.zeros((40, 200, 3), np.uint8)
    sparse = np.pad(sparse, ((0, 0), (0, 140)))
    without = completion_preview(rgb, sparse, dense, dense, vmax=80.0)
    with_confidence = completion_preview(rgb, sparse, dense, dense, confidence=np.full((40, 200), 0.5), vmax=80.0)
    assert with_confidence.shape[0] > without.shape[0] + 40   # one more panel and one more bar
    assert without.shape[1] == 200 and without.shape[0] >= 4 * 40 + bar.shape[0]


def test_first_problem_line_finds_the_reason_in_real_log_shapes() -> None:
    from depth_completion_ros.ros.runtime import first_problem_line

    node_log = ('[INFO] [1796116206.907871807] [depth_completion]: ready: input_mode=points\n'
                '[WARN] [1796116207.100000000] [depth_completion]: frame dropped: no camera_info for frame x\n')
    assert first_problem_line(node_log) is None
    assert first_problem_line(node_log, warnings=True) == \
        '[WARN] [depth_completion]: frame dropped: no camera_info for frame x'
    player_log = ("play: skipping /tf_static (tf2_msgs/msg/TFMessage: ...)\n"
                  "depth-completion play: error: topics not in the bag: ['/x'] (the bag has ['/y'])\n")
    assert first_problem_line(player_log) == \
        "depth-completion play: error: topics not in the bag: ['/x'] (the bag has ['/y'])"
    crash = 'Traceback (most recent call last):\n  File "a.py", line 1, in <module>\nRuntimeError: boom\n'
    assert first_problem_line(crash) == 'RuntimeError: boom'
