#!/usr/bin/env bash
# The main job: installs what cargo cannot (scripts/setup.sh), builds the
# `nines` CLI in release and runs `nines demo`. Arguments go to `nines demo`
# (see `nines demo --help`).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/nines/target}"
cargo run --release --locked -p nines-tools --bin nines -- demo "$@"
