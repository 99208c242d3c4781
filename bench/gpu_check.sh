#!/usr/bin/env bash
# The GPU check (bench/gpu_check.py): every torch family on ml-100k on one CUDA GPU,
# fp32 against bf16, epoch and full-ranking seconds, peak GPU memory, EASE's dense
# solve; at most 8 minutes; writes bench/results-gpu.json and prints one table.
# Without a GPU it says so in one line and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${MOVIELENS_MIRROR:-}" ] && [ -d ../shared/data/movielens ]; then
  export MOVIELENS_MIRROR="$(cd ../shared/data/movielens && pwd)"
fi
exec python bench/gpu_check.py "$@"
