"""``depth-completion complete``: complete one frame from files (an RGB image and its sparse depth).

The route single-image users expect, and the way to check imported weights against their authors' outputs:
the same prefill, network and validity rules as the node, without ROS.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np

from depth_completion_ros.tools.common import CliError

KITTI_DEPTH_SCALE = 256.0          # KITTI depth PNGs: uint16, metres = value / 256
CROP_PATTERN = re.compile(r'bottom:(\d+)x(\d+)')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        'Complete one frame from files: RGB + sparse depth -> dense depth (metres). Example (KITTI): '
        '`depth-completion complete --rgb image_02.png --sparse velodyne_raw.png --out depth.npy --preview '
        'depth.png`. With imported authors\' weights and their crop: `--weights lrru_mini_authors --crop '
        'bottom:352x1216`.')
    parser.add_argument('--rgb', required=True, help='colour image (PNG/JPEG), the camera the depth is projected into')
    parser.add_argument('--sparse', required=True,
                        help='sparse depth of the same size: a 16-bit PNG (KITTI: metres = value / 256; see '
                             '--depth-scale) or a .npy float array in metres (0 or NaN = no measurement)')
    parser.add_argument('--out', required=True,
                        help='output file: .npy (float32 HxW metres, NaN = unknown) or .png (KITTI uint16, '
                             'value = metres x 256, 0 = unknown)')
    parser.add_argument('--weights', default='auto',
                        help='shipped or imported weights name, or a .safetensors path; auto = lrru_mini for a '
                             'LiDAR-like sparse map, lrru_mini_rgbd for a depth camera\'s (over 20%% of pixels)')
    parser.add_argument('--depth-scale', type=float, default=KITTI_DEPTH_SCALE,
                        help='16-bit PNG only: stored units per metre (256 = KITTI, 1000 = millimetres)')
    parser.add_argument('--crop', default='none',
                        help='bottom:HxW = keep the bottom H rows and the centred W columns before completing '
                             '(the LRRU authors evaluate KITTI at bottom:352x1216); none = the whole frame')
    parser.add_argument('--validity', choices=('on', 'off'), default='on',
                        help='on: NaN where no measurement supports the output (the node\'s rules); off: the '
                             'network\'s raw last output everywhere')
    parser.add_argument('--prefill-only', action='store_true', help='skip the network: the weights\' prefill only')
    parser.add_argument('--preview', default=None, help='also write a colourised PNG (RGB, sparse, prefill, output)')
    parser.add_argument('--device', default='auto', help='auto, cpu or cuda')


def parse_crop(text: str) -> tuple[int, int] | None:
    if text == 'none':
        return None
    match = CROP_PATTERN.fullmatch(text)
    if not match:
        raise CliError(f'--crop {text!r}: use bottom:HxW (e.g. bottom:352x1216) or none')
    return int(match[1]), int(match[2])


def bottom_crop(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """The bottom ``height`` rows and the centred ``width`` columns (the authors' evaluation crop)."""
    rows, cols = image.shape[:2]
    if height > rows or width > cols:
        raise CliError(f'--crop bottom:{height}x{width} is larger than the {rows}x{cols} frame')
    left = (cols - width) // 2
    return np.ascontiguousarray(image[rows - height:, left:left + width])


def read_sparse(path: Path, depth_scale: float) -> np.ndarray:
    """HxW float32 metres, 0 where there is no measurement."""
    from depth_completion_ros.data.loaders import read_depth_png

    if path.suffix.lower() == '.npy':
        try:
            sparse = np.load(path, allow_pickle=False)
        except ValueError as error:
            raise CliError(f'{path}: not a plain numpy array ({error})') from error
        if sparse.ndim != 2 or sparse.dtype.kind != 'f':
            raise CliError(f'{path}: expected an HxW float array in metres, got {sparse.dtype} {sparse.shape}')
        sparse = sparse.astype(np.float32)
    else:
        if depth_scale <= 0:
            raise CliError(f'--depth-scale must be > 0 (units per metre), got {depth_scale}')
        sparse = read_depth_png(path, depth_scale)
    return np.where(np.isfinite(sparse) & (sparse > 0), sparse, np.float32(0.0)).astype(np.float32)


def choose_weights(requested: str, sparse: np.ndarray) -> tuple[str, str]:
    """``(weights, why)``: ``auto`` picks the shipped weights that fit the input kind (weights_choice's rule,
    shared with eval, demo and the node)."""
    from depth_completion_ros.weights_choice import by_coverage

    choice = by_coverage(requested, sparse)
    return choice.weights, choice.why


def write_depth(path: Path, depth: np.ndarray) -> None:
    from PIL import Image

    if path.suffix.lower() == '.npy':
        np.save(path, depth.astype(np.float32))
    elif path.suffix.lower() == '.png':
        known = np.isfinite(depth) & (depth > 0)
        values = np.where(known, np.clip(np.round(depth * KITTI_DEPTH_SCALE), 1, 65535), 0).astype(np.uint16)
        Image.fromarray(values).save(path)
    else:
        raise CliError(f'--out {path}: use a .npy or .png file name')


def main(args: argparse.Namespace) -> int:
    from depth_completion_ros.core.kitti import read_image
    from depth_completion_ros.model.inference import DepthCompleter
    from depth_completion_ros.model.weights import read_metadata, resolve_weights

    out = Path(args.out)
    if out.suffix.lower() not in ('.npy', '.png'):
        raise CliError(f'--out {out}: use a .npy or .png file name')
    crop = parse_crop(args.crop)
    rgb = read_image(Path(args.rgb))
    sparse = read_sparse(Path(args.sparse), args.depth_scale)
    if rgb.shape[:2] != sparse.shape:
        raise CliError(f'--rgb is {rgb.shape[1]}x{rgb.shape[0]} but --sparse is {sparse.shape[1]}x{sparse.shape[0]}; '
                       f'the sparse depth must be projected into the RGB camera\'s image')
    if crop is not None:
        rgb, sparse = bottom_crop(rgb, *crop), bottom_crop(sparse, *crop)
    if not (sparse > 0).any():
        raise CliError(f'{args.sparse}: no measurement in the frame (check --depth-scale and --crop)')
    weights, why = choose_weights(args.weights, sparse)
    stored = read_metadata(resolve_weights(weights))
    variant = str(stored['variant'])
    # The weights' own prefill also without the network (a prefill-only completer loads no metadata itself)
    completer = DepthCompleter(variant=variant, weights=weights, device=args.device,
                               prefill_only=args.prefill_only, prefill_method=str(stored['prefill']))
    print(f'weights {weights} ({why}), variant {variant}, prefill {completer.prefill_method}, '
          f'{sparse.shape[1]}x{sparse.shape[0]}')
    completion = completer.complete(rgb, sparse, raw=args.validity == 'off')
    depth = completion.depth
    if args.validity == 'on':
        depth = apply_node_validity(depth, sparse)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_depth(out, depth)
    known = np.isfinite(depth)
    print(f'wrote {out}: {known.mean():.0%} of pixels with depth, {np.nanmin(depth):.2f}-{np.nanmax(depth):.2f} m '
          f'(prefill {completion.timings_ms["prefill"]:.0f} ms, network {completion.timings_ms["network"]:.0f} ms)')
    if args.preview:
        from depth_completion_ros.core.visualize import completion_preview, save_png

        masking = 'NaN masked' if args.validity == 'on' else 'raw'
        label = 'prefill only' if args.prefill_only else f'{weights} ({masking})'
        save_png(args.preview, completion_preview(rgb, sparse, completion.prefill, np.nan_to_num(depth),
                                                  dense_label=label,
                                                  prefill_label=f'prefill ({completer.prefill_method})'))
        print(f'wrote {args.preview}')
    return 0


def apply_node_validity(depth: np.ndarray, sparse: np.ndarray) -> np.ndarray:
    """The node's support rules (column, distance; no field-of-view test without a sensor model): unknown is
    NaN. The camera model only carries the size here; the column and distance rules are in pixels."""
    from depth_completion_ros.core.camera import CameraModel
    from depth_completion_ros.core.validity import ValiditySettings, apply_validity

    height, width = sparse.shape
    focal = float(max(height, width))
    camera = CameraModel.from_intrinsics(focal, focal, width / 2.0, height / 2.0, width, height)
    known = np.isfinite(depth) & (depth > 0)
    masked, _ = apply_validity(np.where(known, depth, np.float32(0.0)), sparse, camera, ValiditySettings())
    return np.where(masked > 0, masked, np.float32(np.nan)).astype(np.float32)
