# Camera capture (issue 5; docs/capture.md).
# - Unit and crate tests of watchpost-thermal, watchpost-capture and watchpost-frame-ring run in
#   `make test-unit` with the workspace.
# - test-capture: the recording tests against the crate's RTSP test camera (gst-rtsp-server +
#   x264) checked with ffprobe: segments vs index, SIGKILL mid-recording and repair, a source
#   outage (CAPTURE_GAP_S seconds, 20 by default as the acceptance says; a smaller value only
#   for a quick local run), retention with a small budget and the detection ring, USB when a
#   /dev/video* exists (skipped with a reason otherwise). They need the `test-support` feature, hence a step of their own.
# - tests/capture (pytest, in `make test-system`): the camera API and thermal cameras through
#   the appliance, against `watchpost-sim camera`.
# - bench-capture (`make bench`): CPU and RSS per recorded 1080p30 camera (1 and 4) beside
#   `ffmpeg -c copy -f segment` on the same stream in the same run, the detection branch's CPU
#   and the frame arrival → ring latency (bench/capture.py).
TEST_STEPS += test-capture
BENCH_STEPS += bench-capture

CAPTURE_GAP_S ?= 20

.PHONY: test-capture bench-capture
test-capture:
	WATCHPOST_CAPTURE_GAP_S=$(CAPTURE_GAP_S) $(CARGO) nextest run -j$(CARGO_JOBS) -p watchpost-capture \
		--features test-support --test recording --no-fail-fast --success-output never

bench-capture:
	$(CARGO) build -j$(CARGO_JOBS) --release -p watchpost-capture --features test-support \
		--bin watchpost-capture-standalone
	$(CARGO) build -j$(CARGO_JOBS) --release --bin watchpost-sim
	$(VENV)/bin/python bench/capture.py
