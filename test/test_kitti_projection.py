"""Real KITTI frames: Velodyne projection against an independent P2 * R0_rect * Tr_velo_to_cam computation."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from depth_completion_ros.core.kitti import (
    kitti_sparse_depth,
    list_kitti_object_frames,
    load_kitti_object_frame,
    read_calib,
)
from depth_completion_ros.core.projection import backproject, project_points

# From ../shared/data/kitti_object/README.md: image size and points landing in the image (z > 0.1 m)
README_TABLE = {
    '000000': ((370, 1224), 20285),
    '000003': ((375, 1242), 18911),
    '000006': ((374, 1238), 19473),
    '000142': ((375, 1242), 16565),
}


def independent_sparse_depth(root: Path, frame_id: str) -> tuple[np.ndarray, int]:
    """Written from the README recipe only: p = P2 R0 Tr X in float64, nearest point per pixel.

    Returns the depth map and the number of points that land in the image (before the z-buffer).
    """
    lines = dict(line.split(':', 1) for line in (root / 'calib' / f'{frame_id}.txt').read_text().splitlines()
                 if ':' in line)
    P2 = np.array(lines['P2'].split(), float).reshape(3, 4)
    R0 = np.eye(4)
    R0[:3, :3] = np.array(lines['R0_rect'].split(), float).reshape(3, 3)
    Tr = np.eye(4)
    Tr[:3, :] = np.array(lines['Tr_velo_to_cam'].split(), float).reshape(3, 4)
    scan = np.fromfile(root / 'velodyne' / f'{frame_id}.bin', dtype=np.float32).reshape(-1, 4)
    homogeneous = np.c_[scan[:, :3].astype(np.float64), np.ones(len(scan))]
    p = (P2 @ R0 @ Tr @ homogeneous.T).T
    from PIL import Image

    width, height = Image.open(root / 'image_2' / f'{frame_id}.png').size
    in_front = p[:, 2] > 0.1
    p = p[in_front]
    u = np.floor(p[:, 0] / p[:, 2] + 0.5).astype(int)
    v = np.floor(p[:, 1] / p[:, 2] + 0.5).astype(int)
    inside = (u >= 0) & (u < width) & (v >= 0) & (v < height)
    u, v, z = u[inside], v[inside], p[inside, 2].astype(np.float32)
    # nearest wins: sort by (pixel, depth) and keep the first entry of every pixel
    pixel = v * width + u
    by_pixel = np.lexsort((z, pixel))
    first = np.r_[True, np.diff(pixel[by_pixel]) != 0]
    exact = np.zeros(height * width, np.float32)
    exact[pixel[by_pixel][first]] = z[by_pixel][first]
    return exact.reshape(height, width), int(inside.sum())


@pytest.fixture(scope='module')
def frame_ids(kitti_object_dir: Path) -> list[str]:
    ids = list_kitti_object_frames(kitti_object_dir)
    if not ids:
        pytest.skip(f'no KITTI frames under {kitti_object_dir}')
    return ids


def test_all_readme_frames_are_listed(kitti_object_dir: Path, frame_ids: list[str]) -> None:
    assert set(README_TABLE) <= set(frame_ids)


@pytest.mark.parametrize('frame_id', sorted(README_TABLE))
def test_projection_matches_independent_computation(kitti_object_dir: Path, frame_ids: list[str],
                                                    frame_id: str) -> None:
    frame = load_kitti_object_frame(kitti_object_dir, frame_id)
    (height, width), readme_count = README_TABLE[frame_id]
    assert frame.rgb.shape == (height, width, 3) and frame.rgb.dtype == np.uint8
    assert (frame.camera.height, frame.camera.width) == (height, width)
    calib = read_calib(kitti_object_dir / 'calib' / f'{frame_id}.txt')
    np.testing.assert_array_equal(frame.camera.K, calib['P2'][:, :3])

    sparse = kitti_sparse_depth(frame, min_range=0.1)
    reference, landed = independent_sparse_depth(kitti_object_dir, frame_id)
    # same pixels, same depths (float64 both ways, matrices chained in another order: a few float32 ulps)
    np.testing.assert_array_equal(sparse > 0, reference > 0)
    np.testing.assert_allclose(sparse, reference, rtol=1e-6, atol=0)
    # the count of points landing in the image matches the README (its u/v rounding differs at the borders)
    assert abs(landed - readme_count) <= 0.01 * readme_count, (landed, readme_count)


@pytest.mark.parametrize('frame_id', sorted(README_TABLE))
def test_sparse_depth_looks_like_a_64_beam_lidar(kitti_object_dir: Path, frame_ids: list[str],
                                                 frame_id: str) -> None:
    frame = load_kitti_object_frame(kitti_object_dir, frame_id)
    sparse = kitti_sparse_depth(frame)
    valid = sparse > 0
    coverage = valid.mean()
    assert 0.02 < coverage < 0.07, coverage            # README: about 4 % of the pixels
    depths = sparse[valid]
    assert depths.min() > 1.0 and depths.max() < 85.0  # plausible for a car-mounted HDL-64E
    assert 5.0 < np.median(depths) < 40.0
    rows = np.nonzero(valid.any(axis=1))[0]
    height = sparse.shape[0]
    assert rows.min() > 0.2 * height                   # nothing above the LiDAR's vertical field of view
    assert valid[: height // 4].sum() < 0.01 * valid.sum()  # (README: no returns in the top ~quarter)
    assert valid[height // 2:].sum() > 0.7 * valid.sum()  # most returns in the lower half
    # columns: a 360-degree scan covers the image from left to right
    assert valid[:, : sparse.shape[1] // 10].any() and valid[:, -sparse.shape[1] // 10:].any()


def test_points_round_trip_through_kitti_sparse_depth(kitti_object_dir: Path, frame_ids: list[str]) -> None:
    frame = load_kitti_object_frame(kitti_object_dir, '000003')
    sparse = kitti_sparse_depth(frame)
    cloud = backproject(sparse, frame.camera).reshape(-1, 3)
    again = project_points(cloud[np.isfinite(cloud[:, 2])], frame.camera, min_range=0.0)
    np.testing.assert_array_equal(again, sparse)
    # back to the Velodyne frame: every re-projected point is close to a real scan point
    velo = frame.T_cam_velo.inverse().apply(cloud[np.isfinite(cloud[:, 2])].astype(np.float64))
    assert np.all(np.abs(velo[:, 0]) < 90) and np.median(velo[:, 0]) > 3.0  # in front of the car (x forward)


def test_max_range_limits_depth(kitti_object_dir: Path, frame_ids: list[str]) -> None:
    frame = load_kitti_object_frame(kitti_object_dir, frame_ids[0])
    near = kitti_sparse_depth(frame, max_range=20.0)
    assert near.max() <= 20.0 and np.count_nonzero(near) > 1000
    full = kitti_sparse_depth(frame)
    both = (near > 0) & (full > 0)
    np.testing.assert_array_equal(near[both], full[both])


def test_visualize_real_frame(kitti_object_dir: Path, frame_ids: list[str], tmp_path: Path) -> None:
    from PIL import Image

    from depth_completion_ros.core.visualize import colorize_depth, error_map, save_png, side_by_side

    frame = load_kitti_object_frame(kitti_object_dir, frame_ids[0])
    sparse = kitti_sparse_depth(frame)
    coloured = colorize_depth(sparse, vmin=0.0, vmax=80.0)
    assert coloured.shape == sparse.shape + (3,) and coloured.dtype == np.uint8
    assert not coloured[sparse == 0].any() and coloured[sparse > 0].any(axis=1).all()  # holes black, returns not
    # a shared scale: the same depth gets the same colour in another panel
    shifted = colorize_depth(np.where(sparse > 0, sparse, 1.0), vmin=0.0, vmax=80.0)
    np.testing.assert_array_equal(shifted[sparse > 0], coloured[sparse > 0])
    errors = error_map(sparse + 0.5 * (sparse > 0), sparse)
    assert not errors[sparse == 0].any()
    panel = side_by_side([frame.rgb, coloured, errors], ['rgb', 'sparse', 'error'], vertical=True)
    height, width = sparse.shape
    assert panel.shape == (3 * height + 2 * 4, width, 3)
    path = save_png(tmp_path / 'out' / 'panel.png', panel)
    np.testing.assert_array_equal(np.asarray(Image.open(path)), panel)
    kitti_png = (sparse * 256).astype(np.uint16)  # KITTI depth-completion PNG convention
    np.testing.assert_array_equal(np.asarray(Image.open(save_png(tmp_path / 'd.png', kitti_png))), kitti_png)
