"""Process plumbing for the tools, the demo, the benchmark and the end-to-end tests.

- :func:`ensure_local_ros`: keep ROS traffic on this machine unless told otherwise, *without* changing a
  setting inherited from a parent (a child that picked a new ROS_DOMAIN_ID would never meet its parent).
- :class:`RosProcess`: a ``python -m ...`` subprocess (node, player, recorder) with its output captured to a
  file, stopped with SIGINT (clean shutdown) and killed only when it does not exit in time. Each runs in its
  own process group, so a Ctrl-C in the terminal reaches only the parent, which then stops its children in
  order (player, recorder, node) and keeps what they wrote.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

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
                                      cwd=str(cwd) if cwd else None, process_group=0)

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


def camera_output_types(types: dict[str, str], camera: str) -> dict[str, str]:
    """``types`` (the single camera's outputs) as camera ``camera``'s of a multi-camera node
    (``/depth_completion/depth`` -> ``/depth_completion/<camera>/depth``)."""
    return {f'{OUTPUT_NS}/{camera}/{topic.removeprefix(OUTPUT_NS + "/")}': kind for topic, kind in types.items()}


class GraphError(RuntimeError):
    """A process of the graph failed to start or to finish; the message carries the end of its log."""


class GraphInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`run_graph`: every process was stopped cleanly; ``result`` holds what there is."""

    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__('interrupted')
        self.result = result


_LOG_STAMP = re.compile(r'^\[(ERROR|WARN|INFO|DEBUG|FATAL)\] \[[0-9.]+\] ')


def first_problem_line(log: str, warnings: bool = False) -> str | None:
    """The first error line of a process log (``...: error: ...``, ``[ERROR]``, the exception line of a
    traceback); with ``warnings`` also ``[WARN]`` / ``warning:`` lines. rcl's time stamp is dropped."""
    lines = log.splitlines()
    for index, line in enumerate(lines):
        lower = line.lower()
        if line.startswith('Traceback (most recent call last)'):
            rest = [t for t in lines[index + 1:] if t and not t.startswith((' ', '\t'))]
            return rest[0].strip() if rest else line.strip()
        if ': error: ' in lower or lower.startswith('error:') or line.startswith(('[ERROR]', '[FATAL]')) or (
                warnings and (line.startswith('[WARN]') or ': warning: ' in lower or lower.startswith('warning:'))):
            return _LOG_STAMP.sub(r'[\1] ', line.strip())
    return None


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


def _failure(process: RosProcess, what: str) -> GraphError:
    """One line: what failed, the process's first error line (else its last line), where its log is."""
    output = process.output()
    reason = first_problem_line(output) or (output.strip().splitlines() or ['(no output)'])[-1].strip()
    status = process.returncode
    return GraphError(f'{process.name} {what}{"" if status is None else f" (exit {status})"}: {reason} '
                      f'(log: {process.log_path})')


def run_graph(bag: str | Path, out_bag: str | Path, workdir: str | Path, *,
              params_files: Sequence[str | Path] = (), params: dict[str, object] | None = None,
              input_topics: dict[str, str] | None = None, record_topics: dict[str, str] | None = None,
              rate: float = 1.0, play_qos: str = 'reliable', loops: int = 1, paced: bool = False,
              startup_timeout_s: float = 90.0, play_timeout_s: float = 300.0, idle_timeout_s: float = 4.0,
              on_progress: Callable[[str, int], None] | None = None, pace_input: str = 'image',
              progress_topic: str = f'{OUTPUT_NS}/depth') -> dict:
    """Start the node, a recorder of its outputs and a player of ``bag``; wait until the outputs stop coming;
    shut everything down with SIGINT. Returns logs, the node's final stats and the reports of player/recorder.

    ``input_topics`` maps the node's input names (image, camera_info, points, depth, ...) to bag topics. With
    ``image_transport: compressed`` (or ``depth_transport: compressedDepth``) in ``params`` the node listens on
    ``<image>/compressed`` (``<depth>/compressedDepth``), image_transport's names, so those are played.
    ``on_progress(stage, outputs_so_far)`` is called while it runs (stage: starting node, playing, ...).
    ``pace_input`` / ``progress_topic``: the input whose images are counted and paced on, and the output that
    answers each (a multi-camera node: ``cam0/image`` and ``/depth_completion/cam0/depth``).
    A process that fails raises :class:`GraphError` with its first error line; Ctrl-C stops everything in
    order and raises :class:`GraphInterrupted` carrying the partial result (the output bag is closed).
    """
    from depth_completion_ros.ros import bagio

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    inputs = input_topics or {'image': bagio.IMAGE_TOPIC, 'camera_info': bagio.CAMERA_INFO_TOPIC,
                              'points': bagio.POINTS_TOPIC}
    record = record_topics or {**OUTPUT_TYPES, **DIAGNOSTICS_TYPES}
    suffixes = {'image': '/compressed' if (params or {}).get('image_transport') == 'compressed' else '',
                'depth': '/compressedDepth' if (params or {}).get('depth_transport') == 'compressedDepth' else ''}
    # 'image' or a camera's '<camera>/image': image_transport's suffix hangs below each
    played_topics = {name: topic + suffixes.get(name.rsplit('/', 1)[-1], '') for name, topic in inputs.items()}
    processes: list[RosProcess] = []
    report_path = workdir / 'play_report.json'
    node = recorder = player = None

    def outputs() -> int:  # frames recorded so far (the recorder prints PROGRESS per depth image)
        return recorder.output().count('\nPROGRESS') if recorder else 0

    def notify(stage: str, count: int) -> None:
        if on_progress is not None:
            on_progress(stage, count)

    try:
        notify('starting node', 0)
        node = RosProcess('node', module_args(NODE_MODULE, *node_arguments(params_files, params, inputs)),
                          workdir / 'node.log')
        processes.append(node)
        if not node.wait_for_output('ready:', startup_timeout_s):
            raise _failure(node, 'did not become ready')
        notify('starting recorder', 0)
        recorder = RosProcess('recorder', module_args(
            'depth_completion_ros.cli', 'record', *[f'{t}:{m}' for t, m in record.items()], '--out', str(out_bag),
            '--qos', 'reliable', '--wait-for-publishers', '--discovery-timeout', '15',
            '--progress', progress_topic), workdir / 'recorder.log')
        processes.append(recorder)
        if not recorder.wait_for_output('READY', 30.0):
            raise _failure(recorder, 'did not start')
        player_args = ['play', str(bag), '--rate', str(rate), '--qos', play_qos, '--wait-for-subscribers', '30',
                       '--wait-topics', *played_topics.values(), '--topics', *played_topics.values(),
                       '--report', str(report_path)]
        if paced:
            player_args += ['--pace-topic', progress_topic, '--pace-on', played_topics[pace_input],
                            '--pace-timeout', '60']
        if loops > 1:
            player_args += ['--loop', '--loops', str(loops)]
        player = RosProcess('player', module_args('depth_completion_ros.cli', *player_args), workdir / 'player.log')
        processes.append(player)
        deadline = time.monotonic() + play_timeout_s
        while player.returncode is None:
            if time.monotonic() > deadline:
                raise _failure(player, f'did not finish within {play_timeout_s} s')
            if node.returncode is not None:
                raise _failure(node, 'stopped while the bag played')
            notify('playing', outputs())
            time.sleep(0.1)
        if player.returncode != 0:
            raise _failure(player, 'failed')
        # wait until an output arrived for every image played, or no output came for idle_timeout_s
        played = _read_json(report_path).get('published', {}).get(played_topics[pace_input], 0)
        last_count, last_change = -1, time.monotonic()
        while time.monotonic() - last_change < idle_timeout_s:
            count = outputs()
            notify('finishing', count)
            if count != last_count:
                last_count, last_change = count, time.monotonic()
            if count >= played:
                time.sleep(0.5)  # the rest of that frame's messages (cloud, camera_info, ...)
                break
            time.sleep(0.1)
        notify('done', outputs())
        return _stop_all(node, recorder, player, report_path, out_bag)
    except KeyboardInterrupt:
        raise GraphInterrupted(_stop_all(node, recorder, player, report_path, out_bag)) from None
    finally:
        for process in processes:
            if process.returncode is None:
                process.stop(timeout_s=5.0)


def _read_json(path: Path) -> dict:
    import json

    return json.loads(path.read_text()) if path.is_file() else {}


def _stop_all(node: RosProcess | None, recorder: RosProcess | None, player: RosProcess | None,
              report_path: Path, out_bag: str | Path) -> dict:
    """Stop player (writes its report), recorder (closes the bag) and node (prints its final stats), in order."""
    player_status = player.stop(timeout_s=5.0) if player else None
    recorder_status = recorder.stop(timeout_s=10.0) if recorder else None
    node_status = node.stop(timeout_s=15.0) if node else None
    node_log = node.output() if node else ''
    return {
        'node_status': node_status, 'recorder_status': recorder_status, 'player_status': player_status,
        'node_stats': parse_final_stats(node_log), 'node_log': node_log, 'play_report': _read_json(report_path),
        'recorder_log': recorder.output() if recorder else '', 'out_bag': str(out_bag),
        'player_log': player.output() if player else '',
    }
