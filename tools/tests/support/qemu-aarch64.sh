#!/bin/sh
# Runs an aarch64 program under qemu user mode, as the cross tier's tests
# need it (test harness only; nothing in nines depends on it).
#
# - qemu user mode shows the program the host's /proc/cpuinfo, which ONNX
#   Runtime's cpuinfo cannot parse as an aarch64 one (it crashes): the
#   program gets the aarch64 cpuinfo next to this script, bound over
#   /proc/cpuinfo in a private mount namespace.
# - `-cpu cortex-a76` (Armv8.2, the generation of a Jetson Orin's
#   Cortex-A78AE): under qemu's default `max` CPU, ONNX Runtime 1.28 to 1.31
#   from PyPI misread the model's initializer sizes and refuse it (1.24 does
#   not; with a named CPU all load it).
#
# Usage: qemu-aarch64.sh PROGRAM ARGS...
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
userns=""
[ "$(id -u)" = 0 ] || userns="-r"
exec unshare $userns -m sh -c 'mount --bind "$0" /proc/cpuinfo && exec qemu-aarch64 -cpu cortex-a76 -L /usr/aarch64-linux-gnu "$@"' \
    "$here/cpuinfo-aarch64" "$@"
