"""``depth-completion shm-clean``: a killed ROS process leaks its Fast DDS shared-memory segment (tens of MB of
RAM for good); the command removes exactly the files no live process uses."""
from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from depth_completion_ros.ros.runtime import RosProcess
from depth_completion_ros.ros.shm_hygiene import SHM_DIR, group_of

pytestmark = pytest.mark.ros

# A participant that publishes to itself over shared memory, in its own domain, then idles.
PARTICIPANT = '''
import time
from depth_completion_ros.ros.local_env import configure_local_ros
configure_local_ros()
import rclpy
from std_msgs.msg import String
rclpy.init()
node = rclpy.create_node('shm_probe')
publisher = node.create_publisher(String, '/shm_probe', 10)
node.create_subscription(String, '/shm_probe', lambda msg: None, 10)
for _ in range(20):
    publisher.publish(String(data='x'))
    rclpy.spin_once(node, timeout_sec=0.05)
print('READY', flush=True)
time.sleep(120)
'''


def _segments_of(pid: int) -> set[str]:
    """The participant data segments (fastdds_<id>, not ports) that process ``pid`` maps."""
    maps = Path(f'/proc/{pid}/maps').read_text()
    return set(re.findall(r'/dev/shm/((?:fastdds|fastrtps)_[0-9a-f]{8,})\s*$', maps, re.MULTILINE))


def test_group_names() -> None:
    assert group_of('fastdds_bade6c26b4442704') == group_of('fastdds_bade6c26b4442704_el') == \
        'fastdds_bade6c26b4442704'
    assert group_of('sem.fastdds_port7001_mutex') == group_of('fastdds_port7001_sl') == 'fastdds_port7001'
    assert group_of('lttng-ust-wait-6') is None and group_of('torch_18435_1002074303_65') is None


def test_killed_participant_segment_is_removed_live_one_kept(tmp_path: Path) -> None:
    if not SHM_DIR.is_dir():
        pytest.skip('no /dev/shm')
    live = RosProcess('live', ['-c', PARTICIPANT], tmp_path / 'live.log')
    killed = RosProcess('killed', ['-c', PARTICIPANT], tmp_path / 'killed.log')
    try:
        assert live.wait_for_output('READY', 60.0) and killed.wait_for_output('READY', 60.0), killed.output()
        live_segments, killed_segments = _segments_of(live.popen.pid), _segments_of(killed.popen.pid)
        assert live_segments and killed_segments, 'no Fast DDS shared-memory segment mapped'
        killed.stop(sig=signal.SIGKILL)
        leaked = killed_segments - live_segments
        assert leaked and all((SHM_DIR / name).exists() for name in leaked)  # the leak this command is for
        time.sleep(1.2)
        result = subprocess.run([sys.executable, '-m', 'depth_completion_ros.cli', 'shm-clean', '--min-age', '1',
                                 '-v'], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        for name in leaked:
            assert not (SHM_DIR / name).exists() and not (SHM_DIR / f'{name}_el').exists(), result.stdout
            assert f'removed {SHM_DIR / name}' in result.stdout
        for name in live_segments:
            assert (SHM_DIR / name).exists()  # still mapped by a live process
        assert live.returncode is None
    finally:
        killed.stop(sig=signal.SIGKILL)
        live.stop()
