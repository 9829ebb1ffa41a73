# Hub (issues 2, 13): the setup pages, the guard, the REST API. Unit and crate tests run in
# `make test-unit`; tests/foundation and tests/browser in `make test-system`.
# - fuzz-hub: bounded cargo-fuzz runs of what the hub parses from strangers (scripts/fuzz.sh):
#   `forms` (form bodies and query strings into the page forms and API query structs, the
#   guard's CSRF field, the settings form's mapping to a configuration patch, safe_next) and
#   `credentials` (Cookie and Authorization headers, the setup code). FUZZ_SECONDS each.
# - bench-pages: per page bytes (gzip and not) and server time p50/p99 under 20 clients, /live
#   time to first event, dashboard first render in headless Chromium, against a static-file
#   peer serving the same bytes (bench/pages.py, release binaries from `make bench`).
FUZZ_STEPS += fuzz-hub
BENCH_STEPS += bench-pages

.PHONY: fuzz-hub bench-pages
fuzz-hub:
	bash scripts/fuzz.sh $@ app/hub/fuzz 8192 forms credentials

bench-pages:
	$(CARGO) build -j$(CARGO_JOBS) --release --bin watchpost --bin watchpost-sim
	WATCHPOST_BIN=$(CURDIR)/target/release/watchpost WATCHPOST_SIM_BIN=$(CURDIR)/target/release/watchpost-sim \
		$(VENV)/bin/python bench/pages.py
