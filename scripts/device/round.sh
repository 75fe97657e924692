#!/usr/bin/env bash
# A GPU round of the data engine, round 0 of `nines engine`'s recipe
# (configs/engine-cpu.toml: disturbed expert drives (DART), recovery
# states drawn twice), sized for at most 4 minutes on the GPU machine:
#   1. simulate drives of every family on every core (collection seeds
#      from 1000000: no suite run is a training scenario)
#   2. distil them
#   3. train the default preset on the GPU
#   4. export (parity-checked against ONNX Runtime)
# and write model.onnx, metrics.jsonl, train.log and timing.log to $OUT.
# Back here:
#   nines eval --model OUT/model.onnx --suite suites/standard.toml --release gpu-r0 --ledger L
# --cpu runs a tiny version on the CPU (about 3 minutes on 2 cores), to
# check the script end to end. Sizes can be changed with ROUND_FAMILIES,
# ROUND_SEEDS, ROUND_DURATION, ROUND_PRESET, ROUND_EPOCHS, ROUND_BATCH.
#
#   bash scripts/device/round.sh [--cpu]
set -euo pipefail
source "$(dirname "$0")/env.sh"
if [ "${1:-}" = "--cpu" ]; then
    families="${ROUND_FAMILIES:-straight,cut_in}"; seeds="${ROUND_SEEDS:-1000000..1000002}"
    duration="${ROUND_DURATION:-6}"; preset="${ROUND_PRESET:-tiny}"; epochs="${ROUND_EPOCHS:-1}"
    batch="${ROUND_BATCH:-8}"; device=cpu; backend="${ROUND_BACKEND:-flex}"
else
    families="${ROUND_FAMILIES:-all}"; seeds="${ROUND_SEEDS:-1000000..1000003}"
    duration="${ROUND_DURATION:-30}"; preset="${ROUND_PRESET:-default}"; epochs="${ROUND_EPOCHS:-4}"
    batch="${ROUND_BATCH:-64}"; device=gpu; backend="${ROUND_BACKEND:-auto}"
fi
cores="$(nproc)"
# Drives, labels and the run stay outside $OUT (gigabytes); only the
# results are copied there.
work="${NINES_ROUND_WORK:-${TMPDIR:-/tmp}/nines-round}"
rm -rf "$work"; mkdir -p "$work"
echo "round: $NINES; families $families, seeds $seeds, ${duration} s; $preset, $epochs epochs, batch $batch on $device ($backend)"

stamp "round: simulate start"
"$NINES" sim batch --families "$families" --seeds "$seeds" --duration "$duration" --disturb dart \
    --out "$work/drives" --jobs "$cores"
drives=("$work"/drives/*.mcap)
stamp "round: simulate done (${#drives[@]} drives of $duration s)"

"$NINES" distill "${drives[@]}" --out "$work/labels" --jobs "$cores"
stamp "round: distil done"

cat >"$work/train.toml" <<TOML
preset = "$preset"
epochs = $epochs
batch_size = $batch
recovery_weight = 2.0
workers = $(( cores > 12 ? 12 : cores ))
TOML
"$NINES" train --labels "$work/labels" --config "$work/train.toml" --out "$work/run" \
    --device "$device" --backend "$backend" | tee "$work/train.log"
stamp "round: train done ($(grep -o '[0-9.]* images/s' "$work/train.log" | tail -1))"

"$NINES" export "$work/run" --out "$out/model.onnx"
cp "$work/run/metrics.jsonl" "$out/metrics.jsonl"
cp "$work/train.log" "$out/train.log"
stamp "round: export done"
ls -l "$out/model.onnx" "$out/metrics.jsonl" "$out/timing.log"
