"""The ``depth-completion`` command: one entry point, one subcommand per tool.

Each subcommand lives in its own module under ``depth_completion_ros.tools`` and exposes
``add_arguments(parser)`` and ``main(args) -> int``. Modules are imported only when their subcommand runs,
so ``depth-completion --help`` stays fast (no torch import).

One error path for every subcommand: a user mistake (``tools.common.CliError``, the project's input errors,
a wrong path) prints one line ``depth-completion <command>: error: ...`` and exits 2; Ctrl-C exits 130 without
a traceback (each command saves what it has before re-raising KeyboardInterrupt).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import NoReturn

# name -> (module, one-line help). The order is the order of `--help`.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    'demo': ('depth_completion_ros.tools.demo',
             'the main job: synthetic (or your) bag -> node -> previews, PLY, output bag, summary.json'),
    'node': ('depth_completion_ros.tools.node_cmd', 'run the depth completion node (same as ros2 run)'),
    'play': ('depth_completion_ros.tools.play', 'play a rosbag2 without the ROS CLI (rate, loop, /clock, QoS)'),
    'record': ('depth_completion_ros.tools.record', 'record topics to a rosbag2 (mcap) without the ROS CLI'),
    'make-bag': ('depth_completion_ros.tools.make_bag',
                 'write a camera + LiDAR or RGB-D bag: synthetic, KITTI (object, raw, DC), 7-Scenes, RGB-D folders'),
    'train': ('depth_completion_ros.tools.train', 'train an LRRU variant (synthetic, KITTI, RGB-D, rosbag data)'),
    'complete': ('depth_completion_ros.tools.complete',
                 'complete one frame from files: RGB + sparse depth (KITTI PNG, 16-bit PNG, .npy) -> dense depth'),
    'weights': ('depth_completion_ros.tools.weights_cmd',
                'import the LRRU authors\' trained checkpoints; list shipped and imported weights'),
    'eval': ('depth_completion_ros.tools.eval', 'evaluate prefill and network side by side (KITTI/NYU protocols)'),
    'preview': ('depth_completion_ros.tools.preview', 'write preview PNGs of synthetic training scenes'),
    'export': ('depth_completion_ros.tools.export', 'export a model to ONNX (TDU included)'),
    'bench': ('depth_completion_ros.tools.bench', 'benchmarks: geometry, model, node, soak, cpu, gpu, prefill'),
    'info': ('depth_completion_ros.tools.info', 'versions, devices, variants and shipped weights'),
    'shm-clean': ('depth_completion_ros.tools.shm_clean',
                  'remove Fast DDS shared-memory segments no live process uses (left by killed nodes)'),
}


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Adds ``(default: X)`` only where the help text does not already speak of its default and a default
    exists (no "(default: None)", "(default: False)" or "(default: [])")."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ''
        default = action.default
        nothing = default is None or default is False or (isinstance(default, (str, list, tuple)) and not default) \
            or default == argparse.SUPPRESS
        if 'default' in text.lower() or action.required or nothing or not action.option_strings:
            return text
        return f'{text} (default: %(default)s)' if text else '(default: %(default)s)'


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors: ``depth-completion <command>: error: <what> (see ... --help)``, exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f'{self.prog}: error: {message} (see `{self.prog} --help`)\n')


def build_parser() -> argparse.ArgumentParser:
    from depth_completion_ros import __version__

    parser = ArgumentParser(
        prog='depth-completion',
        description='Camera + LiDAR/ToF depth completion with LRRU. Run `depth-completion <command> --help` '
                    'for the options of each command.',
    )
    parser.add_argument('--version', action='version', version=f'depth-completion {__version__}')
    sub = parser.add_subparsers(dest='command', metavar='<command>')
    for name, (_module, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def sub_parser(name: str) -> argparse.ArgumentParser:
    """The parser of one subcommand (its module imported), as ``depth-completion NAME`` sees it."""
    module_name, help_text = SUBCOMMANDS[name]
    module = importlib.import_module(module_name)
    parser = ArgumentParser(prog=f'depth-completion {name}', description=help_text, formatter_class=HelpFormatter)
    module.add_arguments(parser)
    parser.set_defaults(_main=module.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv[:1] == ['--version']:
        parser.parse_args(argv[:1])  # prints the version and exits 0
    if not argv or argv[0] in ('-h', '--help'):
        parser.print_help()
        return 0
    name = argv[0]
    if name not in SUBCOMMANDS:
        parser.error(f'unknown command {name!r}; choose from {", ".join(SUBCOMMANDS)}')
    prog = f'depth-completion {name}'
    # Before any subcommand imports torch: OpenMP threads that sleep when idle (OMP_WAIT_POLICY from the
    # environment wins when set) and reused malloc memory; children (node, player) inherit the environment.
    from depth_completion_ros.core.cpu_runtime import configure_cpu

    configure_cpu(wait_policy='env' if os.environ.get('OMP_WAIT_POLICY') else 'passive')
    from depth_completion_ros.tools.common import (
        EXIT_INTERRUPTED,
        EXIT_USER_ERROR,
        close_progress_bars,
        error_line,
        is_user_error,
    )

    try:
        args = sub_parser(name).parse_args(argv[1:])
        return int(args._main(args) or 0)
    except KeyboardInterrupt:
        close_progress_bars()
        print(f'{prog}: interrupted', file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if not is_user_error(exc):
            raise
        close_progress_bars()
        print(f'{prog}: error: {error_line(exc)}', file=sys.stderr, flush=True)
        return EXIT_USER_ERROR


if __name__ == '__main__':
    sys.exit(main())
