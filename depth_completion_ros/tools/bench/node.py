"""``depth-completion bench node``: the node as a black box, ros2_benchmark style.

For prefill-only and each shipped LRRU variant (or an untrained Mini for timing when none is shipped): one
node process; the player floods the bag at increasing rates (x``--factor``) until more than 5 % of the frames
get no output -> max sustained rate; then a run at ``--latency-hz`` (default the sensor's 10 Hz) gives latency
p50/p95 (input pair complete -> outputs published) and the per-stage breakdown the node reports on
``~/timings`` (decode, sync, project, prefill, network, cloud, encode, publish).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from depth_completion_ros.core.conversions import stamp_to_ns
from depth_completion_ros.ros import bagio

BAG_RATE_HZ = 10.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--bag', default=None, help='camera+LiDAR bag (default: synthetic 1242x375, 8 frames)')
    parser.add_argument('--frames', type=int, default=8, help='frames of the default synthetic bag')
    parser.add_argument('--configs', default=None,
                        help='comma list of: prefill; a variant (mini, tiny, ...: its shipped lrru_<variant> weights, '
                             'else untrained weights for timing); a shipped weights name (lrru_mini_rgbd) '
                             '(default: prefill + shipped variants)')
    parser.add_argument('--start-hz', type=float, default=0.25, help='first flood rate')
    parser.add_argument('--factor', type=float, default=2.0, help='rate multiplier per step')
    parser.add_argument('--max-steps', type=int, default=6, help='most flood steps per configuration')
    parser.add_argument('--latency-hz', type=float, default=10.0, help='rate of the latency run')
    parser.add_argument('--device', default='auto', choices=('auto', 'cpu', 'cuda'),
                        help='inference device of the node (auto: cuda if available)')

OUTPUT_TOPICS = ('/depth_completion/depth', '/depth_completion/timings')


class OutputCounter:
    """In-process subscriber of the node's depth output and per-frame timings."""

    def __init__(self, node: Any) -> None:
        from sensor_msgs.msg import Image
        from std_msgs.msg import String

        from depth_completion_ros.ros.qos import make_qos

        self.node = node
        self.depth_stamps: set[int] = set()
        self.timings: list[dict] = []
        depth_topic, timings_topic = OUTPUT_TOPICS
        node.create_subscription(Image, depth_topic, self._on_depth, make_qos('reliable', 50))
        node.create_subscription(String, timings_topic, self._on_timings, make_qos('reliable', 50))

    def _on_depth(self, msg: Any) -> None:
        self.depth_stamps.add(stamp_to_ns(msg.header.stamp))

    def _on_timings(self, msg: Any) -> None:
        self.timings.append(json.loads(msg.data))

    def reset(self) -> None:
        self.depth_stamps.clear()
        self.timings.clear()


def _spin_while(node: Any, condition: Any, timeout_s: float) -> None:
    import rclpy

    deadline = time.monotonic() + timeout_s
    while condition() and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)


def run_step(bench: Any, counter: OutputCounter, bag: Path, frames: int, rate_hz: float, workdir: Path,
             drain_s: float) -> dict:
    from depth_completion_ros.ros.runtime import RosProcess, module_args

    counter.reset()
    inputs = [bagio.IMAGE_TOPIC, bagio.CAMERA_INFO_TOPIC, bagio.POINTS_TOPIC]
    player = RosProcess('player', module_args(
        'depth_completion_ros.cli', 'play', str(bag), '--rate', str(rate_hz / BAG_RATE_HZ), '--topics', *inputs,
        '--wait-for-subscribers', '20', '--wait-topics', *inputs), workdir / f'player_{rate_hz:.3f}.log')
    _spin_while(bench, lambda: player.returncode is None, 600.0)
    player.stop()
    last = [len(counter.depth_stamps), time.monotonic()]

    def still_coming() -> bool:  # outputs stop changing for drain_s, or all are in
        if len(counter.depth_stamps) != last[0]:
            last[:] = [len(counter.depth_stamps), time.monotonic()]
        return len(counter.depth_stamps) < frames and time.monotonic() - last[1] < drain_s
    _spin_while(bench, still_coming, 600.0)
    out = len(counter.depth_stamps)
    latencies = [t['latency_ms'] for t in counter.timings]
    stages: dict[str, list[float]] = {}
    for t in counter.timings:
        for stage, value in t['stages_ms'].items():
            stages.setdefault(stage, []).append(value)
    return {'rate_hz': round(rate_hz, 3), 'frames_in': frames, 'frames_out': out,
            'drop_fraction': round(1 - out / frames, 3),
            'latency_ms_p50': round(float(np.percentile(latencies, 50)), 1) if latencies else None,
            'latency_ms_p95': round(float(np.percentile(latencies, 95)), 1) if latencies else None,
            'stages_ms': {k: round(float(np.median(v)), 1) for k, v in stages.items()}}


