#!/usr/bin/env bash
# Installs the Rust tools some make targets use (cargo-fuzz for the bounded fuzz runs).
# Fuzzing needs the nightly toolchain that the machine image carries; without it the fuzz
# steps say so and skip.
set -euo pipefail
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install --locked --quiet cargo-fuzz@0.13.2
fi
