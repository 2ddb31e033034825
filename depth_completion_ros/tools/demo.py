"""``depth-completion demo`` (``make demo``): the main job.

1. the built-in synthetic camera + LiDAR bag (generated once, with ground-truth depth), or ``--bag`` of yours;
2. node, recorder and player as subprocesses on this machine only (shared memory, private domain); the player
   is paced by the node's output so a slow CPU model still sees every frame (``--rate`` plays open-loop and
   reports the drops instead);
3. into ``--out``: ``previews/frame_NNN.png`` (RGB | sparse | prefill | dense, one colour scale with its bar
   in metres), ``cloud.ply`` (one dense cloud), ``output_bag/``, ``logs/`` and ``summary.json`` (also printed),
   then a short "written" block saying where each went.

Mistakes are found before anything starts (topics missing from the bag, a variant without weights, a bad
config): one line, exit 2. A process that fails gives its first error line here and in ``summary.json``
(``error``). Ctrl-C stops the node, recorder and player cleanly, writes the summary and the previews of the
frames done so far, and exits 130.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from depth_completion_ros.core.conversions import stamp_to_ns
from depth_completion_ros.ros import bagio
from depth_completion_ros.tools.common import CliError, print_written, progress
from depth_completion_ros.tools.output_dir import OutputDir, check_output_dir
from depth_completion_ros.weights_choice import by_input_mode

DEFAULT_FRAMES = 20
DEFAULT_DEPTH_TOPIC = '/camera/depth/image_raw'
PREVIEW_SAMPLE_FRAMES = 5  # frames whose depths set the run's one colour scale (display_max_depth)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--out', default='demo_output',
                        help='output folder: a new one, or a previous demo output (replaced when the run ends)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace --out even when it holds files the demo did not write')
    parser.add_argument('--bag', default=None, help='your bag (default: the built-in synthetic sample)')
    parser.add_argument('--config', default=None, help='preset or parameter file (default: generic)')
    parser.add_argument('--image-topic', default=bagio.IMAGE_TOPIC, help='camera image topic in the bag')
    parser.add_argument('--camera-info-topic', default=bagio.CAMERA_INFO_TOPIC, help='CameraInfo topic in the bag')
    parser.add_argument('--points-topic', default=bagio.POINTS_TOPIC,
                        help='PointCloud2 topic in the bag (input_mode points)')
    parser.add_argument('--depth-topic', default=None,
                        help=f'depth image topic (input_mode depth presets; default: {DEFAULT_DEPTH_TOPIC})')
    parser.add_argument('--gt-topic', default=bagio.GT_DEPTH_TOPIC, help='ground-truth depth topic, if any')
    parser.add_argument('--frames', type=int, default=DEFAULT_FRAMES, help='synthetic sample: frames at 10 Hz')
    parser.add_argument('--rate', type=float, default=None,
                        help='open-loop playback rate (default: paced by the node, no frame dropped)')
    parser.add_argument('--prefill-only', action='store_true', help='no network (ip_basic prefill only)')
    parser.add_argument('--device', default='auto', choices=('auto', 'cpu', 'cuda'),
                        help='inference device of the node (auto: cuda if available)')
    parser.add_argument('--variant', default=None, help='LRRU variant (default: the config\'s, else mini)')
    parser.add_argument('--weights', default=None,
                        help='LRRU weights, a .safetensors path or shipped name (default: the config\'s, else the '
                             'shipped weights of the variant)')
    parser.add_argument('--cache', default=None, help='where the synthetic sample bag is kept')
    parser.add_argument('--cameras', type=int, default=None,
                        help='synthetic sample: 2-4 cameras around its LiDAR (one node completes them all; '
                             'summary and previews per camera). A multi-camera --bag (make-bag --cameras) runs '
                             'all its cameras without this option')


def sample_bag(cache: Path, frames: int, cameras: int = 1) -> Path:
    from depth_completion_ros.tools.make_bag import make_bag

    rig = f'_rig{cameras}' if cameras > 1 else ''
    bag = cache / f'synthetic_street{rig}_1242x375_{frames}f'
    if not (bag / 'metadata.yaml').is_file():
        partial = bag.with_name(bag.name + '.partial')  # renamed when complete: Ctrl-C never leaves a short sample
        shutil.rmtree(bag, ignore_errors=True)
        shutil.rmtree(partial, ignore_errors=True)
        cache.mkdir(parents=True, exist_ok=True)
        what = f', {cameras} cameras' if cameras > 1 else ''
        print(f'demo: generating the synthetic sample bag ({frames} frames at 10 Hz{what}) in {bag} ...', flush=True)
        make_bag('synthetic', partial, frames=frames, cameras=cameras)
        partial.rename(bag)
    return bag


def _depth_array(msg: Any) -> np.ndarray:
    from depth_completion_ros.core.conversions import depth_image_to_metres

    return depth_image_to_metres(msg)  # metres, 0 = unknown


def write_ply(path: Path, xyz: np.ndarray, rgb: np.ndarray | None) -> int:
    """Binary little-endian PLY of the finite points; returns the point count."""
    keep = np.isfinite(xyz).all(axis=-1)
    points = xyz[keep].astype('<f4')
    header = ['ply', 'format binary_little_endian 1.0', f'element vertex {len(points)}',
              'property float x', 'property float y', 'property float z']
    dtype = [('x', '<f4'), ('y', '<f4'), ('z', '<f4')]
    if rgb is not None:
        header += ['property uchar red', 'property uchar green', 'property uchar blue']
        dtype += [('red', 'u1'), ('green', 'u1'), ('blue', 'u1')]
    vertices = np.empty(len(points), dtype=dtype)
    vertices['x'], vertices['y'], vertices['z'] = points[:, 0], points[:, 1], points[:, 2]
    if rgb is not None:
        colours = rgb[keep]
        vertices['red'], vertices['green'], vertices['blue'] = colours[:, 0], colours[:, 1], colours[:, 2]
    with open(path, 'wb') as handle:
        handle.write(('\n'.join(header) + '\nend_header\n').encode())
        handle.write(vertices.tobytes())
    return len(points)


def _cloud_arrays(msg: Any) -> tuple[np.ndarray, np.ndarray | None]:
    from depth_completion_ros.core.conversions import cloud_structured_view

    view = cloud_structured_view(msg)
    xyz = np.stack([view['x'], view['y'], view['z']], axis=-1).astype(np.float32)
    rgb = None
    if 'rgb' in (view.dtype.names or ()):
        bits = np.ascontiguousarray(view['rgb']).view(np.uint32)
        rgb = np.stack([(bits >> 16) & 255, (bits >> 8) & 255, bits & 255], axis=-1).astype(np.uint8)
    return xyz, rgb


def analyse(bag: Path, out_bag: Path, out: Path, image_topic: str, gt_topic: str, network_used: bool,
            max_depth: float = 100.0, weights_name: str = '', ns: str = '/depth_completion') -> dict:
    """Previews, PLY and metrics (ground truth up to ``max_depth``, the node's range) from the bags. The
    previews share one colour scale fitted to the run's depths (at most ``max_depth``) and name the prefill
    the node reported running. ``ns``: where the node's outputs are (``/depth_completion/<camera>`` for one
    camera of a multi-camera node)."""
    from depth_completion_ros.core.conversions import image_to_numpy, image_to_rgb
    from depth_completion_ros.core.metrics import MetricAccumulator
    from depth_completion_ros.core.visualize import completion_preview, display_max_depth, save_png

    outputs: dict[str, dict[int, Any]] = {'depth': {}, 'sparse': {}, 'prefill': {}, 'points': {},
                                          'confidence': {}}
    latencies: list[float] = []
    processing: list[float] = []
    prefill_methods: set[str] = set()
    recorded = bagio.read_messages(out_bag) if (out_bag / 'metadata.yaml').is_file() else iter(())
    for raw, msg in recorded:
        if raw.topic == f'{ns}/latency_ms':
            latencies.append(float(msg.data))
        elif raw.topic == f'{ns}/timings':
            timings = json.loads(msg.data)
            processing.append(float(timings['processing_ms']))
            if timings.get('prefill_method'):
                prefill_methods.add(str(timings['prefill_method']))
        elif raw.topic in (f'{ns}/depth', f'{ns}/debug/sparse', f'{ns}/debug/prefill', f'{ns}/points',
                           f'{ns}/confidence'):
            outputs[raw.topic.rsplit('/', 1)[1]][stamp_to_ns(msg.header.stamp)] = msg
    rgbs: dict[int, np.ndarray] = {}
    gts: dict[int, np.ndarray] = {}
    for raw, msg in bagio.read_messages(bag, [image_topic, gt_topic]):
        if raw.topic == image_topic and stamp_to_ns(msg.header.stamp) in outputs['depth']:
            rgbs[stamp_to_ns(msg.header.stamp)] = np.array(image_to_rgb(msg))
        elif raw.topic == gt_topic and stamp_to_ns(msg.header.stamp) in outputs['depth']:
            gts[stamp_to_ns(msg.header.stamp)] = _depth_array(msg)

    previews = out / 'previews'
    previews.mkdir(parents=True, exist_ok=True)
    stamps = sorted(outputs['depth'])
    sampled = stamps[::max(1, len(stamps) // PREVIEW_SAMPLE_FRAMES)][:PREVIEW_SAMPLE_FRAMES]
    vmax = display_max_depth([_depth_array(outputs['depth'][stamp]) for stamp in sampled], max_depth)
    prefill_label = f'prefill ({", ".join(sorted(prefill_methods))})' if prefill_methods else 'prefill'
    dense_label = (f'dense ({weights_name or "LRRU"})' if network_used else 'dense (prefill only)') + \
        ', black = unknown (NaN)'
    prefill_metrics, model_metrics = MetricAccumulator(), MetricAccumulator()
    trust = ValidityReport()
    coverage: list[float] = []
    for index, stamp in enumerate(progress(stamps, desc='previews', leave=False,
                                                   disable=not outputs['depth'])):
        dense = _depth_array(outputs['depth'][stamp])
        sparse = _depth_array(outputs['sparse'][stamp]) if stamp in outputs['sparse'] else np.zeros_like(dense)
        prefill = _depth_array(outputs['prefill'][stamp]) if stamp in outputs['prefill'] else dense
        confidence = outputs['confidence'].get(stamp)
        trust.add(dense, sparse if stamp in outputs['sparse'] else None,
                  None if confidence is None else np.asarray(image_to_numpy(confidence), np.float32))
        gt = gts.get(stamp)
        if gt is not None:
            gt = np.where(gt <= max_depth, gt, np.float32(0.0))  # beyond the node's range: not scored
            # Scored where the node published a depth (elsewhere it says "unknown", NaN), prefill on the same
            # pixels; the share of ground truth it covers is reported beside.
            published = dense > 0
            if np.any(gt > 0):
                coverage.append(float(np.count_nonzero(published & (gt > 0)) / np.count_nonzero(gt > 0)))
            scored = np.where(published, gt, np.float32(0.0))
            prefill_metrics.add(prefill, scored)
            if network_used:
                model_metrics.add(dense, scored)
        save_png(previews / f'frame_{index:03d}.png', completion_preview(
            rgbs.get(stamp, np.zeros(dense.shape + (3,), np.uint8)), sparse, prefill, dense,
            confidence=None if confidence is None else image_to_numpy(confidence), vmax=vmax,
            dense_label=dense_label, sparse_label='sparse input', prefill_label=prefill_label))

    ply_points = 0
    if outputs['points']:
        stamps = sorted(outputs['points'])
        xyz, rgb = _cloud_arrays(outputs['points'][stamps[len(stamps) // 2]])
        ply_points = write_ply(out / 'cloud.ply', xyz, rgb)

    def percentile(values: list[float], q: float) -> float | None:
        return round(float(np.percentile(values, q)), 1) if values else None

    def metric(accumulator: MetricAccumulator, key: str) -> float | None:
        return round(float(accumulator.mean()[key]), 1) if len(accumulator) else None

    reasons = _null_metric_reasons(bag, gt_topic, len(outputs['depth']), len(gts), len(prefill_metrics),
                                   network_used, bool(coverage), max_depth)
    return {
        **reasons,
        'frames_out': len(outputs['depth']),
        'latency_ms_p50': percentile(latencies, 50), 'latency_ms_p95': percentile(latencies, 95),
        'processing_ms_p50': percentile(processing, 50),
        'rmse_mm': {'prefill': metric(prefill_metrics, 'rmse_mm'), 'model': metric(model_metrics, 'rmse_mm')},
        'mae_mm': {'prefill': metric(prefill_metrics, 'mae_mm'), 'model': metric(model_metrics, 'mae_mm')},
        'metrics_frames': len(prefill_metrics), 'metrics_max_depth_m': max_depth,
        'output_coverage': round(float(np.mean(coverage)), 3) if coverage else None,
        'previews': len(outputs['depth']), 'ply_points': ply_points, **trust.summary(),
    }


def _null_metric_reasons(bag: Path, gt_topic: str, frames_out: int, gt_frames: int, scored_frames: int,
                         network_used: bool, has_coverage: bool, max_depth: float) -> dict[str, str]:
    """Why ``rmse_mm``/``mae_mm`` values or ``output_coverage`` are null (keys only for the null ones): a real
    bag rarely has ground truth, and a bare null reads as a failure."""
    if frames_out == 0:
        missing = 'the node published no depth frame (see node_first_problem and logs/)'
    elif gt_topic not in bagio.bag_topics(bag):
        missing = f'the bag has no ground-truth depth topic {gt_topic} (name it with --gt-topic)'
    elif gt_frames == 0:
        missing = f'no {gt_topic} message has the stamp of an output frame'
    else:
        missing = f'the ground truth has no depth within the node\'s range (max_range {max_depth:g} m)'
    reasons: dict[str, str] = {}
    if scored_frames == 0:
        reasons['rmse_mm_reason'] = missing
    elif not network_used:
        reasons['rmse_mm_reason'] = 'model: prefill only, no network ran'
    if not has_coverage:
        reasons['output_coverage_reason'] = missing
    return reasons


CONFIDENCE_BINS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


class ValidityReport:
    """What the node left unknown and how much it trusts the rest, over the demo's frames (summary.json)."""

    def __init__(self) -> None:
        self.pixels = self.unknown = self.above_top = 0
        self.histogram = np.zeros(len(CONFIDENCE_BINS) - 1, np.int64)
        self.checked_columns = False

    def add(self, dense: np.ndarray, sparse: np.ndarray | None, confidence: np.ndarray | None) -> None:
        valid = dense > 0
        self.pixels += valid.size
        self.unknown += int((~valid).sum())
        if sparse is not None and (sparse > 0).any():
            from depth_completion_ros.core.validity import ValiditySettings, column_top_rows

            rows = np.arange(dense.shape[0])[:, None]
            top = column_top_rows(sparse, ValiditySettings().column_window_px)  # the node's default rule
            self.above_top += int((valid & (rows < top[None, :])).sum())
            self.checked_columns = True
        if confidence is not None:
            self.histogram += np.histogram(confidence[valid], bins=CONFIDENCE_BINS)[0]

    def summary(self) -> dict[str, Any]:
        total = max(int(self.histogram.sum()), 1)
        return {
            'nan_fraction': round(self.unknown / self.pixels, 4) if self.pixels else None,
            'valid_pixels_above_highest_measurement': self.above_top if self.checked_columns else None,
            'confidence_histogram': {f'{low:.1f}-{high:.1f}': round(int(count) / total, 4) for low, high, count
                                     in zip(CONFIDENCE_BINS[:-1], CONFIDENCE_BINS[1:], self.histogram, strict=True)},
        }


