"""The README's ROS-workspace route: `colcon build` of this package installs what `ros2 run` and
`ros2 launch` look for (executables under lib/<pkg>, launch/config/rviz under share/<pkg>, the ament index
marker)."""
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


def test_colcon_build_installs_executables_launch_config_rviz_and_marker(tmp_path: Path):
    source = tmp_path / 'ws' / 'src' / PACKAGE
    for name in tracked_files():
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, target)
    workspace = tmp_path / 'ws'
    build = subprocess.run([sys.executable, '-m', 'colcon', 'build', '--base-paths', 'src'],
                           cwd=workspace, capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    install = workspace / 'install' / PACKAGE
    for executable in ('depth_completion_node', 'depth-completion'):
        assert (install / 'lib' / PACKAGE / executable).is_file(), executable
    share = install / 'share' / PACKAGE
    assert (share / 'package.xml').is_file()
    assert (share / 'launch' / 'depth_completion.launch.py').is_file()
    assert {p.name for p in (share / 'config').glob('*.yaml')} >= {'kitti_hdl64.yaml', 'rgbd_camera.yaml',
                                                                  'generic.yaml'}
    assert list((share / 'rviz').glob('*.rviz'))
    assert (install / 'share' / 'ament_index' / 'resource_index' / 'packages' / PACKAGE).is_file()
    # The shipped weights travel with the Python package.
    installed_weights = list(install.rglob('weights/lrru_mini.safetensors'))
    assert installed_weights and installed_weights[0].stat().st_size > 1_000_000
