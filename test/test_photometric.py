"""Photometric self-supervision (issue 19), where the answer is known.

Synthetic street sequence (rendered depth, known motion): warping a neighbour with the true depth and motion
reproduces the target away from occlusions and borders, and the loss grows when the depth is scaled by 0.9 or
1.1 or the motion is perturbed. Real KITTI raw frames with KISS-ICP motion: warping with the accumulated LiDAR
depth matches the target better than leaving the neighbour unwarped, and better than skipping the LiDAR -> camera
conversion of the motion. Training: a few --self-supervised steps write the per-term log, plot and panel.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from depth_completion_ros.core.transforms import RigidTransform
from depth_completion_ros.data.synthetic import street_sequence
from depth_completion_ros.training.photometric import (
    Warped,
    identity_error,
    photometric_error,
    reprojection_loss,
    warp,
)

WIDTH, HEIGHT, SPEED_MPS, RATE_HZ = 416, 128, 8.0, 10.0


def _image(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float()[None] / 255.0


@pytest.fixture(scope='module')
def street() -> dict:
    """Frames t-1, t, t+1 of a synthetic drive with each neighbour's true motion T_source_target (camera)."""
    frames = list(street_sequence(5, 3, width=WIDTH, height=HEIGHT))
    # The renderer casts rays through pixel corners + 0.5 (u + 0.5); core.projection puts integer coordinates at
    # pixel centres, so the same rays have the principal point half a pixel lower-left.
    K = frames[0].camera.K.copy()
    K[0, 2] -= 0.5
    K[1, 2] -= 0.5
    # The LiDAR moves straight ahead (its x axis) at SPEED_MPS; the camera also pitches per frame (suspension),
    # which each frame's own T_cam_lidar carries.
    lidar = [RigidTransform(translation=[i * SPEED_MPS / RATE_HZ, 0.0, 0.0]) for i in range(3)]

    def motion(source: int, target: int) -> torch.Tensor:
        T = (frames[source].T_cam_lidar @ lidar[source].inverse() @ lidar[target]
             @ frames[target].T_cam_lidar.inverse())
        return torch.from_numpy(T.matrix).float()[None]

    return {'frames': frames, 'K': torch.from_numpy(K).float()[None], 'T': {s: motion(s, 1) for s in (0, 2)},
            'depth': torch.from_numpy(frames[1].gt_depth)[None, None]}


def _warp(street: dict, source: int, depth: torch.Tensor, T: torch.Tensor | None = None) -> Warped:
    return warp(_image(street['frames'][source].rgb), depth, street['K'], street['K'],
                street['T'][source] if T is None else T)


def _loss(street: dict, depth: torch.Tensor, T: dict[int, torch.Tensor] | None = None) -> float:
    target = _image(street['frames'][1].rgb)
    warped = [_warp(street, s, depth, None if T is None else T[s]) for s in (0, 2)]
    identity = identity_error(target, [_image(street['frames'][s].rgb) for s in (0, 2)])
    return float(reprojection_loss(target, warped, identity).loss)


def test_true_depth_and_motion_reproduce_the_target(street: dict) -> None:
    target = _image(street['frames'][1].rgb)
    depth = street['depth']
    for source in (0, 2):
        warped = _warp(street, source, depth)
        # Where the source sees the same surface: its own depth at the re-projection equals the point's depth
        # there (otherwise the point is occluded in the source, or the sample straddles a depth edge).
        source_depth = warp(torch.from_numpy(street['frames'][source].gt_depth)[None, None], depth, street['K'],
                            street['K'], street['T'][source]).image
        seen = (warped.valid & (depth > 0) & (source_depth > 0)
                & ((source_depth - warped.depth).abs() < 0.01 * warped.depth))
        assert seen.float().mean() > 0.6                      # most of the image is checked
        error = photometric_error(warped.image, target)[seen]
        unwarped = photometric_error(_image(street['frames'][source].rgb), target)[seen]
        l1 = (warped.image - target).abs().mean(1, keepdim=True)[seen]
        # Rendering noise (sigma 2/255 per frame) and resampling leave a floor: L1 about 0.01 (0.07 unwarped).
        # SSIM of that noise on flat surfaces is far from 1, so the SSIM term keeps a floor of its own.
        assert float(l1.median()) < 0.015 and float(l1.mean()) < 0.025
        assert float(error.mean()) < 0.5 * float(unwarped.mean())


