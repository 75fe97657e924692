#!/usr/bin/env bash
# The test command: installs what cargo cannot (scripts/setup.sh), then runs
# every test of the workspace, including the peer checks against the Python
# MCAP readers. Slow tiers are #[ignore] tests: see README "Testing".
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
source scripts/target-dir.sh
export NINES_PYTHON="${NINES_PYTHON:-$root/.venv/bin/python}"
# Tests write under TMPDIR: one folder per run, removed when the run ends
# however it ends, so a run can never fill the disk for the next.
export TMPDIR="$(mktemp -d "$CARGO_TARGET_DIR/test-tmp.XXXXXX")"
trap 'rm -rf "$TMPDIR"' EXIT
# Earlier versions of the train and onboard tests left their shared fixture
# (536 MB and 38 MB) in the system temp folder on every run; remove those,
# and only those: ours, older than an hour, holding exactly that fixture.
find /tmp -maxdepth 1 -type d -name '.tmp??????' -user "$(id -u)" -mmin +60 2>/dev/null |
    while read -r dir; do
        case "$(ls -A "$dir" | tr '\n' ' ')" in
            "drives labels " | *"drive.mcap "*"tiny.onnx "*) rm -rf "$dir" ;;
        esac
    done
cargo test --workspace --locked "$@"
