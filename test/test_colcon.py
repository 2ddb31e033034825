"""The README's ROS-workspace routes ("Install on a ROS 2 machine"): a clone (the tracked files) or a symlink
to this checkout in ~/ws/src; `colcon build` installs what `ros2 run` and `ros2 launch` look for (executables
under lib/<pkg>, launch/config/rviz under share/<pkg>, the ament index marker) and never the .venv."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip('colcon_core', reason='colcon-core is a test dependency (requirements/test.txt)')

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE = 'depth_completion_ros'


def tracked_files() -> list[str]:
    out = subprocess.run(['git', 'ls-files'], cwd=REPO_ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip('not a git checkout: cannot tell which files make up the package')
    return [line for line in out.stdout.splitlines() if line]


def colcon_build(workspace: Path) -> Path:
    build = subprocess.run([sys.executable, '-m', 'colcon', 'build', '--base-paths', 'src'],
                           cwd=workspace, capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    assert build.stdout.count('Finished <<<') == 1, build.stdout   # this package and nothing else
    return workspace / 'install' / PACKAGE


def test_colcon_build_installs_executables_launch_config_rviz_and_marker(tmp_path: Path):
    source = tmp_path / 'ws' / 'src' / PACKAGE   # the clone route: tracked files only, no .venv
    for name in tracked_files():
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, target)
    install = colcon_build(tmp_path / 'ws')
    for executable in ('depth_completion_node', 'depth-completion'):
        assert (install / 'lib' / PACKAGE / executable).is_file(), executable
    share = install / 'share' / PACKAGE
    assert (share / 'package.xml').is_file() and (share / 'LICENSE').is_file()
    assert (share / 'launch' / 'depth_completion.launch.py').is_file()
    assert {p.name for p in (share / 'config').glob('*.yaml')} >= {'kitti_hdl64.yaml', 'rgbd_camera.yaml',
                                                                  'generic.yaml'}
    assert list((share / 'rviz').glob('*.rviz'))
    assert (install / 'share' / 'ament_index' / 'resource_index' / 'packages' / PACKAGE).is_file()
    # The shipped weights travel with the Python package.
    installed_weights = list(install.rglob('weights/lrru_mini.safetensors'))
    assert installed_weights and installed_weights[0].stat().st_size > 1_000_000


def test_symlink_route_builds_without_taking_the_venv(tmp_path: Path):
    """`ln -s <checkout> ~/ws/src/depth_completion_ros`: nothing of the ~1.7 GB .venv is copied or installed."""
    (tmp_path / 'ws' / 'src').mkdir(parents=True)
    (tmp_path / 'ws' / 'src' / PACKAGE).symlink_to(REPO_ROOT, target_is_directory=True)
    install = colcon_build(tmp_path / 'ws')
    assert (install / 'lib' / PACKAGE / 'depth_completion_node').is_file()
    installed = sum(p.stat().st_size for p in install.rglob('*') if p.is_file())
    assert installed < 50e6, installed                       # code, configs and the 1.3 MB weights only
    assert not list(install.rglob('site-packages/torch'))


def test_setup_marks_the_venv_colcon_ignore():
    script = (REPO_ROOT / 'scripts' / 'setup_venv.sh').read_text()
    assert 'COLCON_IGNORE' in script   # a venv made inside a workspace is never crawled for its 60+ package.xml
    venv = REPO_ROOT / '.venv'
    if (venv / 'bin' / 'python').is_file() and Path(sys.prefix).resolve() == venv.resolve():
        assert (venv / 'COLCON_IGNORE').is_file()
