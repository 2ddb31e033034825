#!/usr/bin/env bash
# Run the whole suite (ruff included, as test/test_lint.py). Installation happens before this, outside any
# namespace. The tests then run inside a private network namespace (`unshare -n`, loopback up) when the
# kernel permits it, so no ROS traffic can leave the machine whatever a test does; every ROS participant
# also uses shared-memory-only Fast DDS and a private ROS_DOMAIN_ID (depth_completion_ros.ros.local_env).
set -uo pipefail
venv=${1:-.venv}
shift || true
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
export ROS_LOG_DIR=${ROS_LOG_DIR:-$(mktemp -d /tmp/dcr_roslog.XXXXXX)}
cmd=("$venv/bin/python" -m pytest test "$@")
if [ "${DCR_NO_UNSHARE:-0}" != 1 ] && unshare -n true 2>/dev/null; then
  echo "[test] running inside unshare -n (loopback only)"
  unshare -n bash -c 'ip link set lo up 2>/dev/null || true; exec "$@"' _ "${cmd[@]}"
else
  echo "[test] unshare -n not permitted here: running without a network namespace (ROS stays on SHM/localhost)"
  "${cmd[@]}"
fi
