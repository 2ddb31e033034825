"""Keep ROS 2 traffic on this machine, set from code (a typo in the Fast DDS variable silently falls back to
multicast on every network card, so nobody should type it by hand).

Call :func:`configure_local_ros` *before* ``rclpy.init()`` in every process (tests, benchmarks, demo, the
subprocesses they start). Child processes inherit the environment.
"""
from __future__ import annotations

import os
import tempfile

# Shared memory only: no sockets at all. Segment larger than our biggest message (ROS.md §3.19).
SHM_ONLY_TRANSPORTS = 'SHM?max_msg_size=4MB&sockets_size=32MB'


def private_domain_id(seed: int | None = None) -> int:
    """A ROS_DOMAIN_ID in 100..200 derived from the process id (or ``seed``), so parallel runs do not meet."""
    base = os.getpid() if seed is None else seed
    return 100 + base % 101


def configure_local_ros(domain_id: int | None = None, transport: str = 'shm',
                        log_dir: str | None = None) -> dict[str, str]:
    """Set the environment so every ROS participant of this process (and its children) stays local.

    transport: ``'shm'`` (Fast DDS shared memory only, fastest) or ``'localhost'``
    (``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``, loopback UDP). Returns the variables that were set.
    """
    env: dict[str, str] = {}
    if transport == 'shm':
        env['FASTDDS_BUILTIN_TRANSPORTS'] = SHM_ONLY_TRANSPORTS
        os.environ.pop('ROS_AUTOMATIC_DISCOVERY_RANGE', None)  # it would override SHM
    elif transport == 'localhost':
        env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    else:
        raise ValueError(f"transport must be 'shm' or 'localhost', not {transport!r}")
    env['ROS_DOMAIN_ID'] = str(private_domain_id() if domain_id is None else domain_id)
    if log_dir is None and 'ROS_LOG_DIR' not in os.environ:
        log_dir = tempfile.mkdtemp(prefix='dcr_roslog_')
    if log_dir is not None:
        env['ROS_LOG_DIR'] = log_dir
    os.environ.update(env)
    return env
