#!/usr/bin/env bash
# The main job: installs what cargo cannot (scripts/setup.sh), builds the
# `nines` CLI and the `nines-onboard` runtime in release (one cargo
# invocation, one target folder), puts both on PATH the way `cargo install`
# does (in ~/.cargo/bin, or $NINES_BIN), and runs `nines demo`. Arguments go
# to `nines demo` (see `nines demo --help`).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/nines/target}"
cargo build --release --locked -p nines-tools --bin nines -p nines-onboard --bin nines-onboard
bin="${NINES_BIN:-${CARGO_HOME:-$HOME/.cargo}/bin}"
mkdir -p "$bin"
# Copies, not links: a later build in the target folder never changes the
# installed binaries under a running command.
for name in nines nines-onboard; do
    install -m 0755 "$CARGO_TARGET_DIR/release/$name" "$bin/$name.new"
    mv -f "$bin/$name.new" "$bin/$name"
done
echo "installed nines and nines-onboard in $bin"
case ":$PATH:" in
    *":$bin:"*) ;;
    *) echo "note: $bin is not on PATH; add it (rustup's installer does: source \$HOME/.cargo/env)" ;;
esac
"$bin/nines" demo "$@"
