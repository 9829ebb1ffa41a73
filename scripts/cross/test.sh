#!/usr/bin/env bash
# `make cross-test`: the unit tests of the board crate (the crate whose code differs most
# between architectures: ioctl numbers, struct layouts) built for aarch64 and run under
# qemu-user through the cargo runner, plus `make cross` (binary + check-config).
# WATCHPOST_CROSS_TEST_PACKAGES widens the set ("--workspace" for everything).
set -euo pipefail
cd "$(dirname "$0")/../.."
target=aarch64-unknown-linux-gnu
jobs=${CARGO_JOBS:-2}
read -r -a pkgs <<< "${WATCHPOST_CROSS_TEST_PACKAGES:--p watchpost-board}"
t0=$(date +%s)
cargo test -j"$jobs" --target "$target" "${pkgs[@]}"
echo "cross-test: unit tests under qemu-aarch64 took $(( $(date +%s) - t0 )) s"
