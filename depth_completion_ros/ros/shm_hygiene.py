"""Remove Fast DDS shared-memory files that no live process uses (pure Python, Linux /proc).

Fast DDS (shared-memory transport) creates in /dev/shm, per participant, a data segment ``fastdds_<id>``
(tens of MB) with its lock file ``fastdds_<id>_el``, and per port ``fastdds_port<N>`` with ``_el``/``_sl``
lock files and a named semaphore ``sem.fastdds_port<N>_mutex``. A process that exits cleanly removes its own;
one that is killed (SIGKILL, abort, a test's kill-on-timeout) leaves them for good, and nothing reclaims the
participant segments. A group of such files (same base name) is in use while any live process maps one of
them or holds one open (``/proc/<pid>/maps`` and ``/proc/<pid>/fd``); only groups nobody uses, and whose
files are all older than ``min_age_s`` (a participant that is starting may not have mapped its file yet),
are removed. Older Fast DDS versions use the ``fastrtps_`` prefix; it is handled the same way.
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

SHM_DIR = Path('/dev/shm')
_NAME = re.compile(r'^(?:sem\.)?(?P<base>(?:fastdds|fastrtps)_[0-9A-Za-z]+?)(?:_el|_sl|_mutex)?$')


@dataclass
class CleanReport:
    removed: list[Path] = field(default_factory=list)
    removed_bytes: int = 0
    kept_in_use: int = 0          # files of groups a live process uses
    kept_young: int = 0           # files of unused groups younger than min_age_s
    unreadable_processes: int = 0  # processes whose maps/fds could not be read (their files are kept)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f'removed {len(self.removed)} files ({self.removed_bytes / 1e6:.1f} MB); kept {self.kept_in_use} '
                f'in use, {self.kept_young} too recent'
                + (f'; {self.unreadable_processes} processes not readable' if self.unreadable_processes else ''))


def group_of(name: str) -> str | None:
    """The segment a Fast DDS shared-memory file belongs to (``fastdds_port7001`` for its lock and semaphore),
    or None for other files."""
    match = _NAME.match(name)
    return match.group('base') if match else None


def files_in_use(shm_dir: Path = SHM_DIR, proc: Path = Path('/proc')) -> tuple[set[str], int]:
    """Names of files in ``shm_dir`` that a live process maps or has open, and how many processes could not
    be inspected."""
    prefix = str(shm_dir).rstrip('/') + '/'
    used: set[str] = set()
    unreadable = 0
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            with open(entry / 'maps', errors='replace') as maps:
                for line in maps:
                    start = line.find(prefix)
                    if start >= 0:
                        used.add(line[start + len(prefix):].rstrip('\n').removesuffix(' (deleted)'))
            for fd in (entry / 'fd').iterdir():
                try:
                    target = os.readlink(fd)
                except OSError:  # closed meanwhile
                    continue
                if target.startswith(prefix):
                    used.add(target[len(prefix):].removesuffix(' (deleted)'))
        except FileNotFoundError:  # the process exited meanwhile
            continue
        except PermissionError:
            unreadable += 1
    return used, unreadable


def clean_shm(shm_dir: Path = SHM_DIR, min_age_s: float = 10.0, dry_run: bool = False) -> CleanReport:
    """Remove every Fast DDS shared-memory file group that no live process uses (see the module doc)."""
    report = CleanReport()
    if not shm_dir.is_dir():
        return report
    groups: dict[str, list[Path]] = {}
    for path in shm_dir.iterdir():
        base = group_of(path.name)
        if base is not None:
            groups.setdefault(base, []).append(path)
    if not groups:
        return report
    used, report.unreadable_processes = files_in_use(shm_dir)
    used_groups = {group_of(name) for name in used}
    uid = os.getuid()
    now = time.time()
    for base, paths in sorted(groups.items()):
        stats = {}
        for path in paths:
            try:
                stats[path] = path.stat()
            except FileNotFoundError:
                continue
        if base in used_groups or (report.unreadable_processes and any(s.st_uid != uid for s in stats.values())):
            report.kept_in_use += len(stats)
            continue
        if any(now - s.st_mtime < min_age_s or now - s.st_ctime < min_age_s for s in stats.values()):
            report.kept_young += len(stats)
            continue
        for path, stat in stats.items():
            if not dry_run:
                try:
                    path.unlink()
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    report.errors.append(f'{path}: {exc.strerror}')
                    continue
            report.removed.append(path)
            report.removed_bytes += stat.st_size
    return report
