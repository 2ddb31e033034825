"""``depth-completion bench geometry``: PointCloud2 decode/encode, projection and back-projection timings.

A 120k-point cloud (the real KITTI frame 000003, tiled with small jitter to the requested size, or a generated
scan when the shared data is absent) into a 375x1242 camera; medians over ``--runs`` repetitions.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from depth_completion_ros.core.camera import CameraModel
from depth_completion_ros.core.conversions import arrays_to_pointcloud2, pointcloud2_to_arrays
from depth_completion_ros.core.projection import backproject, project_points
from depth_completion_ros.core.transforms import RigidTransform


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--runs', type=int, default=30, help='repetitions per measurement (median reported)')
    parser.add_argument('--points', type=int, default=120_000, help='points in the cloud')
    parser.add_argument('--kitti-dir', type=Path, default=None,
                        help='KITTI object folder (default: $DEPTH_COMPLETION_SHARED_DATA or ../shared/data)')
    parser.add_argument('--synthetic', action='store_true', help='use a generated scan even if KITTI is present')
    parser.add_argument('--torch', action='store_true', help='also time the torch CPU path of projection')


def _default_kitti_dir() -> Path:
    from depth_completion_ros.tools.bench.shared_data import shared_data_dir

    return shared_data_dir() / 'kitti_object'


def _cloud_message_classes() -> tuple[Any, str]:
    """rclpy PointCloud2 if importable (what the node uses), else the rosbags class."""
    try:
        from sensor_msgs.msg import PointCloud2

        return PointCloud2, 'rclpy'
    except ImportError:
        from rosbags.typesys import Stores, get_typestore

        return get_typestore(Stores.ROS2_HUMBLE).types['sensor_msgs/msg/PointCloud2'], 'rosbags'


def _synthetic_scene(num_points: int, rng: np.random.Generator) -> tuple[np.ndarray, CameraModel, RigidTransform]:
    """A 64-beam-like 360-degree scan of a flat ground and a cylinder of walls, KITTI-like camera."""
    azimuth = rng.uniform(-np.pi, np.pi, num_points)
    elevation = np.deg2rad(rng.uniform(-24.8, 2.0, num_points))
    wall_range = rng.uniform(8.0, 60.0, num_points)
    ground_range = np.where(elevation < -0.01, 1.73 / np.tan(-np.minimum(elevation, -0.01)), np.inf)
    distance = np.minimum(wall_range, ground_range)
    xyz = np.stack([distance * np.cos(elevation) * np.cos(azimuth), distance * np.cos(elevation) * np.sin(azimuth),
                    distance * np.sin(elevation)], axis=1)
    intensity = rng.random(num_points)
    camera = CameraModel.from_intrinsics(721.5377, 721.5377, 609.5593, 172.854, 1242, 375)
    # Velodyne (x fwd, y left, z up) -> camera (x right, y down, z fwd), 0.27 m behind, 0.08 m above
    T_cam_velo = RigidTransform(np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]]), [0.0, -0.08, -0.27])
    return np.c_[xyz, intensity].astype(np.float32), camera, T_cam_velo


def _scene(args: argparse.Namespace) -> tuple[np.ndarray, CameraModel, RigidTransform, str]:
    rng = np.random.default_rng(0)
    kitti_dir = args.kitti_dir or _default_kitti_dir()
    if not args.synthetic and (kitti_dir / 'velodyne' / '000003.bin').is_file():
        from depth_completion_ros.core.kitti import load_kitti_object_frame

        frame = load_kitti_object_frame(kitti_dir, '000003')
        scan = frame.points
        picks = np.arange(args.points) % len(scan)  # tile the real scan to the requested size ...
        points = scan[picks].copy()
        repeated = np.arange(args.points) >= len(scan)
        points[repeated, :3] += rng.normal(0.0, 0.02, (int(repeated.sum()), 3)).astype(np.float32)  # ... jittered
        return points, frame.camera, frame.T_cam_velo, 'kitti 000003'
    points, camera, T_cam_velo = _synthetic_scene(args.points, rng)
    return points, camera, T_cam_velo, 'synthetic'


def _median_ms(function: Callable[[], Any], runs: int) -> float:
    function()  # warm-up (allocations, lazy imports)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e3


def _velodyne_like_cloud(points: np.ndarray, msg_cls: Any) -> Any:
    """x, y, z, intensity float32 with point_step 16 (what Velodyne/Ouster drivers publish, roughly)."""
    from depth_completion_ros.core.conversions import _make_message

    fields = [{'name': n, 'offset': 4 * i, 'datatype': 7, 'count': 1} for i, n in enumerate('x y z intensity'.split())]
    return _make_message(msg_cls, {
        'header': {'stamp': {'sec': 0, 'nanosec': 0}, 'frame_id': 'velodyne'},
        'height': 1, 'width': len(points), 'fields': fields, 'is_bigendian': False,
        'point_step': 16, 'row_step': 16 * len(points), 'data': np.ascontiguousarray(points, dtype='<f4'),
        'is_dense': True,
    })


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    points, camera, T_cam_velo, source = _scene(args)
    msg_cls, flavour = _cloud_message_classes()
    cloud_msg = _velodyne_like_cloud(points, msg_cls)
    decoded = pointcloud2_to_arrays(cloud_msg)
    sparse = project_points(T_cam_velo.apply(decoded.xyz), camera)
    # back-project a dense map (every pixel valid: the node's worst case, a completed depth image)
    dense = np.where(sparse > 0, sparse, np.float32(10.0)).astype(np.float32)
    dense_cloud = backproject(dense, camera)
    rgb = np.zeros(dense_cloud.shape, dtype=np.uint8)

    results: dict[str, Any] = {
        'source': source, 'points': int(len(points)), 'camera': [camera.height, camera.width],
        'message_classes': flavour, 'runs': args.runs, 'torch_threads': torch.get_num_threads(),
        'projected_pixels': int(np.count_nonzero(sparse)),
        'decode_ms': _median_ms(lambda: pointcloud2_to_arrays(cloud_msg), args.runs),
        'transform_ms': _median_ms(lambda: T_cam_velo.apply(decoded.xyz), args.runs),
        'projection_ms': _median_ms(lambda: project_points(T_cam_velo.apply(decoded.xyz), camera), args.runs),
        'backprojection_ms': _median_ms(lambda: backproject(dense, camera), args.runs),
        'encode_ms': _median_ms(lambda: arrays_to_pointcloud2(decoded.xyz, msg_cls=msg_cls), args.runs),
        'encode_dense_xyzrgb_ms': _median_ms(lambda: arrays_to_pointcloud2(dense_cloud, rgb, msg_cls=msg_cls),
                                             args.runs),
    }
    if args.torch:
        xyz_t = torch.from_numpy(T_cam_velo.apply(decoded.xyz).astype(np.float32))
        results['projection_torch_cpu_ms'] = _median_ms(lambda: project_points(xyz_t, camera), args.runs)
    return results


def main(args: argparse.Namespace) -> int:
    results = run(args)
    if args.json:
        print(json.dumps(results))
        return 0
    print(f"geometry benchmark: {results['points']:,} points ({results['source']}) into "
          f"{results['camera'][0]}x{results['camera'][1]}, {results['message_classes']} messages, "
          f"median of {results['runs']} runs")
    rows = [
        ('PointCloud2 decode (xyz+intensity)', 'decode_ms'),
        ('projection (transform + z-buffer)', 'projection_ms'),
        ('  of which the transform', 'transform_ms'),
        ('back-projection (dense HxW)', 'backprojection_ms'),
        ('PointCloud2 encode (xyz)', 'encode_ms'),
        ('PointCloud2 encode (dense HxW xyzrgb)', 'encode_dense_xyzrgb_ms'),
        ('projection, torch CPU', 'projection_torch_cpu_ms'),
    ]
    for label, key in rows:
        if key in results:
            print(f'  {label:40s} {results[key]:8.2f} ms')
    print(f"  projected pixels: {results['projected_pixels']:,}")
    return 0
