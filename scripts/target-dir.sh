# Sourced by scripts/demo.sh and scripts/test.sh (with $root set): the
# persistent target folder outside the clone, shared by every checkout on
# this machine, so repeat runs are fast.
#
# Cargo takes a workspace crate built from another checkout's path as fresh,
# with that checkout's CARGO_MANIFEST_DIR compiled in: tests would then read
# the other checkout's configs and data, or fail where it is gone. So when
# the checkout changes, the sources that use CARGO_MANIFEST_DIR are touched
# and rebuilt; dependencies stay built.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/nines/target}"
mkdir -p "$CARGO_TARGET_DIR"
checkout_stamp="$CARGO_TARGET_DIR/.nines-checkout"
if [ "$(cat "$checkout_stamp" 2>/dev/null)" != "$root" ]; then
    (cd "$root" && grep -rl --include='*.rs' CARGO_MANIFEST_DIR datasets kernels sim offboard onboard tools tests |
        xargs -r touch)
    printf '%s\n' "$root" >"$checkout_stamp"
fi
