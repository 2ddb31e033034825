"""issue 17 (4): unit mistakes are caught. A depth scale that puts most valid depths outside [min_range,
max_range] is one warning naming the likely scale (CLI: eval, make-bag; the node: test_node_inputs_e2e)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from depth_completion_ros.core.units import check_depth_units
from depth_completion_ros.data.loaders import open_source
from depth_completion_ros.tools.common import depth_scale_warning

NYU_INTRINSICS = (518, 519, 325.5, 253.5)


def test_millimetres_read_as_metres_name_the_factor_on_a_real_kinect_frame(nyu_dir: Path) -> None:
    metres = open_source(f'rgbd:{nyu_dir}', intrinsics=NYU_INTRINSICS, depth_scale=1000)[0].sparse
    assert check_depth_units(metres, 0.2, 10.0) is None                      # right units: nothing to say
    problem = check_depth_units(metres * 1000.0, 0.2, 10.0)                  # --depth-scale 1 on millimetres
    assert problem is not None and problem.out_of_range > 0.99 and problem.factor == 1e-3
    assert 'look 1000x too large' in problem.describe(0.2, 10.0)
    assert check_depth_units(np.zeros((4, 4), np.float32), 0.2, 10.0) is None  # no depth: not a unit problem


def test_eval_and_make_bag_say_the_likely_depth_scale(nyu_dir: Path) -> None:
    wrong = open_source(f'rgbd:{nyu_dir}', intrinsics=NYU_INTRINSICS, depth_scale=1)
    line = depth_scale_warning(wrong, 'eval')
    assert line is not None and line.startswith('depth-completion eval: warning: with --depth-scale 1 ')
    assert line.endswith('the likely --depth-scale is 1000') and '\n' not in line
    right = open_source(f'rgbd:{nyu_dir}', intrinsics=NYU_INTRINSICS, depth_scale=1000)
    assert depth_scale_warning(right, 'eval') is None
