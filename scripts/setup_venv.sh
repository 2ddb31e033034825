#!/usr/bin/env bash
# Create or update the project virtual environment. Called by `make setup` (and so by `make demo`/`make test`).
# Without a sourced ROS 2 (ROS_DISTRO unset) the pinned ROS 2 Kilted wheels are installed; with one, the venv
# sees the system site-packages so the distro's rclpy and messages are used, and no ROS wheel is installed.
set -euo pipefail
venv=${1:-.venv}
python=${PYTHON:-python3}
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
if [ ! -x "$venv/bin/python" ]; then
  if [ -n "${ROS_DISTRO:-}" ]; then
    echo "[setup] ROS_DISTRO=$ROS_DISTRO is sourced: venv with --system-site-packages, system rclpy, no ROS wheels"
    "$python" -m venv --system-site-packages "$venv"
  else
    echo "[setup] no sourced ROS 2: venv with the pinned ros-kilted-* wheels"
    "$python" -m venv "$venv"
  fi
fi
# colcon must never crawl the venv (the ROS wheels put 60+ package.xml files in it) when it sits in a workspace
touch "$venv/COLCON_IGNORE"
pip=("$venv/bin/python" -m pip install --disable-pip-version-check -q)
reqs=(-r requirements/base.txt -r requirements/test.txt)
if [ -z "${ROS_DISTRO:-}" ]; then reqs+=(-r requirements/ros-wheels.txt); fi
"${pip[@]}" "${reqs[@]}"
"${pip[@]}" --no-deps -e .
if "$venv/bin/python" -m pip show launch >/dev/null 2>&1; then
  echo "[setup] ERROR: the unrelated PyPI package 'launch' is installed in $venv and shadows ROS launch" >&2
  exit 1
fi
"$venv/bin/python" -c "import depth_completion_ros, torch, rclpy; print('[setup] ok: depth_completion_ros', depth_completion_ros.__version__, '| torch', torch.__version__)"
