#!/usr/bin/env bash
# Installs the host tools for cross-building Watchpost for arm64 and for building and
# booting the QEMU test image (run as root on Debian 12). Idempotent.
#   cross: Debian's aarch64 cross gcc, qemu-user-static (runs arm64 binaries without
#          binfmt), file (checks the ELF), rustup's aarch64 std.
#   image: debootstrap, qemu-system-arm, the bookworm qemu-utils (a backported one
#          conflicts), e2fsprogs/fdisk/mtools for the partitioned disk image.
set -euo pipefail
what=${1:-cross}
pkgs=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static file binutils-aarch64-linux-gnu bc)
if [ "$what" = image ]; then
  pkgs+=(debootstrap qemu-system-arm qemu-utils e2fsprogs fdisk dosfstools mtools cpio curl kmod openssl)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "host-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=900 update -qq
  apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Installing qemu-system-arm can remove a backported qemu-utils the machine came with (it
# conflicts with bookworm's qemu-system-common), which takes qemu-img away: put bookworm's back.
if [ "$what" = image ] && ! command -v qemu-img >/dev/null 2>&1; then
  echo "host-deps: qemu-img is gone, installing bookworm's qemu-utils"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq \
    --no-install-recommends qemu-utils >/dev/null
fi
if ! rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then
  rustup target add aarch64-unknown-linux-gnu
fi
