#!/usr/bin/env bash
# Speed on one CUDA GPU, against the reference network and training step in the same run:
# inference at 512x512 and 1920x1080 (fp16/bf16, channels-last, CUDA graphs, torch.compile)
# and training images/s of the default recipe at 256 px, batch 4.
#   bash scripts/gpu_benchmark.sh [OUT.json [more `stylenet benchmark` options, e.g. --model M.pt]]
# Needs a CUDA build of torch; runs from this checkout whether or not the package is installed.
# Memory reuse off for every row: a GPU's memory is CUDA's caching allocator's, the host
# allocator's setting hardly matters there, and one setting halves the run.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
out="${1:-gpu-benchmark.json}"
shift || true
"${PYTHON:-python3}" -m stylenet.cli benchmark \
  --sizes 512,1920x1080 \
  --backends eager-fp32,autocast-fp16,fast-fp16,fast-bf16,compile-fp16,cudagraph-fp16,cudagraph-bf16 \
  --repeats 50 --train-steps 30 --child-timeout 240 --memory-reuse off \
  --json "$out" --markdown "${out%.json}.md" --overwrite "$@"
