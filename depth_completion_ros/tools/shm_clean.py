"""``depth-completion shm-clean``: remove Fast DDS shared-memory segments (/dev/shm/fastdds_*, their lock and
port files) that no live process maps or holds open, e.g. after a node was killed (SIGKILL, abort)."""
from __future__ import annotations

import argparse
from pathlib import Path

from depth_completion_ros.ros.shm_hygiene import SHM_DIR, clean_shm


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--dir', type=Path, default=SHM_DIR, help='shared-memory directory')
    parser.add_argument('--min-age', type=float, default=10.0, metavar='S',
                        help='keep unused files younger than this (a participant that is starting may not have '
                             'mapped its segment yet)')
    parser.add_argument('--dry-run', action='store_true', help='only list what would be removed')
    parser.add_argument('-v', '--verbose', action='store_true', help='list every removed file')


def main(args: argparse.Namespace) -> int:
    if args.min_age < 0:
        print('depth-completion shm-clean: error: --min-age must be >= 0 seconds')
        return 2
    report = clean_shm(args.dir, min_age_s=args.min_age, dry_run=args.dry_run)
    if args.verbose or args.dry_run:
        for path in report.removed:
            print(('would remove ' if args.dry_run else 'removed ') + str(path))
    print(('dry run: ' if args.dry_run else '') + report.summary())
    for error in report.errors:
        print(f'depth-completion shm-clean: could not remove {error}')
    return 1 if report.errors else 0
