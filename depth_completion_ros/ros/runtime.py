"""Process plumbing for the tools, the demo, the benchmark and the end-to-end tests.

- :func:`ensure_local_ros`: keep ROS traffic on this machine unless told otherwise, *without* changing a
  setting inherited from a parent (a child that picked a new ROS_DOMAIN_ID would never meet its parent).
- :class:`RosProcess`: a ``python -m ...`` subprocess (node, player, recorder) with its output captured to a
  file, stopped with SIGINT (clean shutdown) and killed only when it does not exit in time.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from depth_completion_ros.ros.local_env import configure_local_ros

DEFAULT_LOCAL_DOMAIN_ID = 142


def ensure_local_ros(network: bool = False) -> None:
    """Shared-memory-only Fast DDS in this process unless ``network`` or the parent already chose."""
    if network:
        return
    if os.environ.get('FASTDDS_BUILTIN_TRANSPORTS') or os.environ.get('ROS_AUTOMATIC_DISCOVERY_RANGE'):
        return  # inherited from a parent that called configure_local_ros(): keep it (and its domain)
    domain = int(os.environ.get('ROS_DOMAIN_ID', DEFAULT_LOCAL_DOMAIN_ID))
    configure_local_ros(domain_id=domain)


class RosProcess:
    """A Python subprocess of this package; stdout+stderr go to ``log_path``."""

    def __init__(self, name: str, args: Sequence[str], log_path: str | Path, env: dict[str, str] | None = None,
                 cwd: str | Path | None = None) -> None:
        self.name = name
        self.log_path = Path(log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, 'w')  # noqa: SIM115  (closed in stop())
        self.command = [sys.executable, *args]
        self.popen = subprocess.Popen(self.command, stdout=self._log, stderr=subprocess.STDOUT,
                                      env={**os.environ, 'PYTHONUNBUFFERED': '1', **(env or {})},
                                      cwd=str(cwd) if cwd else None)

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors='replace')

    def wait_for_output(self, text: str, timeout_s: float) -> bool:
        """True once ``text`` appears in the output; False on timeout or when the process exits first."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if text in self.output():
                return True
            if self.returncode is not None:
                return text in self.output()
            time.sleep(0.05)
        return False

    def wait(self, timeout_s: float) -> int | None:
        try:
            return self.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout_s: float = 10.0, sig: int = signal.SIGINT) -> int:
        """Signal (SIGINT by default), wait, and kill only if it does not exit. Returns the exit status."""
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)
        self._log.close()
        return int(self.popen.returncode)


def module_args(module: str, *args: str) -> list[str]:
    return ['-m', module, *args]


PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the source tree (editable/pip installs)


def find_config(name_or_path: str) -> Path:
    """A parameter file: an existing path, or a preset name (``kitti_hdl64``) from ``config/`` of the source
    tree or of the ROS install (``share/depth_completion_ros/config``)."""
    candidate = Path(name_or_path).expanduser()
    if candidate.is_file():
        return candidate
    stem = candidate.name.removesuffix('.yaml')
    search = [PACKAGE_ROOT / 'config']
    try:
        from ament_index_python.packages import get_package_share_directory

        search.append(Path(get_package_share_directory('depth_completion_ros')) / 'config')
    except Exception:  # not installed in an ament workspace
        pass
    for folder in search:
        path = folder / f'{stem}.yaml'
        if path.is_file():
            return path
    presets = sorted({p.stem for folder in search if folder.is_dir() for p in folder.glob('*.yaml')})
    raise FileNotFoundError(f'config {name_or_path!r} is neither a file nor a preset ({", ".join(presets)})')


# ----------------------------------------------------------------------------------------------------------------
# player -> node -> recorder on this machine (demo, benchmark, end-to-end tests)
# ----------------------------------------------------------------------------------------------------------------

NODE_MODULE = 'depth_completion_ros.ros.node'
OUTPUT_NS = '/depth_completion'
OUTPUT_TYPES = {
    f'{OUTPUT_NS}/depth': 'sensor_msgs/msg/Image',
    f'{OUTPUT_NS}/confidence': 'sensor_msgs/msg/Image',
    f'{OUTPUT_NS}/camera_info': 'sensor_msgs/msg/CameraInfo',
    f'{OUTPUT_NS}/points': 'sensor_msgs/msg/PointCloud2',
    f'{OUTPUT_NS}/latency_ms': 'std_msgs/msg/Float64',
    f'{OUTPUT_NS}/timings': 'std_msgs/msg/String',
}
DEBUG_TYPES = {
    f'{OUTPUT_NS}/debug/sparse': 'sensor_msgs/msg/Image',
    f'{OUTPUT_NS}/debug/prefill': 'sensor_msgs/msg/Image',
}
DIAGNOSTICS_TYPES = {'/diagnostics': 'diagnostic_msgs/msg/DiagnosticArray'}


class GraphError(RuntimeError):
    """A process of the graph failed to start or to finish; the message carries the end of its log."""


def ros_param_value(value: object) -> str:
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, (list, tuple)):
        return '[' + ', '.join(ros_param_value(v) for v in value) + ']'
    return str(value)