def bench_config(bench: Any, counter: OutputCounter, label: str, bag: Path, frames: int, params: dict,
                 args: argparse.Namespace, workdir: Path) -> dict:
    from depth_completion_ros.ros.runtime import NODE_MODULE, RosProcess, module_args, node_arguments

    remaps = {'image': bagio.IMAGE_TOPIC, 'camera_info': bagio.CAMERA_INFO_TOPIC, 'points': bagio.POINTS_TOPIC}
    node = RosProcess('node', module_args(NODE_MODULE, *node_arguments(
        [bag / bagio.PARAMS_FILE_NAME], params, remaps)), workdir / f'node_{label}.log')
    try:
        if not node.wait_for_output('ready:', 120.0):
            return {'config': label, 'error': node.output()[-500:]}
        # The player waits for the node's subscriptions; our counter must also have discovered the node's
        # publishers, or a fast configuration's first outputs are lost and read as drops.
        _spin_while(bench, lambda: min(bench.count_publishers(topic) for topic in OUTPUT_TOPICS) == 0, 30.0)
        _spin_while(bench, lambda: True, 0.5)
        steps = []
        rate = args.start_hz
        sustained = None
        for _ in range(args.max_steps):
            step = run_step(bench, counter, bag, frames, rate, workdir, drain_s=15.0)
            steps.append(step)
            print(f'bench node: {label} at {rate:.2f} Hz -> {step["frames_out"]}/{frames} frames',
                  file=sys.stderr, flush=True)   # progress on stderr: stdout stays one JSON object with --json
            if step['drop_fraction'] > 0.05:
                break
            sustained = step
            rate *= args.factor
        latency_run = run_step(bench, counter, bag, frames, args.latency_hz, workdir, drain_s=15.0)
        reference = sustained or latency_run
        return {'config': label, 'max_sustained_hz': sustained['rate_hz'] if sustained else None,
                'latency_at_hz': args.latency_hz, 'latency_run': latency_run,
                'latency_ms_p50_sustained': reference['latency_ms_p50'],
                'latency_ms_p95_sustained': reference['latency_ms_p95'],
                'stages_ms_sustained': reference['stages_ms'], 'flood_steps': steps}
    finally:
        node.stop()


