"""What CPU a benchmark ran on, read once from ``/proc/cpuinfo`` for every bench target that reports it."""
from __future__ import annotations

import platform
from pathlib import Path


def cpuinfo_field(name: str) -> str:
    """The first value of ``name`` (e.g. ``model name``, ``vendor_id``) in /proc/cpuinfo; '' when absent or
    not Linux."""
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            key, _, value = line.partition(':')
            if key.strip().lower() == name:
                return value.strip()
    except OSError:
        pass
    return ''


def cpu_model() -> str:
    """The CPU's model name as lscpu prints it (ratios only compare within one machine)."""
    return cpuinfo_field('model name') or platform.processor() or platform.machine()
