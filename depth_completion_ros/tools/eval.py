"""``depth-completion eval``: prefill vs network metrics on synthetic, KITTI, RGB-D or rosbag data."""
from __future__ import annotations

import argparse
import json

from depth_completion_ros.tools.common import CliError, print_written, progress


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--data', required=True,
                        help='synthetic:street|room, kitti-dc:DIR, kitti-object:DIR, rgbd:DIR, bag:PATH')
    parser.add_argument('--protocol', default='holdout-points',
                        help='kitti | holdout-points[:FRACTION] | sample-points:N')
    parser.add_argument('--weights', default='lrru_mini', help='shipped name or .safetensors path')
    parser.add_argument('--variant', default=None, help='check the weights are this variant (default: from file)')
    parser.add_argument('--device', default='auto', choices=('auto', 'cpu', 'cuda'),
                        help='inference device (auto: cuda if available)')
    parser.add_argument('--seed', type=int, default=0, help='seed of point hiding / sampling (per frame: +index)')
    parser.add_argument('--max-frames', type=int, default=None, help='evaluate at most this many frames (default: all)')
    parser.add_argument('--synthetic-frames', type=int, default=8, help='frames for synthetic:* data')
    parser.add_argument('--intrinsics', type=float, nargs=4, metavar=('FX', 'FY', 'CX', 'CY'), default=None,
                        help='for rgbd: folders without intrinsics.json')
    parser.add_argument('--depth-scale', type=float, default=None, help='rgbd: stored depth units per metre')
    parser.add_argument('--kitti-split', default='val', help='kitti-dc: split folder (train, val)')
    parser.add_argument('--image-topic', default=None, help='bag: camera image topic (default: the bag\'s own)')
    parser.add_argument('--info-topic', default=None, help='bag: camera_info topic (default: the bag\'s own)')
    parser.add_argument('--points-topic', default=None, help='bag: PointCloud2 topic (default: the bag\'s own)')
    parser.add_argument('--depth-topic', default=None, help='bag: depth image topic (rgbd bags)')
    parser.add_argument('--save', default=None, metavar='DIR', help='write colourised depth and error maps')
    parser.add_argument('--json', action='store_true', help='print one JSON object {prefill, model, frames}')
    parser.add_argument('--per-frame', action='store_true', help='include per-frame RMSE (JSON) / print it')


def main(args: argparse.Namespace) -> int:
    from depth_completion_ros.data.loaders import open_source
    from depth_completion_ros.training.evaluate import Protocol, evaluate, format_table

    bag_options = {k: v for k, v in (('image_topic', args.image_topic), ('info_topic', args.info_topic),
                                     ('points_topic', args.points_topic), ('depth_topic', args.depth_topic)) if v}
    try:  # the data and protocol specs are the user's input: their errors are user errors
        source = open_source(args.data, intrinsics=args.intrinsics, depth_scale=args.depth_scale,
                             synthetic_count=args.synthetic_frames, kitti_split=args.kitti_split, **bag_options)
        protocol = Protocol.parse(args.protocol)
    except ValueError as exc:
        raise CliError(f'{exc} (see `depth-completion eval --help` for --data, --protocol, --intrinsics)') from None
    result = evaluate(source, protocol, weights=args.weights, variant=args.variant,
                      device=args.device, seed=args.seed, max_frames=args.max_frames, save_dir=args.save,
                      progress=lambda frames: progress(frames, desc='eval'))
    if args.json:
        out = {'prefill': result['prefill'], 'model': result['model'], 'frames': result['frames']}
        if args.per_frame:
            out['per_frame'] = result['per_frame']
        print(json.dumps(out))
        return 0
    print(format_table(result))
    if args.per_frame:
        for row in result['per_frame']:
            print(f'  {row["name"]}: prefill {row["prefill_rmse_mm"]:.1f} mm, network {row["model_rmse_mm"]:.1f} mm '
                  f'({row["scored_pixels"]} scored, {row["input_points"]} input points)')
    if args.save:
        print_written([('depth and error maps', args.save)])
    return 0
