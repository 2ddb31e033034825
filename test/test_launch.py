"""The ROS-install route: launch file, presets and RViz config.

The launch test needs the ROS 2 `launch`/`launch_ros` packages (a sourced ROS install); they are not
installable through the pip wheels, so there it is skipped with that reason. Its equivalent, player -> node ->
recorder in subprocesses, runs everywhere (test_node_e2e.py). The static checks below run everywhere.
"""
from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest
import yaml

from depth_completion_ros.ros.params import PARAMETERS_BY_NAME, load_params_file

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_FILE = ROOT / 'launch' / 'depth_completion.launch.py'


def _launch_available() -> bool:
    try:
        return (importlib.util.find_spec('launch_ros') is not None
                and importlib.util.find_spec('launch.actions') is not None)
    except ModuleNotFoundError:
        return False


@pytest.mark.parametrize('preset', ['generic', 'kitti_hdl64', 'rgbd_camera'])
def test_presets_load_and_validate(preset: str) -> None:
    values = load_params_file(ROOT / 'config' / f'{preset}.yaml')
    assert values['input_mode'] in ('points', 'depth')
    assert all(name in PARAMETERS_BY_NAME for name in values)


def test_launch_file_parses_and_uses_shipped_names() -> None:
    source = LAUNCH_FILE.read_text()
    tree = ast.parse(source)
    functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert 'generate_launch_description' in functions
    assert "'depth_completion_node'" in source  # the console script of setup.py
    assert 'depth_completion.rviz' in source and '--clock' in source and 'use_sim_time' in source
    assert (ROOT / 'rviz' / 'depth_completion.rviz').is_file()


def test_rviz_config_shows_image_depth_and_cloud_with_matching_qos() -> None:
    config = yaml.safe_load((ROOT / 'rviz' / 'depth_completion.rviz').read_text())
    displays = {d['Name']: d for d in config['Visualization Manager']['Displays']}
    cloud = displays['Dense cloud']
    assert cloud['Topic']['Value'] == '/depth_completion/points'
    assert cloud['Topic']['Reliability Policy'] == 'Reliable'  # the node publishes reliable by default
    assert any(d['Class'] == 'rviz_default_plugins/Image' and d['Topic']['Value'] == '/depth_completion/depth'
               for d in displays.values())
    assert config['Visualization Manager']['Global Options']['Fixed Frame'] == 'camera_optical_frame'
    enabled = {d['Topic']['Value'] for d in displays.values() if d.get('Enabled') and 'Topic' in d}
    # out of the box (no publish_debug needed): the depth, its confidence and the cloud
    assert {'/depth_completion/depth', '/depth_completion/confidence', '/depth_completion/points'} <= enabled
    confidence = next(d for d in displays.values()
                      if d.get('Topic', {}).get('Value') == '/depth_completion/confidence')
    assert (confidence['Min Value'], confidence['Max Value'], confidence['Normalize Range']) == (0, 1, False)


def test_launch_file_starts_the_bag_when_the_node_is_ready_and_has_the_rviz_arguments() -> None:
    source = LAUNCH_FILE.read_text()
    tree = ast.parse(source)
    declared = {node.args[0].value for node in ast.walk(tree) if isinstance(node, ast.Call)
                and getattr(node.func, 'id', '') == 'DeclareLaunchArgument'}
    assert {'fixed_frame', 'publish_debug', 'rviz', 'play_delay'} <= declared
    assert 'OnProcessIO' in source and "b'ready:'" in source and 'TimerAction' in source
    assert "'--fixed-frame'" in source


@pytest.mark.ros
@pytest.mark.skipif(not _launch_available(),
                    reason='ROS 2 launch/launch_ros are not importable (pip-wheel install); '
                           'the player->node->recorder test in test_node_e2e.py covers the same path')
def test_launch_description_builds() -> None:  # pragma: no cover - runs on ROS installs only
    from launch import LaunchContext

    spec = importlib.util.spec_from_file_location('depth_completion_launch', LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    context = LaunchContext()
    names = {a.name for a in description.get_launch_arguments()}
    assert {'config', 'bag', 'rviz', 'image', 'points'} <= names
    assert context is not None


def test_readme_parameter_table_matches_the_node() -> None:
    from depth_completion_ros.ros.params import markdown_table

    assert markdown_table() in (ROOT / 'README.md').read_text(), 'regenerate the README table from ros/params.py'
