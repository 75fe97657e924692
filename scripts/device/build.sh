#!/usr/bin/env bash
# Builds, here, what a GPU machine runs (it has no Rust toolchain):
#   build/device/nines      the slim nines: training only (sim, distill,
#                           train, export, eval, bench; no OpenCV, rerun or
#                           zenoh), with both GPU training backends (LibTorch
#                           CUDA: feature `torch`; Vulkan: feature `gpu`),
#                           stripped (about 129 MB)
#   build/device/nines.xz   the same, compressed to carry (about 24 MB; the
#                           device scripts unpack it there)
#   build/device/debs/      the Vulkan loader (libvulkan1) as .deb files,
#                           unpacked on the GPU machine by probe.sh
# LibTorch comes from the PyPI wheel torch==$NINES_TORCH_VERSION (the CUDA 13
# build, the GPU machine's own torch), installed with its CUDA libraries in
# a venv outside the clone (about 4.6 GB; linking needs those libraries).
# On the GPU machine the binary loads that machine's own torch/lib through
# LD_LIBRARY_PATH (scripts/device/env.sh). Cold: about 25 min on 2 cores.
#
#   bash scripts/device/build.sh   # then run probe.sh, then full.sh, there, carrying
#                                  # build/device/nines.xz and build/device/debs
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
out="$root/build/device"
mkdir -p "$out/debs"
strip -o "$out/nines" "$CARGO_TARGET_DIR/release/nines"
xz -T0 -6 -c "$out/nines" >"$out/nines.xz"
# The Vulkan loader the GPU machine lacks (its NVIDIA driver brings the ICD).
(cd "$out/debs" && apt-get download libvulkan1 >/dev/null)
ls -l "$out/nines" "$out/nines.xz" "$out"/debs/*.deb
echo "carry to the GPU machine: build/device/nines.xz build/device/debs"
echo "needed libraries: $(readelf -d "$out/nines" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | tr '\n' ' ')"
