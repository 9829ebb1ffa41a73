#!/usr/bin/env bash
# `make bench-board`: figures of the aarch64 build.
# - size of the stripped aarch64 watchpost binary (target < 25 MiB);
# - cold `check-config` of examples/demo.toml under qemu-user vs the native release
#   binary in the same run;
# - cold start-to-healthy of `watchpost run` (broker + hub) under qemu-user vs native: the
#   supervisor starts its workers through WATCHPOST_WORKER_WRAPPER=scripts/cross/run-aarch64,
#   since binfmt_misc is not registered on these machines;
# - start-to-healthy in the QEMU image, from the last `make image-test`.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=build/cross/watchpost
native=${WATCHPOST_NATIVE_BIN:-target/release/watchpost}
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
# Start-to-healthy: from exec to the first `"status":"healthy"` on /health.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
healthy_ms() { # DIR COMMAND...
  local dir=$1; shift
  local port s e pid
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  rm -rf "$dir" && mkdir -p "$dir"
  printf '[system]\ndata_dir = "%s/data"\nlog_format = "text"\n[supervisor]\nessential = ["broker", "hub"]\nready_timeout_ms = 120000\nheartbeat_timeout_ms = 15000\n[broker]\nlisten = "127.0.0.1:0"\n[hub]\nlisten = "127.0.0.1:%s"\n' "$dir" "$port" > "$dir/wp.toml"
  s=$(date +%s%N)
  "$@" run --config "$dir/wp.toml" > "$dir/log" 2>&1 &
  pid=$!
  until curl -fs "http://127.0.0.1:$port/health" 2>/dev/null | grep -q '"status":"healthy"'; do
    if ! kill -0 "$pid" 2>/dev/null || [ $(( ($(date +%s%N) - s) / 1000000000 )) -gt 120 ]; then
      echo "bench-board: $* did not get healthy; log:" >&2
      tail -20 "$dir/log" >&2
      kill "$pid" 2>/dev/null
      return 1
    fi
    sleep 0.05
  done
  e=$(date +%s%N)
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
  echo $(( (e - s) / 1000000 ))
}
emu=(); nat=()
for _ in 1 2 3; do
  emu+=("$(WATCHPOST_WORKER_WRAPPER="$PWD/scripts/cross/run-aarch64" healthy_ms "$tmp/emu" scripts/cross/run-aarch64 "$bin")")
  [ -x "$native" ] && nat+=("$(healthy_ms "$tmp/nat" "$native")")
done
e=$(median "${emu[@]}")
echo "bench-board: start-to-healthy (broker + hub) under qemu-aarch64: median ${e} ms of 3 (${emu[*]})"
if [ ${#nat[@]} -gt 0 ]; then
  n=$(median "${nat[@]}")
  echo "bench-board: start-to-healthy native x86_64: median ${n} ms of 3 (${nat[*]}); emulated/native = $(echo "scale=1; $e / ($n + 0.001)" | bc -l)x"
fi

times=build/image/image-test-times.json
if [ -f "$times" ]; then
  echo "bench-board: QEMU image (TCG, from qemu start; last make image-test): $(tr -d '\n ' < "$times")"
else
  echo "bench-board: no QEMU image timings yet (make image-test writes $times)"
fi
