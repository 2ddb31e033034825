"""The ``depth-completion`` command: one entry point, one subcommand per tool.

Each subcommand lives in its own module under ``depth_completion_ros.tools`` and exposes
``add_arguments(parser)`` and ``main(args) -> int``. Modules are imported only when their subcommand runs,
so ``depth-completion --help`` stays fast (no torch import).
"""
from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help). The order is the order of `--help`.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    'demo': ('depth_completion_ros.tools.demo',
             'the main job: synthetic (or your) bag -> node -> previews, PLY, output bag, summary.json'),
    'node': ('depth_completion_ros.tools.node_cmd', 'run the depth completion node (same as ros2 run)'),
    'play': ('depth_completion_ros.tools.play', 'play a rosbag2 without the ROS CLI (rate, loop, /clock, QoS)'),
    'record': ('depth_completion_ros.tools.record', 'record topics to a rosbag2 (mcap) without the ROS CLI'),
    'make-bag': ('depth_completion_ros.tools.make_bag',
                 'write a camera+LiDAR bag from the synthetic generator or a KITTI object/raw folder'),
    'train': ('depth_completion_ros.tools.train', 'train an LRRU variant (synthetic, KITTI, RGB-D, rosbag data)'),
    'eval': ('depth_completion_ros.tools.eval', 'evaluate prefill and network side by side (KITTI/NYU protocols)'),
    'preview': ('depth_completion_ros.tools.preview', 'write preview PNGs of synthetic training scenes'),
    'export': ('depth_completion_ros.tools.export', 'export a model to ONNX (TDU included)'),
    'bench': ('depth_completion_ros.tools.bench', 'benchmarks: geometry, model, node'),
    'info': ('depth_completion_ros.tools.info', 'versions, devices, variants and shipped weights'),
    'shm-clean': ('depth_completion_ros.tools.shm_clean',
                  'remove Fast DDS shared-memory segments no live process uses (left by killed nodes)'),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='depth-completion',
        description='Camera + LiDAR/ToF depth completion with LRRU. Run `depth-completion <command> --help` '
                    'for the options of each command.',
    )
    sub = parser.add_subparsers(dest='command', metavar='<command>')
    for name, (_module, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] in ('-h', '--help'):
        parser.print_help()
        return 0
    name = argv[0]
    if name not in SUBCOMMANDS:
        parser.error(f'unknown command {name!r}; choose from {", ".join(SUBCOMMANDS)}')
    module_name, help_text = SUBCOMMANDS[name]
    module = importlib.import_module(module_name)
    sub_parser = argparse.ArgumentParser(prog=f'depth-completion {name}', description=help_text,
                                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    module.add_arguments(sub_parser)
    args = sub_parser.parse_args(argv[1:])
    return int(module.main(args) or 0)


if __name__ == '__main__':
    sys.exit(main())
