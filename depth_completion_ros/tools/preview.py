"""``depth-completion preview``: PNG previews of synthetic training scenes (RGB | ground truth | sensor)."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--kind', choices=('street', 'room', 'both'), default='both')
    parser.add_argument('--count', type=int, default=4, help='scenes per kind')
    parser.add_argument('--seed', type=int, default=0, help='first scene seed')
    parser.add_argument('--out', default='runs/preview', help='output folder')
    parser.add_argument('--street-size', default='1242x375', help='WxH of street frames')
    parser.add_argument('--room-size', default='640x480', help='WxH of room frames')


def _size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition('x')
    return int(width), int(height)


def main(args: argparse.Namespace) -> int:
    import numpy as np
    from scipy.ndimage import grey_dilation

    from depth_completion_ros.core.visualize import colorize_depth, save_png, side_by_side
    from depth_completion_ros.data.synthetic import room_frame, street_frame

    out = Path(args.out)
    kinds = ('street', 'room') if args.kind == 'both' else (args.kind,)
    for kind in kinds:
        make = street_frame if kind == 'street' else room_frame
        size = _size(args.street_size if kind == 'street' else args.room_size)
        for seed in range(args.seed, args.seed + args.count):
            frame = make(seed, width=size[0], height=size[1])
            valid = frame.gt_depth[frame.gt_depth > 0]
            vmax = float(np.percentile(valid, 95)) if valid.size else 1.0
            # LiDAR points are single pixels: dilate (nearest wins, via the max of -depth) only for display.
            sensor = frame.sparse
            if kind == 'street':
                shown = -grey_dilation(np.where(sensor > 0, -sensor, -np.inf), size=(2, 2))
                sensor = np.where(np.isfinite(shown), shown, 0.0).astype(np.float32)
            panels = [frame.rgb, colorize_depth(frame.gt_depth, 0.0, vmax), colorize_depth(sensor, 0.0, vmax)]
            labels = ['rgb', 'ground truth (m)', 'LiDAR' if kind == 'street' else 'Kinect']
            panel = side_by_side(panels, labels, vertical=True)
            path = save_png(out / f'{kind}_{seed:04d}.png', panel)
            print(path)
    return 0
