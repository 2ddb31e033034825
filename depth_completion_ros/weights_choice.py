"""Which shipped weights fit the input when none are named: the one rule for eval, complete, demo and the node.

The two shipped networks were trained on different inputs: ``lrru_mini`` on LiDAR scans (line patterns, ip_basic
prefill) and ``lrru_mini_rgbd`` on depth cameras and scattered points (linear prefill). Given the other kind, each
is several times worse (NYU held-back frames: 2964 mm with the LiDAR weights, 312 mm with the RGB-D ones), so a
default must follow the input, and say which it took and why (the user may want the other).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LIDAR_WEIGHTS = 'lrru_mini'
DEPTH_WEIGHTS = 'lrru_mini_rgbd'
# A sparse map that covers more than this share of its pixels comes from a depth camera, not a LiDAR scan
# (a 64-line scan covers ~5 % of a KITTI frame; a Kinect map 60-90 %).
DEPTH_CAMERA_COVERAGE = 0.2
# --data kinds whose input is a depth camera's image (the rest are LiDAR scans, or a bag: by its topics).
DEPTH_DATA_KINDS = ('rgbd', '7scenes', 'synthetic:room')


@dataclass(frozen=True)
class WeightsChoice:
    """The weights to run and why, for the one line every command prints (``describe``)."""
    weights: str
    why: str
    chosen: bool = True  # False: the user named them

    def describe(self, option: str = 'pass --weights') -> str:
        """``option``: how the user names weights in this command (the node: ``set model.weights``)."""
        if not self.chosen:
            return f'weights {self.weights} (as requested)'
        other = LIDAR_WEIGHTS if self.weights == DEPTH_WEIGHTS else DEPTH_WEIGHTS
        return f'weights {self.weights} ({self.why}; {option} {other} for the other kind)'


def for_depth_input(is_depth_camera: bool, why: str) -> WeightsChoice:
    """The shipped weights of one input kind: a depth camera or scattered points, else a LiDAR scan."""
    return WeightsChoice(DEPTH_WEIGHTS if is_depth_camera else LIDAR_WEIGHTS, why)


def choose(requested: str | None, is_depth_camera: bool, why: str) -> WeightsChoice:
    """``requested`` when named (not empty, not ``auto``), else the shipped weights of the input kind."""
    if requested and requested != 'auto':
        return WeightsChoice(requested, 'as requested', chosen=False)
    return for_depth_input(is_depth_camera, why)


def by_coverage(requested: str | None, sparse: np.ndarray) -> WeightsChoice:
    """One frame's sparse map (metres, 0 = none) tells the kind by how many pixels it covers."""
    coverage = float((np.asarray(sparse) > 0).mean()) if np.asarray(sparse).size else 0.0
    if coverage > DEPTH_CAMERA_COVERAGE:
        return choose(requested, True, f'{coverage:.0%} of pixels measured: a depth camera')
    return choose(requested, False, f'{coverage:.1%} of pixels measured: a LiDAR-like scan')


def by_input_mode(requested: str | None, input_mode: str) -> WeightsChoice:
    """The node's ``input_mode``: ``depth`` is a depth camera's image, ``points`` a LiDAR's cloud."""
    if input_mode == 'depth':
        return choose(requested, True, 'input_mode depth: a depth camera')
    return choose(requested, False, 'input_mode points: a LiDAR scan')


def by_data(requested: str | None, data: str, protocol: str, bag_has_depth: bool = False) -> WeightsChoice:
    """An eval ``--data`` spec and its protocol: sampled points (NYU-style ``sample-points:N``) are scattered
    points whatever the source; RGB-D folders, 7-Scenes, the synthetic room and depth-image bags are depth
    cameras; KITTI, the synthetic street and point-cloud bags are LiDAR scans."""
    kind = data.split(':', 1)[0]
    if kind == 'synthetic':
        kind = ':'.join(data.split('?', 1)[0].split(':', 2)[:2])
    if protocol.startswith('sample-points'):
        return choose(requested, True, f'protocol {protocol}: scattered points')
    if kind in DEPTH_DATA_KINDS:
        return choose(requested, True, f'data {kind}: a depth camera')
    if kind == 'bag':
        return choose(requested, bag_has_depth,
                      'the bag has a depth image topic: a depth camera' if bag_has_depth
                      else 'the bag has a point cloud: a LiDAR scan')
    return choose(requested, False, f'data {kind}: a LiDAR scan')
