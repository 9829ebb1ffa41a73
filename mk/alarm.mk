# Sensor-to-alarm path (issue 4; docs/alarms.md).
# - watchpost-dc09, watchpost-yolink, watchpost-alarm and the bridge worker: unit and crate
#   tests run in `make test-unit` with the workspace; tests/alarm (pysiaalarm, mosquitto,
#   pymodbus as real peers) in `make test-system`.
# - fuzz-alarm: bounded cargo-fuzz runs of the DC-09 frame builder/parser (round trip, CRC,
#   length, arbitrary input) and of YoLink report parsing. Needs the nightly toolchain and
#   cargo-fuzz (scripts/fuzz.sh).
# - bench-alarm: latency from a YoLink report published to the broker until pysiaalarm has the
#   frame, p50/p99 at 10, 100 and 500 reports/s, loss count, the broker hop as the floor
#   (tests/alarm/bench_alarm.py, release binaries from `make bench`).
FUZZ_STEPS += fuzz-alarm
BENCH_STEPS += bench-alarm

DC09_FUZZ_TARGETS := round_trip crc length parse

.PHONY: fuzz-alarm fuzz-dc09 fuzz-yolink bench-alarm
fuzz-alarm: fuzz-dc09 fuzz-yolink

fuzz-dc09:
	bash scripts/fuzz.sh $@ app/dc09/fuzz 8192 $(DC09_FUZZ_TARGETS)

fuzz-yolink:
	bash scripts/fuzz.sh $@ app/yolink/fuzz 8192 report

ALARM_BENCH_ARGS ?= --rates 10,100,500 --seconds 10
bench-alarm:
	WATCHPOST_BIN=$(CURDIR)/target/release/watchpost WATCHPOST_SIM_BIN=$(CURDIR)/target/release/watchpost-sim \
		$(VENV)/bin/python tests/alarm/bench_alarm.py $(ALARM_BENCH_ARGS)
