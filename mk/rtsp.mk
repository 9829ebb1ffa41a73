# RTSP/ONVIF server area (issue 6; docs/rtsp.md, docs/onvif.md).
# - watchpost-onvif, watchpost-dashboard and watchpost-rtsp unit/crate tests run in
#   `make test-unit` with the workspace; the system tests under tests/rtsp in `make test-system`.
# - fuzz-onvif: bounded cargo-fuzz runs of the SOAP request parser and the WS-Discovery parser
#   (needs the nightly toolchain and cargo-fuzz; says so and skips without them).
# - bench-rtsp: CPU/RSS with 1/10/50 clients on a restreamed 1080p mount, time to first
#   frame, dashboard encoder CPU (tests/rtsp/bench_rtsp.py).
FUZZ_STEPS += fuzz-onvif
BENCH_STEPS += bench-rtsp

# Seconds per fuzz target.
ONVIF_FUZZ_SECONDS ?= $(FUZZ_SECONDS)
ONVIF_FUZZ_DIR := app/onvif/fuzz

.PHONY: fuzz-onvif bench-rtsp
fuzz-onvif:
	@if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then \
		echo "fuzz-onvif: SKIP: no nightly toolchain (cargo-fuzz needs it)"; exit 0; fi; \
	if ! command -v cargo-fuzz >/dev/null 2>&1; then \
		echo "fuzz-onvif: SKIP: cargo-fuzz is not installed (make tools installs it)"; exit 0; fi; \
	cd $(ONVIF_FUZZ_DIR) && for t in soap_request discovery; do \
		mkdir -p corpus/$$t seeds/$$t; \
		echo "fuzz-onvif: $$t for $(ONVIF_FUZZ_SECONDS) s"; \
		cargo +nightly fuzz run $$t corpus/$$t seeds/$$t -- \
			-max_total_time=$(ONVIF_FUZZ_SECONDS) -max_len=16384 -print_final_stats=1 2>&1 \
			| grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|==|SUMMARY|Done|thread|panicked|Base64|Test unit written)' ; \
		test $${PIPESTATUS[0]} -eq 0 || exit 1; \
	done

bench-rtsp:
	$(CARGO) build -j$(CARGO_JOBS) --release -p watchpost-rtsp --bin watchpost-rtsp-testsrc
	$(VENV)/bin/python tests/rtsp/bench_rtsp.py
