# watchpost-store: crash test (needs the `test-support` child binary) and the storage benchmark.
# The other store tests run in `make test-unit` with the rest of the workspace.
TEST_STEPS += test-store-crash
BENCH_STEPS += bench-store

# Data directory of the benchmark: a real disk (not tmpfs), so fsync and write counts are honest.
STORE_BENCH_DIR ?= $(CURDIR)/target/store-bench
# Events per engine (1M in batches of 100 by default).
STORE_BENCH_EVENTS ?= 1000000

.PHONY: test-store-crash bench-store
test-store-crash:
	$(CARGO) test -j$(CARGO_JOBS) -p watchpost-store --features test-support --test crash

bench-store:
	$(CARGO) bench -j$(CARGO_JOBS) -p watchpost-store --features bench --bench store_bench -- \
		--dir $(STORE_BENCH_DIR) --events $(STORE_BENCH_EVENTS) --batch 100
