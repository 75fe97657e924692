#!/usr/bin/env bash
# The short first call on a GPU machine (about 1 minute): what is there,
# and whether each GPU training route starts. Prints everything and writes
# it to $OUT/probe.txt. Run here with --cpu to check the script itself.
#
#   bash scripts/device/probe.sh [--cpu]
set -uo pipefail
source "$(dirname "$0")/env.sh"
cpu=0; [ "${1:-}" = "--cpu" ] && cpu=1
exec > >(tee "$out/probe.txt") 2>&1

section() { printf '\n== %s\n' "$*"; }
section machine
uname -m; nproc; free -g | sed -n 2p
ldd --version 2>&1 | head -1
section GPU and driver
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 || echo "no nvidia-smi"
nvidia-smi 2>/dev/null | grep -o 'CUDA Version: [0-9.]*' || true
section CUDA libraries
ldconfig -p 2>/dev/null | grep -E 'libcuda\.so|libnvrtc|libvulkan' || echo "none in the linker cache"
ls -d /usr/local/cuda*/include/cuda.h /usr/local/cuda*/lib64/libnvrtc.so* 2>/dev/null || echo "no /usr/local/cuda headers or nvrtc"
command -v nvcc ncu nsys 2>/dev/null
section Vulkan
ls /usr/share/vulkan/icd.d /etc/vulkan/icd.d 2>/dev/null || echo "no Vulkan ICD folders"
ls "${TMPDIR:-/tmp}/nines-vulkan/usr/lib/x86_64-linux-gnu" 2>/dev/null || echo "no carried loader"
section Python, torch, onnxruntime
"$torch_python" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.device_count())' 2>&1
"$torch_python" -c 'import os, torch; print(os.path.dirname(torch.__file__))' 2>&1
"$ort_python" -c 'import onnxruntime as o; print("onnxruntime", o.__version__, o.get_available_providers())' 2>&1
echo "ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-}"
section "CUDA kernels: nines bench project (NVRTC, launches, against the CPU kernel)"
timeout 60 "$NINES" bench project --points 1000000 --repeats 2 2>&1 | tail -6
section nines
echo "$NINES"; ls -l "$NINES"
cat "$root/build/device/elf.txt" 2>/dev/null
ldd "$NINES" 2>&1 | grep -E 'not found|libtorch|libc10\.|vulkan' || true
"$NINES" --version 2>&1
section GPU training routes
# With --cpu the GPU routes run too: each starts or is refused with a message.
if [ "$cpu" = 1 ]; then routes="cpu:flex cpu:libtorch gpu:libtorch gpu:vulkan"; else routes="gpu:vulkan gpu:libtorch"; fi
for route in $routes; do
    device="${route%%:*}"; backend="${route#*:}"
    echo "-- --device $device --backend $backend"
    timeout 120 "$NINES" bench train --device "$device" --backend "$backend" --preset tiny \
        --batch-sizes 8 --warmup 1 --steps 2 2>&1 | tail -5
    echo "exit status ${PIPESTATUS[0]}"
done
