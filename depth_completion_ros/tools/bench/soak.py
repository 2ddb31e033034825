"""``depth-completion bench soak --minutes N``: the node for N minutes on real KITTI frames at a steady rate (or as fast
as it answers them), with the malformed mix of ros/fuzz.py between them (unless ``--malformed 0``).

Reports real-frame outputs per second, the share of real frames answered, latency (pair complete -> outputs
published) and the node's resident memory: after a warm-up (default the first 10 %, at least one minute) the
median RSS of the first and of the last minute are compared (growth in %), with the slope of a line fitted to
every sample after warm-up. A node that keeps something per bad message grows here; one that is bounded does
not.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

NS_PER_S = 1_000_000_000
TOPICS = {'image': '/soak/image', 'camera_info': '/soak/camera_info', 'points': '/soak/points'}
RSS_PERIOD_S = 5.0


def _default_kitti() -> str:
    from depth_completion_ros.tools.bench.shared_data import shared_data_dir

    return str(shared_data_dir() / 'kitti_object')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--minutes', type=float, default=10.0, help='soak duration')
    parser.add_argument('--rate', type=float, default=0.5, help='real frames per second')
    parser.add_argument('--malformed', type=int, default=50,
                        help='defective frames (each with one broken message) before every real frame')
    parser.add_argument('--kitti', default=_default_kitti(), help='KITTI object folder with the real frame')
    parser.add_argument('--frame', default='000003', help='KITTI object frame id')
    parser.add_argument('--prefill-only', action='store_true', help='no network (prefill only)')
    parser.add_argument('--device', default='cpu', choices=('auto', 'cpu', 'cuda'), help='inference device')
    parser.add_argument('--warmup-s', type=float, default=None,
                        help='seconds excluded from the RSS growth (default: 10 %% of the run, at least 60 s)')
    parser.add_argument('--seed', type=int, default=12, help='seed of the malformed mix')
    parser.add_argument('--input-depth', type=int, default=5, help='the node\'s qos.input.depth')
    parser.add_argument('--answer-timeout', type=float, default=20.0,
                        help='seconds to wait for the output of a real frame before it counts as unanswered')
    parser.add_argument('--workdir', default=None, help='where the node log goes (default: a temp dir)')


def rss_mb(pid: int) -> float | None:
    """Resident set size of a process in MB (None once it is gone)."""
    try:
        for line in Path(f'/proc/{pid}/status').read_text().splitlines():
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024.0
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def rss_growth(samples: list[tuple[float, float]], warmup_s: float) -> dict[str, Any]:
    """RSS after warm-up: median of its first and of its last minute, growth %, fitted slope (MB/min)."""
    after = [(t, rss) for t, rss in samples if t >= warmup_s]
    if len(after) < 2:
        return {'rss_samples_after_warmup': len(after)}
    start_t, end_t = after[0][0], after[-1][0]
    first = [rss for t, rss in after if t <= start_t + 60.0]
    last = [rss for t, rss in after if t >= end_t - 60.0]
    times, values = np.array([t for t, _ in after]), np.array([rss for _, rss in after])
    slope = float(np.polyfit(times / 60.0, values, 1)[0]) if np.ptp(times) > 0 else 0.0
    first_mb, last_mb = float(np.median(first)), float(np.median(last))
    return {'rss_mb_start': round(samples[0][1], 1), 'rss_mb_after_warmup': round(first_mb, 1),
            'rss_mb_end': round(last_mb, 1), 'rss_mb_max': round(max(rss for _, rss in samples), 1),
            'rss_growth_pct': round(100.0 * (last_mb - first_mb) / first_mb, 2),
            'rss_slope_mb_per_min': round(slope, 3), 'rss_samples_after_warmup': len(after)}


def main(args: argparse.Namespace) -> int:
    if args.minutes <= 0 or args.rate <= 0 or args.malformed < 0:
        print('depth-completion bench soak: error: --minutes and --rate must be > 0, --malformed >= 0',
              file=sys.stderr)
        return 2
    if not (Path(args.kitti) / 'velodyne').is_dir():
        print(f'depth-completion bench soak: error: no KITTI object folder at {args.kitti} (give --kitti DIR)',
              file=sys.stderr)
        return 2
    from depth_completion_ros.ros.local_env import configure_local_ros

    configure_local_ros()
    import rclpy
    from tqdm import tqdm

    from depth_completion_ros.ros.fuzz import FuzzDriver, MalformedMix, RealFrame
    from depth_completion_ros.ros.runtime import (
        NODE_MODULE,
        RosProcess,
        module_args,
        node_arguments,
        parse_final_stats,
    )

    frame = RealFrame.from_kitti(args.kitti, args.frame)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix='dcr_soak_'))
    workdir.mkdir(parents=True, exist_ok=True)
    # the node's default input history (qos.input.depth): the middleware keeps that many samples per topic, each
    # grown to the largest message it ever held, so a deeper history holds more memory under mixed sizes
    params = {'prefill_only': args.prefill_only, 'model.device': args.device, 'sync.slop': 0.02,
              'qos.input.depth': args.input_depth, **frame.node_params()}
    node = RosProcess('node', module_args(NODE_MODULE, *node_arguments(params=params, remaps=TOPICS)),
                      workdir / 'node.log')
    duration_s = args.minutes * 60.0
    warmup_s = args.warmup_s if args.warmup_s is not None else max(60.0, 0.1 * duration_s)
    rclpy.init()
    bench = rclpy.create_node('depth_completion_soak')
    try:
        if not node.wait_for_output('ready:', 180.0):
            print(f'depth-completion bench soak: error: the node did not start:\n{node.output()[-2000:]}',
                  file=sys.stderr)
            return 1
        driver = FuzzDriver(bench, TOPICS)
        if not driver.wait_for_node(60.0):
            print('depth-completion bench soak: error: the node\'s topics were not discovered', file=sys.stderr)
            return 1
        mix = MalformedMix(frame, seed=args.seed)
        period_s = 1.0 / args.rate
        samples: list[tuple[float, float]] = []
        real_sent, real_answered = 0, 0
        latencies: list[float] = []
        stamp = 1000 * NS_PER_S
        start = time.monotonic()
        next_rss = 0.0
        bar = tqdm(total=int(duration_s), unit='s', desc='soak', file=sys.stderr, disable=not sys.stderr.isatty())
        while (elapsed := time.monotonic() - start) < duration_s:
            frame_start = time.monotonic()
            previous, stamp = stamp, stamp + NS_PER_S
            if args.malformed:
                driver.publish(mix.burst(args.malformed, previous + NS_PER_S // 10, stamp - NS_PER_S // 10),
                               pace_s=0.003)
            driver.publish(mix.real(stamp))
            real_sent += 1
            # wait for the real frame's answer before the next burst (a newer pair would replace it in the
            # node's slot of one: that is the node keeping up with the sensor, not what this measures)
            if driver.spin_until(lambda s=stamp: s in driver.depth and s in driver.latency_ms, args.answer_timeout):
                real_answered += 1
                latencies.append(driver.latency_ms[stamp])
            deadline = frame_start + period_s
            driver.depth.clear()  # keep only what is measured (the bench's own memory is not the point)
            driver.infos.clear()
            driver.spin_until(lambda: False, max(deadline - time.monotonic(), 0.0))
            if elapsed >= next_rss:
                rss = rss_mb(node.popen.pid)
                if rss is None:
                    break
                samples.append((elapsed, rss))
                next_rss = elapsed + RSS_PERIOD_S
            bar.update(int(time.monotonic() - start) - bar.n)
        bar.close()
        wall_s = time.monotonic() - start
        alive = node.returncode is None
        status = node.stop(timeout_s=30.0)
    finally:
        bench.destroy_node()
        rclpy.try_shutdown()
        if node.returncode is None:
            node.stop(timeout_s=10.0)
    stats = parse_final_stats(node.output())
    lat = np.array(latencies) if latencies else np.array([np.nan])
    report = {
        'minutes': round(wall_s / 60.0, 2), 'mode': 'prefill_only' if args.prefill_only else 'lrru_mini',
        'device': args.device, 'image': f'{frame.camera.width}x{frame.camera.height}', 'rate_hz': args.rate,
        'real_frames_sent': real_sent, 'real_frames_answered': real_answered,
        'real_outputs_per_s': round(real_answered / wall_s, 3), 'all_outputs_per_s': round(
            stats.get('frames_out', 0) / wall_s, 3),
        'latency_ms_p50': round(float(np.nanpercentile(lat, 50)), 1),
        'latency_ms_p95': round(float(np.nanpercentile(lat, 95)), 1),
        'latency_ms_max': round(float(np.nanmax(lat)), 1),
        'malformed_frames': sum(v for k, v in mix.counts.items() if k != 'time_jump'),
        'messages_published': driver.published, 'node_alive_at_end': alive, 'node_exit_status': status,
        'warmup_s': warmup_s, **rss_growth(samples, warmup_s),
        'node_stats': {k: v for k, v in stats.items() if k.startswith(('dropped', 'frames_out', 'images_in',
                                                                        'depth_in', 'sync_', 'problem_'))},
        'node_log': str(workdir / 'node.log'),
    }
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f'{key:28s} {value}')
    return 0 if alive and status == 0 else 1
