# Sensor-to-alarm path (issue 4; docs/alarms.md).
# - watchpost-dc09, watchpost-yolink, watchpost-alarm and the bridge worker: unit and crate
#   tests run in `make test-unit` with the workspace; tests/alarm (pysiaalarm, mosquitto,
#   pymodbus as real peers) in `make test-system`.
# - fuzz-alarm: bounded cargo-fuzz runs of the DC-09 frame builder/parser (round trip, CRC,
#   length, arbitrary input) and of YoLink report parsing. Needs the nightly toolchain and
#   cargo-fuzz; says so and skips without them.
# - bench-alarm: latency from a YoLink report published to the broker until pysiaalarm has the
#   frame, p50/p99 at 10, 100 and 500 reports/s, loss count, the broker hop as the floor
#   (tests/alarm/bench_alarm.py, release binaries from `make bench`).
FUZZ_STEPS += fuzz-alarm
BENCH_STEPS += bench-alarm

# Seconds per fuzz target.
ALARM_FUZZ_SECONDS ?= $(FUZZ_SECONDS)
DC09_FUZZ_TARGETS := round_trip crc length parse

.PHONY: fuzz-alarm fuzz-dc09 fuzz-yolink bench-alarm
fuzz-alarm: fuzz-dc09 fuzz-yolink

# $(1): fuzz dir, $(2): targets
define alarm_fuzz_run
	@if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then \
		echo "$@: SKIP: no nightly toolchain (cargo-fuzz needs it)"; exit 0; fi; \
	if ! command -v cargo-fuzz >/dev/null 2>&1; then \
		echo "$@: SKIP: cargo-fuzz is not installed (make tools installs it)"; exit 0; fi; \
	cd $(1) && for t in $(2); do \
		mkdir -p corpus/$$t seeds/$$t; \
		echo "$@: $$t for $(ALARM_FUZZ_SECONDS) s"; \
		cargo +nightly fuzz run $$t corpus/$$t seeds/$$t -- \
			-max_total_time=$(ALARM_FUZZ_SECONDS) -max_len=8192 -print_final_stats=1 2>&1 \
			| grep -E '^(stat::number_of_executed_units|==|SUMMARY|Done|thread|panicked|Base64|artifact_prefix|Test unit written)' ; \
		test $${PIPESTATUS[0]} -eq 0 || exit 1; \
	done
endef

fuzz-dc09:
	$(call alarm_fuzz_run,app/dc09/fuzz,$(DC09_FUZZ_TARGETS))

fuzz-yolink:
	$(call alarm_fuzz_run,app/yolink/fuzz,report)

ALARM_BENCH_ARGS ?= --rates 10,100,500 --seconds 10
bench-alarm:
	WATCHPOST_BIN=$(CURDIR)/target/release/watchpost WATCHPOST_SIM_BIN=$(CURDIR)/target/release/watchpost-sim \
		$(VENV)/bin/python tests/alarm/bench_alarm.py $(ALARM_BENCH_ARGS)
