"""Multi-camera bags and the demo on them (issue 18, item 4): make-bag --cameras writes each camera's topics with
its own intrinsics and extrinsics and the node's multi-camera parameters; demo runs every camera of such a bag,
with previews and a summary per camera; KITTI raw's image_03 goes through camera 3's calibration."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from depth_completion_ros.core.camera import CameraModel
from depth_completion_ros.core.projection import project_points
from depth_completion_ros.core.transforms import RigidTransform
from depth_completion_ros.ros import bagio
from depth_completion_ros.tools.make_bag import make_bag


def _params(bag: Path) -> dict:
    return yaml.safe_load((bag / bagio.PARAMS_FILE_NAME).read_text())['/**']['ros__parameters']


@pytest.fixture(scope='module')
def rig_bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    bag = tmp_path_factory.mktemp('rig') / 'rig'
    make_bag('synthetic', bag, frames=4, width=320, height=96, seed=5, cameras=3)
    return bag


def test_synthetic_rig_bag_has_each_camera_with_its_own_intrinsics_and_extrinsics(rig_bag: Path) -> None:
    topics = bagio.bag_topics(rig_bag)
    names = ['cam0', 'cam1', 'cam2']
    for name in names:
        for topic in (f'/{name}/image_raw', f'/{name}/camera_info', f'/{name}/depth_gt'):
            assert topics[topic][1] == 4, topic
    assert topics[bagio.POINTS_TOPIC][1] == 4 and bagio.IMAGE_TOPIC not in topics
    params = _params(rig_bag)
    assert params['cameras'] == names and params['extrinsics.source'] == 'parameters'
    matrices = {n: np.asarray(params[f'camera.{n}.extrinsics.matrix']).reshape(4, 4) for n in names}
    assert not np.allclose(matrices['cam0'], matrices['cam1']) and not np.allclose(matrices['cam0'], matrices['cam2'])
    # /tf_static: one camera <- lidar per camera, equal to the parameters
    tf = next(msg for _raw, msg in bagio.read_messages(rig_bag, [bagio.TF_STATIC_TOPIC]))
    assert sorted(t.header.frame_id for t in tf.transforms) == [f'{n}_optical_frame' for n in names]
    infos: dict[str, CameraModel] = {}
    for raw, msg in bagio.read_messages(rig_bag, [f'/{n}/camera_info' for n in names]):
        infos.setdefault(raw.topic.split('/')[1], CameraModel.from_camera_info(msg))
    assert len({round(camera.fx, 3) for camera in infos.values()}) == 3  # own intrinsics
    assert {camera.frame_id for camera in infos.values()} == {f'{n}_optical_frame' for n in names}
    # the one scan, through each camera's extrinsics, lands on that camera's ground truth
    points = next(msg for _raw, msg in bagio.read_messages(rig_bag, [bagio.POINTS_TOPIC]))
    xyz = np.frombuffer(points.data.tobytes(), '<f4').reshape(-1, 4)[:, :3].astype(np.float64)
    for name in names:
        gt_msg = next(msg for _raw, msg in bagio.read_messages(rig_bag, [f'/{name}/depth_gt']))
        gt = np.frombuffer(gt_msg.data.tobytes(), np.float32).reshape(gt_msg.height, gt_msg.width)
        sparse = project_points(RigidTransform.from_matrix(matrices[name]).apply(xyz), infos[name], min_range=0.1)
        both = (sparse > 0) & np.isfinite(gt) & (gt > 0)
        assert both.sum() > 500, name
        assert np.median(np.abs(sparse[both] - gt[both]) / gt[both]) < 0.02, name


def test_cameras_beyond_the_source_are_one_line(tmp_path: Path, kitti_object_dir: Path) -> None:
    with pytest.raises(ValueError, match='at most 4'):
        make_bag('synthetic', tmp_path / 'a', frames=1, width=64, height=32, cameras=5)
    with pytest.raises(ValueError, match='one camera'):
        make_bag(f'kitti-object:{kitti_object_dir}', tmp_path / 'b', cameras=2)


def test_demo_runs_every_camera_of_a_rig_bag_with_a_summary_and_previews_each(rig_bag: Path, tmp_path: Path) -> None:
    out = tmp_path / 'demo'
    run = subprocess.run([sys.executable, '-m', 'depth_completion_ros.cli', 'demo', '--bag', str(rig_bag),
                          '--out', str(out), '--prefill-only', '--device', 'cpu', '--cameras', '3'],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    summary = json.loads((out / 'summary.json').read_text())
    assert set(summary['cameras']) == {'cam0', 'cam1', 'cam2'}
    for name, camera in summary['cameras'].items():
        assert camera['frames_in'] == 4 and camera['frames_out'] == 4 and camera['dropped'] == 0, (name, camera)
        assert camera['latency_ms_p50'] is not None and camera['rmse_mm']['prefill'] is not None, (name, camera)
        assert len(list((out / 'cameras' / name / 'previews').glob('frame_*.png'))) == 4
    assert summary['frames_in'] == summary['frames_out'] == 12 and summary['dropped'] == 0
    assert summary['node_exit_status'] == 0


def test_demo_refuses_a_camera_count_the_bag_does_not_have(rig_bag: Path, tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, '-m', 'depth_completion_ros.cli', 'demo', '--bag', str(rig_bag),
                          '--out', str(tmp_path / 'o'), '--prefill-only', '--cameras', '2'],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and 'has 3 camera(s)' in run.stderr, run.stderr


def test_kitti_raw_two_cameras_take_camera_3_calibration(shared_data: Path, tmp_path: Path) -> None:
    """The shared drive has image_02 only: a copy with image_03 made of the same pictures checks the plumbing
    (topics, camera 3's projection and baseline), not camera 3's pixels."""
    source = shared_data / 'kitti_raw_2011_09_26_udacity_seq'
    drive = next(source.glob('*/*_sync'))
    copy = tmp_path / 'raw' / drive.parent.name
    (copy / drive.name).mkdir(parents=True)
    for name in ('calib_cam_to_cam.txt', 'calib_velo_to_cam.txt', 'calib_imu_to_velo.txt'):
        shutil.copy(drive.parent / name, copy / name)
    images = sorted((drive / 'image_02' / 'data').glob('*.png'))[:2]
    for folder in ('image_02', 'image_03'):
        (copy / drive.name / folder / 'data').mkdir(parents=True)
        for image in images:
            shutil.copy(image, copy / drive.name / folder / 'data' / image.name)
    (copy / drive.name / 'velodyne_points' / 'data').mkdir(parents=True)
    for image in images:
        scan = drive / 'velodyne_points' / 'data' / f'{image.stem}.bin'
        shutil.copy(scan, copy / drive.name / 'velodyne_points' / 'data' / scan.name)

    with pytest.raises(ValueError, match='image_03'):  # the shared drive itself has one camera
        make_bag(f'kitti-raw:{source}', tmp_path / 'one', frames=2, cameras=2)
    bag = tmp_path / 'two'
    make_bag(f'kitti-raw:{copy}', bag, frames=2, cameras=2)
    params = _params(bag)
    assert params['cameras'] == ['image_02', 'image_03']
    left, right = (np.asarray(params[f'camera.{n}.extrinsics.matrix']).reshape(4, 4) for n in params['cameras'])
    assert np.allclose(left[:3, :3], right[:3, :3])  # rectified: the same rotation
    assert abs((left[0, 3] - right[0, 3]) - 0.54) < 0.01  # KITTI's stereo baseline
    topics = bagio.bag_topics(bag)
    assert topics['/image_02/image_raw'][1] == topics['/image_03/image_raw'][1] == topics[bagio.POINTS_TOPIC][1] == 2
