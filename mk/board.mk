# Board support, systemd units and cross-compilation (docs/board.md).
# - board crate unit tests run in `make test-unit` with the workspace;
# - tests/systemd (systemd-analyze verify/security, sysusers, tmpfiles) run in `make test-system`;
# - `make cross` / `make cross-test` build for aarch64 with Debian's cross gcc and an
#   unpacked arm64 sysroot and run under qemu-user. `make test` runs cross-test (the
#   release binary, `file`, check-config and the board crate's unit tests under
#   qemu-aarch64; about 6 min cold, docs/board.md has the timings).
CROSS_TARGET := aarch64-unknown-linux-gnu
TEST_STEPS += cross-test
BENCH_STEPS += bench-board

.PHONY: cross-deps cross-sysroot cross cross-test bench-board
cross-deps:
	bash scripts/cross/host-deps.sh cross

cross-sysroot: cross-deps
	bash scripts/cross/sysroot.sh

cross: cross-sysroot
	bash scripts/cross/build.sh

cross-test: cross
	bash scripts/cross/test.sh

# Stripped aarch64 binary size, check-config under qemu-user vs native, and the QEMU
# image's start-to-healthy from the last image test.
bench-board: cross
	bash scripts/cross/bench.sh