def check_inputs(bag: Path, inputs: dict[str, str], config: Path | None = None) -> None:
    """Every input topic the node will subscribe to is in the bag, else a one-line user error naming the option;
    an RGB-D bag (depth images, no cloud) under a point-cloud config names the rgbd_camera config instead."""
    available = bagio.bag_topics(bag)
    missing = [topic for topic in inputs.values() if topic not in available]
    if 'points' in inputs and inputs['points'] in missing:
        kinds = {topic: str(entry[0]) for topic, entry in available.items()}
        clouds = [t for t, kind in kinds.items() if kind.endswith('PointCloud2')]
        depths = sorted(t for t, kind in kinds.items() if kind.endswith('/Image') and 'depth' in t.lower())
        if depths and not clouds:
            name = config.stem if config is not None else 'the default'
            topic = '' if DEFAULT_DEPTH_TOPIC in depths else f' --depth-topic {depths[0]}'
            raise CliError(f'{bag} is an RGB-D bag (depth images {depths}, no point cloud) but the config '
                           f'{name} reads a LiDAR point cloud: pass --config rgbd_camera{topic} (make demo '
                           f'BAG={bag} CONFIG=rgbd_camera)')
    if missing:
        options = {'image': '--image-topic', 'camera_info': '--camera-info-topic', 'points': '--points-topic',
                   'depth': '--depth-topic'}
        fix = ', '.join(sorted({options.get(name.rsplit('/', 1)[-1], '--bag') for name, topic in inputs.items()
                                if topic in missing}))
        raise CliError(f'topics not in the bag: {missing} (the bag has {sorted(available)}); name the bag\'s '
                       f'topics with {fix}')


