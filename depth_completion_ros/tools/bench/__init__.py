"""``depth-completion bench {geometry,model,node,soak,cpu,gpu,prefill} [OPTIONS]``: benchmark scripts that print numbers
(and JSON).

Each target is a subcommand with its own options: ``depth-completion bench model --help`` lists them.
"""
from __future__ import annotations

import argparse
import importlib

TARGETS = {
    'geometry': ('depth_completion_ros.tools.bench.geometry',
                 'PointCloud2 decode/encode, projection and back-projection timings'),
    'model': ('depth_completion_ros.tools.bench.model', 'LRRU forward latency and peak memory per variant, prefill'),
    'node': ('depth_completion_ros.tools.bench.node', 'the node end to end: throughput, latency, drops'),
    'soak': ('depth_completion_ros.tools.bench.soak',
             'the node for N minutes, real frames + malformed mix: outputs/s, latency, RSS growth'),
    'cpu': ('depth_completion_ros.tools.bench.cpu',
            "threads x OpenMP wait policy x malloc, idle and under load, vs the machine's fp32 limit"),
    'gpu': ('depth_completion_ros.tools.bench.gpu',
            'the GPU path in one run: all variants x fp32/fp16/bf16 x compile, prefill, node -> JSON + markdown'),
    'prefill': ('depth_completion_ros.tools.bench.prefill',
                'every prefill method on a real KITTI scan and Kinect map vs OpenCV fill_in_fast and griddata'),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    targets = parser.add_subparsers(dest='target', metavar='TARGET', required=True,
                                    help='what to benchmark: ' + ', '.join(TARGETS) +
                                         ' (`depth-completion bench TARGET --help` lists its options)')
    for name, (module_name, help_text) in TARGETS.items():
        target = targets.add_parser(name, help=help_text, description=help_text,
                                    formatter_class=parser.formatter_class)
        target.add_argument('--json', action='store_true', help='print one JSON object instead of a table')
        module = importlib.import_module(module_name)
        module.add_arguments(target)
        target.set_defaults(_bench_main=module.main)


def main(args: argparse.Namespace) -> int:
    return int(args._bench_main(args) or 0)
