#!/usr/bin/env bash
# The GPU path measured in one call (<= 10 min on one H100/H200): network x variants x sizes x fp32/fp16/bf16
# (eager + torch.compile), CUDA prefill vs OpenCV, bench node (prefill, Mini, Base). Writes gpu_bench.json and
# gpu_bench.md into $OUT (or ./bench_gpu_output). Needs the project's environment (`make setup`, CUDA torch).
# Extra arguments go to `depth-completion bench gpu`, e.g. `scripts/gpu_bench.sh --device cpu --dry-run`.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$here/.venv/bin/python}
[ -x "$python" ] || python=python3
cd "$here"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
exec timeout 590 "$python" -m depth_completion_ros.cli bench gpu --out "${OUT:-bench_gpu_output}" "$@"