def test_loss_grows_with_wrong_depth_or_motion(street: dict) -> None:
    depth = street['depth']
    # Sky (no depth): far away, as a network would predict it; every term then sees the same pixels.
    depth = torch.where(depth > 0, depth, torch.full_like(depth, 300.0))
    right = _loss(street, depth)
    for scale in (0.9, 1.1):
        assert _loss(street, depth * scale) > 1.15 * right, scale
    for name, delta in (('sideways 10 cm', RigidTransform(translation=[0.1, 0.0, 0.0])),
                        ('forward 15 cm', RigidTransform(translation=[0.0, 0.0, 0.15])),
                        ('yaw 0.5 deg', RigidTransform.from_matrix(_yaw(np.deg2rad(0.5))))):
        perturbed = {s: torch.from_numpy(delta.matrix @ street['T'][s][0].double().numpy()).float()[None]
                     for s in (0, 2)}
        assert _loss(street, depth, perturbed) > 1.15 * right, name


def _yaw(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s, 0.0], [0.0, 1.0, 0.0, 0.0], [-s, 0.0, c, 0.0], [0.0, 0.0, 0.0, 1.0]])


def test_kitti_raw_accumulated_depth_warp_beats_identity(shared_data: Path, tmp_path: Path, monkeypatch) -> None:
    from depth_completion_ros.core.prefill import prefill
    from depth_completion_ros.data.loaders import open_source
    from depth_completion_ros.data.sequence import open_sequence, relative_camera_pose

    monkeypatch.setenv('DEPTH_COMPLETION_CACHE', str(tmp_path))
    drive = shared_data / 'kitti_raw_2011_09_26_udacity_seq'
    sequence = open_sequence(f'kitti-raw:{drive}?frames=9-13', neighbours=1, progress=False)
    assert sequence.frame_numbers() == [10, 11, 12]          # frames 9 and 13 lack a selected neighbour
    frame = sequence[1]
    assert frame.sample.index == 11 and frame.offsets == [-1, 1]
    accumulated = open_source(f'kitti-raw-accum:{drive}?frames=11&window=2')[0].gt
    measured = torch.from_numpy(accumulated)[None, None]
    dense, _ = prefill(measured, 'ipbasic')                    # SSIM needs neighbours of each scored pixel
    target = _image(frame.sample.rgb)
    K = torch.from_numpy(frame.sample.camera.K).float()[None]
    position, sources = sequence.targets[1]
    poses, start = sequence.odometry.poses(), sequence.odometry.span.start
    for image, T, source in zip(frame.neighbours, frame.T_source_target, sources, strict=True):
        source_image = _image(image)
        warped = warp(source_image, dense, K, K, torch.from_numpy(T.matrix).float()[None])
        scored = warped.valid & (measured > 0)
        assert scored.float().sum() > 0.5 * (measured > 0).sum()
        error = float(photometric_error(warped.image, target)[scored].mean())
        unwarped = float(photometric_error(source_image, target)[scored].mean())
        # The LiDAR-frame motion used as if it were the camera's (no extrinsics): the wrong axes.
        lidar_motion = RigidTransform.from_matrix(np.linalg.solve(poses[source - start], poses[position - start]))
        raw = warp(source_image, dense, K, K, torch.from_numpy(lidar_motion.matrix).float()[None])
        unconverted = float(photometric_error(raw.image, target)[scored & raw.valid].mean())
        halved = warp(source_image, dense * 0.5, K, K, torch.from_numpy(T.matrix).float()[None])
        wrong_depth = float(photometric_error(halved.image, target)[scored & halved.valid].mean())
        # The car moves about 0.2 m a frame, so the unwarped neighbour is already close (measured: 0.84-0.87 of
        # its error with these 5-scan KISS-ICP motions); the wrong axes or half the depth are worse than no warp.
        assert error < 0.9 * unwarped and error < 0.8 * unconverted and error < 0.9 * wrong_depth, \
            (error, unwarped, unconverted, wrong_depth)
        np.testing.assert_allclose(
            T.matrix, relative_camera_pose(poses[position - start], poses[source - start],
                                           frame.sample.T_cam_points).matrix)


