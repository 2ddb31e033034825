"""``depth-completion eval``: the network, its prefill and the classical peers side by side, on synthetic, KITTI,
RGB-D or rosbag data, optionally over a sparsity sweep."""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from depth_completion_ros.data.spec import kinds_help, kinds_table
from depth_completion_ros.tools.common import (
    EXIT_INTERRUPTED,
    CliError,
    add_old_name,
    close_progress_bars,
    depth_scale_warning,
    print_written,
    progress,
)
from depth_completion_ros.tools.output_dir import OutputDir, check_output_dir

# Default protocol per data kind: RGB-D folders are scored as NYUv2 (500 sampled points), data with LiDAR
# ground truth as KITTI-DC, everything else by hiding 20 % of the measured points.
DEFAULT_PROTOCOLS = {'rgbd': 'sample-points:500', '7scenes': 'sample-points:500', 'kitti-dc': 'kitti',
                     'kitti-dc-gt': 'kitti', 'synthetic:room': 'sample-points:500', 'synthetic:street': 'kitti'}


def default_protocol(data: str) -> str:
    kind = data.split(':', 1)[0]
    if kind == 'synthetic':
        kind = ':'.join(data.split(':', 2)[:2])
    return DEFAULT_PROTOCOLS.get(kind, 'holdout-points')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--data', required=True, metavar='KIND:LOCATION[?frames=...]',
                        help=f'the frames to score (data kinds below): {kinds_help()}')
    parser.epilog = 'data kinds (--data; options in docs/DATA.md):\n' + kinds_table()
    parser.add_argument('--protocol', default='auto',
                        help='kitti | holdout-points[:FRACTION] | sample-points:N | auto (RGB-D: sample-points:500, '
                             'KITTI-DC: kitti, others: holdout-points)')
    parser.add_argument('--weights', default='auto',
                        help='shipped name or .safetensors path; its stored prefill is used. auto (default): '
                             'lrru_mini for LiDAR scans, lrru_mini_rgbd for depth cameras and sampled points '
                             '(rgbd:, 7scenes:, synthetic:room, a depth-image bag, --protocol sample-points:N); '
                             'the choice and why are printed')
    parser.add_argument('--variant', default=None, help='check the weights are this variant (default: from file)')
    parser.add_argument('--peers', default='ipbasic,nearest,linear',
                        help='classical methods printed beside the network (its own prefill is always included)')
    parser.add_argument('--sweep', default=None, metavar='lines=64,32,16|points=50,200,500',
                        help='evaluate at each sparsity level; prints one row per level and writes a plot '
                             '(sweep.png in --save, else ./eval_sweep.png)')
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
    add_old_name(parser, '--info-topic', parser.add_argument(
        '--camera-info-topic', default=None, help='bag: camera_info topic (default: the bag\'s own)'))
    parser.add_argument('--points-topic', default=None, help='bag: PointCloud2 topic (default: the bag\'s own)')
    parser.add_argument('--depth-topic', default=None, help='bag: depth image topic (rgbd bags)')
    parser.add_argument('--save', default=None, metavar='DIR',
                        help='write per-frame depth and error panels of every method, index.html and metrics.png '
                             'into a new folder (or a previous eval --save folder, replaced when the run ends)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace --save even when it holds files eval did not write')
    parser.add_argument('--json', action='store_true', help='print one JSON object (methods, prefill, model, frames)')
    parser.add_argument('--per-frame', action='store_true', help='include per-frame RMSE (JSON) / print it')


def _json_result(result: dict, per_frame: bool) -> dict:
    keys = ('protocol', 'frames', 'frames_requested', 'interrupted', 'prefill_method', 'sparsity', 'methods',
            'prefill', 'model')
    out = {k: result[k] for k in keys}
    if per_frame:
        out['per_frame'] = result['per_frame']
    return out


def main(args: argparse.Namespace) -> int:
    from depth_completion_ros.data.loaders import open_source
    from depth_completion_ros.training.evaluate import CLASSICAL, Protocol, Sparsity

    if args.max_frames is not None and args.max_frames < 1:  # else a table of NaN over no frame, exit 0
        raise CliError(f'--max-frames {args.max_frames} scores no frame; pass 1 or more, or leave it out for all')
    if args.variant and args.weights != 'auto':
        _check_variant(args.variant, args.weights)
    if args.save:
        check_output_dir(args.save, 'eval', args.overwrite)  # before any frame is read
    try:  # the data, protocol and sweep specs are the user's input: their errors are user errors
        protocol = Protocol.parse(default_protocol(args.data) if args.protocol == 'auto' else args.protocol)
        levels = Sparsity.parse(args.sweep) if args.sweep else None
        peers = tuple(p for p in args.peers.split(',') if p)
        unknown = [p for p in peers if p not in CLASSICAL]
        if unknown:
            raise ValueError(f'unknown peer(s) {", ".join(unknown)}; choose from {", ".join(CLASSICAL)}')
        bag_options = {k: v for k, v in (('image_topic', args.image_topic), ('info_topic', args.camera_info_topic),
                                         ('points_topic', args.points_topic), ('depth_topic', args.depth_topic))
                       if v}
        source = open_source(args.data, intrinsics=args.intrinsics, depth_scale=args.depth_scale,
                             synthetic_count=args.synthetic_frames, kitti_split=args.kitti_split, **bag_options)
    except ValueError as exc:
        raise CliError(f'{exc} (see `depth-completion eval --help` for --data, --protocol, --sweep, --peers)') \
            from None
    args.weights = _choose_weights(args, source, protocol)
    scale_warning = depth_scale_warning(source, 'eval')
    if scale_warning:
        print(scale_warning, file=sys.stderr, flush=True)
    # The panels are written beside --save and put in place when the run ends (also after Ctrl-C, marked
    # interrupted); a crash leaves the previous --save folder as it was.
    with OutputDir(args.save, 'eval', args.overwrite) if args.save else contextlib.nullcontext() as saved:
        return _evaluate(args, source, protocol, levels, peers, saved)


