"""make-bag, play and record without the ROS CLI: bag contents, byte-exact replay, loop, remap, /clock."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from depth_completion_ros.core.projection import project_points
from depth_completion_ros.core.transforms import RigidTransform
from depth_completion_ros.data.synthetic import street_sequence
from depth_completion_ros.ros import bagio
from depth_completion_ros.ros.runtime import RosProcess, module_args
from depth_completion_ros.tools.make_bag import make_bag


@pytest.fixture(scope='module')
def small_bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp('bags') / 'synthetic'
    make_bag('synthetic', out, frames=3, width=160, height=48, seed=5)
    return out


def test_synthetic_bag_contents_and_static_extrinsics(small_bag: Path) -> None:
    topics = bagio.bag_topics(small_bag)
    assert topics[bagio.IMAGE_TOPIC] == (bagio.IMAGE_TYPE, 3)
    assert topics[bagio.CAMERA_INFO_TOPIC] == (bagio.CAMERA_INFO_TYPE, 3)
    assert topics[bagio.POINTS_TOPIC] == (bagio.POINTS_TYPE, 3)
    assert topics[bagio.GT_DEPTH_TOPIC] == (bagio.IMAGE_TYPE, 3)
    assert topics[bagio.TF_STATIC_TOPIC] == (bagio.TF_TYPE, 1)

    params = yaml.safe_load((small_bag / bagio.PARAMS_FILE_NAME).read_text())['/**']['ros__parameters']
    T_params = RigidTransform.from_matrix(np.asarray(params['extrinsics.matrix']).reshape(4, 4))
    (_raw, tf_msg), = bagio.read_messages(small_bag, [bagio.TF_STATIC_TOPIC])
    transform = tf_msg.transforms[0]
    assert (transform.header.frame_id, transform.child_frame_id) == ('camera_optical_frame', 'lidar')
    T_tf = RigidTransform.from_transform_msg(transform.transform)
    np.testing.assert_allclose(T_tf.matrix, T_params.matrix, atol=1e-9)

    # with the one static transform, every frame's points land where the generator's own projection put them
    frames = list(street_sequence(5, 3, width=160, height=48))
    clouds = [m for _r, m in bagio.read_messages(small_bag, [bagio.POINTS_TOPIC])]
    images = [m for _r, m in bagio.read_messages(small_bag, [bagio.IMAGE_TOPIC])]
    for frame, cloud, image in zip(frames, clouds, images, strict=True):
        points = np.frombuffer(cloud.data.tobytes(), '<f4').reshape(-1, 4)[:, :3]
        sparse = project_points(T_params.apply(points.astype(np.float64)), frame.camera, min_range=0.1)
        np.testing.assert_allclose(sparse, frame.sparse, atol=1e-3)
        rgb = np.frombuffer(image.data.tobytes(), np.uint8).reshape(48, 160, 3)
        np.testing.assert_array_equal(rgb, frame.rgb)
        assert image.header.stamp.sec * 10**9 + image.header.stamp.nanosec > 0
        lidar_stamp = cloud.header.stamp.sec * 10**9 + cloud.header.stamp.nanosec
        image_stamp = image.header.stamp.sec * 10**9 + image.header.stamp.nanosec
        assert 0 < lidar_stamp - image_stamp < 50_000_000  # within the node's default slop


def test_kitti_bag_keeps_each_frames_size_and_intrinsics(kitti_object_dir: Path, tmp_path: Path) -> None:
    report = make_bag(f'kitti-object:{kitti_object_dir}', tmp_path / 'kitti', frames=2)
    assert report['frames'] == 2
    infos = [m for _r, m in bagio.read_messages(tmp_path / 'kitti', [bagio.CAMERA_INFO_TOPIC])]
    assert [(i.width, i.height) for i in infos] == [(1224, 370), (1242, 375)]  # README of the data
    assert infos[0].k[0] == pytest.approx(707.0493) and infos[1].k[0] == pytest.approx(721.5377)


def test_make_bag_cli_errors_are_one_line(tmp_path: Path) -> None:
    process = RosProcess('make-bag', module_args('depth_completion_ros.cli', 'make-bag', '--from', 'kitti-object:'
                                                 + str(tmp_path / 'missing'), '--out', str(tmp_path / 'b')),
                         tmp_path / 'log')
    assert process.wait(60) == 2
    assert process.output().strip().count('\n') == 0 and 'no KITTI frames' in process.output()


def _same_cdr(original: bytes, received: bytes) -> bool:
    short, long = sorted((bytes(original), bytes(received)), key=len)
    return long.startswith(short) and len(long) - len(short) < 4 and not any(long[len(short):])


@pytest.mark.ros
def test_play_record_roundtrip_is_byte_exact_with_loop_remap_and_clock(small_bag: Path, tmp_path: Path) -> None:
    out = tmp_path / 'recorded'
    recorder = RosProcess('record', module_args(
        'depth_completion_ros.cli', 'record', '/replayed/image:sensor_msgs/msg/Image',
        f'{bagio.POINTS_TOPIC}:sensor_msgs/msg/PointCloud2', '/clock:rosgraph_msgs/msg/Clock', '--out', str(out),
        '--qos', 'reliable', '--idle-timeout', '3', '--idle-topics', '/replayed/image'), tmp_path / 'record.log')
    assert recorder.wait_for_output('READY', 30), recorder.output()
    player = RosProcess('play', module_args(
        'depth_completion_ros.cli', 'play', str(small_bag), '--rate', '2', '--loop', '--loops', '2', '--clock',
        '--topics', bagio.IMAGE_TOPIC, bagio.POINTS_TOPIC, '--remap', f'{bagio.IMAGE_TOPIC}:=/replayed/image',
        '--wait-for-subscribers', '20', '--report', str(tmp_path / 'play.json')), tmp_path / 'play.log')
    assert player.wait(60) == 0, player.output()
    assert recorder.wait(30) == 0, recorder.output()
    recorder.stop()
    report = json.loads((tmp_path / 'play.json').read_text())
    assert report['published'] == {bagio.IMAGE_TOPIC: 6, bagio.POINTS_TOPIC: 6}  # two passes of 3

    # serialized bytes went through untouched (the middleware may pad the end to 4 bytes)
    for source_topic, recorded_topic in ((bagio.IMAGE_TOPIC, '/replayed/image'),
                                         (bagio.POINTS_TOPIC, bagio.POINTS_TOPIC)):
        original = [r.data for r in bagio.read_raw(small_bag, [source_topic])] * 2
        replayed = [r.data for r in bagio.read_raw(out, [recorded_topic])]
        assert len(replayed) == len(original)
        assert all(_same_cdr(a, b) for a, b in zip(original, replayed, strict=True))
    clock = [m.clock.sec * 10**9 + m.clock.nanosec for _r, m in bagio.read_messages(out, ['/clock'])]
    first_stamp = next(bagio.read_raw(small_bag, [bagio.IMAGE_TOPIC])).log_time_ns
    assert clock and min(clock) >= first_stamp - 1 and max(clock) <= first_stamp + 300_000_000
