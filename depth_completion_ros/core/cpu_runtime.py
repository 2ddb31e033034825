"""Process-wide CPU settings for inference on a shared CPU: OpenMP wait policy, thread count, glibc malloc.

Why: torch's OpenMP threads busy-wait (spin) between parallel regions. When the cores are shared (a robot runs
drivers, SLAM, planners; a bench runs the player), a spinning thread holds a core the other thread needs and
a 2-thread frame becomes 2.5-3.5x slower than 1 thread. ``OMP_WAIT_POLICY=PASSIVE`` makes idle threads sleep.
libgomp reads it once, when it is loaded (``import torch``), so :func:`configure_cpu` must run before torch is
imported: ``depth-completion`` (cli.main) and the node's entry point call it first thing; child processes
inherit the environment.

glibc malloc returns large blocks to the kernel on free (``mmap`` above a threshold, heap trimming), so every
frame page-faults its activations back in (~230k faults per KITTI frame). Raising ``mmap_threshold`` to its
maximum and ``trim_threshold`` far above a frame's working set keeps the memory in the process and reuses it
(the same as the ``GLIBC_TUNABLES=glibc.malloc.mmap_threshold=...:glibc.malloc.trim_threshold=...`` start-up
variables, but set at run time with ``mallopt``, so no re-exec is needed). An ``LD_PRELOAD``-ed jemalloc or
tcmalloc is left alone.

ROS-free and torch-free: importing this module imports neither.
"""
from __future__ import annotations

import ctypes
import os
import sys
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

WAIT_POLICIES = ('passive', 'active', 'env')      # env: leave OMP_WAIT_POLICY / libgomp's default alone
MALLOC_MODES = ('tuned', 'system')
DEFAULT_WAIT_POLICY = 'passive'
DEFAULT_MALLOC = 'tuned'

# glibc mallopt parameters (malloc.h) and the values used.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 * 2 ** 20          # glibc's maximum on 64-bit (HEAP_MAX_SIZE / 2): larger is refused
TRIM_THRESHOLD_BYTES = 1024 * 2 ** 20        # keep up to 1 GiB of freed heap for the next frame
GLIBC_TUNABLES_VALUE = (f'glibc.malloc.mmap_threshold={MMAP_THRESHOLD_BYTES}:'
                        f'glibc.malloc.trim_threshold={TRIM_THRESHOLD_BYTES}')
PRELOADED_ALLOCATORS = ('jemalloc', 'tcmalloc')


def tune_glibc_malloc() -> bool:
    """Raise glibc's mmap and trim thresholds in this process (True when applied; False when the C library is
    not glibc or another allocator is preloaded)."""
    if any(name in os.environ.get('LD_PRELOAD', '') for name in PRELOADED_ALLOCATORS):
        return False
    try:
        if not os.confstr('CS_GNU_LIBC_VERSION').startswith('glibc'):
            return False
    except (ValueError, OSError, AttributeError):   # not glibc (musl, macOS, Windows)
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD,
                                                                                  TRIM_THRESHOLD_BYTES))


def configure_cpu(threads: int = 0, wait_policy: str = DEFAULT_WAIT_POLICY,
                  malloc: str = DEFAULT_MALLOC) -> dict[str, str]:
    """Set the OpenMP wait policy, the intra-op thread count and the malloc tuning for this process and its
    children. Call before ``import torch`` (the wait policy cannot change afterwards: a warning says so).

    ``threads``: 0 keeps torch's default (``OMP_NUM_THREADS`` when set, else one per physical core).
    ``wait_policy``: passive (idle threads sleep; the default), active (spin: only for a CPU of one's own),
    env (leave ``OMP_WAIT_POLICY`` as the environment has it). ``malloc``: tuned | system.
    Returns the settings in effect, for logs.
    """
    if wait_policy not in WAIT_POLICIES:
        raise ValueError(f'wait_policy must be one of {", ".join(WAIT_POLICIES)}, got {wait_policy!r}')
    if malloc not in MALLOC_MODES:
        raise ValueError(f'malloc must be one of {", ".join(MALLOC_MODES)}, got {malloc!r}')
    if threads < 0:
        raise ValueError(f'threads must be >= 0 (0 = torch default), got {threads}')
    torch_loaded = 'torch' in sys.modules
    if wait_policy != 'env':
        wanted = wait_policy.upper()
        if torch_loaded and os.environ.get('OMP_WAIT_POLICY', '').upper() != wanted:
            warnings.warn(f'OMP_WAIT_POLICY={wanted} requested after torch was imported: it takes effect in child '
                          'processes only (configure the CPU before importing torch)', RuntimeWarning,
                          stacklevel=2)
        os.environ['OMP_WAIT_POLICY'] = wanted
    if threads:
        os.environ['OMP_NUM_THREADS'] = str(threads)
        if torch_loaded:
            sys.modules['torch'].set_num_threads(threads)
    tuned = malloc == 'tuned' and tune_glibc_malloc()
    return {'wait_policy': os.environ.get('OMP_WAIT_POLICY', 'libgomp default'),
            'threads': str(threads or os.environ.get('OMP_NUM_THREADS', 'torch default')),
            'malloc': 'glibc tuned' if tuned else _allocator_name()}


def _allocator_name() -> str:
    preload = os.environ.get('LD_PRELOAD', '')
    for name in PRELOADED_ALLOCATORS:
        if name in preload:
            return name
    return 'system'


_spare_core_workers: dict[int, ThreadPoolExecutor] = {}             # per process: a fork inherits no threads


def spare_core_worker() -> ThreadPoolExecutor | None:
    """A one-thread executor for work that can run beside the calling thread (GIL-releasing numpy, OpenCV and
    scipy calls), or None on a single-core machine. One per process: a forked child (DataLoader workers,
    multiprocessing) inherits the parent's executor object but not its thread, and would wait on it forever."""
    if (os.cpu_count() or 1) < 2 or threading.current_thread().name.startswith('spare_core'):
        return None                                        # (from the worker itself: it would wait on itself)
    worker = _spare_core_workers.get(os.getpid())
    if worker is None:
        worker = _spare_core_workers[os.getpid()] = ThreadPoolExecutor(max_workers=1, thread_name_prefix='spare_core')
    return worker