def test_self_supervised_training_writes_terms_plot_and_panel(shared_data: Path, tmp_path: Path,
                                                               monkeypatch) -> None:
    from depth_completion_ros.training.train import TrainConfig, train

    monkeypatch.setenv('DEPTH_COMPLETION_CACHE', str(tmp_path / 'cache'))
    drive = shared_data / 'kitti_raw_2011_09_26_udacity_seq'
    config = TrainConfig(data=f'kitti-raw:{drive}?frames=3-6', crop=(96, 256), batch=1, iterations=2, workers=0,
                         device='cpu', out_dir=str(tmp_path / 'run'), checkpoint_every=1, log_every=1,
                         self_supervised=True, init_weights='lrru_mini')
    summary = train(config, progress=False)
    run = tmp_path / 'run'
    rows = json.loads((run / 'log.json').read_text())['log']
    assert summary['iterations'] == 2 and len(rows) == 2
    for row in rows:
        photometric, sparse, smooth = (float(row[k]) for k in ('photometric', 'sparse', 'smoothness'))
        # Terms are logged as they enter the total: summed over LRRU's 4 outputs with weights 0.512 .. 1.
        assert 0 < photometric < 2.952 and sparse >= 0 and smooth >= 0
    for name in ('loss.png', 'sample_step1.png', 'sample_step2.png', 'lrru_mini.safetensors'):
        assert (run / name).stat().st_size > 1000, name


def test_self_supervised_refuses_single_views(tmp_path: Path) -> None:
    from depth_completion_ros.data.datasets import parse_mix
    from depth_completion_ros.data.errors import DataError
    from depth_completion_ros.training.self_supervised import SequenceDataset

    for spec in ('synthetic:street', f'kitti-object:{tmp_path}'):
        with pytest.raises(DataError, match='consecutive frames|real sequences'):
            SequenceDataset(parse_mix(spec), (64, 128), 4)


def test_bag_sequence_gives_the_drives_camera_motion(shared_data: Path, tmp_path: Path, monkeypatch) -> None:
    """A make-bag of KITTI raw frames 8-14 (clouds + /tf_static) yields the same KISS-ICP camera motion as the
    drive folder over the same scans, and training items."""
    from depth_completion_ros.data.datasets import parse_mix
    from depth_completion_ros.data.sequence import open_sequence
    from depth_completion_ros.tools.make_bag import make_bag
    from depth_completion_ros.training.self_supervised import SequenceDataset

    monkeypatch.setenv('DEPTH_COMPLETION_CACHE', str(tmp_path))
    drive = shared_data / 'kitti_raw_2011_09_26_udacity_seq'
    make_bag(f'kitti-raw:{drive}?frames=8-14', tmp_path / 'drive_bag', frames=7)
    bag = open_sequence(f'bag:{tmp_path / "drive_bag"}', progress=False)
    folder = open_sequence(f'kitti-raw:{drive}?frames=9-13', progress=False)   # odometry over scans 8..14 too
    assert bag.frame_numbers() == [1, 2, 3, 4, 5]
    from_bag, from_folder = bag[2], folder[1]                                   # both frame 11
    np.testing.assert_array_equal(from_bag.sample.rgb, from_folder.sample.rgb)
    for a, b in zip(from_bag.T_source_target, from_folder.T_source_target, strict=True):
        np.testing.assert_allclose(a.matrix, b.matrix, atol=2e-3)
    assert abs(from_bag.T_source_target[0].translation[2]) > 0.1             # it moved forward ~0.2 m
    item = SequenceDataset(parse_mix(f'bag:{tmp_path / "drive_bag"}'), (128, 320), 2)[0]
    assert item['neighbours'].shape == (2, 3, 375, 1242) and item['T'].shape == (2, 4, 4)


def _odometry_tf(stamp_ns: int, world_from_camera: np.ndarray, camera_frame: str) -> object:
    """A /tf message odom -> camera_frame (the transform maps camera points into odom), as odometry drivers write."""
    from depth_completion_ros.core.transforms import RigidTransform
    from depth_completion_ros.ros import bagio

    cls = bagio.bag_class
    T = RigidTransform.from_matrix(world_from_camera)
    t, q = T.translation, T.quaternion_xyzw
    stamp = cls('builtin_interfaces/msg/Time')(**bagio.stamp_of(stamp_ns))
    return cls(bagio.TF_TYPE)(transforms=[cls('geometry_msgs/msg/TransformStamped')(
        header=cls('std_msgs/msg/Header')(stamp=stamp, frame_id='odom'), child_frame_id=camera_frame,
        transform=cls('geometry_msgs/msg/Transform')(
            translation=cls('geometry_msgs/msg/Vector3')(x=float(t[0]), y=float(t[1]), z=float(t[2])),
            rotation=cls('geometry_msgs/msg/Quaternion')(x=float(q[0]), y=float(q[1]), z=float(q[2]),
                                                         w=float(q[3]))))])