def node_arguments(params_files: Sequence[str | Path] = (), params: dict[str, object] | None = None,
                   remaps: dict[str, str] | None = None) -> list[str]:
    args = ['--ros-args']
    for path in params_files:
        args += ['--params-file', str(path)]
    for source, target in (remaps or {}).items():
        args += ['-r', f'{source}:={target}']
    for name, value in (params or {}).items():
        args += ['-p', f'{name}:={ros_param_value(value)}']
    return args


def parse_final_stats(log: str) -> dict:
    import json

    for line in reversed(log.splitlines()):
        marker = 'final stats '
        if marker in line:
            return json.loads(line.split(marker, 1)[1])
    return {}


def _tail(process: RosProcess, lines: int = 15) -> str:
    return '\n'.join(process.output().splitlines()[-lines:])


def run_graph(bag: str | Path, out_bag: str | Path, workdir: str | Path, *,
              params_files: Sequence[str | Path] = (), params: dict[str, object] | None = None,
              input_topics: dict[str, str] | None = None, record_topics: dict[str, str] | None = None,
              rate: float = 1.0, play_qos: str = 'reliable', loops: int = 1, paced: bool = False,
              startup_timeout_s: float = 90.0, play_timeout_s: float = 300.0, idle_timeout_s: float = 4.0) -> dict:
    """Start the node, a recorder of its outputs and a player of ``bag``; wait until the outputs stop coming;
    shut everything down with SIGINT. Returns logs, the node's final stats and the reports of player/recorder.

    ``input_topics`` maps the node's input names (image, camera_info, points, depth, ...) to bag topics. With
    ``image_transport: compressed`` (or ``depth_transport: compressedDepth``) in ``params`` the node listens on
    ``<image>/compressed`` (``<depth>/compressedDepth``), image_transport's names, so those are played.
    """
    import json

    from depth_completion_ros.ros import bagio

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    inputs = input_topics or {'image': bagio.IMAGE_TOPIC, 'camera_info': bagio.CAMERA_INFO_TOPIC,
                              'points': bagio.POINTS_TOPIC}
    record = record_topics or {**OUTPUT_TYPES, **DIAGNOSTICS_TYPES}
    suffixes = {'image': '/compressed' if (params or {}).get('image_transport') == 'compressed' else '',
                'depth': '/compressedDepth' if (params or {}).get('depth_transport') == 'compressedDepth' else ''}
    played_topics = {name: topic + suffixes.get(name, '') for name, topic in inputs.items()}
    processes: list[RosProcess] = []
    try:
        node = RosProcess('node', module_args(NODE_MODULE, *node_arguments(params_files, params, inputs)),
                          workdir / 'node.log')
        processes.append(node)
        if not node.wait_for_output('ready:', startup_timeout_s):
            raise GraphError(f'node did not become ready (exit {node.returncode}):\n{_tail(node)}')
        recorder = RosProcess('recorder', module_args(
            'depth_completion_ros.cli', 'record', *[f'{t}:{m}' for t, m in record.items()], '--out', str(out_bag),
            '--qos', 'reliable', '--wait-for-publishers', '--discovery-timeout', '15',
            '--progress', f'{OUTPUT_NS}/depth'), workdir / 'recorder.log')
        processes.append(recorder)
        if not recorder.wait_for_output('READY', 30.0):
            raise GraphError(f'recorder did not start:\n{_tail(recorder)}')
        report_path = workdir / 'play_report.json'
        player_args = ['play', str(bag), '--rate', str(rate), '--qos', play_qos, '--wait-for-subscribers', '30',
                       '--wait-topics', *played_topics.values(), '--topics', *played_topics.values(),
                       '--report', str(report_path)]
        if paced:
            player_args += ['--pace-topic', f'{OUTPUT_NS}/depth', '--pace-on', played_topics['image'],
                            '--pace-timeout', '60']
        if loops > 1:
            player_args += ['--loop', '--loops', str(loops)]
        player = RosProcess('player', module_args('depth_completion_ros.cli', *player_args), workdir / 'player.log')
        processes.append(player)
        if player.wait(play_timeout_s) is None:
            raise GraphError(f'player did not finish within {play_timeout_s} s:\n{_tail(player)}')
        # wait until an output arrived for every image played, or no output came for idle_timeout_s
        played = json.loads(report_path.read_text())['published'].get(played_topics['image'], 0) \
            if report_path.is_file() else 0
        last_count, last_change = -1, time.monotonic()
        while time.monotonic() - last_change < idle_timeout_s:
            count = recorder.output().count('\nPROGRESS')
            if count != last_count:
                last_count, last_change = count, time.monotonic()
            if count >= played:
                time.sleep(0.5)  # the rest of that frame's messages (cloud, camera_info, ...)
                break
            time.sleep(0.1)
        recorder_status = recorder.stop(timeout_s=10.0)
        node_status = node.stop(timeout_s=15.0)
        node_log = node.output()
        return {
            'node_status': node_status, 'recorder_status': recorder_status, 'player_status': player.stop(),
            'node_stats': parse_final_stats(node_log), 'node_log': node_log,
            'play_report': json.loads(report_path.read_text()) if report_path.is_file() else {},
            'recorder_log': recorder.output(), 'out_bag': str(out_bag),
        }
    finally:
        for process in processes:
            if process.returncode is None:
                process.stop(timeout_s=5.0)
