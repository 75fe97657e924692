#!/usr/bin/env bash
# The main job: installs what cargo cannot (scripts/setup.sh), builds the
# `nines` CLI in release, puts it on PATH the way `cargo install` does (in
# ~/.cargo/bin, or $NINES_BIN) together with `nines-onboard`, a link to the
# same binary that runs as the runtime's command when called by that name
# (as rustup's proxies do: the runtime's code is built and linked once), and
# runs `nines demo`. Arguments go to `nines demo` (see `nines demo --help`).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
source scripts/target-dir.sh
cargo build --release --locked -p nines-tools --bin nines
bin="${NINES_BIN:-${CARGO_HOME:-$HOME/.cargo}/bin}"
mkdir -p "$bin"
# A copy, not a link into the target folder: a later build never changes the
# installed binary under a running command. Each name is replaced by rename.
install -m 0755 "$CARGO_TARGET_DIR/release/nines" "$bin/nines.new"
mv -f "$bin/nines.new" "$bin/nines"
ln -f "$bin/nines" "$bin/nines-onboard.new"
mv -f "$bin/nines-onboard.new" "$bin/nines-onboard"
echo "installed nines and nines-onboard in $bin"
case ":$PATH:" in
    *":$bin:"*) ;;
    *) echo "note: $bin is not on PATH; add it (rustup's installer does: source \$HOME/.cargo/env)" ;;
esac
"$bin/nines" demo "$@"