def test_given_poses_and_the_bags_own_tf_odometry_give_the_same_camera_motion(shared_data: Path, tmp_path: Path,
                                                                              monkeypatch) -> None:
    """?poses=FILE (world <- LiDAR, 12 numbers a line) and a bag's /tf odometry (odom -> camera, chained with
    /tf_static camera <- lidar, written at other stamps than the clouds' and interpolated) reproduce the KISS-ICP
    motion they were made from; a pose file that misses a needed frame is one line naming it."""
    from depth_completion_ros.data.errors import DataError
    from depth_completion_ros.data.sequence import open_sequence
    from depth_completion_ros.ros import bagio
    from depth_completion_ros.tools.make_bag import make_bag

    monkeypatch.setenv('DEPTH_COMPLETION_CACHE', str(tmp_path))
    drive = shared_data / 'kitti_raw_2011_09_26_udacity_seq'
    folder = open_sequence(f'kitti-raw:{drive}?frames=9-13', progress=False)
    poses, start = folder.odometry.poses(), folder.odometry.span.start
    lines = [' '.join([str(int(folder.odometry.numbers[start + k]))] + [f'{v:.17g}' for v in pose[:3].ravel()])
             for k, pose in enumerate(poses)]
    (tmp_path / 'poses.txt').write_text('# frame r00 r01 r02 t0 ...\n' + '\n'.join(lines) + '\n')
    given = open_sequence(f'kitti-raw:{drive}?frames=9-13&poses={tmp_path / "poses.txt"}', progress=False)
    for a, b in zip(given[1].T_source_target, folder[1].T_source_target, strict=True):
        np.testing.assert_allclose(a.matrix, b.matrix, atol=1e-9)
    (tmp_path / 'short.txt').write_text('\n'.join(lines[:3]) + '\n')
    with pytest.raises(DataError, match='no pose for frame'):
        open_sequence(f'kitti-raw:{drive}?frames=9-13&poses={tmp_path / "short.txt"}', progress=False)

    make_bag(f'kitti-raw:{drive}?frames=8-14', tmp_path / 'bag', frames=7)
    kiss = open_sequence(f'bag:{tmp_path / "bag"}', progress=False)
    T_cam_lidar = kiss.bag.lidar_scan(0)[1].matrix
    camera_frame = kiss.bag.camera.frame_id
    stamps = [kiss.bag.depth_stamp_and_frame(i)[0] for i in range(len(kiss.bag))]
    with bagio.BagWriter(tmp_path / 'with_tf') as writer:
        for message in bagio.read_raw(tmp_path / 'bag'):
            writer.write_raw(message.topic, message.msgtype, message.log_time_ns, message.data)
        # odometry at every other cloud (5 Hz): the clouds between are interpolated
        for k in sorted({*range(0, len(stamps), 2), len(stamps) - 1}):
            writer.write('/tf', bagio.TF_TYPE, stamps[k], _odometry_tf(
                stamps[k], kiss.poses[k] @ np.linalg.inv(T_cam_lidar), camera_frame))
    from_tf = open_sequence(f'bag:{tmp_path / "with_tf"}?poses=tf', progress=False)
    np.testing.assert_allclose(from_tf.poses[::2], kiss.poses[::2], atol=1e-6)      # at the odometry stamps
    # between them the odometry frame (the camera here) moves linearly in time between its two neighbours
    camera = from_tf.poses @ np.linalg.inv(T_cam_lidar)                            # world <- camera per cloud
    for k in range(1, len(stamps) - 1, 2):
        fraction = (stamps[k] - stamps[k - 1]) / (stamps[k + 1] - stamps[k - 1])
        expected = camera[k - 1, :3, 3] + fraction * (camera[k + 1, :3, 3] - camera[k - 1, :3, 3])
        np.testing.assert_allclose(camera[k, :3, 3], expected, atol=1e-9)
        assert 0.3 < fraction < 0.7
    # and it stays near KISS-ICP's own pose there (which is not linear: its steps vary by ~20 %)
    assert np.abs(from_tf.poses[1::2, :3, 3] - kiss.poses[1::2, :3, 3]).max() < 0.1
    with pytest.raises(DataError, match='needs odometry on /tf'):
        open_sequence(f'bag:{tmp_path / "bag"}?poses=tf', progress=False)
