"""Every node parameter in one table: name, default, description, range/choices, and whether it may change at
run time. The node declares them from this table (with ROS descriptors, so `ros2 param describe` shows the
same text), the on-set callback consults it, and the README's table is generated from it.

Pure Python: ROS message classes are imported only inside :func:`descriptor_for`.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Any
    description: str
    runtime: bool = False                 # may change while running (on-set callback accepts it)
    choices: tuple[str, ...] = ()         # for strings
    min_value: float | None = None        # for numbers (inclusive)
    max_value: float | None = None
    step: float | None = None             # integer ranges: 1; float ranges: 0 (= continuous)
    array_length: tuple[int, ...] = ()    # for arrays: allowed lengths (empty = any)
    allow_empty_choice: bool = False      # string may also be '' (meaning "use the default source")
    names: bool = False                   # a list of names (string[]): an empty default says nothing of the type

    @property
    def type_name(self) -> str:
        if self.names:
            return 'string[]'
        if isinstance(self.default, bool):
            return 'bool'
        if isinstance(self.default, int):
            return 'int'
        if isinstance(self.default, float):
            return 'double'
        if isinstance(self.default, str):
            return 'string'
        return 'double[]'


P = ParamSpec
PARAMETERS: tuple[ParamSpec, ...] = (
    P('cameras', (), 'Several cameras around one depth source: their names (e.g. [left, right]). Camera <name> '
      'reads `<name>/image` and `<name>/camera_info` (remap them) and publishes `~/<name>/depth`, '
      '`~/<name>/confidence`, `~/<name>/points`, `~/<name>/camera_info` and its debug topics; the cloud is '
      'decoded once per scan. Per camera, `camera.<name>.image_transport`, `camera.<name>.image_rectified` and '
      '`camera.<name>.extrinsics.{translation,rotation,matrix}` override the node-wide values. Empty: one camera '
      'on `image`/`camera_info` with the outputs on `~/depth`, ... .', names=True),
    P('input_mode', 'points', 'Depth source: "points" (sensor_msgs/PointCloud2 on `points`) or "depth" '
      '(sensor_msgs/Image 16UC1 mm / 32FC1 m on `depth`).', choices=('points', 'depth')),
    P('depth_registered', True, 'input_mode=depth: the depth image is already registered to the RGB camera '
      '(same pixels). If false, it is re-projected using `depth/camera_info` and the extrinsics.'),
    P('image_transport', 'raw', 'How `image` arrives (image_transport style): raw (sensor_msgs/Image) or '
      'compressed (sensor_msgs/CompressedImage JPEG/PNG on `image/compressed`, as image_transport names it).',
      choices=('raw', 'compressed')),
    P('depth_transport', 'raw', 'input_mode=depth: raw (sensor_msgs/Image on `depth`) or compressedDepth '
      '(image_transport\'s PNG CompressedImage on `depth/compressedDepth`).', choices=('raw', 'compressedDepth')),
    P('image_rectified', False, 'The image is rectified (an image_rect topic) although its camera_info has '
      'distortion: project with P. false = decide from camera_info as image_proc does (non-zero D: raw image, '
      'points are distorted with K and D; all-zero D: pinhole K).'),
    P('sync.slop', 0.05, 'Largest stamp difference (s) between image and depth source to pair them.',
      runtime=True, min_value=0.001, max_value=1.0, step=0.0),
    P('camera_info.wait', 0.1, 'Longest wait (s) of an image for the camera_info with its own stamp (cameras '
      'that publish the image first) before it goes with the newest older one (counted as a fallback). Only '
      'cameras whose camera_info did carry their images\' stamps wait.', runtime=True, min_value=0.0,
      max_value=1.0, step=0.0),
    P('sync.queue_size', 5, 'Messages kept per side while waiting for a partner.',
      min_value=1, max_value=100, step=1),
    P('qos.input.reliability', 'best_effort', 'Input subscriptions: best_effort receives from best-effort '
      'drivers AND reliable publishers (bag replay); reliable only from reliable publishers.',
      choices=('best_effort', 'reliable')),
    P('qos.input.depth', 5, 'Input subscription history depth.', min_value=1, max_value=100, step=1),
    P('qos.output.reliability', 'reliable', 'Output publishers: reliable reaches reliable (RViz default) and '
      'best-effort subscribers; best_effort (sensor data) needs RViz set to Best Effort.',
      choices=('best_effort', 'reliable')),
    P('qos.output.depth', 5, 'Output publisher history depth.', min_value=1, max_value=100, step=1),
    P('extrinsics.source', 'auto', 'Where the sensor->camera transform comes from: tf (tf2_ros lookup at the '
      'cloud stamp), parameters (below), auto (tf when tf2_ros imports and the parameters are not set).',
      choices=('auto', 'tf', 'parameters')),
    P('extrinsics.translation', [0.0, 0.0, 0.0], 'Sensor->camera optical frame translation (m), '
      'p_cam = R p_sensor + t.', array_length=(3,)),
    P('extrinsics.rotation', [0.0, 0.0, 0.0, 1.0], 'Sensor->camera rotation as a quaternion x, y, z, w.',
      array_length=(4,)),
    P('extrinsics.matrix', [0.0], 'Sensor->camera 4x4 (16 values, row-major) or 3x4 (12 values) matrix, '
      'e.g. KITTI R0_rect * Tr_velo_to_cam. Overrides translation/rotation when given; [0.0] = unset.',
      array_length=(1, 12, 16)),
    P('extrinsics.tf_timeout', 0.05, 'TF lookup timeout (s) at the cloud stamp.',
      min_value=0.0, max_value=5.0, step=0.0),
    P('min_range', 0.1, 'Measurements closer than this (m, along the optical axis) are ignored.',
      runtime=True, min_value=0.0, max_value=1000.0, step=0.0),
    P('max_range', 100.0, 'Measurements farther than this (m) are ignored; output depth is clipped to it.',
      runtime=True, min_value=0.1, max_value=1000.0, step=0.0),
    P('validity.enable', True, 'Publish NaN (16UC1: 0) wherever no measurement supports the depth: above the '
      'highest measurement of a column, far from every measurement, outside the depth sensor\'s field of view. '
      'The cloud keeps only valid points.', runtime=True),
    P('validity.top_margin_px', 0, 'Rows above the highest measurement of a column still published (0: none '
      'above it).', runtime=True, min_value=0, max_value=1000, step=1),
    P('validity.column_window_px', 3, 'A column\'s highest measurement is the highest among the columns within '
      'this many pixels either side (a LiDAR ring samples azimuth more coarsely than the pixels near the image '
      'centre; 0: each pixel column alone, which cuts vertical NaN streaks).', runtime=True, min_value=0,
      max_value=1000, step=1),
    P('validity.max_distance_px', 10.0, 'Pixels farther than this from the nearest measurement are unknown '
      '(0: no distance rule).', runtime=True, min_value=0.0, max_value=10000.0, step=0.0),
    P('validity.fov_margin_deg', 1.0, 'Tolerance (deg) of the field-of-view test: the elevation/azimuth span '
      'of the LiDAR scan, or the depth camera\'s image.', runtime=True, min_value=0.0, max_value=45.0, step=0.0),
    P('confidence.distance_px', 4.0, '`~/confidence` = exp(-(d/distance_px)^2/2) * exp(-|z - z_near| / '
      '(relative_tolerance z_near (1 + d))), d = pixels to the nearest measurement, z_near its depth.', runtime=True,
      min_value=0.1, max_value=1000.0, step=0.0),
    P('confidence.relative_tolerance', 0.05, 'Relative depth difference to the nearest measurement (per pixel '
      'of distance to it, plus one) at which confidence falls to 1/e.', runtime=True, min_value=0.001,
      max_value=10.0, step=0.0),
    P('model.variant', 'mini', 'LRRU variant.', choices=('mini', 'tiny', 'small', 'base')),
    P('model.weights', '', 'Shipped weights name or a .safetensors path; empty = the shipped weights that fit '
      'input_mode (mini: lrru_mini for points, lrru_mini_rgbd for depth; logged at start-up), other variants: '
      'their own.'),
    P('model.device', 'auto', 'Inference device: auto (cuda if available), cuda, cpu.',
      choices=('auto', 'cuda', 'cpu')),
    P('model.precision', 'fp32', 'Inference precision (fp16/bf16 on CUDA).', choices=('fp32', 'fp16', 'bf16')),
    P('model.compile', False, 'torch.compile the network (long-running nodes): the first frame of each input size '
      'waits for the compilation (about 1-2 min on CPU, tens of seconds on a GPU), later frames may be faster. '
      'Falls back to eager with a warning if compilation fails.'),
    P('network.band', 'auto', 'auto: run the network only on the row band validity can keep (the rows from the '
      'highest measurement, less validity.top_margin_px and 32 rows of context, down to the lowest plus '
      'validity.max_distance_px), the rows above it unknown as validity makes them; inside, within a few cm of '
      'the full-frame run (0.05 m max measured on KITTI). Saves the rows a LiDAR never reaches. off: the whole '
      'frame (depth cameras, whose measurements cover it anyway); quote it in YAML ("off"), a bare off is a '
      'boolean there.', choices=('auto', 'off')),
    P('cpu.threads', 0, 'Torch intra-op threads for the network on CPU; 0 = torch\'s default (OMP_NUM_THREADS, '
      'else one per physical core). Applied before torch starts.', min_value=0, max_value=256, step=1),
    P('cpu.wait_policy', 'passive', 'OpenMP wait policy: passive (idle threads sleep: no collapse when other '
      'processes share the cores), active (spin: only on cores of its own), env (keep OMP_WAIT_POLICY from the '
      'environment). Applied before torch starts.', choices=('passive', 'active', 'env')),
    P('cpu.malloc', 'tuned', 'tuned: raise glibc malloc\'s mmap/trim thresholds so per-frame buffers are reused '
      'instead of page-faulted in every frame; system: leave malloc alone (also when jemalloc/tcmalloc is '
      'LD_PRELOADed). Applied at start-up.', choices=('tuned', 'system')),
    P('prefill.method', 'auto', 'Non-learned prefill the network corrects: auto = the one stored in the weights '
      '(the network only works with the prefill it was trained on); ipbasic (LiDAR line patterns), linear or '
      'nearest (scattered points, depth-camera holes), multiscale. An explicit value must match the weights '
      'unless prefill_only.', choices=('auto', 'ipbasic', 'multiscale', 'nearest', 'linear')),
    P('prefill_only', False, 'Publish the non-learned prefill (prefill.method) instead of running the network.',
      runtime=True),
    P('output.encoding', '32FC1', 'Output depth encoding: 32FC1 metres with NaN unknown (REP 118) or '
      '16UC1 millimetres with 0 unknown.', runtime=True, choices=('32FC1', '16UC1')),
    P('cloud.enable', True, 'Publish the dense organized point cloud on `~/points`.', runtime=True),
    P('cloud.stride', 1, 'Keep every n-th pixel in rows and columns of the output cloud.',
      runtime=True, min_value=1, max_value=16, step=1),
    P('cloud.color', True, 'XYZRGB output cloud (false: XYZ).', runtime=True),
    P('publish_debug', False, 'Also publish debug images: sparse depth, prefill, a colourised depth and a '
      'colourised confidence.',
      runtime=True),
    P('diagnostics.period', 1.0, 'Period (s) of the /diagnostics status.', min_value=0.1, max_value=60.0,
      step=0.0),
)
del P

PARAMETERS_BY_NAME: dict[str, ParamSpec] = {spec.name: spec for spec in PARAMETERS}


class ConfigError(ValueError):
    """A parameter file or value the node cannot start with (one clear line for the user)."""


def check_value(spec: ParamSpec, value: Any) -> str | None:
    """Why ``value`` is not acceptable for ``spec`` (None when it is)."""
    kind = spec.type_name
    if kind == 'bool':
        if not isinstance(value, bool):
            return f'{spec.name} must be true or false, got {value!r}'
    elif kind in ('int', 'double'):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f'{spec.name} must be a number, got {value!r}'
        if kind == 'int' and not isinstance(value, int):
            return f'{spec.name} must be an integer, got {value!r}'
        if spec.min_value is not None and value < spec.min_value:
            return f'{spec.name}={value} is below the minimum {spec.min_value}'
        if spec.max_value is not None and value > spec.max_value:
            return f'{spec.name}={value} is above the maximum {spec.max_value}'
    elif kind == 'string':
        if not isinstance(value, str):
            return f'{spec.name} must be a string, got {value!r}'
        if spec.choices and value not in spec.choices and not (spec.allow_empty_choice and value == ''):
            return f'{spec.name}={value!r} is not one of {", ".join(spec.choices)}'
    elif kind == 'string[]':
        return _check_names(spec.name, value)
    else:
        if not isinstance(value, (list, tuple)) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            return f'{spec.name} must be a list of numbers, got {value!r}'
        if spec.array_length and len(value) not in spec.array_length:
            return f'{spec.name} must have {" or ".join(map(str, spec.array_length))} values, got {len(value)}'
    return None


def _check_names(name: str, value: Any) -> str | None:
    """Camera names become topic names (``<name>/image``, ``~/<name>/depth``) and parameter names
    (``camera.<name>.*``): one ROS name token each, no duplicates."""
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        return f'{name} must be a list of names, got {value!r}'
    for item in value:
        if not CAMERA_NAME.fullmatch(item):
            return (f'{name}: {item!r} is not a usable camera name (letters, digits and _, not starting with a '
                    'digit)')
    if len(set(value)) != len(value):
        return f'{name} names a camera twice: {list(value)}'
    return None


CAMERA_NAME = re.compile(r'[A-Za-z_][A-Za-z0-9_]*')
# Node-wide parameters a camera of ``cameras`` may override as ``camera.<name>.<key>``.
CAMERA_KEYS = ('image_transport', 'image_rectified', 'extrinsics.translation', 'extrinsics.rotation',
               'extrinsics.matrix')


def camera_parameter(name: str) -> tuple[str, ParamSpec] | None:
    """``camera.<camera>.<key>`` -> (camera, the node-wide spec renamed to it); None for any other name."""
    head, _, rest = name.partition('.')
    camera, _, key = rest.partition('.')
    if head != 'camera' or key not in CAMERA_KEYS or not CAMERA_NAME.fullmatch(camera):
        return None
    return camera, replace(PARAMETERS_BY_NAME[key], name=name)


def check_runtime_change(name: str, value: Any, configured: bool = True) -> str | None:
    """Why a change of ``name`` to ``value`` at run time is refused (None = accepted). An unconfigured
    lifecycle node (``configured`` False) takes any valid value: its next configure reads them all."""
    spec = PARAMETERS_BY_NAME.get(name)
    if spec is None and (per_camera := camera_parameter(name)) is not None:
        spec = replace(per_camera[1], runtime=False)
    if spec is None:
        return None  # not ours (use_sim_time, qos overrides, ...): let rclpy handle it
    if not spec.runtime and configured:
        return f'{name} is read-only at run time (restart the node to change it)'
    return check_value(spec, value)


def load_params_file(path: str | Path) -> dict[str, Any]:
    """Read a ROS 2 params YAML (``<node or /**>: ros__parameters: {...}``), flatten nested keys to dotted
    names and validate them against the table. Raises :class:`ConfigError` with one readable line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f'parameter file not found: {path}')
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f'{path}: not valid YAML ({first})') from None
    if document is None:
        return {}
    if not isinstance(document, Mapping):
        raise ConfigError(f'{path}: expected a mapping of node names to ros__parameters')
    values: dict[str, Any] = {}
    for node_key, section in document.items():
        if not isinstance(section, Mapping) or 'ros__parameters' not in section:
            raise ConfigError(f'{path}: section {node_key!r} has no ros__parameters')
        values.update(_flatten(section['ros__parameters'] or {}))
    for name, value in values.items():
        _check_named_value(name, value, str(path))
    return values


def _check_named_value(name: str, value: Any, where: str) -> None:
    spec = PARAMETERS_BY_NAME.get(name)
    if spec is None and (per_camera := camera_parameter(name)) is not None:
        spec = per_camera[1]
    if spec is None:
        if name in ('use_sim_time',) or name.startswith('qos_overrides.'):
            return
        raise ConfigError(f'{where}: unknown parameter {name!r}')
    problem = check_value(spec, list(value) if isinstance(value, tuple) else value)
    if problem is not None:
        raise ConfigError(f'{where}: {problem}')


def command_line_overrides(argv: list[str]) -> list[tuple[str, str]]:
    """``(name, value text)`` of every ``-p name:=value`` / ``--param name:=value`` inside ``--ros-args``."""
    overrides, in_ros_args = [], False
    for i, token in enumerate(argv):
        if token == '--ros-args':
            in_ros_args = True
        elif token == '--':
            in_ros_args = False
        elif in_ros_args and token in ('-p', '--param') and i + 1 < len(argv):
            name, separator, text = argv[i + 1].partition(':=')
            if separator:
                overrides.append((name, text))
    return overrides


def parse_override(text: str) -> Any:
    """A ``-p`` value as rcl reads it (one YAML value: 0.1, true, [1, 2], abc)."""
    try:
        return yaml.safe_load(text) if text.strip() else text
    except yaml.YAMLError:
        return text


def command_line_values(argv: list[str], names: list[str]) -> dict[str, Any]:
    """The values ``names`` will have in a node started with ``argv``: table default, then every
    ``--params-file`` in order, then ``-p`` overrides (what rcl does). For settings needed before ``rclpy.init``
    and before torch starts (``cpu.*``). Assumes :func:`check_command_line` passed."""
    values = {name: PARAMETERS_BY_NAME[name].default for name in names}
    for i, token in enumerate(argv[:-1]):
        if token == '--params-file':
            file_values = load_params_file(argv[i + 1])
            values.update({name: file_values[name] for name in names if name in file_values})
    for name, text in command_line_overrides(argv):
        if name in values:
            values[name] = parse_override(text)
    return values


def check_command_line(argv: list[str]) -> None:
    """Validate every ``--params-file`` and ``-p name:=value`` of a node command line against the table, as a
    parameter file is; raises :class:`ConfigError` with one line naming the fix."""
    for i, token in enumerate(argv[:-1]):
        if token == '--params-file':
            load_params_file(argv[i + 1])
    for name, text in command_line_overrides(argv):
        _check_named_value(name, parse_override(text), f'-p {name}:={text}')


def _flatten(mapping: Mapping[str, Any], prefix: str = '') -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f'{prefix}{key}'
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name + '.'))
        else:
            flat[name] = value
    return flat


def descriptor_for(spec: ParamSpec) -> Any:
    """rcl_interfaces ParameterDescriptor with description, read-only flag and range."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    constraints = []
    if spec.choices:
        constraints.append('one of: ' + ', '.join(spec.choices))
    if spec.array_length:
        constraints.append('length ' + ' or '.join(map(str, spec.array_length)))
    constraints.append('changeable at run time' if spec.runtime else 'read-only at run time')
    descriptor = ParameterDescriptor(
        name=spec.name, description=spec.description,
        additional_constraints='; '.join(constraints),
        # Not read_only: rclpy would refuse with a generic message; our on-set callback names the reason.
        read_only=False,
    )
    if spec.type_name == 'int' and spec.min_value is not None and spec.max_value is not None:
        descriptor.integer_range = [IntegerRange(from_value=int(spec.min_value), to_value=int(spec.max_value),
                                                 step=int(spec.step or 1))]
    elif spec.type_name == 'double' and spec.min_value is not None and spec.max_value is not None:
        descriptor.floating_point_range = [FloatingPointRange(from_value=float(spec.min_value),
                                                              to_value=float(spec.max_value),
                                                              step=float(spec.step or 0.0))]
    return descriptor


def markdown_table() -> str:
    """The README's parameter table (kept in sync by a test)."""
    lines = ['| parameter | default | run time | description |', '|---|---|---|---|']
    for spec in PARAMETERS:
        default = spec.default if not isinstance(spec.default, (str, tuple)) else (
            f'"{spec.default}"' if isinstance(spec.default, str) else list(spec.default))
        lines.append(f'| `{spec.name}` | `{default}` | {"yes" if spec.runtime else "no"} | {spec.description} |')
    return '\n'.join(lines)
