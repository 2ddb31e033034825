"""Several cameras around one point cloud in one node (issue 18, item 1): each camera's output, in its own frame,
is the very depth a single-camera node computes for that camera from the same messages; a camera that is silent
or has no camera_info is reported by name and takes nothing from the others; the cloud is decoded once per scan.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ros_helpers import TopicDriver

from depth_completion_ros.core.camera import CameraModel
from depth_completion_ros.ros.runtime import NODE_MODULE, RosProcess, module_args, node_arguments, parse_final_stats

pytestmark = [pytest.mark.ros, pytest.mark.slow]

FRAMES = 8
CAMERAS = {  # name -> (model, translation sensor -> camera)
    'left': (CameraModel.from_intrinsics(60.0, 60.0, 32.0, 24.0, 64, 48, frame_id='left_cam'), [0.2, 0.0, 0.0]),
    'right': (CameraModel.from_intrinsics(90.0, 90.0, 40.0, 30.0, 80, 60, frame_id='right_cam'), [-0.4, 0.1, 0.0]),
}
COMMON = {'prefill_only': True, 'model.device': 'cpu', 'extrinsics.source': 'parameters', 'sync.slop': 0.02}


def _points() -> np.ndarray:
    """A wall 6 m ahead and a box 3 m ahead (sensor axes as the cameras': z forward), sampled on a grid."""
    xs, ys = np.meshgrid(np.linspace(-4, 4, 60), np.linspace(-2.5, 2.5, 16))
    wall = np.stack([xs.ravel(), ys.ravel(), np.full(xs.size, 6.0)], 1)
    bx, by = np.meshgrid(np.linspace(-0.8, 0.4, 12), np.linspace(-0.5, 0.5, 6))
    box = np.stack([bx.ravel(), by.ravel(), np.full(bx.size, 3.0)], 1)
    return np.concatenate([wall, box]).astype(np.float32)


def _start(name: str, log: Path, params: dict, remaps: dict) -> RosProcess:
    args = node_arguments(params=params, remaps={**remaps, '__node': name})
    node = RosProcess(name, module_args(NODE_MODULE, *args), log)
    assert node.wait_for_output('ready:', 90.0), node.output()[-2000:]
    return node


def _depth(msg: object) -> np.ndarray:
    return np.frombuffer(msg.data.tobytes(), np.float32).reshape(msg.height, msg.width)


def test_two_cameras_one_cloud_match_single_camera_nodes_and_a_silent_one_blocks_nothing(tmp_path: Path) -> None:
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2

    from depth_completion_ros.core import conversions

    # One node with four cameras: left and right get everything, 'noinfo' images but never a camera_info,
    # 'silent' nothing at all.
    multi_params = {**COMMON, 'cameras': ['left', 'right', 'noinfo', 'silent']}
    multi_remaps = {'points': '/mc/points'}
    for name in ('left', 'right', 'noinfo', 'silent'):
        multi_remaps[f'{name}/image'] = f'/mc/{name}/image'
        multi_remaps[f'{name}/camera_info'] = f'/mc/{name}/camera_info'
    for name, (_model, translation) in CAMERAS.items():
        multi_params[f'camera.{name}.extrinsics.translation'] = translation
    nodes = {'multi': _start('multi', tmp_path / 'multi.log', multi_params, multi_remaps)}
    # The reference: one single-camera node per camera on the same messages.
    for name, (_model, translation) in CAMERAS.items():
        nodes[name] = _start(f'single_{name}', tmp_path / f'{name}.log',
                             {**COMMON, 'extrinsics.translation': translation},
                             {'image': f'/mc/{name}/image', 'camera_info': f'/mc/{name}/camera_info',
                              'points': '/mc/points'})
    driver = TopicDriver('multi_camera_driver')
    try:
        pubs = {name: (driver.publisher(CameraInfo, f'/mc/{name}/camera_info'),
                       driver.publisher(Image, f'/mc/{name}/image')) for name in ('left', 'right', 'noinfo')}
        cloud_pub = driver.publisher(PointCloud2, '/mc/points')
        for name in CAMERAS:
            driver.subscribe(f'multi_{name}', Image, f'/multi/{name}/depth')
            driver.subscribe(f'multi_{name}_info', CameraInfo, f'/multi/{name}/camera_info')
            driver.subscribe(f'single_{name}', Image, f'/single_{name}/depth')
        driver.subscribe('diagnostics', DiagnosticArray, '/diagnostics')

        def matched() -> bool:
            return (cloud_pub.get_subscription_count() >= 3
                    and all(pubs[n][1].get_subscription_count() >= 2 for n in CAMERAS)
                    and pubs['noinfo'][1].get_subscription_count() >= 1
                    and all(s.get_publisher_count() > 0 for s in driver.subscriptions))

        assert driver.spin_until(matched, 30.0), nodes['multi'].output()[-2000:]
        points = _points()
        stamps = []
        for i in range(FRAMES):
            stamp = (300 + i, 0)
            for name, (model, _translation) in CAMERAS.items():
                pubs[name][0].publish(model.to_camera_info(stamp=stamp))
                pubs[name][1].publish(conversions.numpy_to_image(
                    np.full((model.height, model.width, 3), 90 + 20 * i, np.uint8), 'rgb8',
                    frame_id=model.frame_id, stamp=stamp))
            pubs['noinfo'][1].publish(conversions.numpy_to_image(np.zeros((40, 50, 3), np.uint8), 'rgb8',
                                                                 frame_id='noinfo_cam', stamp=stamp))
            cloud_pub.publish(conversions.arrays_to_pointcloud2(points, frame_id='lidar', stamp=stamp))
            stamps.append(stamp[0] * 10**9)
            # paced like a sensor (a 2-core machine runs three nodes here): no frame is dropped as busy
            keys = tuple(f'{k}_{n}' for k in ('multi', 'single') for n in CAMERAS) + tuple(
                f'multi_{n}_info' for n in CAMERAS)
            assert driver.expect_output(stamps[-1], keys, 20.0), nodes['multi'].output()[-2000:]

        for name, (model, _translation) in CAMERAS.items():
            for stamp in stamps:
                ours, reference = driver.received[f'multi_{name}'][stamp], driver.received[f'single_{name}'][stamp]
                assert ours.header.frame_id == model.frame_id  # each camera's output in its own frame
                assert (ours.width, ours.height) == (model.width, model.height)
                assert driver.received[f'multi_{name}_info'][stamp].k[0] == model.fx
                depth = _depth(ours)
                assert np.isfinite(depth).mean() > 0.3
                np.testing.assert_array_equal(depth, _depth(reference))  # identical, NaN where unknown too
        # the two cameras do see the scene differently (else the comparison above would prove little)
        left, right = (_depth(driver.received[f'multi_{n}'][stamps[0]]) for n in CAMERAS)
        box_column = [np.argwhere(depth < 4.0)[:, 1].mean() / depth.shape[1] for depth in (left, right)]
        assert left.shape != right.shape and box_column[0] - box_column[1] > 0.1, box_column

        # /diagnostics: the node-wide status, then one per camera with its own counters
        statuses: dict[str, dict[str, str]] = {}

        def per_camera_statuses() -> bool:  # the newest status of each name, once it counts every frame
            arrays = driver.received.get('diagnostics', {})
            for stamp in sorted(arrays):
                for status in arrays[stamp].status:
                    statuses[status.name] = {kv.key: kv.value for kv in status.values}
            return (all(f'multi: depth completion {n}' in statuses for n in ('left', 'right', 'noinfo', 'silent'))
                    and statuses['multi: depth completion left']['frames_out'] == str(FRAMES))

        assert driver.spin_until(per_camera_statuses, 10.0), statuses
        assert int(statuses['multi: depth completion silent']['images_in']) == 0
        assert 'output_rate_hz' in statuses['multi: depth completion'], statuses   # the node-wide level reads it
    finally:
        driver.close()
        statuses = {name: node.stop() for name, node in nodes.items()}
    log = nodes['multi'].output()
    assert statuses['multi'] == 0 and 'Traceback' not in log, log[-3000:]
    stats = parse_final_stats(log)
    cameras = stats['cameras']
    for name in CAMERAS:
        assert cameras[name]['frames_out'] == FRAMES and cameras[name]['dropped'] == 0, cameras[name]
    assert cameras['noinfo']['images_in'] == FRAMES and cameras['noinfo']['frames_out'] == 0
    assert cameras['noinfo']['dropped_no_camera_info'] == cameras['noinfo']['sync_matched'] > 0, cameras['noinfo']
    assert 'camera noinfo: no noinfo/camera_info received yet' in log
    assert cameras['silent']['images_in'] == 0 and cameras['silent']['frames_out'] == 0
    assert stats['depth_in'] == FRAMES and stats['clouds_decoded'] == FRAMES  # one decode per scan, 3 cameras
    assert stats['frames_out'] == 2 * FRAMES


def test_camera_names_are_checked_before_start(tmp_path: Path) -> None:
    for params, message in (({'cameras': ['left', 'left']}, 'names a camera twice'),
                            ({'cameras': ['left', '2nd']}, "'2nd' is not a usable camera name")):
        node = RosProcess('bad', module_args(NODE_MODULE, *node_arguments(params=params)), tmp_path / 'bad.log')
        assert node.wait(60.0) == 2, node.output()[-2000:]
        assert message in node.output()
