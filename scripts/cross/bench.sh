#!/usr/bin/env bash
# `make bench-board`: figures of the aarch64 build.
# - size of the stripped aarch64 watchpost binary (target < 25 MiB);
# - cold `check-config` of examples/demo.toml under qemu-user vs the native release
#   binary in the same run (qemu-user cannot measure `run`: the supervisor re-executes
#   its own aarch64 binary for every worker, which needs binfmt_misc, not registered on
#   these machines);
# - start-to-healthy in the QEMU image, from the last `make image-test`.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=build/cross/watchpost
native=target/release/watchpost
[ -x "$bin" ] || { echo "bench-board: $bin missing (make cross)" >&2; exit 1; }
size=$(stat -c %s "$bin")
printf 'bench-board: stripped aarch64 binary: %d bytes (%.1f MiB, target < 25 MiB)\n' "$size" "$(echo "$size / 1048576" | bc -l)"
ms() { local s e; s=$(date +%s%N); "$@" >/dev/null; e=$(date +%s%N); echo $(( (e - s) / 1000000 )); }
runs=5
emu=(); nat=()
for _ in $(seq $runs); do
  emu+=("$(ms scripts/cross/run-aarch64 "$bin" check-config examples/demo.toml)")
  [ -x "$native" ] && nat+=("$(ms "$native" check-config examples/demo.toml)")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
e=$(median "${emu[@]}")
echo "bench-board: check-config under qemu-aarch64: median ${e} ms of $runs (${emu[*]})"
if [ ${#nat[@]} -gt 0 ]; then
  n=$(median "${nat[@]}")
  echo "bench-board: check-config native x86_64: median ${n} ms of $runs (${nat[*]}); emulated/native = $(echo "scale=1; $e / ($n + 0.001)" | bc -l)x"
fi
times=build/image/image-test-times.json
if [ -f "$times" ]; then
  echo "bench-board: QEMU image (TCG, from qemu start; last make image-test): $(tr -d '\n ' < "$times")"
else
  echo "bench-board: no QEMU image timings yet (make image-test writes $times)"
fi
