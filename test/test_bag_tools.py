"""make-bag, play and record without the ROS CLI: bag contents, byte-exact replay, loop, remap, /clock."""
from __future__ import annotations

import json
import time
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
    assert process.output().strip().count('\n') == 0 and 'is not a folder' in process.output()


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


def test_tf_static_is_recorded_with_transient_local_offered_qos(small_bag: Path) -> None:
    assert bagio.latched_topics(small_bag) == {bagio.TF_STATIC_TOPIC}  # what `ros2 bag record` stores
    metadata = yaml.safe_load((small_bag / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    tf_entry = next(t['topic_metadata'] for t in metadata['topics_with_message_count']
                    if t['topic_metadata']['name'] == bagio.TF_STATIC_TOPIC)
    (profile,) = tf_entry['offered_qos_profiles']
    assert (profile['durability'], profile['reliability'], profile['history'], profile['depth']) == (
        'transient_local', 'reliable', 'keep_last', 1)


def test_rgbd_bag_from_real_kinect_frames(nyu_dir: Path, tmp_path: Path) -> None:
    from PIL import Image as PILImage

    report = make_bag(f'rgbd:{nyu_dir}', tmp_path / 'kinect', intrinsics=[518.0, 519.0, 325.5, 253.5])
    assert report['frames'] == 5
    topics = bagio.bag_topics(tmp_path / 'kinect')
    for topic, msgtype in ((bagio.IMAGE_TOPIC, bagio.IMAGE_TYPE), (bagio.CAMERA_INFO_TOPIC, bagio.CAMERA_INFO_TYPE),
                           (bagio.DEPTH_TOPIC, bagio.IMAGE_TYPE),
                           (bagio.DEPTH_CAMERA_INFO_TOPIC, bagio.CAMERA_INFO_TYPE)):
        assert topics[topic] == (msgtype, 5)
    assert bagio.POINTS_TOPIC not in topics and not (tmp_path / 'kinect' / bagio.PARAMS_FILE_NAME).exists()
    depth_msg = next(m for _r, m in bagio.read_messages(tmp_path / 'kinect', [bagio.DEPTH_TOPIC]))
    info = next(m for _r, m in bagio.read_messages(tmp_path / 'kinect', [bagio.CAMERA_INFO_TOPIC]))
    assert depth_msg.encoding == '16UC1' and (depth_msg.width, depth_msg.height) == (640, 480)
    original = np.asarray(PILImage.open(nyu_dir / 'depth' / '1.pgm')).astype(np.uint16)
    np.testing.assert_array_equal(np.frombuffer(depth_msg.data.tobytes(), np.uint16).reshape(480, 640), original)
    assert (info.k[0], info.k[2], info.k[5]) == (518.0, 325.5, 253.5)


@pytest.mark.parametrize('encoding', ['jpeg', 'yuv422', 'bayer_grbg8'])
def test_make_bag_image_encodings(small_bag: Path, tmp_path: Path, encoding: str) -> None:
    from depth_completion_ros.core.conversions import image_to_rgb

    make_bag('synthetic', tmp_path / encoding, frames=2, width=160, height=48, seed=5, image_encoding=encoding)
    topic = bagio.IMAGE_TOPIC + ('/compressed' if encoding == 'jpeg' else '')
    assert topic in bagio.bag_topics(tmp_path / encoding)
    original = next(m for _r, m in bagio.read_messages(small_bag, [bagio.IMAGE_TOPIC]))
    stored = next(m for _r, m in bagio.read_messages(tmp_path / encoding, [topic]))
    assert getattr(stored, 'encoding', 'jpeg') == encoding or encoding == 'jpeg'
    difference = np.abs(image_to_rgb(stored).astype(int) - image_to_rgb(original).astype(int)).mean()
    assert difference < 8.0, difference


@pytest.mark.ros
def test_play_offers_latched_topics_transient_local_so_late_subscribers_get_them(tmp_path: Path) -> None:
    import rclpy
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from std_msgs.msg import String

    bag = tmp_path / 'latched'
    string_cls = bagio.bag_class('std_msgs/msg/String')
    with bagio.BagWriter(bag) as writer:
        writer.write('/note', 'std_msgs/msg/String', 1_000_000_000, string_cls(data='static'), latched=True)
        writer.write('/ticks', 'std_msgs/msg/String', 1_000_000_000, string_cls(data='0'))
        writer.write('/ticks', 'std_msgs/msg/String', 4_000_000_000, string_cls(data='3'))  # keeps play alive 3 s
    player = RosProcess('play', module_args('depth_completion_ros.cli', 'play', str(bag)), tmp_path / 'play.log')
    if not rclpy.ok():
        rclpy.init()
    node = rclpy.create_node('late_listener')
    try:
        time.sleep(1.5)  # the latched message went out before anyone listened
        assert player.returncode is None, player.output()
        received: dict[str, list[str]] = {'transient_local': [], 'volatile': []}
        for name, durability in (('transient_local', DurabilityPolicy.TRANSIENT_LOCAL),
                                 ('volatile', DurabilityPolicy.VOLATILE)):
            profile = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=durability)
            node.create_subscription(String, '/note', lambda msg, key=name: received[key].append(msg.data), profile)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and not received['transient_local']:
            rclpy.spin_once(node, timeout_sec=0.1)
        assert received['transient_local'] == ['static']
        assert received['volatile'] == []  # a volatile subscriber cannot get it: it was transient local
    finally:
        node.destroy_node()
        player.stop()


def test_a_bag_whose_frames_change_size_reads_each_with_its_own_camera_info(kitti_object_dir: Path,
                                                                            tmp_path: Path) -> None:
    """KITTI object frames are 1242 or 1224 pixels wide; a bag of them used to be read with the first frame's
    camera_info for every frame (eval: 'rgb must be HxWx3 matching sparse (370, 1224), got (375, 1242, 3)')."""
    from depth_completion_ros.core.kitti import kitti_sparse_depth, load_kitti_object_frame
    from depth_completion_ros.data.loaders import RosbagSource

    make_bag(f'kitti-object:{kitti_object_dir}', tmp_path / 'kitti', frames=4)
    source = RosbagSource(tmp_path / 'kitti')
    sizes = set()
    for index in range(len(source)):
        sample = source[index]
        assert sample.rgb.shape[:2] == sample.sparse.shape == (sample.camera.height, sample.camera.width)
        sizes.add(sample.sparse.shape)
    assert len(sizes) >= 2                                       # KITTI frames of several sizes
    # each frame's projection is the loader's own for that frame (same pixels measured)
    names = sorted(p.stem for p in (kitti_object_dir / 'image_2').glob('*.png'))[:4]
    direct = {kitti_sparse_depth(load_kitti_object_frame(kitti_object_dir, n)).shape for n in names}
    assert direct == sizes
