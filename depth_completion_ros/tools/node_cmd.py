"""``depth-completion node``: run the node (what ``ros2 run depth_completion_ros depth_completion_node`` does),
with a config preset by name, remaps and parameter overrides as plain options."""
from __future__ import annotations

import argparse
import sys

from depth_completion_ros.ros.runtime import ensure_local_ros, find_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--config', default='generic',
                        help='preset name (kitti_hdl64, rgbd_camera, generic) or a parameter YAML file')
    parser.add_argument('--params-file', action='append', default=[],
                        help='further parameter files (later ones win), e.g. <bag>/depth_completion_params.yaml')
    parser.add_argument('-r', '--remap', action='append', default=[], metavar='FROM:=TO',
                        help='topic remap, e.g. image:=/camera/image_raw')
    parser.add_argument('-p', '--param', action='append', default=[], metavar='NAME:=VALUE',
                        help='parameter override, e.g. prefill_only:=true')
    parser.add_argument('--name', default=None, help='node name (default depth_completion)')
    parser.add_argument('--lifecycle', action='store_true',
                        help='the managed (lifecycle) node: unconfigured until configure/activate over '
                             'lifecycle_msgs (ros2 lifecycle set /depth_completion configure)')
    parser.add_argument('--network', action='store_true',
                        help='use the normal ROS network settings instead of this-machine-only shared memory')


def build_ros_args(args: argparse.Namespace) -> list[str]:
    ros_args = ['--ros-args', '--params-file', str(find_config(args.config))]
    for path in args.params_file:
        ros_args += ['--params-file', path]
    for remap in args.remap:
        ros_args += ['-r', remap]
    for param in args.param:
        ros_args += ['-p', param]
    if args.name:
        ros_args += ['-r', f'__node:={args.name}']
    return ros_args


def main(args: argparse.Namespace) -> int:
    try:
        ros_args = build_ros_args(args)
    except FileNotFoundError as exc:
        print(f'depth-completion node: error: {exc}', file=sys.stderr)
        return 2
    ensure_local_ros(network=args.network)
    from depth_completion_ros.ros.node import main as node_main

    return node_main(['depth_completion_node', *(['--lifecycle'] if args.lifecycle else []), *ros_args])
