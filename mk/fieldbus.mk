# Fieldbus (issue 3): the Neasmart SysBus gateway, sans-IO Modbus, relay outputs.
# Rust unit/crate tests run in `make test-unit`, the pytest system tests in tests/fieldbus/ in
# `make test-system`; this file adds the bounded fuzz runs and the benchmark.

FIELDBUS_FUZZ_SECONDS ?= $(FUZZ_SECONDS)
# crate-directory:target
FIELDBUS_FUZZ_TARGETS := app/modbus/fuzz:rtu_decoder app/modbus/fuzz:tcp_decoder app/neasmart/fuzz:register_model
# The shared fuzz target directory (see FUZZ_ENV in the Makefile), so libFuzzer is compiled once.
FIELDBUS_FUZZ_TARGET_DIR := $(CURDIR)/target/fuzz

.PHONY: fuzz-fieldbus
FUZZ_STEPS += fuzz-fieldbus

fuzz-fieldbus:
	@set -o pipefail; \
	if ! $(CARGO) +nightly --version >/dev/null 2>&1; then \
	  echo "fuzz-fieldbus: SKIPPED: no nightly toolchain (cargo +nightly)"; exit 0; fi; \
	if ! $(CARGO) +nightly fuzz --version >/dev/null 2>&1; then \
	  echo "fuzz-fieldbus: SKIPPED: cargo-fuzz is not installed (make tools)"; exit 0; fi; \
	for t in $(FIELDBUS_FUZZ_TARGETS); do \
	  dir=$${t%%:*}; name=$${t##*:}; log=$(FIELDBUS_FUZZ_TARGET_DIR)/$$name.log; \
	  mkdir -p $(FIELDBUS_FUZZ_TARGET_DIR); \
	  echo "fuzz-fieldbus: $$name for $(FIELDBUS_FUZZ_SECONDS) s"; \
	  if ! (cd $$dir && $(CARGO) +nightly fuzz run --target-dir $(FIELDBUS_FUZZ_TARGET_DIR) $$name -- \
	        -max_total_time=$(FIELDBUS_FUZZ_SECONDS) -print_final_stats=1) >$$log 2>&1; then \
	    tail -n 40 $$log; echo "fuzz-fieldbus: $$name FAILED (log $$log, artifacts in $$dir/artifacts/$$name)"; \
	    for a in $$dir/artifacts/$$name/*; do [ -f "$$a" ] && { echo "$$a:"; od -An -tx1 "$$a" | head -n 64; }; done; exit 1; fi; \
	  grep -E "^Done|stat::average_exec_per_sec" $$log | sed "s/^/  $$name: /"; \
	done

# Benchmark: our Modbus slave against pymodbus in the same run (TCP throughput and latency, RTU
# turnaround on a pty). `make bench` builds the release binary first.
.PHONY: bench-fieldbus
BENCH_STEPS += bench-fieldbus
bench-fieldbus:
	$(CARGO) build -j$(CARGO_JOBS) --release -p watchpost-fieldbus --examples
	$(VENV)/bin/python tests/fieldbus/bench_fieldbus.py
