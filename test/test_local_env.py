"""Private ROS domains come from locks: parallel runs get different ids in 100..232, one id per process, and an
id is free again once its holder has exited."""
from __future__ import annotations

import os
import subprocess
import sys

from depth_completion_ros.ros import local_env

HOLD = ('from depth_completion_ros.ros.local_env import private_domain_id as p; import sys; '
        'print(p(seed=7), p(seed=99), flush=True); sys.stdin.read()')
TAKE = 'from depth_completion_ros.ros.local_env import private_domain_id as p; print(p(seed=7), flush=True)'


def test_parallel_processes_get_different_domains_and_exit_frees_them() -> None:
    holder = subprocess.Popen([sys.executable, '-c', HOLD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        first, again = (int(v) for v in holder.stdout.readline().split())
        assert first == again                       # one domain per process, whatever the seed
        second = int(subprocess.run([sys.executable, '-c', TAKE], capture_output=True, text=True,
                                    check=True).stdout)
        assert second != first                      # same starting point, but the first is held
        assert all(d in local_env.PRIVATE_DOMAINS for d in (first, second))
        assert max(local_env.PRIVATE_DOMAINS) == 232
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    fd = local_env._try_lock(first)                 # the holder exited: the kernel released its lock
    assert fd is not None
    os.close(fd)


def test_this_process_holds_its_domain() -> None:
    domain = local_env.private_domain_id()
    assert os.environ['ROS_DOMAIN_ID'] == str(domain)       # conftest's configure_local_ros took this one
    assert local_env._try_lock(domain) is None                # held: a second lock of it fails
