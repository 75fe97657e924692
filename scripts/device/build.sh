#!/usr/bin/env bash
# Builds, here, what a GPU machine runs (it has no Rust toolchain):
#   build/nines-slim        the slim nines: training only (sim, distill,
#                           train, export, eval, bench; no OpenCV, rerun or
#                           zenoh), with both GPU training backends (LibTorch
#                           CUDA: feature `torch`; Vulkan: feature `gpu`),
#                           stripped (about 129 MB), for use here
#   build/device/           what travels to the GPU machine (carry it whole,
#                           about 23 MB):
#     nines.xz              the slim nines, compressed (env.sh unpacks it)
#     debs/                 the Vulkan loader (libvulkan1) as .deb files
#     elf.txt               the binary's glibc floor and needed libraries
# LibTorch comes from the PyPI wheel torch==$NINES_TORCH_VERSION (the CUDA 13
# build, the GPU machine's own torch), installed with its CUDA libraries in
# a venv outside the clone (about 4.6 GB; linking needs those libraries).
# On the GPU machine the binary loads that machine's own torch/lib through
# LD_LIBRARY_PATH (scripts/device/env.sh). About 25 min on 2 cores.
#
#   bash scripts/device/build.sh   # then, on the GPU machine, carrying build/device:
#                                  # scripts/device/probe.sh, then scripts/device/full.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
source scripts/target-dir.sh

torch_version="${NINES_TORCH_VERSION:-2.11.0}"
venv="${NINES_TORCH_VENV:-$HOME/.cache/nines/torch-$torch_version}"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
    echo "installing torch==$torch_version (CUDA 13 wheel and its CUDA libraries) into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "torch==$torch_version"
fi
LIBTORCH="$("$venv/bin/python" -c 'import os, torch; print(os.path.dirname(torch.__file__))')"
export LIBTORCH
echo "LibTorch: $LIBTORCH ($("$venv/bin/python" -c 'import torch; print(torch.__version__)'))"

features="cuda,torch,gpu"
cargo build --release --locked -p nines-tools --bin nines --no-default-features --features "$features"
slim="$root/build/nines-slim"
out="$root/build/device"
rm -rf "$out"
mkdir -p "$out/debs"
strip -o "$slim" "$CARGO_TARGET_DIR/release/nines"
xz -T0 -6 -c "$slim" >"$out/nines.xz"
# The Vulkan loader the GPU machine lacks (its NVIDIA driver brings the ICD).
(cd "$out/debs" && apt-get download libvulkan1 >/dev/null 2>&1)
{
    echo "glibc floor: $(objdump -T "$slim" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)"
    echo "needed: $(readelf -d "$slim" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | tr '\n' ' ')"
} >"$out/elf.txt"
ls -l "$slim" "$out/nines.xz" "$out"/debs/*.deb
cat "$out/elf.txt"
echo "carry to the GPU machine: build/device ($(du -sh "$out" | cut -f1))"
