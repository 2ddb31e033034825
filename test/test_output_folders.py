"""Outputs never destroy what the user did not create (issue 17): every command that writes a folder refuses a
folder holding files it did not write (``--overwrite`` replaces it), refuses ``.``, ``~``, the checkout, a
folder above the current one and ``/`` outright, and writes beside the folder, renaming on success, so a failed
run leaves nothing half-written. Each refusal is one line with exit status 2, and the sentinel file survives."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli import CLI, assert_one_line_error, run_cli

from depth_completion_ros.tools.common import CliError
from depth_completion_ros.tools.make_bag import make_bag
from depth_completion_ros.tools.output_dir import MARKER_NAME, OutputDir, check_output_dir, read_marker

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def tiny_bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small synthetic frame: the refusals come before the bag is read, but the bag must be real."""
    bag = tmp_path_factory.mktemp('bags') / 'one'
    make_bag('synthetic', bag, frames=1, width=64, height=32)
    return bag


def user_folder(path: Path) -> Path:
    """A folder with something of the user's in it."""
    path.mkdir(parents=True, exist_ok=True)
    (path / 'thesis.tex').write_text('three years of work')
    return path


def assert_untouched(folder: Path) -> None:
    assert (folder / 'thesis.tex').read_text() == 'three years of work'
    assert not (folder / MARKER_NAME).exists()


