"""The loaders of the second batch of real frames (KITTI raw drive, velodyne_reduced, ground-truth-only
KITTI-DC, 7-Scenes, RGB-D camera files) on the frames in ../shared/data, the --data spec syntax and DataError."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from depth_completion_ros.core.kitti import read_calib
from depth_completion_ros.data.errors import DataError
from depth_completion_ros.data.loaders import RGBDFolder, open_source
from depth_completion_ros.data.quality import edge_alignment_px, line_structure
from depth_completion_ros.data.spec import FrameSelection

KITTI_CAMERA_HEIGHT_M = 1.65   # KITTI setup: camera 1.65 m above the road


@pytest.fixture(scope='module')
def raw_dir(shared_data: Path) -> Path:
    return shared_data / 'kitti_raw_2011_09_26_udacity_seq'


def test_frame_selection_syntax() -> None:
    selection = FrameSelection.parse('0-3, 10-20:5,40-')
    assert [n for n in range(60) if n in selection] == [0, 1, 2, 3, 10, 15, 20, *range(40, 60)]
    assert 7 in FrameSelection.parse('')
    for bad in ('a-b', '5-2', '-', '1-2:0'):
        with pytest.raises(DataError, match='frames='):
            FrameSelection.parse(bad)


def test_kitti_raw_drive_projects_with_raw_calibration(raw_dir: Path) -> None:
    source = open_source(f'kitti-raw:{raw_dir}')
    assert len(source) == 50                                   # 0..39 consecutive + 40..76 every 4th
    held_out = open_source(f'kitti-raw:{raw_dir}?frames=40-')
    assert [s for s in held_out.frame_numbers()] == list(range(40, 77, 4))
    train = open_source(f'kitti-raw:{raw_dir}?frames=0-35')
    sample = train[12]
    assert sample.index == 12 and sample.name == '0000000012'
    assert sample.rgb.shape == (375, 1242, 3) and sample.points.shape[1] == 4 and len(sample.points) > 100_000
    # The same projection written out as the devkit's P_rect_02 · R_rect_00 · [R|T] on homogeneous points.
    date = next(raw_dir.glob('2011_09_26'))
    cam, velo = read_calib(date / 'calib_cam_to_cam.txt'), read_calib(date / 'calib_velo_to_cam.txt')
    R0 = np.eye(4)
    R0[:3, :3] = cam['R_rect_00']
    Tr = np.eye(4)
    Tr[:3, :3], Tr[:3, 3] = velo['R'].reshape(3, 3), velo['T']
    xyz1 = np.hstack([sample.points[:, :3].astype(np.float64), np.ones((len(sample.points), 1))])
    uvw = (cam['P_rect_02'] @ R0 @ Tr @ xyz1.T).T
    ahead = uvw[:, 2] > 1.0
    u, v = np.floor(uvw[ahead, :2] / uvw[ahead, 2:] + 0.5).astype(int).T
    inside = (u >= 0) & (u < 1242) & (v >= 0) & (v < 375)
    expected = np.full((375, 1242), np.inf)
    np.minimum.at(expected, (v[inside], u[inside]), uvw[ahead, 2][inside])
    measured = sample.sparse > 0
    np.testing.assert_array_equal(measured, np.isfinite(expected))
    np.testing.assert_allclose(sample.sparse[measured], expected[measured], atol=1e-3)
    # Known geometry: the road below the camera lies ~1.65 m down (camera Y axis points down).
    rows, cols = np.nonzero(measured[340:, 500:740])
    rows, cols = rows + 340, cols + 500
    height = (rows - sample.camera.cy) * sample.sparse[rows, cols] / sample.camera.fy
    assert np.median(height) == pytest.approx(KITTI_CAMERA_HEIGHT_M, abs=0.12)


def test_kitti_object_extra_with_velodyne_reduced(shared_data: Path) -> None:
    source = open_source(f'kitti-object:{shared_data / "kitti_object_extra"}')
    assert source.frame_ids == ['training/000114', 'training/000134', 'testing/000002']
    full, reduced = source[0], source[1]
    assert reduced.rgb.shape == (370, 1224, 3) and reduced.index == 134
    assert len(full.points) > 100_000 and 10_000 < len(reduced.points) < 25_000
    assert (reduced.points[:, 0] > 0).all()                    # frustum only: everything ahead of the car
    for sample in (full, reduced):                              # the camera sees the same density either way
        density = (sample.sparse > 0).mean()
        assert 0.03 < density < 0.06
        assert 2.0 < np.median(sample.sparse[sample.sparse > 0]) < 40.0


def test_kitti_dc_ground_truth_only_with_simulated_lines(shared_data: Path, raw_dir: Path) -> None:
    folder = shared_data / 'kitti_dc_2011_09_30_weison'
    with pytest.raises(DataError, match='kitti-dc-gt'):        # kitti-dc needs velodyne_raw and says what to use
        open_source(f'kitti-dc:{folder}')
    source = open_source(f'kitti-dc-gt:{folder}?frames=70-75')
    assert [item[2] for item in source.items] == [71, 72, 73, 75]
    sample = source[0]
    assert sample.camera.fx == pytest.approx(707.0912) and sample.camera.cy == pytest.approx(183.1104)
    valid = sample.gt > 0
    assert 0.17 < valid.mean() < 0.21 and sample.gt.max() < 85.0   # PROVENANCE: 18.9 % valid, max 21148/256 m
    measured = sample.sparse > 0
    assert not (measured & ~valid).any()                             # input only where the ground truth is
    np.testing.assert_array_equal(sample.sparse[measured], sample.gt[measured])
    # Line structure close to real projected HDL-64E scans (same crop, per-column statistics).
    simulated = line_structure(sample.sparse)
    real = line_structure(open_source(f'kitti-raw:{raw_dir}?frames=10')[0].sparse)
    assert simulated['density'] == pytest.approx(real['density'], rel=0.3)
    assert simulated['points_per_column'] == pytest.approx(real['points_per_column'], rel=0.3)
    assert simulated['vertical_gap_px'] == pytest.approx(real['vertical_gap_px'], rel=0.3)


def test_sevenscenes_registration_aligns_depth_with_colour(shared_data: Path) -> None:
    folder = shared_data / 'sevenscenes_redkitchen'
    registered = open_source(f'7scenes:{folder}?frames=150-179:10')
    raw = open_source(f'7scenes:{folder}?frames=150-179:10&registration=off')
    assert len(registered) == 3 and registered[0].name == 'frame-000150' and registered[0].index == 150
    before, after = [], []
    for i in range(len(registered)):
        sample, unregistered = registered[i], raw[i]
        assert sample.camera.fx == 530.0 and unregistered.camera.fx == 585.0
        valid = sample.sparse > 0
        assert 0.6 < valid.mean() < 0.8                   # the colour camera sees wider: its border has no depth
        assert 0.5 < np.median(sample.sparse[valid]) < 4.0 and sample.sparse.max() < 8.0   # metres
        before.append(edge_alignment_px(unregistered.rgb, unregistered.sparse))
        after.append(edge_alignment_px(sample.rgb, sample.sparse))
    assert np.mean(after) < 2.5 and np.mean(before) > 4.0          # depth edges land on colour edges after registration


def test_rgbd_folder_honours_open3d_camera_file(shared_data: Path, nyu_dir: Path) -> None:
    source = open_source(f'rgbd:{shared_data / "open3d_iclnuim_synthetic"}')
    sample = source[0]
    assert (sample.camera.fx, sample.camera.fy, sample.camera.cx, sample.camera.cy) == (525.0, 525.0, 319.5, 239.5)
    with pytest.raises(DataError, match='--intrinsics'):
        RGBDFolder(nyu_dir)
    spec_intrinsics = open_source(f'rgbd:{nyu_dir}?intrinsics=518,519,325.5,253.5&frames=2-3')
    assert len(spec_intrinsics) == 2 and spec_intrinsics[0].camera.fy == 519.0


def test_spec_errors_name_the_fix(tmp_path: Path, raw_dir: Path) -> None:
    cases = [('nope:/x', 'kind one of'), (f'kitti-raw:{tmp_path / "missing"}', 'not a folder'),
             (f'kitti-raw:{tmp_path}', 'no drive'), (f'kitti-raw:{raw_dir}?frame=1', 'unknown option'),
             (f'kitti-raw:{raw_dir}?frames=100-', 'no frame'), (f'7scenes:{tmp_path}', 'camera-intrinsics.txt'),
             (f'kitti-object:{tmp_path}', 'no KITTI frames'), (f'rgbd:{tmp_path}', 'color/ and depth/'),
             (f'kitti-raw:{raw_dir}?registration=off', '7scenes only'), ('kitti-dc-gt:', 'no location')]
    for spec, message in cases:
        with pytest.raises(DataError, match=message):
            open_source(spec)


def test_mix_of_new_sources_feeds_training(shared_data: Path) -> None:
    from depth_completion_ros.data.datasets import MixedDepthDataset, parse_mix

    raw = shared_data / 'kitti_raw_2011_09_26_udacity_seq'
    accumulated = parse_mix(f'kitti-raw-accum:{raw}?frames=10&window=1=0.5,kitti-raw:{raw}?frames=0-35,40')
    assert [(s.spec, s.weight) for s in accumulated] == [(f'kitti-raw-accum:{raw}?frames=10&window=1', 0.5),
                                                         (f'kitti-raw:{raw}?frames=0-35,40', 1.0)]
    mix = parse_mix(f'7scenes:{shared_data / "sevenscenes_redkitchen"}?frames=0-100,150=2,'
                    f'kitti-dc-gt:{shared_data / "kitti_dc_2011_09_30_weison"}')
    assert [(s.spec.split(':')[0], s.weight) for s in mix] == [('7scenes', 2.0), ('kitti-dc-gt', 1.0)]
    dataset = MixedDepthDataset(mix, (128, 256), length=6, seed=3, augment=False)
    kinds: dict[float, list] = {530.0: [], 707.0912: []}    # fx tells the source apart
    for i in range(len(dataset)):
        item = dataset[i]
        kinds[round(float(item['K'][0, 0]), 4)].append(item)
    assert all(kinds.values())
    for item in kinds[530.0]:                              # Kinect: a few hundred sampled points, dense target
        points, target = int((item['sparse'] > 0).sum()), int((item['gt'] > 0).sum())
        assert 8 <= points < 0.01 * target
    for item in kinds[707.0912]:                           # simulated LiDAR lines in, ground truth out
        assert 0 < (item['sparse'] > 0).sum() < 0.6 * (item['gt'] > 0).sum()
    with pytest.raises(DataError, match='bad data mix'):
        parse_mix('synthetic:street=0')
