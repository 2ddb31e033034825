"""``depth-completion bench {geometry,model,node}``: benchmark scripts that print numbers (and JSON)."""
from __future__ import annotations

import argparse
import importlib

TARGETS = {
    'geometry': 'depth_completion_ros.tools.bench_geometry',
    'model': 'depth_completion_ros.tools.bench_model',
    'node': 'depth_completion_ros.tools.bench_node',
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('target', choices=sorted(TARGETS), help='what to benchmark')
    parser.add_argument('--json', action='store_true', help='print one JSON object instead of a table')
    parser.add_argument('rest', nargs=argparse.REMAINDER,
                        help='options of the target benchmark (see `depth-completion bench TARGET -- --help`)')


def main(args: argparse.Namespace) -> int:
    module = importlib.import_module(TARGETS[args.target])
    sub = argparse.ArgumentParser(prog=f'depth-completion bench {args.target}',
                                  formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sub.add_argument('--json', action='store_true', help='print one JSON object instead of a table')
    module.add_arguments(sub)
    rest = [a for a in args.rest if a != '--']
    sub_args = sub.parse_args(rest + (['--json'] if args.json else []))
    return int(module.main(sub_args) or 0)
