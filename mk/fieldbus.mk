# Fieldbus (issue 3): the Neasmart SysBus gateway, sans-IO Modbus, relay outputs.
# Rust unit/crate tests run in `make test-unit`, the pytest system tests in tests/fieldbus/ in
# `make test-system`; this file adds the bounded fuzz runs and the benchmark.

.PHONY: fuzz-fieldbus
FUZZ_STEPS += fuzz-fieldbus

# Bounded runs of the RTU and TCP frame decoders and the Neasmart register model
# (scripts/fuzz.sh; FUZZ_SECONDS per target).
fuzz-fieldbus:
	bash scripts/fuzz.sh $@ app/modbus/fuzz 4096 rtu_decoder tcp_decoder
	bash scripts/fuzz.sh $@ app/neasmart/fuzz 4096 register_model

# Benchmark: our Modbus slave against pymodbus in the same run (TCP throughput and latency, RTU
# turnaround on a pty). `make bench` builds the release binary first.
.PHONY: bench-fieldbus
BENCH_STEPS += bench-fieldbus
bench-fieldbus:
	$(CARGO) build -j$(CARGO_JOBS) --release -p watchpost-fieldbus --examples
	$(VENV)/bin/python tests/fieldbus/bench_fieldbus.py