def check_weights(variant: str, weights: str, prefill_only: bool) -> None:
    """Refuse a variant without weights, as the node does (no silent fallback to the prefill)."""
    if prefill_only or weights:
        return
    from depth_completion_ros.pipeline import resolve_shipped_weights

    try:
        resolve_shipped_weights(variant)
    except ValueError as exc:
        reason = str(exc).split(';', 1)[0]
        raise CliError(f'{reason}: pass --weights FILE.safetensors, --variant mini or --prefill-only') from None


def build_summary(result: dict, analysis: dict, bag: Path, out: Path, args: argparse.Namespace,
                  started: float, image_topic: str | None = None) -> dict:
    from depth_completion_ros.ros.runtime import first_problem_line

    frames_in = int(result.get('play_report', {}).get('published', {}).get(image_topic or args.image_topic, 0))
    stats = result.get('node_stats', {})
    summary = {
        'frames_in': frames_in, 'frames_out': analysis['frames_out'],
        'dropped': frames_in - analysis['frames_out'],
        'latency_ms_p50': analysis['latency_ms_p50'], 'latency_ms_p95': analysis['latency_ms_p95'],
        'processing_ms_p50': analysis['processing_ms_p50'],
        'rmse_mm': analysis['rmse_mm'], 'mae_mm': analysis['mae_mm'], 'metrics_frames': analysis['metrics_frames'],
        'metrics_max_depth_m': analysis['metrics_max_depth_m'], 'output_coverage': analysis['output_coverage'],
        **{key: analysis[key] for key in ('rmse_mm_reason', 'output_coverage_reason') if key in analysis},
        'nan_fraction': analysis['nan_fraction'], 'confidence_histogram': analysis['confidence_histogram'],
        'valid_pixels_above_highest_measurement': analysis['valid_pixels_above_highest_measurement'],
        'mode': stats.get('mode'), 'device': stats.get('device'),
        'stage_ms_mean': {k.removeprefix('stage_').removesuffix('_ms'): round(v, 1)
                          for k, v in stats.items() if k.startswith('stage_') and isinstance(v, float)},
        'node_dropped': stats.get('dropped'), 'playback': 'paced by output' if args.rate is None else args.rate,
        'bag': str(bag), 'output_bag': str(out / 'output_bag'), 'previews': str(out / 'previews'),
        'ply': str(out / 'cloud.ply') if analysis['ply_points'] else None, 'ply_points': analysis['ply_points'],
        'node_exit_status': result.get('node_status'), 'wall_s': round(time.monotonic() - started, 1),
        'node_first_problem': first_problem_line(result.get('node_log', ''), warnings=True),
        'player_first_problem': first_problem_line(result.get('player_log', ''), warnings=True),
    }
    return summary


