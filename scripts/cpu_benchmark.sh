#!/usr/bin/env bash
# The CPU speed tables of docs/performance.md: inference at 512x512 and 1920x1080 for every
# backend that suits the CPU, and training images/s at 256 px, batch 4, each against the
# reference network and training step in the same run, under both memory-reuse settings.
#   bash scripts/cpu_benchmark.sh [OUT_PREFIX [more `stylenet benchmark` options]]
# writes OUT_PREFIX.json and OUT_PREFIX.md (default docs/benchmarks/cpu). Later options win,
# e.g. `--sizes 64 --repeats 1` for a quick check that it runs. Run it on an otherwise idle
# machine: every figure is a wall-clock time.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
out="${1:-docs/benchmarks/cpu}"
shift || true
"${PYTHON:-python3}" -m stylenet.cli benchmark \
  --sizes 512,1920x1080 --repeats 5 --model tests/data/quickstart_starry.pt \
  --json "$out.json" --markdown "$out.md" --overwrite "$@"
