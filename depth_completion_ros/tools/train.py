"""``depth-completion train``: train an LRRU variant on a mix of synthetic, KITTI, RGB-D and rosbag data."""
from __future__ import annotations

import argparse
import json
import os

from depth_completion_ros.core.prefill import PREFILL_METHODS
from depth_completion_ros.data.sequence import SEQUENCE_DATA_HELP
from depth_completion_ros.data.spec import kinds_help
from depth_completion_ros.tools.common import CliError, add_old_name
from depth_completion_ros.tools.output_dir import prepare_in_place


def _pair(text: str) -> tuple[int, int]:
    height, _, width = text.lower().partition('x')
    return int(height), int(width)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--variant', default=None, choices=('mini', 'tiny', 'small', 'base'),
                        help='LRRU variant (default: the --init weights\' variant, else mini)')
    parser.add_argument('--data', default='synthetic:street=0.7,synthetic:room=0.3',
                        help=f'comma-separated <kind>:<location>=<weight> (kinds: {kinds_help()}); data without '
                             'ground truth is trained self-supervised by hiding part of its points')
    parser.add_argument('--crop', type=_pair, default=(128, 320), help='training crop HxW')
    parser.add_argument('--batch', type=int, default=4, help='batch size per process')
    parser.add_argument('--iterations', type=int, default=1000, help='optimiser steps')
    parser.add_argument('--epochs', type=float, default=None,
                        help='alternative to --iterations: epochs of --epoch-size items')
    parser.add_argument('--epoch-size', type=int, default=1000, help='items per epoch for --epochs')
    parser.add_argument('--lr', type=float, default=1e-3, help='AdamW learning rate (LRRU: 1e-3)')
    parser.add_argument('--weight-decay', type=float, default=0.05, help='AdamW weight decay (LRRU: 0.05)')
    parser.add_argument('--seed', type=int, default=0, help='seed of initialisation, data order and point hiding')
    parser.add_argument('--workers', type=int, default=2, help='DataLoader worker processes')
    parser.add_argument('--no-amp', action='store_true', help='disable float16 autocast on CUDA')
    parser.add_argument('--no-augment', action='store_true', help='no flip / colour jitter / rotation')
    parser.add_argument('--device', default='auto', help='auto, cpu, cuda, cuda:N')
    parser.add_argument('--out', default='runs/train',
                        help='output folder (checkpoint, logs, plot, weights): a new one or a previous train output')
    parser.add_argument('--overwrite', action='store_true',
                        help='empty --out first even when it holds files train did not write')
    parser.add_argument('--resume', action='store_true', help='continue from OUT/checkpoint.safetensors')
    parser.add_argument('--init', '--init-weights', dest='init_weights', default=None,
                        help='start from these weights: a path, a shipped name or imported weights (e.g. the LRRU '
                             'authors\' lrru_base_authors, to fine-tune them for another LiDAR); the variant and the '
                             'prefill default to the file\'s')
    parser.add_argument('--zero-updates', action='store_true',
                        help='with --init-weights: zero the update heads so training starts at the prefill '
                             '(keeps the learned features; use when changing --prefill)')
    parser.add_argument('--checkpoint-every', type=int, default=200,
                        help='save a checkpoint (and a weights snapshot OUT/lrru_<variant>_step<N>) every N steps')
    parser.add_argument('--log-every', type=int, default=10, help='print the loss every N steps')
    add_old_name(parser, '--rgbd-intrinsics', parser.add_argument(
        '--intrinsics', type=float, nargs=4, metavar=('FX', 'FY', 'CX', 'CY'), default=None,
        help='for rgbd: folders without intrinsics.json'))
    add_old_name(parser, '--rgbd-depth-scale', parser.add_argument(
        '--depth-scale', type=float, default=None, help='rgbd: stored depth units per metre'))
    parser.add_argument('--learn-aggregation', action='store_true',
                        help='also train the shared TDU kernel/bias (LRRU does; frozen by default, see MODEL_CARD)')
    parser.add_argument('--prefill', default=None, choices=PREFILL_METHODS,
                        help='prefill the network learns to correct, stored in the weights (ipbasic: LiDAR lines; '
                             'linear/nearest: scattered points and depth-camera holes; lrru_authors: the LRRU '
                             'authors\' fill). Default: the --init weights\' prefill, else ipbasic')
    parser.add_argument('--l2-weight', type=float, default=1.0,
                        help='weight of the L2 term of the L1 + L2 loss (LRRU: 1; lower it on noisy real targets)')
    parser.add_argument('--freeze-batchnorm', action='store_true',
                        help='keep the BatchNorm running statistics of --init-weights (small-batch fine-tuning)')
    group = parser.add_argument_group(
        'photometric self-supervision (--self-supervised)',
        'Trains from the recordings alone: each target frame\'s neighbours are warped into it with the predicted '
        'depth and the camera motion, and the loss is the per-pixel minimum over neighbours of 0.85 (1 - SSIM) / 2 '
        '+ 0.15 L1 (pixels where an unwarped neighbour matches better are masked out), plus the L1 (+ --l2-weight '
        'L2) on hidden measured points and an edge-aware smoothness term. --data must be sequences: '
        + SEQUENCE_DATA_HELP)
    group.add_argument('--self-supervised', action='store_true',
                       help='photometric + sparse-point training on consecutive frames (no ground truth needed)')
    group.add_argument('--neighbours', type=int, default=1,
                       help='frames on each side warped into the target (1: t-1, t+1; 2 adds t-2, t+2)')
    group.add_argument('--photometric-weight', type=float, default=1.0, help='weight of the photometric term')
    group.add_argument('--sparse-weight', type=float, default=1.0, help='weight of the hidden-points depth term')
    group.add_argument('--smoothness-weight', type=float, default=1e-3,
                       help='weight of the edge-aware smoothness of the mean-normalised inverse depth')
    parser.add_argument('--quiet', action='store_true', help='no progress bar')


