"""Packaging: the ament_python layout `colcon build` and `ros2 run` rely on, and a CLI whose every
subcommand answers `--help`."""
from __future__ import annotations

import importlib
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from depth_completion_ros import cli

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_package_xml_is_format_3_ament_python():
    root = ET.parse(REPO_ROOT / 'package.xml').getroot()
    assert root.get('format') == '3'
    assert root.findtext('name') == 'depth_completion_ros'
    assert root.find('export/build_type').text == 'ament_python'
    exec_deps = {e.text for e in root.findall('exec_depend')}
    assert {'rclpy', 'sensor_msgs', 'std_msgs', 'diagnostic_msgs'} <= exec_deps
    assert 'python3-pytest' in {e.text for e in root.findall('test_depend')}
    # The version in package.xml, setup.py and the Python package agree.
    import depth_completion_ros
    assert root.findtext('version') == depth_completion_ros.__version__


def test_setup_installs_marker_launch_config_and_rviz():
    source = (REPO_ROOT / 'setup.py').read_text()
    assert "'resource/' + package_name" in source
    for folder, pattern in (('launch', '*.launch.py'), ('config', '*.yaml'), ('rviz', '*.rviz')):
        assert f"glob('{folder}/{pattern}')" in source
        assert list((REPO_ROOT / folder).glob(pattern)), f'nothing to install from {folder}/'
    assert (REPO_ROOT / 'resource' / 'depth_completion_ros').is_file()
    assert "extras_require={'test': ['pytest']}" in source  # else `colcon test` silently runs 0 tests
    cfg = (REPO_ROOT / 'setup.cfg').read_text()
    assert 'install_scripts=$base/lib/depth_completion_ros' in cfg  # where `ros2 run` looks


@pytest.mark.parametrize('name', sorted(cli.SUBCOMMANDS))
def test_every_subcommand_has_help(name, capsys):
    module = importlib.import_module(cli.SUBCOMMANDS[name][0])
    assert callable(module.add_arguments) and callable(module.main)
    with pytest.raises(SystemExit) as exit_info:
        cli.main([name, '--help'])
    assert exit_info.value.code == 0
    assert f'depth-completion {name}' in capsys.readouterr().out


def test_console_script_entry_point_runs():
    out = subprocess.run([sys.executable, '-m', 'depth_completion_ros.cli', '--help'],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for name in cli.SUBCOMMANDS:
        assert name in out.stdout


def test_info_json_reports_versions_and_variants():
    out = subprocess.run([sys.executable, '-m', 'depth_completion_ros.cli', 'info', '--json'],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    import json
    info = json.loads(out.stdout)
    import torch
    assert info['torch'] == torch.__version__
    assert info['devices']['cuda'] == torch.cuda.is_available()
    expected = {'mini': 329_674, 'tiny': 1_309_478, 'small': 5_219_806, 'base': 20_843_342}
    assert set(info['variants']) == set(expected)
    for name, params in expected.items():
        assert abs(info['variants'][name]['params'] - params) / params < 0.01


def _documented_rosdep_keys() -> dict[str, set[str]]:
    """docs/rosdep-keys.txt: `ros: <package>`, `python.yaml: <key>` (resolvable) and `not-a-key: <name>`."""
    keys: dict[str, set[str]] = {'ros': set(), 'python.yaml': set(), 'not-a-key': set()}
    for line in (REPO_ROOT / 'docs' / 'rosdep-keys.txt').read_text().splitlines():
        if line.strip() and not line.startswith('#'):
            source, _, key = line.partition(':')
            keys[source.strip()].add(key.strip())
    return keys


def test_package_xml_uses_only_documented_rosdep_keys_and_declares_what_the_code_imports():
    root = ET.parse(REPO_ROOT / 'package.xml').getroot()
    depends = [e.text.strip() for e in root if e.tag.endswith('depend') and e.text]
    keys = _documented_rosdep_keys()
    resolvable = keys['ros'] | keys['python.yaml']
    assert not set(depends) - resolvable, f'not rosdep keys (docs/rosdep-keys.txt): {set(depends) - resolvable}'
    assert not set(depends) & keys['not-a-key']
    assert not resolvable & keys['not-a-key']
    assert len(depends) == len(set(depends)), 'duplicate depends'
    exec_deps = {e.text for e in root.findall('exec_depend')}
    # what the package imports or runs on a ROS host: play publishes /tf_static (tf2_msgs), the launch file runs
    # `ros2 bag play` on mcap bags, the params loader reads YAML, TF extrinsics use tf2_ros (package tf2_ros_py)
    assert {'tf2_msgs', 'tf2_ros_py', 'ros2bag', 'rosbag2_storage_mcap', 'python3-yaml', 'rcl_interfaces',
            'ament_index_python', 'launch', 'launch_ros'} <= exec_deps
    # torch is pinned (requirements/base.txt) and installed with pip: no rosdep key may pull another torch
    assert not any('torch' in d for d in depends)
    assert 'torch==2.13.0' in (REPO_ROOT / 'requirements' / 'base.txt').read_text()


def test_license_file_matches_package_xml():
    root = ET.parse(REPO_ROOT / 'package.xml').getroot()
    assert root.findtext('license') == 'Apache-2.0'
    text = (REPO_ROOT / 'LICENSE').read_text()
    assert 'Apache License' in text and 'Version 2.0, January 2004' in text
    assert "license='Apache-2.0'" in (REPO_ROOT / 'setup.py').read_text()
