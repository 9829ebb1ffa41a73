#!/usr/bin/env bash
# Bounded cargo-fuzz runs of one fuzz crate: `scripts/fuzz.sh STEP DIR MAX_LEN TARGET...`.
#
# Each TARGET of the fuzz crate in DIR runs for FUZZ_SECONDS (default 60; the Makefile passes
# 15 under `make test`, 300 under `make fuzz`) with the seeds kept
# in DIR/seeds/TARGET and the growing corpus in DIR/corpus/TARGET (ignored by git). Every fuzz
# crate builds into CARGO_TARGET_DIR (the Makefile's FUZZ_ENV points all of them at one
# directory, so libFuzzer and shared dependencies are compiled once per run).
#
# Fuzzing needs the nightly toolchain and cargo-fuzz (`make tools`). Without them the step says
# so and skips when run by hand; under `make test` (WATCHPOST_REQUIRE_PEERS=1) it fails, so a
# machine that cannot fuzz never passes CI without fuzzing.
#
# On a failure it prints the end of the target's log and the failing input in hex, since CI
# keeps only the console output.
set -euo pipefail
step=$1 dir=$2 max_len=$3
shift 3
seconds=${FUZZ_SECONDS:-60}

missing() {
  if [ "${WATCHPOST_REQUIRE_PEERS:-0}" = 1 ]; then
    echo "$step: FAILED: $1 (fuzzing is part of make test; scripts/install-tools.sh installs cargo-fuzz)"
    exit 1
  fi
  echo "$step: SKIP: $1"
  exit 0
}
rustup toolchain list 2>/dev/null | grep -q '^nightly' || missing "no nightly toolchain (cargo-fuzz needs it)"
command -v cargo-fuzz >/dev/null 2>&1 || missing "cargo-fuzz is not installed (make tools installs it)"

logs=${CARGO_TARGET_DIR:-$dir/target}/logs
mkdir -p "$logs"
cd "$dir"
for t in "$@"; do
  mkdir -p "corpus/$t" "seeds/$t"
  log=$logs/$t.log
  echo "$step: $t for $seconds s"
  # No sanitizer: the fuzzed code is safe Rust, where AddressSanitizer finds nothing a panic
  # does not, and builds and runs take about half the time without it.
  if ! cargo +nightly fuzz run --sanitizer none "$t" "corpus/$t" "seeds/$t" -- \
      -max_total_time="$seconds" -max_len="$max_len" -print_final_stats=1 >"$log" 2>&1; then
    tail -n 40 "$log"
    echo "$step: $t FAILED (log $log, artifacts in $dir/artifacts/$t)"
    for a in "artifacts/$t"/*; do
      [ -f "$a" ] && { echo "$a:"; od -An -tx1 "$a" | head -n 64; }
    done
    exit 1
  fi
  grep -E '^(Done|stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb)' "$log" \
    | sed "s/^/  $t: /"
done
