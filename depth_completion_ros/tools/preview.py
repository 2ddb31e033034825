"""``depth-completion preview``: PNG previews of synthetic training scenes (RGB | ground truth | sensor)."""
from __future__ import annotations

import argparse

from depth_completion_ros.tools.output_dir import prepare_in_place


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--kind', choices=('street', 'room', 'both'), default='both',
                        help='street (camera + LiDAR) and/or room (Kinect-like) scenes')
    parser.add_argument('--count', type=int, default=4, help='scenes per kind')
    parser.add_argument('--seed', type=int, default=0, help='first scene seed')
    parser.add_argument('--out', default='runs/preview', help='output folder: a new one or a previous preview output')
    parser.add_argument('--overwrite', action='store_true',
                        help='empty --out first even when it holds files preview did not write')
    parser.add_argument('--street-size', default='1242x375', help='WxH of street frames')
    parser.add_argument('--room-size', default='640x480', help='WxH of room frames')


def _size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition('x')
    return int(width), int(height)


def main(args: argparse.Namespace) -> int:
    import numpy as np

    from depth_completion_ros.core.visualize import colorize_depth, colour_bar, dilate_points, save_png, side_by_side
    from depth_completion_ros.data.synthetic import room_frame, street_frame

    out = prepare_in_place(args.out, 'preview', args.overwrite)  # never writes over files of the user's
    kinds = ('street', 'room') if args.kind == 'both' else (args.kind,)
    for kind in kinds:
        make = street_frame if kind == 'street' else room_frame
        size = _size(args.street_size if kind == 'street' else args.room_size)
        for seed in range(args.seed, args.seed + args.count):
            frame = make(seed, width=size[0], height=size[1])
            valid = frame.gt_depth[frame.gt_depth > 0]
            vmax = float(np.percentile(valid, 95)) if valid.size else 1.0
            # LiDAR points are single pixels: enlarged (nearest wins) for display only.
            sensor = dilate_points(frame.sparse, 3) if kind == 'street' else frame.sparse
            panels = [frame.rgb, colorize_depth(frame.gt_depth, 0.0, vmax), colorize_depth(sensor, 0.0, vmax)]
            labels = ['rgb', 'ground truth (m)', 'LiDAR (dots enlarged)' if kind == 'street' else 'Kinect']
            panel = side_by_side(panels, labels, vertical=True)
            panel = side_by_side([panel, colour_bar(panel.shape[1], 0.0, round(vmax, 1), open_ended=False)],
                                 vertical=True)
            path = save_png(out / f'{kind}_{seed:04d}.png', panel)
            print(path)
    return 0
