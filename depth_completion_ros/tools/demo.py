"""``depth-completion demo`` (``make demo``): the main job.

1. the built-in synthetic camera + LiDAR bag (generated once, with ground-truth depth), or ``--bag`` of yours;
2. node, recorder and player as subprocesses on this machine only (shared memory, private domain); the player
   is paced by the node's output so a slow CPU model still sees every frame (``--rate`` plays open-loop and
   reports the drops instead);
3. into ``--out``: ``previews/frame_NNN.png`` (RGB | sparse | prefill | dense, one colour scale),
   ``cloud.ply`` (one dense cloud), ``output_bag/`` and ``summary.json`` (also printed).
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

DEFAULT_FRAMES = 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--out', default='demo_output', help='output folder (replaced)')
    parser.add_argument('--bag', default=None, help='your bag (default: the built-in synthetic sample)')
    parser.add_argument('--config', default=None, help='preset or parameter file (default: generic)')
    parser.add_argument('--image-topic', default=bagio.IMAGE_TOPIC)
    parser.add_argument('--camera-info-topic', default=bagio.CAMERA_INFO_TOPIC)
    parser.add_argument('--points-topic', default=bagio.POINTS_TOPIC)
    parser.add_argument('--depth-topic', default=None, help='depth image topic (input_mode depth presets)')
    parser.add_argument('--gt-topic', default=bagio.GT_DEPTH_TOPIC, help='ground-truth depth topic, if any')
    parser.add_argument('--frames', type=int, default=DEFAULT_FRAMES, help='synthetic sample: frames at 10 Hz')
    parser.add_argument('--rate', type=float, default=None,
                        help='open-loop playback rate (default: paced by the node, no frame dropped)')
    parser.add_argument('--prefill-only', action='store_true', help='no network (ip_basic prefill only)')
    parser.add_argument('--device', default='auto', choices=('auto', 'cpu', 'cuda'))
    parser.add_argument('--variant', default=None, help='LRRU variant (default: the config\'s)')
    parser.add_argument('--cache', default=None, help='where the synthetic sample bag is kept')


def sample_bag(cache: Path, frames: int) -> Path:
    from depth_completion_ros.tools.make_bag import make_bag

    bag = cache / f'synthetic_street_1242x375_{frames}f'
    if not (bag / 'metadata.yaml').is_file():
        shutil.rmtree(bag, ignore_errors=True)
        cache.mkdir(parents=True, exist_ok=True)
        print(f'demo: generating the synthetic sample bag ({frames} frames at 10 Hz) in {bag} ...', flush=True)
        make_bag('synthetic', bag, frames=frames)
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
            max_depth: float = 100.0) -> dict:
    """Previews, PLY and metrics (ground truth up to ``max_depth``, the node's range) from the bags."""
    from depth_completion_ros.core.conversions import image_to_rgb
    from depth_completion_ros.core.metrics import MetricAccumulator
    from depth_completion_ros.core.visualize import colorize_depth, save_png, side_by_side

    ns = '/depth_completion'
    outputs: dict[str, dict[int, Any]] = {'depth': {}, 'sparse': {}, 'prefill': {}, 'points': {}, 'confidence': {}}
    latencies: list[float] = []
    processing: list[float] = []
    for raw, msg in bagio.read_messages(out_bag):
        if raw.topic == f'{ns}/latency_ms':
            latencies.append(float(msg.data))
        elif raw.topic == f'{ns}/timings':
            processing.append(float(json.loads(msg.data)['processing_ms']))
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
    prefill_metrics, model_metrics = MetricAccumulator(), MetricAccumulator()
    trust = ValidityReport()
    for index, stamp in enumerate(sorted(outputs['depth'])):
        dense = _depth_array(outputs['depth'][stamp])
        sparse = _depth_array(outputs['sparse'][stamp]) if stamp in outputs['sparse'] else np.zeros_like(dense)
        prefill = _depth_array(outputs['prefill'][stamp]) if stamp in outputs['prefill'] else dense
        confidence = _float_image(outputs['confidence'][stamp]) if stamp in outputs['confidence'] else None
        trust.add(dense, sparse if stamp in outputs['sparse'] else None, confidence)
        gt = gts.get(stamp)
        if gt is not None:
            gt = np.where(gt <= max_depth, gt, np.float32(0.0))  # beyond the node's range: not scored
            trust.add_coverage(dense, gt)
            gt = np.where(dense > 0, gt, np.float32(0.0))  # scored where the node publishes depth (not NaN)
            prefill_metrics.add(prefill, gt)
            if network_used:
                model_metrics.add(dense, gt)
        # one colour scale for every depth panel of a frame (and of the run): 0..80 m; black = unknown (NaN)
        panels = [rgbs.get(stamp, np.zeros(dense.shape + (3,), np.uint8))]
        panels += [colorize_depth(d, vmin=0.0, vmax=80.0) for d in (sparse, prefill, dense)]
        labels = ['RGB', 'sparse (LiDAR)', 'prefill (ip_basic, before validity)',
                  f'dense ({"LRRU" if network_used else "prefill only"}; black = unknown, NaN)']
        if confidence is not None:
            panels.append(colorize_depth(confidence, vmin=0.0, vmax=1.0, cmap='viridis'))
            labels.append('confidence 0..1 (black = 0 / unknown)')
        save_png(previews / f'frame_{index:03d}.png', side_by_side(panels, labels, vertical=True))

    ply_points = 0
    if outputs['points']:
        stamps = sorted(outputs['points'])
        xyz, rgb = _cloud_arrays(outputs['points'][stamps[len(stamps) // 2]])
        ply_points = write_ply(out / 'cloud.ply', xyz, rgb)

    def percentile(values: list[float], q: float) -> float | None:
        return round(float(np.percentile(values, q)), 1) if values else None

    def metric(accumulator: MetricAccumulator, key: str) -> float | None:
        return round(float(accumulator.mean()[key]), 1) if len(accumulator) else None

    return {
        'frames_out': len(outputs['depth']),
        'latency_ms_p50': percentile(latencies, 50), 'latency_ms_p95': percentile(latencies, 95),
        'processing_ms_p50': percentile(processing, 50),
        'rmse_mm': {'prefill': metric(prefill_metrics, 'rmse_mm'), 'model': metric(model_metrics, 'rmse_mm')},
        'mae_mm': {'prefill': metric(prefill_metrics, 'mae_mm'), 'model': metric(model_metrics, 'mae_mm')},
        'metrics_frames': len(prefill_metrics), 'metrics_max_depth_m': max_depth,
        'previews': len(outputs['depth']), 'ply_points': ply_points, **trust.summary(),
    }


def _float_image(msg: Any) -> np.ndarray:
    from depth_completion_ros.core.conversions import image_to_numpy

    return np.asarray(image_to_numpy(msg), dtype=np.float32)


CONFIDENCE_BINS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


class ValidityReport:
    """What the node left unknown and how much it trusts the rest, over the demo's frames (summary.json)."""

    def __init__(self) -> None:
        self.pixels = self.unknown = self.above_top = self.gt_pixels = self.gt_covered = 0
        self.histogram = np.zeros(len(CONFIDENCE_BINS) - 1, np.int64)
        self.checked_columns = False

    def add(self, dense: np.ndarray, sparse: np.ndarray | None, confidence: np.ndarray | None) -> None:
        valid = dense > 0
        self.pixels += valid.size
        self.unknown += int((~valid).sum())
        if sparse is not None and (sparse > 0).any():
            from depth_completion_ros.core.validity import column_top_rows

            rows = np.arange(dense.shape[0])[:, None]
            self.above_top += int((valid & (rows < column_top_rows(sparse)[None, :])).sum())
            self.checked_columns = True
        if confidence is not None:
            self.histogram += np.histogram(confidence[valid], bins=CONFIDENCE_BINS)[0]

    def add_coverage(self, dense: np.ndarray, gt: np.ndarray) -> None:
        scored = gt > 0
        self.gt_pixels += int(scored.sum())
        self.gt_covered += int((scored & (dense > 0)).sum())

    def summary(self) -> dict[str, Any]:
        total = max(int(self.histogram.sum()), 1)
        return {
            'nan_fraction': round(self.unknown / self.pixels, 4) if self.pixels else None,
            'valid_pixels_above_highest_measurement': self.above_top if self.checked_columns else None,
            'confidence_histogram': {f'{low:.1f}-{high:.1f}': round(int(count) / total, 4) for low, high, count
                                     in zip(CONFIDENCE_BINS[:-1], CONFIDENCE_BINS[1:], self.histogram, strict=True)},
            'gt_coverage': round(self.gt_covered / self.gt_pixels, 4) if self.gt_pixels else None,
        }


def main(args: argparse.Namespace) -> int:
    started = time.monotonic()
    from depth_completion_ros.ros.local_env import configure_local_ros
    from depth_completion_ros.ros.runtime import DEBUG_TYPES, DIAGNOSTICS_TYPES, OUTPUT_TYPES, find_config, run_graph

    out = Path(args.out)
    try:
        config = find_config(args.config or 'generic')
        bag = Path(args.bag) if args.bag else sample_bag(
            Path(args.cache or os.environ.get('XDG_CACHE_HOME', Path.home() / '.cache')) / 'depth_completion_ros',
            args.frames)
        if not (bag / 'metadata.yaml').is_file():
            raise FileNotFoundError(f'not a rosbag2 folder (no metadata.yaml): {bag}')
    except (FileNotFoundError, ValueError) as exc:
        print(f'depth-completion demo: error: {exc}', file=sys.stderr)
        return 2
    configure_local_ros()  # this process and every child: shared memory only, a private domain
    from depth_completion_ros.ros.shm_hygiene import clean_shm

    leftovers = clean_shm(min_age_s=5.0)  # segments of killed ROS processes hold RAM for good
    if leftovers.removed:
        print(f'demo: shm-clean {leftovers.summary()}', flush=True)

    from depth_completion_ros.ros.params import load_params_file

    config_values = load_params_file(config)
    variant = args.variant or config_values.get('model.variant', 'mini')
    params: dict[str, object] = {'publish_debug': True, 'model.device': args.device, 'model.variant': variant}
    note = ''
    prefill_only = args.prefill_only or bool(config_values.get('prefill_only', False))
    if not prefill_only and not config_values.get('model.weights'):
        from depth_completion_ros.model import list_shipped_weights

        if not any(w.get('variant') == variant for w in list_shipped_weights()):
            prefill_only = True
            note = f'no shipped weights for LRRU-{variant} yet: ran prefill only'
            print(f'demo: {note}', flush=True)
    params['prefill_only'] = prefill_only

    params_files = [config]
    if (bag / bagio.PARAMS_FILE_NAME).is_file():
        params_files.append(bag / bagio.PARAMS_FILE_NAME)
    inputs = {'image': args.image_topic, 'camera_info': args.camera_info_topic}
    played_image_topic = args.image_topic
    bag_topics = bagio.bag_topics(bag)
    if args.image_topic not in bag_topics and args.image_topic + '/compressed' in bag_topics:
        params['image_transport'] = 'compressed'  # a bag of CompressedImage (image_transport's topic name)
        played_image_topic = args.image_topic + '/compressed'
    if config_values.get('input_mode', 'points') == 'depth':
        inputs['depth'] = args.depth_topic or '/camera/depth/image_raw'
    else:
        inputs['points'] = args.points_topic

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    print(f'demo: {bag} -> node ({"prefill only" if prefill_only else "LRRU-" + variant}) -> {out}', flush=True)
    try:
        result = run_graph(bag, out / 'output_bag', out / 'logs', params_files=params_files, params=params,
                           input_topics=inputs, record_topics={**OUTPUT_TYPES, **DEBUG_TYPES, **DIAGNOSTICS_TYPES},
                           rate=args.rate or 1.0, paced=args.rate is None, play_timeout_s=900.0,
                           idle_timeout_s=60.0)
    except RuntimeError as exc:
        print(f'depth-completion demo: error: {exc}', file=sys.stderr)
        return 1
    analysis = analyse(bag, out / 'output_bag', out, played_image_topic, args.gt_topic, not prefill_only,
                       float(config_values.get('max_range', 100.0)))
    frames_in = int(result['play_report'].get('published', {}).get(played_image_topic, 0))
    stats = result['node_stats']
    summary = {
        'frames_in': frames_in, 'frames_out': analysis['frames_out'],
        'dropped': frames_in - analysis['frames_out'],
        'latency_ms_p50': analysis['latency_ms_p50'], 'latency_ms_p95': analysis['latency_ms_p95'],
        'processing_ms_p50': analysis['processing_ms_p50'],
        'rmse_mm': analysis['rmse_mm'], 'mae_mm': analysis['mae_mm'], 'metrics_frames': analysis['metrics_frames'],
        'metrics_max_depth_m': analysis['metrics_max_depth_m'],
        'nan_fraction': analysis['nan_fraction'], 'confidence_histogram': analysis['confidence_histogram'],
        'valid_pixels_above_highest_measurement': analysis['valid_pixels_above_highest_measurement'],
        'gt_coverage': analysis['gt_coverage'],
        'mode': stats.get('mode'), 'device': stats.get('device'),
        'stage_ms_mean': {k.removeprefix('stage_').removesuffix('_ms'): round(v, 1)
                          for k, v in stats.items() if k.startswith('stage_') and isinstance(v, float)},
        'node_dropped': stats.get('dropped'), 'playback': 'paced by output' if args.rate is None else args.rate,
        'bag': str(bag), 'output_bag': str(out / 'output_bag'), 'previews': str(out / 'previews'),
        'ply': str(out / 'cloud.ply') if analysis['ply_points'] else None, 'ply_points': analysis['ply_points'],
        'node_exit_status': result['node_status'], 'wall_s': round(time.monotonic() - started, 1),
    }
    if note:
        summary['note'] = note
    (out / 'summary.json').write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return 0 if summary['frames_out'] > 0 and result['node_status'] == 0 else 1
