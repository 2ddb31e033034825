"""Loaders on the real frames in ../shared/data and on small layouts written to a temp dir (KITTI-DC, RGB-D,
rosbag2), plus the training dataset mix."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from depth_completion_ros.data.holdout import hide_points, sample_points
from depth_completion_ros.data.loaders import (
    KittiDepthCompletionFolder,
    KittiObjectFolder,
    RGBDFolder,
    RosbagSource,
    open_source,
)

NYU_INTRINSICS = (518.0, 519.0, 325.5, 253.5)


def test_kitti_object_folder_real_frames(kitti_object_dir: Path) -> None:
    source = open_source(f'kitti-object:{kitti_object_dir}')
    assert isinstance(source, KittiObjectFolder) and len(source) == 4
    sample = source[1]
    assert sample.name == '000003' and sample.gt is None
    assert sample.rgb.shape == (375, 1242, 3) and sample.sparse.shape == (375, 1242)
    measured = sample.sparse > 0
    assert 0.02 < measured.mean() < 0.06                      # ~4 % of the pixels, as velodyne_raw
    assert 1.0 < np.median(sample.sparse[measured]) < 40.0    # metres
    assert not measured[:80].any()                            # nothing above the LiDAR's field of view
    assert sample.camera.fx == pytest.approx(721.5377)


def test_rgbd_folder_nyu_with_explicit_intrinsics(nyu_dir: Path) -> None:
    with pytest.raises(ValueError, match='intrinsics'):
        RGBDFolder(nyu_dir)                                   # the shared folder has no intrinsics.json
    source = open_source(f'rgbd:{nyu_dir}', intrinsics=NYU_INTRINSICS, depth_scale=1000.0)
    assert len(source) == 5
    sample = source[0]
    assert sample.name == '1' and sample.rgb.shape == (480, 640, 3)
    valid = sample.sparse > 0
    assert 0.6 < valid.mean() < 0.75                          # README: 68.1 % valid on frame 1
    assert sample.sparse[valid].min() == pytest.approx(0.95, abs=0.01)
    assert sample.sparse.max() == pytest.approx(9.823, abs=0.01)
    assert sample.camera.fx == 518.0 and sample.camera.cy == 253.5


def test_rgbd_folder_with_intrinsics_json(tmp_path: Path) -> None:
    (tmp_path / 'color').mkdir()
    (tmp_path / 'depth').mkdir()
    depth_units = np.full((6, 8), 5000, np.uint16)            # TUM-style: 5000 units per metre -> 1 m
    depth_units[0, 0] = 0
    for name in ('10', '2'):                                  # natural order: 2 before 10
        Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(tmp_path / 'color' / f'{name}.png')
        Image.fromarray(depth_units).save(tmp_path / 'depth' / f'{name}.png')
    (tmp_path / 'intrinsics.json').write_text(json.dumps({'fx': 5, 'fy': 5, 'cx': 4, 'cy': 3, 'depth_scale': 5000}))
    source = RGBDFolder(tmp_path)
    assert [c.name for c, _ in source.pairs] == ['2.png', '10.png']
    sample = source[0]
    assert sample.sparse[1, 1] == pytest.approx(1.0) and sample.sparse[0, 0] == 0.0


def _write_uint16(path: Path, metres: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.round(metres * 256).astype(np.uint16)).save(path)


def test_kitti_depth_completion_layouts(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    gt = rng.uniform(2, 80, (16, 24)).astype(np.float32)
    sparse = np.where(rng.random(gt.shape) < 0.1, gt, 0).astype(np.float32)
    rgb = rng.integers(0, 255, (16, 24, 3), dtype=np.uint8)
    # val_selection_cropped with official names
    sel = tmp_path / 'val_selection_cropped'
    stem = '2011_09_26_drive_0002_sync_{}_0000000005_image_02'
    (sel / 'image').mkdir(parents=True)
    Image.fromarray(rgb).save(sel / 'image' / (stem.format('image') + '.png'))
    _write_uint16(sel / 'velodyne_raw' / (stem.format('velodyne_raw') + '.png'), sparse)
    _write_uint16(sel / 'groundtruth_depth' / (stem.format('groundtruth_depth') + '.png'), gt)
    (sel / 'intrinsics').mkdir()
    (sel / 'intrinsics' / (stem.format('image') + '.txt')).write_text('721.5 0 12 0 721.5 8 0 0 1')
    source = open_source(f'kitti-dc:{tmp_path}')
    assert isinstance(source, KittiDepthCompletionFolder) and len(source) == 1
    sample = source[0]
    np.testing.assert_allclose(sample.gt, gt, atol=1 / 512)
    np.testing.assert_allclose(sample.sparse, sparse, atol=1 / 512)
    assert sample.camera.cx == 12 and sample.camera.fx == 721.5
    # train split with proj_depth folders and the RGB inside the drive folder
    drive = tmp_path / 'kitti_depth' / 'train' / '2011_09_26_drive_0001_sync'
    _write_uint16(drive / 'proj_depth' / 'velodyne_raw' / 'image_02' / '0000000005.png', sparse)
    _write_uint16(drive / 'proj_depth' / 'groundtruth' / 'image_02' / '0000000005.png', gt)
    (drive / 'image_02' / 'data').mkdir(parents=True)
    Image.fromarray(rgb).save(drive / 'image_02' / 'data' / '0000000005.png')
    train = KittiDepthCompletionFolder(tmp_path / 'kitti_depth', split='train')
    assert len(train) == 1
    np.testing.assert_allclose(train[0].gt, gt, atol=1 / 512)


def _write_bag(path: Path, frame, n_messages: int = 2) -> None:
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_typestore

    from depth_completion_ros.core.conversions import arrays_to_pointcloud2, numpy_to_image

    ts = get_typestore(Stores.ROS2_HUMBLE)
    types = {name: ts.types[name] for name in (
        'sensor_msgs/msg/Image', 'sensor_msgs/msg/CameraInfo', 'sensor_msgs/msg/PointCloud2',
        'tf2_msgs/msg/TFMessage', 'geometry_msgs/msg/TransformStamped', 'geometry_msgs/msg/Transform',
        'geometry_msgs/msg/Vector3', 'geometry_msgs/msg/Quaternion', 'std_msgs/msg/Header',
        'builtin_interfaces/msg/Time')}
    with Writer(path, version=8) as writer:
        conns = {topic: writer.add_connection(topic, msgtype, typestore=ts) for topic, msgtype in (
            ('/camera/image_raw', 'sensor_msgs/msg/Image'), ('/camera/camera_info', 'sensor_msgs/msg/CameraInfo'),
            ('/lidar/points', 'sensor_msgs/msg/PointCloud2'), ('/tf_static', 'tf2_msgs/msg/TFMessage'))}
        T = frame.T_cam_lidar
        q, t = T.quaternion_xyzw, T.translation
        tf = types['geometry_msgs/msg/TransformStamped'](
            header=types['std_msgs/msg/Header'](stamp=types['builtin_interfaces/msg/Time'](sec=0, nanosec=0),
                                                frame_id='camera'),
            child_frame_id='lidar',
            transform=types['geometry_msgs/msg/Transform'](
                translation=types['geometry_msgs/msg/Vector3'](x=t[0], y=t[1], z=t[2]),
                rotation=types['geometry_msgs/msg/Quaternion'](x=q[0], y=q[1], z=q[2], w=q[3])))
        writer.write(conns['/tf_static'], 0, ts.serialize_cdr(types['tf2_msgs/msg/TFMessage'](transforms=[tf]),
                                                              'tf2_msgs/msg/TFMessage'))
        for i in range(n_messages):
            stamp = (1 + i // 10, (i % 10) * 100_000_000)
            ns = stamp[0] * 10**9 + stamp[1]
            image = numpy_to_image(frame.rgb, 'rgb8', msg_cls=types['sensor_msgs/msg/Image'], frame_id='camera',
                                   stamp=stamp)
            info = frame.camera.to_camera_info(stamp=stamp, msg_cls=types['sensor_msgs/msg/CameraInfo'])
            cloud = arrays_to_pointcloud2(frame.points[:, :3], msg_cls=types['sensor_msgs/msg/PointCloud2'],
                                          frame_id='lidar', stamp=(stamp[0], stamp[1] + 3_000_000))
            for topic, msg in (('/camera/image_raw', image), ('/camera/camera_info', info), ('/lidar/points', cloud)):
                writer.write(conns[topic], ns, ts.serialize_cdr(msg, conns[topic].msgtype))


def test_rosbag_source_pairs_and_projects_with_tf_static(tmp_path: Path) -> None:
    from depth_completion_ros.data.synthetic import street_frame

    frame = street_frame(11, width=160, height=64)
    frame.camera.frame_id = 'camera'
    bag = tmp_path / 'bag'
    _write_bag(bag, frame)
    source = open_source(f'bag:{bag}')
    assert isinstance(source, RosbagSource)
    assert source.image_topic == '/camera/image_raw' and source.points_topic == '/lidar/points'
    assert len(source) == 2
    sample = source[0]
    np.testing.assert_array_equal(sample.rgb, frame.rgb)
    assert sample.gt is None
    agree = (sample.sparse > 0) == (frame.sparse > 0)
    assert agree.mean() > 0.999
    np.testing.assert_allclose(sample.sparse, frame.sparse, atol=1e-3)


def test_hide_points_partitions_measurements() -> None:
    rng = np.random.default_rng(1)
    sparse = np.where(rng.random((40, 50)) < 0.1, rng.uniform(1, 50, (40, 50)), 0).astype(np.float32)
    visible, hidden = hide_points(sparse, 0.2, seed=3)
    assert not np.any((visible > 0) & (hidden > 0))
    np.testing.assert_array_equal(visible + hidden, sparse)
    assert (hidden > 0).sum() == round(0.2 * (sparse > 0).sum())
    again = hide_points(sparse, 0.2, seed=3)[1]
    np.testing.assert_array_equal(hidden, again)
    sampled = sample_points(sparse, 25, seed=0)
    assert (sampled > 0).sum() == 25 and np.all(sampled[sampled > 0] == sparse[sampled > 0])


def test_mixed_dataset_items(kitti_object_dir: Path, nyu_dir: Path) -> None:
    import torch

    from depth_completion_ros.data.datasets import MixedDepthDataset, parse_mix

    mix = parse_mix(f'synthetic:street=1,synthetic:room=1,kitti-object:{kitti_object_dir}=1,rgbd:{nyu_dir}=1')
    assert [s.weight for s in mix] == [1, 1, 1, 1]
    dataset = MixedDepthDataset(mix, (48, 96), length=8, seed=5, rgbd_intrinsics=NYU_INTRINSICS)
    items = [dataset[i] for i in range(8)]
    for item in items:
        assert item['rgb'].shape == (3, 48, 96) and item['sparse'].shape == (1, 48, 96)
        assert item['gt'].shape == (1, 48, 96) and item['K'].shape == (3, 3)
        assert item['rgb'].max() <= 255 and torch.all(item['gt'] >= 0)
    torch.testing.assert_close(dataset[3]['gt'], items[3]['gt'])     # items are a function of (seed, index)