def per_camera_summary(summary: dict, result: dict, analyses: dict[str, dict], inputs: dict[str, str],
                       out: Path) -> dict:
    """A multi-camera run: ``cameras: {name: {frames_in, frames_out, dropped, latency_ms_p50, ...}}``, the
    frame counts summed over the cameras; the other top-level values (metrics, stages) are the first camera's."""
    published = result.get('play_report', {}).get('published', {})
    node_cameras = result.get('node_stats', {}).get('cameras', {})
    cameras: dict[str, dict] = {}
    for name, analysis in analyses.items():
        frames_in = int(published.get(inputs[f'{name}/image'], 0))
        cameras[name] = {
            'frames_in': frames_in, 'frames_out': analysis['frames_out'],
            'dropped': frames_in - analysis['frames_out'], 'latency_ms_p50': analysis['latency_ms_p50'],
            'latency_ms_p95': analysis['latency_ms_p95'], 'rmse_mm': analysis['rmse_mm'],
            'output_coverage': analysis['output_coverage'], 'node_dropped': node_cameras.get(name, {}).get('dropped'),
            'previews': str(out / 'cameras' / name / 'previews'),
        }
    totals = {key: sum(camera[key] for camera in cameras.values()) for key in ('frames_in', 'frames_out', 'dropped')}
    first = next(iter(cameras))
    ply = out / 'cameras' / first / 'cloud.ply'
    return {**summary, **totals, 'cameras': cameras, 'previews': str(out / 'cameras'),
            'ply': str(ply) if analyses[first]['ply_points'] else None}


