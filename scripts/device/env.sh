# Sourced by the device scripts: which nines runs, and where it finds
# LibTorch, ONNX Runtime and the Vulkan loader.
#
# On the GPU machine (no Rust, no OpenCV, no Vulkan loader): the slim nines
# made here by scripts/device/build.sh and carried compressed in
# build/device, unpacked once; it loads that machine's own torch/lib
# (LD_LIBRARY_PATH), the onnxruntime of its Python (ORT_DYLIB_PATH) and the
# carried libvulkan1. With --cpu (any machine): the same scripts on the CPU,
# to check them end to end. NINES=... picks the binary (default: the slim
# build/nines-slim if built here, else the carried one, else `nines` on PATH).
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out="${OUT:-$root/target/device-out}"
mkdir -p "$out"
torch_python="${NINES_TORCH_PYTHON:-python3}"
ort_python="${NINES_ORT_PYTHON:-python3}"

if [ -z "${NINES:-}" ]; then
    if [ -x "$root/build/nines-slim" ]; then
        NINES="$root/build/nines-slim"
    elif [ -f "$root/build/device/nines.xz" ]; then
        NINES="${TMPDIR:-/tmp}/nines-device/nines"
        if [ ! -x "$NINES" ]; then
            mkdir -p "$(dirname "$NINES")"
            "$ort_python" -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
                "$root/build/device/nines.xz" "$NINES"
            chmod +x "$NINES"
        fi
    else
        NINES="$(command -v nines || true)"
    fi
fi
[ -n "$NINES" ] || { echo "no nines: run scripts/device/build.sh here first (or put nines on PATH)" >&2; exit 2; }

# LibTorch: the slim binary needs libtorch*.so at start (it links them).
if torch_lib="$("$torch_python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))' 2>/dev/null)"; then
    export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
# ONNX Runtime (export's parity check) from the Python's onnxruntime wheel,
# unless named already or a checkout .venv has one (nines finds that itself).
if [ -z "${ORT_DYLIB_PATH:-}" ] && [ ! -d "$root/.venv" ]; then
    capi="$("$ort_python" -c 'import os, onnxruntime; print(os.path.join(os.path.dirname(onnxruntime.__file__), "capi"))' 2>/dev/null || true)"
    lib="$(ls "$capi"/libonnxruntime.so* 2>/dev/null | head -1 || true)"
    [ -n "$lib" ] && export ORT_DYLIB_PATH="$lib"
fi
# The Vulkan loader carried as .deb files, unpacked once per machine.
if ls "$root"/build/device/debs/*.deb >/dev/null 2>&1; then
    vk="${TMPDIR:-/tmp}/nines-vulkan"
    if [ ! -d "$vk" ]; then
        if command -v dpkg-deb >/dev/null; then
            for deb in "$root"/build/device/debs/*.deb; do dpkg-deb -x "$deb" "$vk"; done
        else
            echo "no dpkg-deb: the carried Vulkan loader is not unpacked (the Vulkan route needs it)" >&2
        fi
    fi
    export LD_LIBRARY_PATH="$vk/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

# Seconds since the script started, for the timing log.
started_at=$SECONDS
stamp() { printf '%s\t%s\n' "$((SECONDS - started_at))" "$*" | tee -a "$out/timing.log"; }
