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