def write_outputs(out: Path, summary: dict) -> None:
    """The summary on stdout (not after a failure: the error line matters then) and what went where; the caller
    wrote summary.json into the folder before committing it."""
    if 'error' not in summary:
        print(json.dumps(summary, indent=2))
    print_written([('summary', out / 'summary.json'), ('previews', summary.get('previews', out / 'previews')),
                   ('point cloud', summary.get('ply') or out / 'cloud.ply'), ('output bag', out / 'output_bag'),
                   ('logs', out / 'logs')],
                  title=f'demo: written under {out}')


def main(args: argparse.Namespace) -> int:
    started = time.monotonic()
    from depth_completion_ros.ros.local_env import configure_local_ros
    from depth_completion_ros.ros.runtime import find_config

    out = Path(args.out)
    check_output_dir(out, 'demo', args.overwrite)  # before the sample bag or any process starts
    config = find_config(args.config or 'generic')
    if args.cameras is not None and not 1 <= args.cameras <= 4:
        raise CliError(f'--cameras {args.cameras}: the synthetic sample has 1 to 4 cameras')
    if args.bag:
        bag = Path(args.bag)
        if not (bag / 'metadata.yaml').is_file():
            raise CliError(f'not a rosbag2 folder (no metadata.yaml): {bag} (give the bag\'s folder)')
    else:
        bag = sample_bag(Path(args.cache or os.environ.get('XDG_CACHE_HOME', Path.home() / '.cache'))
                         / 'depth_completion_ros', args.frames, args.cameras or 1)
    cameras = bag_cameras(bag)
    if args.cameras is not None and args.cameras > 1 and len(cameras) != args.cameras:
        raise CliError(f'--cameras {args.cameras}: {bag} has {len(cameras) or "one"} camera(s) '
                       f'{cameras or ""} (make-bag --cameras N writes a multi-camera bag)')
    configure_local_ros()  # this process and every child: shared memory only, a private domain
    from depth_completion_ros.ros.shm_hygiene import clean_shm

    leftovers = clean_shm(min_age_s=5.0)  # segments of killed ROS processes hold RAM for good
    if leftovers.removed:
        print(f'demo: shm-clean {leftovers.summary()}', flush=True)

    from depth_completion_ros.ros.params import load_params_file

    config_values = load_params_file(config)
    variant = args.variant or config_values.get('model.variant', 'mini')
    weights = args.weights or str(config_values.get('model.weights') or '')
    prefill_only = args.prefill_only or bool(config_values.get('prefill_only', False))
    input_mode = str(config_values.get('input_mode', 'points'))
    choice = by_input_mode(None, input_mode)
    if not weights and variant == 'mini':  # the node's rule, said here too (below, once the inputs are checked)
        weights = choice.weights
    params: dict[str, object] = {'publish_debug': True, 'model.device': args.device, 'model.variant': variant,
                                 'prefill_only': prefill_only}
    if weights:
        params['model.weights'] = weights

    params_files = [config]
    if (bag / bagio.PARAMS_FILE_NAME).is_file():
        params_files.append(bag / bagio.PARAMS_FILE_NAME)
    inputs = {'image': args.image_topic, 'camera_info': args.camera_info_topic}
    if cameras:  # make-bag --cameras: /<camera>/image_raw and /<camera>/camera_info for each
        if input_mode == 'depth':
            raise CliError(f'{bag} is a multi-camera LiDAR bag: run it with a point-cloud config (generic, '
                           'kitti_hdl64)')
        inputs = {}
        for name in cameras:
            inputs[f'{name}/image'] = f'/{name}/image_raw'
            inputs[f'{name}/camera_info'] = f'/{name}/camera_info'
    image_input = f'{cameras[0]}/image' if cameras else 'image'
    played_image_topic = inputs[image_input]
    bag_topics = bagio.bag_topics(bag)
    if played_image_topic not in bag_topics and played_image_topic + '/compressed' in bag_topics:
        params['image_transport'] = 'compressed'  # a bag of CompressedImage (image_transport's topic name)
        played_image_topic += '/compressed'
    if input_mode == 'depth':
        inputs['depth'] = args.depth_topic or DEFAULT_DEPTH_TOPIC
    else:
        inputs['points'] = args.points_topic
    check_inputs(bag, {**inputs, image_input: played_image_topic}, config)
    check_weights(variant, weights, prefill_only)
    if choice.weights == weights and not args.weights and not config_values.get('model.weights'):
        print(f'demo: {choice.describe()}', flush=True)

    model = 'prefill only' if prefill_only else (Path(weights).stem if weights.endswith('.safetensors') else weights)
    with OutputDir(out, 'demo', args.overwrite) as output:
        return _run(output, bag, config_values, params, params_files, inputs, played_image_topic, bag_topics,
                    prefill_only, model, args, started, cameras)