def node_configs(configs: str | None, shipped_weights: list[dict[str, Any]],
                 device: str) -> list[tuple[str, dict[str, Any]]]:
    """``(label, node parameters)`` per configuration. A variant runs with the weights the node would pick for
    it (``resolve_shipped_weights``: ``lrru_<variant>``, the LiDAR weights, right for this LiDAR bag), a shipped
    weights name (``lrru_mini_rgbd``) runs that file, and a variant without shipped weights runs untrained
    weights of the same cost (``model.weights`` None here: the caller writes the file)."""
    from depth_completion_ros.model.config import VARIANTS
    from depth_completion_ros.pipeline import resolve_shipped_weights
    from depth_completion_ros.tools.common import CliError

    shipped = {w['name']: w['variant'] for w in shipped_weights if w.get('variant')}
    variants = sorted(set(shipped.values()))
    labels = configs.split(',') if configs else ['prefill', *variants] if variants else ['prefill', 'mini']
    unknown = [label for label in labels if label != 'prefill' and label not in shipped and label not in VARIANTS]
    if unknown:
        raise CliError(f'--configs: unknown {", ".join(map(repr, unknown))}; use prefill, a variant '
                       f'({", ".join(VARIANTS)}) or a shipped or imported weights name '
                       f'({", ".join(shipped) or "none"})')
    result: list[tuple[str, dict[str, Any]]] = []
    for label in labels:
        params: dict[str, Any] = {'model.device': device, 'publish_debug': False}
        if label == 'prefill':
            params['prefill_only'] = True
        elif label in shipped:
            params.update({'model.variant': shipped[label], 'model.weights': label})
        elif label in variants:
            params.update({'model.variant': label, 'model.weights': resolve_shipped_weights(label)})
        else:  # timing only: same architecture and cost
            params.update({'model.variant': label, 'model.weights': None})
            label = f'{label} (untrained, timing only)'
        result.append((label, params))
    return result


def main(args: argparse.Namespace) -> int:
    from depth_completion_ros.ros.local_env import configure_local_ros

    configure_local_ros()
    import rclpy
    import torch

    from depth_completion_ros.model import build_model, list_imported_weights, list_shipped_weights, save_weights
    from depth_completion_ros.tools.demo import sample_bag

    # a wrong --configs fails first; imported weights (the LRRU authors') are named like shipped ones
    configs = node_configs(args.configs, list_shipped_weights() + list_imported_weights(), args.device)
    workdir = Path(tempfile.mkdtemp(prefix='dcr_bench_node_'))
    if args.bag:
        bag = Path(args.bag)
        frames = bagio.bag_topics(bag)[bagio.IMAGE_TOPIC][1]
    else:
        with contextlib.redirect_stdout(sys.stderr):    # its progress line: stdout stays one JSON object
            bag = sample_bag(Path.home() / '.cache' / 'depth_completion_ros', args.frames)
        frames = args.frames
    for _label, params in configs:
        if params.get('model.weights') is None and not params.get('prefill_only'):
            path = workdir / f'untrained_{params["model.variant"]}.safetensors'
            torch.manual_seed(0)
            save_weights(build_model(params['model.variant']), path,
                         {'variant': params['model.variant'], 'note': 'untrained, timing only'})
            params['model.weights'] = str(path)

    rclpy.init()
    bench = rclpy.create_node('depth_completion_bench')
    counter = OutputCounter(bench)
    results = []
    try:
        for label, params in configs:
            results.append(bench_config(bench, counter, label.split(' ')[0], bag, frames, params, args, workdir))
            results[-1]['config'] = label
            results[-1]['weights'] = params.get('model.weights')   # which file ran: the table must say
    finally:
        bench.destroy_node()
        rclpy.try_shutdown()
    report = {'bag': str(bag), 'frames_per_step': frames, 'image_size': '1242x375' if not args.bag else None,
              'device': args.device, 'torch_threads': torch.get_num_threads(), 'results': results}
    if args.json:
        print(json.dumps(report))
    else:
        print('| config | max sustained Hz (<=5% drops) | latency p50/p95 ms (sustained) | '
              f'latency p50/p95 ms at {args.latency_hz:g} Hz (out/in) | stages ms (median) |')
        print('|---|---|---|---|---|')
        for r in results:
            if 'error' in r:
                print(f'| {r["config"]} | error | | | |')
                continue
            lr = r['latency_run']
            stages = ', '.join(f'{k} {v}' for k, v in r['stages_ms_sustained'].items())
            name = r['config'] if not r.get('weights') or '/' in r['weights'] else f'{r["config"]} ({r["weights"]})'
            print(f'| {name} | {r["max_sustained_hz"]} | {r["latency_ms_p50_sustained"]}/'
                  f'{r["latency_ms_p95_sustained"]} | {lr["latency_ms_p50"]}/{lr["latency_ms_p95"]} '
                  f'({lr["frames_out"]}/{lr["frames_in"]}) | {stages} |')
    return 0
