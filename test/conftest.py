"""Shared fixtures: the real third-party frames in ../shared/data and a local-only ROS environment."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from depth_completion_ros.core.cpu_runtime import configure_cpu
from depth_completion_ros.ros.local_env import configure_local_ros

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get('DEPTH_COMPLETION_SHARED_DATA', REPO_ROOT.parent / 'shared' / 'data'))

# Every ROS participant started by the tests (in this process or its subprocesses) stays on shared memory,
# in a private domain, with logs in a temp dir. Set at import time, before any rclpy.init().
configure_local_ros()
# Idle OpenMP threads sleep instead of spinning on the shared cores (before any test module imports torch).
configure_cpu(wait_policy='env' if os.environ.get('OMP_WAIT_POLICY') else 'passive')


@pytest.fixture(scope='session')
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f'real sensor frames not found at {SHARED_DATA} (set DEPTH_COMPLETION_SHARED_DATA)')
    return SHARED_DATA


@pytest.fixture(scope='session')
def kitti_object_dir(shared_data: Path) -> Path:
    return shared_data / 'kitti_object'


@pytest.fixture(scope='session')
def nyu_dir(shared_data: Path) -> Path:
    return shared_data / 'nyu_kinect_slambook'


@pytest.fixture(scope='session')
def random_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """LRRU-mini weights of a random initialisation: the plumbing of eval and export without a trained model."""
    from depth_completion_ros.model import build_model, save_weights

    path = tmp_path_factory.mktemp('w') / 'mini.safetensors'
    save_weights(build_model('mini'), path, {'training': {'note': 'random init, tests only'}})
    return path


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remove the Fast DDS shared-memory segments of ROS processes the tests killed (RosProcess.stop kills on
    timeout; each leaked segment holds ~67 MB of RAM). Only files no live process uses (shm-clean)."""
    from depth_completion_ros.ros.shm_hygiene import clean_shm

    try:
        clean_shm(min_age_s=1.0)
    except OSError:  # best effort: never turn a test result into an error
        pass