def bag_cameras(bag: Path) -> list[str]:
    """The cameras of a multi-camera bag (its parameter file's ``cameras``); [] for a one-camera bag."""
    from depth_completion_ros.ros.params import load_params_file

    path = bag / bagio.PARAMS_FILE_NAME
    return [str(name) for name in load_params_file(path).get('cameras', [])] if path.is_file() else []


def _run(output: OutputDir, bag: Path, config_values: dict, params: dict[str, object], params_files: list[Path],
         inputs: dict[str, str], played_image_topic: str, bag_topics: dict, prefill_only: bool, model: str,
         args: argparse.Namespace, started: float, cameras: list[str]) -> int:
    """The graph and the analysis, written into ``output.work``; put in place when they end, also after a
    failure the graph reports or Ctrl-C (the summary then says so), never after a crash of this process."""
    from depth_completion_ros.ros.runtime import (
        DEBUG_TYPES,
        DIAGNOSTICS_TYPES,
        OUTPUT_NS,
        OUTPUT_TYPES,
        GraphError,
        GraphInterrupted,
        camera_output_types,
        run_graph,
    )

    out, work = output.final, output.work
    print(f'demo: {bag} -> node ({model}) -> {out}', flush=True)
    bar = progress(total=bag_topics[played_image_topic][1], desc='demo', unit='frame')

    def on_progress(stage: str, frames_done: int) -> None:
        bar.set_postfix_str(stage, refresh=False)
        bar.update(max(frames_done - bar.n, 0))

    error: str | None = None
    interrupted = False
    try:
        outputs = {**OUTPUT_TYPES, **DEBUG_TYPES}
        if cameras:  # each camera's outputs; the last camera's paces the player: the node completes a scan's
            # frames in the camera order, so its output means the whole scan is done (none dropped, none cut off)
            outputs = {topic: kind for name in cameras for topic, kind in camera_output_types(outputs, name).items()}
            pace = {'pace_input': f'{cameras[-1]}/image', 'progress_topic': f'{OUTPUT_NS}/{cameras[-1]}/depth'}
        else:
            pace = {}
        result = run_graph(bag, work / 'output_bag', work / 'logs', params_files=params_files, params=params,
                           input_topics=inputs, record_topics={**outputs, **DIAGNOSTICS_TYPES},
                           rate=args.rate or 1.0, paced=args.rate is None, play_timeout_s=900.0,
                           idle_timeout_s=60.0, on_progress=on_progress, **pace)
    except GraphInterrupted as exc:
        result, interrupted = exc.result, True
    except GraphError as exc:
        # the logs it names are in the work folder, which becomes --out
        result, error = {}, str(exc).replace(str(work), str(out))
    finally:
        bar.close()
    max_range = float(config_values.get('max_range', 100.0))
    try:
        if cameras:  # previews, cloud and metrics per camera under cameras/<name>/
            analyses = {name: analyse(bag, work / 'output_bag', work / 'cameras' / name, inputs[f'{name}/image'],
                                      f'/{name}/depth_gt', not prefill_only, max_range, model,
                                      ns=f'{OUTPUT_NS}/{name}') for name in cameras}
            analysis = analyses[cameras[0]]
        else:
            analysis = analyse(bag, work / 'output_bag', work, played_image_topic, args.gt_topic, not prefill_only,
                               max_range, model)
    except KeyboardInterrupt:  # a second Ctrl-C while previews are drawn: keep the ones drawn so far
        output.commit('interrupted')
        raise
    summary = build_summary(result, analysis, bag, out, args, started, played_image_topic)
    if cameras:
        summary = per_camera_summary(summary, result, analyses, inputs, out)
    if error:
        summary['error'] = error
    if interrupted:
        summary['interrupted'] = True
    (work / 'summary.json').write_text(json.dumps(summary, indent=2))
    output.commit('failed' if error else 'interrupted' if interrupted else 'complete')
    write_outputs(out, summary)
    if error:  # last, where the eye lands; the same line is in summary.json
        print(f'depth-completion demo: error: {error}', file=sys.stderr, flush=True)
    if interrupted:
        raise KeyboardInterrupt  # cli.main: "interrupted", exit 130
    return 0 if not error and summary['frames_out'] > 0 and result.get('node_status') == 0 else 1
