# Foundation (issue 2): supervisor, broker, hub. Their unit and crate tests run in
# `make test-unit`; tests/foundation in `make test-system`.
BENCH_STEPS += bench-foundation

.PHONY: bench-foundation
bench-foundation:
	$(CARGO) build -j$(CARGO_JOBS) --release -p watchpost-bus --example mqtt_bench --example bus_rtt
	WATCHPOST_BIN=$(CURDIR)/target/release/watchpost $(VENV)/bin/python bench/foundation.py

# docs/api.md from the hub's OpenAPI document (tests/foundation/test_openapi.py checks it).
.PHONY: api-doc
api-doc:
	$(CARGO) build -j$(CARGO_JOBS) --bin watchpost
	WATCHPOST_BIN=$(WATCHPOST_BIN) python3 scripts/api-doc.py
