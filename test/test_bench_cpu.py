"""bench cpu says what CPU it measured and which SIMD kernels torch dispatches to there (issue 20 item 3)."""
from __future__ import annotations

import os

import torch

from depth_completion_ros.tools.bench.cpu import machine_profile, parse_configs


def test_machine_profile_names_the_cpu_and_its_kernels() -> None:
    profile = machine_profile()
    assert profile['simd'] == torch.backends.cpu.get_cpu_capability()
    if os.path.exists('/proc/cpuinfo') and profile['machine'] == 'x86_64':
        assert profile['cpu_model'] and profile['vendor'] in {'GenuineIntel', 'AuthenticAMD', 'HygonGenuine'}
    assert profile['torch_threads'] == torch.get_num_threads()


def test_configs_parse() -> None:
    assert parse_configs('2,passive,tuned;1,unset,system') == [(2, 'passive', 'tuned'), (1, 'unset', 'system')]
