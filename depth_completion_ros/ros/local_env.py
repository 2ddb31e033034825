"""Keep ROS 2 traffic on this machine, set from code (a typo in the Fast DDS variable silently falls back to
multicast on every network card, so nobody should type it by hand).

Call :func:`configure_local_ros` *before* ``rclpy.init()`` in every process (tests, benchmarks, demo, the
subprocesses they start). Child processes inherit the environment.
"""
from __future__ import annotations

import atexit
import fcntl
import os
import shutil
import tempfile
from pathlib import Path

# Shared memory only: no sockets at all. Segment larger than our biggest message (ROS.md §3.19).
SHM_ONLY_TRANSPORTS = 'SHM?max_msg_size=4MB&sockets_size=32MB'

# Private domains: 100..232 (232 is the largest id Fast DDS accepts; below 100 is left to people's own setups).
PRIVATE_DOMAINS = range(100, 233)
DOMAIN_LOCK_DIR = Path(tempfile.gettempdir()) / 'depth_completion_ros_domains'
_held_domain: tuple[int, int] | None = None        # (domain, fd of its lock), kept open for the process's life


def _try_lock(domain: int) -> int | None:
    """An fd holding the exclusive lock of ``domain``, or None when another live process holds it."""
    try:
        fd = os.open(DOMAIN_LOCK_DIR / f'{domain}.lock', os.O_CREAT | os.O_RDWR, 0o666)
    except PermissionError:              # another user's lock file: theirs
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def private_domain_id(seed: int | None = None) -> int:
    """A ROS_DOMAIN_ID in 100..232 that no other live run holds, so parallel runs (test suites, benchmarks,
    demos of several engineers) never meet.

    Taken with an exclusive ``flock`` on ``<tmp>/depth_completion_ros_domains/<id>.lock``, held until this
    process exits (the kernel releases it, also after SIGKILL, so nothing goes stale). The search starts at an
    id derived from the process id (or ``seed``). One domain per process: later calls return the same id. The
    lock is not inherited; children get the id through ``ROS_DOMAIN_ID`` (runtime.ensure_local_ros keeps it).
    """
    global _held_domain
    if _held_domain is not None:
        return _held_domain[0]
    DOMAIN_LOCK_DIR.mkdir(mode=0o777, exist_ok=True)
    start = (os.getpid() if seed is None else seed) % len(PRIVATE_DOMAINS)
    for step in range(len(PRIVATE_DOMAINS)):
        domain = PRIVATE_DOMAINS[(start + step) % len(PRIVATE_DOMAINS)]
        fd = _try_lock(domain)
        if fd is not None:
            _held_domain = (domain, fd)
            return domain
    raise RuntimeError(f'every ROS domain id {PRIVATE_DOMAINS.start}..{PRIVATE_DOMAINS.stop - 1} is held by another '
                       f'run (locks in {DOMAIN_LOCK_DIR}); wait for one to finish')


def _remove_log_dir(path: str, owner_pid: int) -> None:
    if os.getpid() == owner_pid:  # a forked child (DataLoader worker) runs inherited atexit hooks too: not its folder
        shutil.rmtree(path, ignore_errors=True)


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
        # Ours alone (children inherit ROS_LOG_DIR and write there too, then end before us): removed when this
        # process exits, so runs do not pile up folders in the temp directory.
        atexit.register(_remove_log_dir, log_dir, os.getpid())
    if log_dir is not None:
        env['ROS_LOG_DIR'] = log_dir
    os.environ.update(env)
    return env