def test_demo_refuses_a_folder_of_the_users_before_starting(tiny_bag: Path, tmp_path: Path, capsys) -> None:
    folder = user_folder(tmp_path / 'mine')
    status, _out, err = run_cli(['demo', '--bag', str(tiny_bag), '--out', str(folder), '--prefill-only'], capsys)
    assert_one_line_error(status, err, 'demo', str(folder), 'not empty', '--overwrite')
    assert_untouched(folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['mine']   # no temporary sibling either


@pytest.mark.parametrize('spelling', ['.', './', '..'])
def test_demo_refuses_the_current_folder_and_above_even_with_overwrite(
        spelling: str, tiny_bag: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    here = user_folder(tmp_path / 'project' / 'work')
    monkeypatch.chdir(here)
    status, _out, err = run_cli(['demo', '--bag', str(tiny_bag), '--out', spelling, '--overwrite',
                                 '--prefill-only'], capsys)
    assert_one_line_error(status, err, 'demo', 'refused', 'current folder')
    assert_untouched(here)


@pytest.mark.parametrize('target', ['~', '/', 'checkout', 'package'])
def test_home_root_and_checkout_are_refused_even_with_overwrite(target: str) -> None:
    path = {'~': '~', '/': '/', 'checkout': str(REPO_ROOT), 'package': str(REPO_ROOT / 'depth_completion_ros')}[target]
    for command in ('demo', 'make-bag', 'record', 'eval', 'train'):
        with pytest.raises(CliError, match='refused'):
            check_output_dir(path, command, overwrite=True)


def test_a_folder_holding_a_repository_is_refused(tmp_path: Path) -> None:
    clone = user_folder(tmp_path / 'other_checkout')
    (clone / '.git').mkdir()
    with pytest.raises(CliError, match=r'repository \(it holds \.git\)'):
        check_output_dir(clone, 'demo', overwrite=True)


def test_makefile_demo_out_dot_is_refused(tiny_bag: Path, tmp_path: Path) -> None:
    """`make demo OUT=.` runs the CLI with `--out .`: the refusal covers it (run here in a scratch folder with the
    Makefile's own command line, never in the checkout)."""
    recipe = subprocess.run(['make', '-n', '-f', str(REPO_ROOT / 'Makefile'), 'demo', 'OUT=.',
                             f'BAG={tiny_bag}', f'STAMP={tmp_path / "stamp"}'], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=30).stdout
    (tmp_path / 'stamp').touch()
    line = next(line for line in recipe.splitlines() if ' demo --out ' in line)
    command = line.replace('.venv/bin/python', sys.executable, 1)
    here = user_folder(tmp_path / 'work')
    done = subprocess.run(command, shell=True, cwd=here, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert 'refused' in done.stderr and 'Traceback' not in done.stderr
    assert_untouched(here)


def test_a_previous_output_of_the_same_command_is_replaced_another_commands_is_not(tmp_path: Path) -> None:
    previous = tmp_path / 'run'
    with OutputDir(previous, 'demo') as output:
        (output.work / 'summary.json').write_text('{}')
        output.commit()
    assert check_output_dir(previous, 'demo') == previous.resolve()
    with pytest.raises(CliError, match='the output of `demo`.*--overwrite'):
        check_output_dir(previous, 'eval')


def test_a_failed_run_keeps_the_previous_output_and_leaves_no_temporary_folder(tmp_path: Path) -> None:
    final = tmp_path / 'out'
    with OutputDir(final, 'demo') as output:
        (output.work / 'summary.json').write_text('first')
        output.commit()
    with pytest.raises(RuntimeError), OutputDir(final, 'demo') as output:
        (output.work / 'summary.json').write_text('second, cut short')
        raise RuntimeError('the run failed midway')
    assert (final / 'summary.json').read_text() == 'first'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['out']


def test_interrupted_output_is_kept_and_marked(tmp_path: Path) -> None:
    """demo after Ctrl-C: the previews done so far are put in place, the marker says the run was cut."""
    with OutputDir(tmp_path / 'out', 'demo') as output:
        (output.work / 'previews').mkdir()
        output.commit('interrupted')
    assert (tmp_path / 'out' / 'previews').is_dir()
    assert read_marker(tmp_path / 'out') == {**read_marker(tmp_path / 'out'), 'command': 'demo',
                                             'status': 'interrupted'}


def test_make_bag_twice_to_the_same_folder_replaces_its_own_bag(tmp_path: Path) -> None:
    bag = tmp_path / 'bag'
    make_bag('synthetic', bag, frames=1, width=64, height=32)
    report = make_bag('synthetic', bag, frames=2, width=64, height=32)
    assert report['frames'] == 2 and report['bag'] == str(bag.resolve())
    assert (bag / 'bag.mcap').is_file() and (bag / 'metadata.yaml').is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ['bag']


def test_eval_save_refuses_a_folder_of_the_users(tmp_path: Path, capsys) -> None:
    folder = user_folder(tmp_path / 'panels')
    status, _out, err = run_cli(['eval', '--data', 'synthetic:room', '--synthetic-frames', '1', '--max-frames', '1',
                                 '--save', str(folder)], capsys)
    assert_one_line_error(status, err, 'eval', '--save', str(folder), '--overwrite')
    assert_untouched(folder)


def test_train_refuses_a_folder_of_the_users(tmp_path: Path, capsys) -> None:
    folder = user_folder(tmp_path / 'runs')
    status, _out, err = run_cli(['train', '--iterations', '1', '--batch', '1', '--crop', '32x48', '--workers', '0',
                                 '--data', 'synthetic:room', '--quiet', '--out', str(folder)], capsys)
    assert_one_line_error(status, err, 'train', str(folder), '--overwrite')
    assert_untouched(folder)


def test_record_refuses_a_folder_of_the_users_and_replaces_its_own_bag(tmp_path: Path) -> None:
    folder = user_folder(tmp_path / 'mine')
    command = [*CLI, 'record', '/dcr_test_topic:std_msgs/msg/String', '--duration', '0.2']
    done = subprocess.run([*command, '--out', str(folder)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and '--overwrite' in done.stderr and 'Traceback' not in done.stderr, done.stderr
    assert_untouched(folder)
    for _ in range(2):   # the second run replaces the first one's bag (it used to fail: "already exists")
        done = subprocess.run([*command, '--out', str(tmp_path / 'bag')], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    assert read_marker(tmp_path / 'bag')['command'] == 'record'
    assert (tmp_path / 'bag' / 'metadata.yaml').is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ['bag', 'mine']


def test_ros_log_folders_are_removed_at_exit(tmp_path: Path) -> None:
    """A command that sets up its own local ROS environment removes the ROS log folder it made in the temp
    directory when it exits (every run used to leave a dcr_roslog_* folder)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ('ROS_LOG_DIR', 'FASTDDS_BUILTIN_TRANSPORTS', 'ROS_AUTOMATIC_DISCOVERY_RANGE')}
    env['TMPDIR'] = str(tmp_path)   # ROS_DOMAIN_ID stays: the command keeps the tests' private domain
    done = subprocess.run([*CLI, 'record', '/dcr_test_topic:std_msgs/msg/String', '--duration', '0.2', '--out',
                           str(tmp_path / 'bag')], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.split('record: ', 1)[1])['bag'] == str(tmp_path / 'bag')
    assert not list(tmp_path.glob('dcr_roslog_*'))


def test_export_never_writes_over_a_folder_or_a_file_of_the_users(tmp_path: Path, capsys) -> None:
    folder = user_folder(tmp_path / 'models')
    notes = folder / 'thesis.tex'
    for out in (folder, notes):
        status, _out, err = run_cli(['export', '--random', '--no-verify', '--out', str(out)], capsys)
        assert_one_line_error(status, err, 'export', str(out), '.onnx')
    assert_untouched(folder)
