"""The data-quality numbers of docs/DATA.md, from the frames in ../shared/data (about 2 min on 2 cores):

1. simulated HDL-64E lines on KITTI-DC ground truth vs real projected scans (density, row structure);
2. 7-Scenes depth -> colour registration: depth edges to colour edges, registered / OpenNI defaults / raw;
3. accumulated KITTI targets: held-out own points (real drive, KISS-ICP poses) and known depth (synthetic
   sequence with a planted moving car, known and KISS-ICP poses), with and without the consistency check.

Usage: .venv/bin/python scripts/measure_data.py [--data ../shared/data]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from depth_completion_ros.core.camera import CameraModel
from depth_completion_ros.core.kitti import read_velodyne
from depth_completion_ros.core.prefill import remove_outliers
from depth_completion_ros.core.projection import register_depth
from depth_completion_ros.core.transforms import RigidTransform
from depth_completion_ros.data.accumulate import KittiRawAccumulated, accumulate_depth, estimate_poses
from depth_completion_ros.data.holdout import hide_points
from depth_completion_ros.data.loaders import open_source
from depth_completion_ros.data.quality import edge_alignment_px, line_structure
from depth_completion_ros.data.synthetic import street_sequence


def _mean_structure(source) -> dict[str, float]:
    rows = [line_structure(source[i].sparse) for i in range(len(source))]
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def lines(data: Path) -> None:
    print('## 1. line pattern (bottom 256 rows): density, points per column, vertical gap px')
    for name, spec in (('real kitti-raw 0-39:4', f'kitti-raw:{data}/kitti_raw_2011_09_26_udacity_seq?frames=0-39:4'),
                       ('real kitti-object', f'kitti-object:{data}/kitti_object'),
                       ('simulated kitti-dc-gt', f'kitti-dc-gt:{data}/kitti_dc_2011_09_30_weison')):
        s = _mean_structure(open_source(spec))
        print(f'  {name:24s} density {s["density"]:.4f}  per column {s["points_per_column"]:.1f}  '
              f'gap {s["vertical_gap_px"]:.1f}')
    gt = open_source(f'kitti-dc-gt:{data}/kitti_dc_2011_09_30_weison')
    print(f'  kitti-dc ground truth density (bottom 256 rows): '
          f'{np.mean([(gt[i].gt[-256:] > 0).mean() for i in range(len(gt))]):.4f}')


def registration(data: Path) -> None:
    print('## 2. 7-Scenes: median px from depth edges to colour edges (every 6th frame)')
    folder = f'{data}/sevenscenes_redkitchen'
    registered = open_source(f'7scenes:{folder}')
    raw = open_source(f'7scenes:{folder}?registration=off')
    openni = CameraModel.from_intrinsics(525.0, 525.0, 319.5, 239.5, 640, 480)
    shift = RigidTransform(np.eye(3), np.array([-0.025, 0.0, 0.0]))
    scores: dict[str, list[float]] = {'fitted (530, -2/-0.5 cm)': [], 'OpenNI defaults (525, -2.5 cm)': [],
                                      'unregistered': []}
    for i in range(0, len(raw), 6):
        r, g = raw[i], registered[i]
        scores['fitted (530, -2/-0.5 cm)'].append(edge_alignment_px(g.rgb, g.sparse))
        scores['OpenNI defaults (525, -2.5 cm)'].append(
            edge_alignment_px(r.rgb, register_depth(r.sparse, r.camera, openni, shift)))
        scores['unregistered'].append(edge_alignment_px(r.rgb, r.sparse))
    for name, values in scores.items():
        print(f'  {name:32s} {np.mean(values):.2f} px (frames: {len(values)}, worst {np.max(values):.2f})')


def _score(target: np.ndarray, reference: np.ndarray, region: np.ndarray) -> str:
    m = (target > 0) & (reference > 0) & region
    err = target[m] - reference[m]
    rel = np.abs(err) / reference[m]
    coverage = m.sum() / max(1, ((reference > 0) & region).sum())
    return (f'coverage {coverage:.3f}  MAE {np.mean(np.abs(err)):.3f} m  median {np.median(np.abs(err)):.3f} m  '
            f'RMSE {np.sqrt(np.mean(err ** 2)):.3f} m  >5% {np.mean(rel > 0.05):.3f}')


def accumulation(data: Path) -> None:
    print('## 3a. real drive, 20 % of own points hidden, neighbours +-5 (frames 5, 12, 20, 27, 34), KISS-ICP poses')
    source = KittiRawAccumulated(f'{data}/kitti_raw_2011_09_26_udacity_seq', progress=False)
    poses = source.poses()
    scans = [read_velodyne(item[1]) for item in source.drive.items]
    for check in (True, False):
        for cleaned in (False, True):
            lines_out = []
            for position in (5, 12, 20, 27, 34):
                sample = source.drive[position]
                visible, hidden = hide_points(sample.sparse, 0.2, seed=position)
                if cleaned:   # score only hidden points that are not parallax outliers of the own scan
                    clean = remove_outliers(torch.from_numpy(sample.sparse)[None, None]).numpy()[0, 0]
                    hidden = np.where(clean > 0, hidden, 0.0)
                target = accumulate_depth(position, scans, poses, sample.T_cam_points, sample.camera,
                                          neighbours=source.neighbours(position), own_depth=visible, check=check)
                lines_out.append((target, hidden, (target > 0).sum() / (sample.sparse > 0).sum()))
            target = np.concatenate([t for t, _, _ in lines_out])
            hidden = np.concatenate([h for _, h, _ in lines_out])
            density = np.mean([d for *_, d in lines_out])
            print(f'  check={check!s:5s} reference={"cleaned" if cleaned else "raw":7s} '
                  f'{_score(target, hidden, np.ones_like(hidden, bool))}  density x{density:.2f}')
    print('## 3b. synthetic street, 11 frames, planted oncoming car, frame 5 vs known depth (new pixels only)')
    frames = list(street_sequence(3, 11, moving_car_mps=-6.0))
    static = list(street_sequence(3, 11))
    known = np.tile(np.eye(4), (11, 1, 1))
    known[:, 0, 3] = np.arange(11) * 0.8
    estimated = estimate_poses([f.points for f in frames])
    step = np.linalg.norm(np.diff(estimated[:, :3, 3], axis=0), axis=1)
    print(f'  KISS-ICP step {step.mean():.3f} m/frame (true 0.800), yaw drift '
          f'{np.degrees(np.arctan2(estimated[-1, 1, 0], estimated[-1, 0, 0])):.2f} deg')
    frame = frames[5]
    swept = np.zeros(frame.gt_depth.shape, bool)
    for m, s in zip(frames, static, strict=True):
        swept |= np.abs(m.gt_depth - s.gt_depth) > 0.01
    swept &= ~(np.abs(frame.gt_depth - static[5].gt_depth) > 0.01)
    for name, poses in (('known poses', known), ('KISS-ICP poses', estimated)):
        for check in (True, False):
            target = accumulate_depth(5, [f.points for f in frames], poses, frame.T_cam_lidar, frame.camera,
                                      window=5, check=check)
            new = (frame.sparse == 0)
            ghosts = ((target > 0) & swept & (np.abs(target - frame.gt_depth) > 0.05 * frame.gt_depth)).sum()
            print(f'  {name:15s} check={check!s:5s} {_score(target, frame.gt_depth, new)}  '
                  f'density x{(target > 0).sum() / (frame.sparse > 0).sum():.2f}  ghost px of the car {ghosts}')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--data', type=Path, default=Path(__file__).resolve().parents[2] / 'shared' / 'data')
    args = parser.parse_args()
    lines(args.data)
    registration(args.data)
    accumulation(args.data)


if __name__ == '__main__':
    main()
