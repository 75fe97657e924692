#!/usr/bin/env bash
# Installs what cargo cannot, idempotently: system packages (apt), and the
# Python peer tools in a local venv (.venv). Safe to run again; fast when
# everything is already there. Later capabilities add to the lists below.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# System packages nines needs beyond Rust and Python: OpenCV for the onboard
# runtime's cameras and video files (its Rust bindings are generated with
# libclang at build time); OpenSSH for `nines flash` (the server for its
# loopback test).
apt_packages=(python3-venv libopencv-dev clang libclang-dev openssh-client openssh-server)
# `--cross`: building aarch64 bundles on an x86-64 machine (the cross linker
# and libc) and running them under emulation (qemu user mode).
cross=0
if [ "${1:-}" = "--cross" ]; then
  cross=1
  apt_packages+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user)
fi

missing=()
if command -v dpkg >/dev/null 2>&1; then
  for p in "${apt_packages[@]}"; do
    # python3-venv is only needed where the interpreter lacks venv/ensurepip.
    if [ "$p" = python3-venv ] && python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then continue; fi
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing system packages: ${missing[*]}"
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The loopback ssh test of `nines flash` logs in to an OpenSSH server that
# runs unprivileged, as a robot's would. Run as root, the tests use this user.
if [ "$(id -u)" -eq 0 ] && ! id nines-robot >/dev/null 2>&1; then
  echo "setup: creating the unprivileged user nines-robot (the ssh flash test's robot)"
  useradd --system --create-home --shell /bin/sh nines-robot
fi

# Python peers in .venv, reinstalled only when the requirements change.
req="scripts/peers/requirements.txt"
stamp=".venv/.nines-requirements"
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  python3 -m venv .venv
fi
if ! cmp -s "$req" "$stamp" 2>/dev/null; then
  echo "setup: installing Python peer tools ($req)"
  .venv/bin/python -m pip install -q --disable-pip-version-check -r "$req"
  cp "$req" "$stamp"
fi

if [ "$cross" = 1 ]; then
  rustup target add aarch64-unknown-linux-gnu
  # The aarch64 ONNX Runtime for bundles: the same PyPI wheel version as the
  # peers use, for manylinux aarch64, unpacked where `nines bundle` looks.
  version="$(sed -n 's/^onnxruntime==//p' "$req")"
  ort_dir="${XDG_CACHE_HOME:-$HOME/.cache}/nines/onnxruntime/aarch64"
  if ! ls "$ort_dir"/libonnxruntime.so."$version" >/dev/null 2>&1; then
    echo "setup: fetching ONNX Runtime $version for aarch64 (PyPI wheel)"
    tmp="$(mktemp -d)"
    .venv/bin/python -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
      --platform manylinux_2_28_aarch64 --python-version 3.11 "onnxruntime==$version" -d "$tmp"
    mkdir -p "$ort_dir"
    .venv/bin/python - "$tmp" "$ort_dir" <<'PY'
import sys, zipfile, pathlib
wheel = next(pathlib.Path(sys.argv[1]).glob("*.whl"))
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if "/capi/libonnxruntime.so." in name:
            (pathlib.Path(sys.argv[2]) / pathlib.Path(name).name).write_bytes(z.read(name))
PY
    rm -rf "$tmp"
  fi
fi
