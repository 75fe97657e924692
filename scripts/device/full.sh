#!/usr/bin/env bash
# The one full call on a GPU machine (at most 6 minutes): the comparison
# against PyTorch (scripts/device/compare.sh, at most 1.5 minutes), then a
# GPU round of the data engine (scripts/device/round.sh, at most 4). Its
# results come back in $OUT: compare.md, compare.jsonl, model.onnx,
# metrics.jsonl, timing.log. --cpu checks both on the CPU.
#
#   bash scripts/device/full.sh [--cpu]
set -uo pipefail
here="$(dirname "$0")"
timeout 100 bash "$here/compare.sh" ${1:+"$1"} || echo "compare.sh ended with status $?"
timeout 250 bash "$here/round.sh" ${1:+"$1"}
