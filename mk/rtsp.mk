# RTSP/ONVIF server area (issue 6; docs/rtsp.md, docs/onvif.md).
# - watchpost-onvif, watchpost-dashboard and watchpost-rtsp unit/crate tests run in
#   `make test-unit` with the workspace; the system tests under tests/rtsp in `make test-system`.
# - fuzz-onvif: bounded cargo-fuzz runs of the SOAP request parser and the WS-Discovery parser
#   (scripts/fuzz.sh).
# - bench-rtsp: CPU/RSS with 1/10/50 clients on a restreamed 1080p mount, time to first
#   frame, dashboard encoder CPU (tests/rtsp/bench_rtsp.py).
FUZZ_STEPS += fuzz-onvif
BENCH_STEPS += bench-rtsp

.PHONY: fuzz-onvif bench-rtsp
fuzz-onvif:
	bash scripts/fuzz.sh $@ app/onvif/fuzz 16384 soap_request discovery

bench-rtsp:
	$(CARGO) build -j$(CARGO_JOBS) --release -p watchpost-rtsp --bin watchpost-rtsp-testsrc
	$(VENV)/bin/python tests/rtsp/bench_rtsp.py