def main(args: argparse.Namespace) -> int:
    from depth_completion_ros.training.train import TrainConfig, epochs_to_iterations, train

    if args.resume and args.overwrite:
        raise CliError('--resume continues the run in --out and --overwrite empties it: pass one of them')
    if int(os.environ.get('RANK', '0')) == 0:  # one process checks and prepares the folder (torchrun)
        # In place, not in a temporary folder: a cut run's checkpoints are what --resume continues from.
        prepare_in_place(args.out, 'train', args.overwrite, 'checkpoint.safetensors' if args.resume else None)
    iterations = args.iterations
    if args.epochs is not None:
        iterations = epochs_to_iterations(args.epochs, args.epoch_size, args.batch, int(os.environ.get('WORLD_SIZE',
                                                                                                       '1')))
    if args.init_weights:
        from depth_completion_ros.model.weights import read_metadata, resolve_weights

        stored = read_metadata(resolve_weights(args.init_weights))
        args.variant = args.variant or str(stored['variant'])
        args.prefill = args.prefill or str(stored['prefill'])
    args.variant, args.prefill = args.variant or 'mini', args.prefill or 'ipbasic'
    config = TrainConfig(
        variant=args.variant, data=args.data, crop=args.crop, batch=args.batch, iterations=iterations, lr=args.lr,
        weight_decay=args.weight_decay, seed=args.seed, workers=args.workers, amp=not args.no_amp,
        augment=not args.no_augment, device=args.device, out_dir=args.out, resume=args.resume,
        init_weights=args.init_weights, zero_updates=args.zero_updates, checkpoint_every=args.checkpoint_every,
        log_every=args.log_every,
        rgbd_intrinsics=tuple(args.intrinsics) if args.intrinsics else None,
        rgbd_depth_scale=args.depth_scale, freeze_aggregation=not args.learn_aggregation,
        prefill=args.prefill, l2_weight=args.l2_weight, freeze_batchnorm=args.freeze_batchnorm,
        self_supervised=args.self_supervised, neighbours=args.neighbours, photometric_weight=args.photometric_weight,
        sparse_weight=args.sparse_weight, smoothness_weight=args.smoothness_weight)
    summary = train(config, progress=not args.quiet)
    if summary:
        print(json.dumps({k: summary[k] for k in ('iterations', 'wall_seconds', 'first_loss', 'final_loss')}))
        print(f'weights: {args.out}/lrru_{args.variant}.safetensors')
    return 0
