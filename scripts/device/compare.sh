#!/usr/bin/env bash
# nines against PyTorch on one GPU: the same network (the default preset),
# the same step, batch 32 and 128, after warm-up (at most 1.5 minutes).
# Each run's GPU memory is the peak of nvidia-smi's memory.used during it,
# less the reading before. Writes $OUT/compare.jsonl and $OUT/compare.md
# (the rows of docs/PERFORMANCE.md, "GPU training against PyTorch").
#
#   bash scripts/device/compare.sh [--cpu] [BACKEND...]   (default: vulkan libtorch)
set -uo pipefail
source "$(dirname "$0")/env.sh"
cpu=0; [ "${1:-}" = "--cpu" ] && { cpu=1; shift; }
backends="${*:-vulkan libtorch}"
if [ "$cpu" = 1 ]; then
    device=cpu; torch_device=cpu; preset=tiny; sizes=4,8; steps=3; warmup=1; backends="${*:-flex libtorch}"
else
    device=gpu; torch_device=cuda; preset=default; sizes=32,128; steps=30; warmup=10
fi
: >"$out/compare.jsonl"

# Runs "$@" with a memory sampler; appends its JSON lines with gpu_memory_mib.
measured() {
    local samples="$out/.memory" base=0 peak=0
    if command -v nvidia-smi >/dev/null; then
        base="$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)"
        nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 >"$samples" &
        local sampler=$!
    fi
    timeout 40 "$@" >"$out/.rows" 2>>"$out/compare.log"
    local status=$?
    if [ -n "${sampler:-}" ]; then kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null
        peak="$(sort -n "$samples" | tail -1)"; fi
    if [ $status -ne 0 ]; then echo "failed ($status): $*" | tee -a "$out/compare.log"; return 0; fi
    local memory=$(( ${peak:-0} - ${base:-0} ))
    sed "s/}\$/, \"gpu_memory_mib\": $memory}/" "$out/.rows" | grep '^{' | tee -a "$out/compare.jsonl"
}

stamp "compare: PyTorch, $preset, batch $sizes on $torch_device"
measured "$torch_python" "$root/scripts/peers/torch_model.py" train --preset "$preset" \
    --batch-sizes "$sizes" --steps "$steps" --warmup "$warmup" --device "$torch_device"
for backend in $backends; do
    stamp "compare: nines, $backend, $preset, batch $sizes on $device"
    measured "$NINES" bench train --json --device "$device" --backend "$backend" --preset "$preset" \
        --batch-sizes "$sizes" --steps "$steps" --warmup "$warmup"
done
stamp "compare: done"

# The table: one row per framework and batch, the ratio to PyTorch at that batch.
"$torch_python" - "$out/compare.jsonl" >"$out/compare.md" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
torch = {r["batch_size"]: r["images_per_sec"] for r in rows if r["framework"].startswith("PyTorch")}
print("| framework | batch | images/s | vs PyTorch | GPU memory, MiB | device |")
print("| --- | --- | --- | --- | --- | --- |")
for r in rows:
    name = r["framework"] if r["framework"].startswith("PyTorch") else f"nines (burn, {r['device'].split(',')[0].replace('burn ', '')})"
    ratio = r["images_per_sec"] / torch[r["batch_size"]] if r["batch_size"] in torch else float("nan")
    print(f"| {name} | {r['batch_size']} | {r['images_per_sec']:.1f} | {ratio:.2f}x | {r.get('gpu_memory_mib', 0)} | {r['device']} |")
PY
cat "$out/compare.md"
