#!/usr/bin/env bash
# Installs what cargo cannot, idempotently: system packages (apt), and the
# Python peer tools in a local venv (.venv). Safe to run again; fast when
# everything is already there. Later capabilities add to the lists below.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# System packages nines needs beyond Rust and Python: OpenCV for the onboard
# runtime's cameras and video files (its Rust bindings are generated with
# libclang at build time).
apt_packages=(python3-venv libopencv-dev clang libclang-dev)

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