def _evaluate(args: argparse.Namespace, source: Any, protocol: Any, levels: Any, peers: tuple[str, ...],
              saved: OutputDir | None) -> int:
    from depth_completion_ros.training.evaluate import (
        evaluate,
        format_sweep,
        format_table,
        plot_sweep,
        sweep,
    )

    options = dict(weights=args.weights, variant=args.variant, device=args.device, seed=args.seed,
                   max_frames=args.max_frames, save_dir=saved.work if saved else None, peers=peers,
                   progress=lambda frames: progress(frames, desc='eval'))
    if levels is not None:
        results = sweep(source, protocol, levels, **options)
        plot_path = saved.work / 'sweep.png' if saved else Path('eval_sweep.png')
        plot_sweep(results, levels, plot_path)
        cut = len(results) < len(levels.levels) or results[-1]['interrupted']
        if saved:
            plot_path = saved.commit('interrupted' if cut else 'complete') / 'sweep.png'
        if args.json:
            print(json.dumps({'sweep': args.sweep, 'plot': str(plot_path),
                              'levels': [_json_result(r, args.per_frame) for r in results]}))
        else:
            print(format_sweep(results))
            print_written([('sweep plot', str(plot_path))] + ([('panels per level', args.save)] if args.save else []))
        if cut:
            done = ', '.join(r['sparsity'] for r in results)
            return _interrupted(f'levels {done} (the last one on {results[-1]["frames"]} of '
                                f'{results[-1]["frames_requested"]} frames)')
        return 0
    result = evaluate(source, protocol, **options)
    if saved:
        saved.commit('interrupted' if result['interrupted'] else 'complete')
    if args.json:
        print(json.dumps(_json_result(result, args.per_frame)))
    else:
        print(format_table(result))
        if args.per_frame:
            for row in result['per_frame']:
                scores = ', '.join(f'{k} {v:.1f}' for k, v in row['rmse_mm'].items())
                print(f'  {row["name"]}: RMSE mm {scores} ({row["scored_pixels"]} scored, {row["input_points"]} '
                      'input points)')
        if args.save:
            print_written([('panels, index.html and metrics.png', args.save)])
    if result['interrupted']:
        return _interrupted(f'{result["frames"]} of {result["frames_requested"]} frames')
    return 0


def _choose_weights(args: argparse.Namespace, source: Any, protocol: Any) -> str:
    """``--weights auto``: the shipped weights that fit the data (weights_choice), said on stderr so --json
    stays one object; a named ``--variant`` without shipped ``mini`` weights keeps that variant's own."""
    from depth_completion_ros.pipeline import resolve_shipped_weights
    from depth_completion_ros.weights_choice import by_data

    if args.weights != 'auto':
        return str(args.weights)
    if args.variant and args.variant != 'mini':
        try:
            return resolve_shipped_weights(args.variant)
        except ValueError as exc:
            raise CliError(f'{exc}; pass --weights FILE.safetensors') from None
    choice = by_data(None, args.data, str(protocol),
                     bag_has_depth=bool(getattr(source, 'depth_topic', None)))
    print(f'depth-completion eval: {choice.describe()}', file=sys.stderr, flush=True)
    return choice.weights


def _check_variant(variant: str, weights: str) -> None:
    """``--variant`` checks the weights: a mismatch names both (the loader would look for ``lrru_<variant>``
    and report that name missing, which names neither the file given nor the cause)."""
    from depth_completion_ros.model.weights import read_metadata, resolve_weights

    stored = str(read_metadata(resolve_weights(weights)).get('variant'))
    if stored != variant:
        raise CliError(f'--variant {variant} does not match --weights {weights}, which holds LRRU-{stored}; '
                       f'drop --variant, or pass --weights of an LRRU-{variant} model')


def _interrupted(what: str) -> int:
    """Ctrl-C during the frames: the metrics printed cover only ``what``; exit as an interrupted command."""
    close_progress_bars()
    print(f'depth-completion eval: interrupted: the metrics above cover {what}', file=sys.stderr, flush=True)
    return EXIT_INTERRUPTED
