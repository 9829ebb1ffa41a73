#!/usr/bin/env bash
# `make cross`: builds the watchpost binary for aarch64 (release), checks that it is an
# arm64 ELF, and runs `watchpost check-config examples/demo.toml` under qemu-user.
# Prints the stripped size. Needs the sysroot (scripts/cross/sysroot.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
target=aarch64-unknown-linux-gnu
jobs=${CARGO_JOBS:-2}
out=build/cross
mkdir -p "$out"
t0=$(date +%s)
cargo build -j"$jobs" --release --target "$target" --bin watchpost
echo "cross: build took $(( $(date +%s) - t0 )) s"
bin=target/$target/release/watchpost
desc=$(file -b "$bin")
echo "cross: $bin: $desc"
case "$desc" in
  *"ELF 64-bit LSB"*"ARM aarch64"*) ;;
  *) echo "cross: $bin is not an aarch64 ELF" >&2; exit 1 ;;
esac
aarch64-linux-gnu-strip -o "$out/watchpost" "$bin"
size=$(stat -c %s "$out/watchpost")
echo "cross: stripped aarch64 binary: $size bytes ($(( size / 1024 / 1024 )) MiB; target < 25 MiB)"
scripts/cross/run-aarch64 "$out/watchpost" check-config examples/demo.toml
echo "cross: check-config examples/demo.toml passed under qemu-aarch64"
