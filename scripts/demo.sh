#!/usr/bin/env bash
# Runs the whole appliance on examples/demo.toml with simulated peripherals, in the
# foreground, until Ctrl-C. Areas add their simulators as scripts/demo.d/*.sh fragments: each
# is sourced and may call `start_sim NAME ARGS...` to run `watchpost-sim ARGS...` beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${WATCHPOST_DEMO_BIN:-target/release/watchpost}
SIM=${WATCHPOST_DEMO_SIM:-target/release/watchpost-sim}
CONFIG=${WATCHPOST_DEMO_CONFIG:-examples/demo.toml}
# The data directory (the config's ./data/demo unless WATCHPOST_DEMO_DATA names another, as the
# demo's system test does); simulator logs go to its logs/ folder.
DATA=${WATCHPOST_DEMO_DATA:-data/demo}
if [ -n "${WATCHPOST_DEMO_DATA:-}" ]; then export WATCHPOST_SYSTEM__DATA_DIR=$DATA; fi
mkdir -p "$DATA/logs"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM
start_sim() {
  local name=$1; shift
  "$SIM" "$@" >"$DATA/logs/sim-$name.log" 2>&1 &
  pids+=($!)
  echo "demo: simulator $name (pid $!): watchpost-sim $* (log: $DATA/logs/sim-$name.log)"
}
for f in scripts/demo.d/*.sh; do
  [ -e "$f" ] || continue
  # shellcheck source=/dev/null
  source "$f"
done
"$BIN" check-config "$CONFIG"
cat <<MSG
demo: starting Watchpost on $CONFIG (Ctrl-C stops it)
  health   http://127.0.0.1:8080/health
  metrics  http://127.0.0.1:8080/metrics
  API      http://127.0.0.1:8080/api/v1/system   (user admin, password demo-admin)
  MQTT     127.0.0.1:1883                          (mosquitto_sub -t 'watchpost/#' -v)
MSG
"$BIN" run --config "$CONFIG" &
pids+=($!)
wait "${pids[-1]}"
