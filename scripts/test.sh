#!/usr/bin/env bash
# The test command: installs what cargo cannot (scripts/setup.sh), then runs
# every test of the workspace, including the peer checks against the Python
# MCAP readers. Slow tiers are #[ignore] tests: see README "Testing".
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
# A persistent target directory outside the clone keeps repeat runs fast.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/nines/target}"
export NINES_PYTHON="${NINES_PYTHON:-$root/.venv/bin/python}"
cargo test --workspace --locked "$@"
