# Watchpost task runner. CI calls `make test` (through .ci/run).
# Areas add their own steps in mk/<area>.mk:
#   TEST_STEPS  += target   (run by `make test`, after the shared build)
#   BENCH_STEPS += target   (run by `make bench`)
#   FUZZ_STEPS  += target   (bounded fuzz runs, part of `make test`)
SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo
CARGO_JOBS ?= 2
VENV := .venv
PYTEST := $(VENV)/bin/pytest
export CARGO_TERM_COLOR ?= never
export WATCHPOST_BIN := $(CURDIR)/target/debug/watchpost
export WATCHPOST_SIM_BIN := $(CURDIR)/target/debug/watchpost-sim
# Tests that need a peer (pymodbus, ffprobe, mosquitto, ...) skip with a reason when it is
# missing; under make, which installs them all, such a skip fails instead (tests/conftest.py,
# watchpost_runtime::testing::missing_peer).
export WATCHPOST_REQUIRE_PEERS := 1

TEST_STEPS :=
BENCH_STEPS :=
FUZZ_STEPS :=
# Seconds each fuzz target runs: briefly in `make test` (a cold run stays under 50 min on two
# cores), longer in `make fuzz` (`make fuzz FUZZ_SECONDS=3600` for a soak).
FUZZ_TEST_SECONDS ?= 15
FUZZ_SECONDS ?= 300
-include mk/*.mk
# Every fuzz crate builds into one target directory, so their shared dependencies (libfuzzer,
# serde, ...) are compiled once per run, not once per crate.
FUZZ_ENV := CARGO_TARGET_DIR=$(CURDIR)/target/fuzz

.PHONY: help deps venv build build-release demo test test-unit test-system lint fmt bench fuzz soak tools
help:
	@echo "make demo   - install what is missing, build, run the whole appliance on examples/demo.toml"
	@echo "make test   - install what is missing, build once, lint, run every test layer"
	@echo "make bench  - benchmarks (prints figures; real peers measured in the same run)"
	@echo "make lint   - cargo fmt --check and clippy -D warnings"

deps:
	bash scripts/install-deps.sh

venv: deps
	bash scripts/setup-venv.sh

tools:
	bash scripts/install-tools.sh

build: deps
	$(CARGO) build -j$(CARGO_JOBS) --workspace --all-targets

build-release: deps
	$(CARGO) build -j$(CARGO_JOBS) --release --bin watchpost --bin watchpost-sim

demo: build-release
	bash scripts/demo.sh

# Style is enforced first: `lint` (rustfmt check, then one clippy run with -D warnings over the
# workspace's targets) fails the run before any test step.
test: build venv tools
	@start=$$(date +%s); \
	for t in lint test-unit test-system $(TEST_STEPS); do s=$$(date +%s); echo "== $$t"; \
	  $(MAKE) --no-print-directory $$t || exit 1; echo "== $$t: $$(( $$(date +%s) - s )) s"; done; \
	for t in $(FUZZ_STEPS); do s=$$(date +%s); echo "== $$t"; \
	  $(FUZZ_ENV) FUZZ_SECONDS=$(FUZZ_TEST_SECONDS) $(MAKE) --no-print-directory $$t || exit 1; echo "== $$t: $$(( $$(date +%s) - s )) s"; done; \
	echo "make test: all steps passed in $$(( $$(date +%s) - start )) s"

test-unit:
	$(CARGO) nextest run -j$(CARGO_JOBS) --workspace --no-fail-fast --cargo-quiet

# Both cores: most system tests wait on peers and timers. Tests on the demo's fixed ports share
# one xdist group (one worker, one after another).
TEST_WORKERS ?= 2
test-system:
	$(PYTEST) -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadgroup tests

fuzz: tools
	@for t in $(FUZZ_STEPS); do $(FUZZ_ENV) FUZZ_SECONDS=$(FUZZ_SECONDS) $(MAKE) --no-print-directory $$t || exit 1; done

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy -j$(CARGO_JOBS) --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

bench: build-release venv
	@for t in $(BENCH_STEPS); do echo "== $$t"; $(MAKE) --no-print-directory $$t || exit 1; done
