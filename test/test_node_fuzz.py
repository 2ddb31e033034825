"""Issue 12: our own seeded fuzz test. Thousands of malformed messages of every class the node must survive
(ros/fuzz.py: encodings, strides, sizes, empty/NaN/huge clouds, broken field layouts, bad and enormous
camera_infos, made-up and huge frame_ids, zero stamps, camera_info orderings, raw CDR byte mutations published
as bytes, time jumps, refused parameter sets) between real KITTI frames. The node must stay alive, answer every
real frame correctly (depth at the LiDAR pixels, its own camera_info), never print a traceback, and account for
every frame it paired."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ros_helpers import start_node

from depth_completion_ros.core.projection import project_points
from depth_completion_ros.core.transforms import RigidTransform
from depth_completion_ros.ros.fuzz import FuzzDriver, MalformedMix, RealFrame
from depth_completion_ros.ros.runtime import parse_final_stats

pytestmark = [pytest.mark.ros, pytest.mark.slow]

TOPICS = {'image': '/fuzz/image', 'camera_info': '/fuzz/camera_info', 'points': '/fuzz/points'}
ROUNDS = 40
BURST = 50          # defective frames per round: 2,000 in all, each with one broken part
S = 10**9
DROP_COUNTERS = ('dropped_busy', 'dropped_invalid', 'dropped_no_camera_info', 'dropped_no_extrinsics',
                 'dropped_error', 'dropped_shutdown')
BAD_PARAMETER_SETS = [('cloud.stride', 'two'), ('sync.slop', -1.0), ('model.variant', 'tiny'),
                      ('extrinsics.matrix', 'abc'), ('min_range', 2000.0), ('output.encoding', '8UC3'),
                      ('prefill_only', 'yes'), ('camera_info.wait', 5.0), ('cloud.stride', 2.5)]


def _check_real_output(frame: RealFrame, lidar: np.ndarray, depth_msg, info_msg) -> None:
    camera = frame.camera
    assert (depth_msg.width, depth_msg.height, depth_msg.encoding) == (camera.width, camera.height, '32FC1')
    assert np.allclose(np.asarray(info_msg.k).reshape(3, 3), camera.K) and info_msg.width == camera.width
    depth = np.frombuffer(bytes(depth_msg.data), np.float32).reshape(camera.height, camera.width)
    measured = lidar > 0
    relative = np.abs(depth[measured] - lidar[measured]) / lidar[measured]
    assert np.median(relative) < 0.02, np.median(relative)


def test_fuzz_malformed_messages_between_real_frames(tmp_path: Path, kitti_object_dir: Path) -> None:
    import rclpy
    from rclpy.parameter import Parameter
    from rclpy.parameter_client import AsyncParameterClient

    frame = RealFrame.from_kitti(kitti_object_dir, '000003', scale=0.5)
    T = RigidTransform.from_matrix(frame.T_cam_sensor)
    lidar = project_points(T.apply(frame.points.astype(np.float64)), frame.camera, min_range=0.1, max_range=100.0)
    node = start_node(tmp_path / 'node.log', {'prefill_only': True, 'model.device': 'cpu', 'sync.slop': 0.02,
                                              'diagnostics.period': 0.2, 'qos.input.depth': 100, **frame.node_params()},
                      TOPICS)
    if not rclpy.ok():
        rclpy.init()
    ros_node = rclpy.create_node('fuzz_driver')
    try:
        driver = FuzzDriver(ros_node, TOPICS)
        assert driver.wait_for_node(), node.output()[-2000:]
        parameters = AsyncParameterClient(ros_node, 'depth_completion')
        assert parameters.wait_for_services(timeout_sec=10.0)
        mix = MalformedMix(frame, seed=12)
        previous = 1000 * S
        for round_index in range(ROUNDS):
            stamp = previous + S
            if round_index % 10 == 9:  # a bag loop: back in time, digested before the next real frame
                assert driver.jump_back(mix, 10 * S + round_index * S), node.output()[-2000:]
            driver.publish(mix.burst(BURST, previous + S // 10, stamp - S // 10), pace_s=0.003)
            name, value = BAD_PARAMETER_SETS[round_index % len(BAD_PARAMETER_SETS)]
            future = parameters.set_parameters([Parameter(name, value=value)])
            driver.publish(mix.real(stamp))
            assert driver.spin_until(lambda s=stamp, f=future: s in driver.depth and s in driver.infos and f.done(),
                                     30.0), f'round {round_index}: {node.output()[-3000:]}'
            assert not future.result().results[0].successful, (name, value)
            _check_real_output(frame, lidar, driver.depth[stamp], driver.infos[stamp])
            assert node.returncode is None
            previous = stamp
        assert node.stop(timeout_s=20.0) == 0, node.output()[-3000:]
    finally:
        ros_node.destroy_node()
        node.stop()
    output = node.output()
    assert 'Traceback' not in output and 'terminate called' not in output, output[-3000:]
    stats = parse_final_stats(output)
    assert stats['sync_matched'] == stats['frames_out'] + sum(stats[k] for k in DROP_COUNTERS), stats
    assert stats['dropped_error'] == 0, stats
    # the node's callbacks saw (nearly) every message: the fuzzing reached it (raw CDR may not deserialize)
    assert stats['images_in'] >= 0.9 * driver.sent['image'] and stats['depth_in'] >= 0.9 * driver.sent['points']
    assert stats['frames_out'] >= ROUNDS + ROUNDS // 10
    assert sum(mix.counts.values()) >= ROUNDS * BURST and len(mix.counts) == len(mix.classes) + 1, mix.counts
    # the defects were seen as what they are (counted per kind), and the log stayed bounded
    for kind in ('bad_encoding', 'bad_camera_info', 'empty_cloud', 'size_mismatch', 'bad_layout', 'no_camera_info',
                 'zero_stamp', 'time_jump'):
        assert stats.get(f'problem_{kind}', 0) > 0, (kind, stats)
    lines = output.splitlines()
    assert max(map(len, lines)) < 2000 and len(lines) < 1500, len(lines)
