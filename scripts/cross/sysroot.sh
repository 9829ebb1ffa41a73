#!/usr/bin/env bash
# Builds an arm64 sysroot from Debian's arm64 packages without touching the host's dpkg
# (no `dpkg --add-architecture`: installing the :arm64 -dev packages next to the native
# GStreamer -dev packages conflicts on bookworm). A private apt state under
# build/cross/apt resolves the packages of sysroot-packages.txt with all their
# dependencies, `apt-get download` fetches them and `dpkg-deb -x` unpacks them.
#
#   scripts/cross/sysroot.sh [SYSROOT]   (default: build/sysroot-arm64)
#
# The result is reused while sysroot-packages.txt is unchanged (stamp file).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
sysroot=${1:-${WATCHPOST_ARM64_SYSROOT:-$repo/build/sysroot-arm64}}
arch=${SYSROOT_ARCH:-arm64}
list=$here/sysroot-packages.txt
want=$( (cat "$list"; echo "$arch") | sha256sum | cut -d' ' -f1)
if [ -f "$sysroot/.watchpost-sysroot" ] && [ "$(cat "$sysroot/.watchpost-sysroot")" = "$want" ]; then
  echo "sysroot: $sysroot is up to date"
  exit 0
fi

# shellcheck source=apt-foreign.sh
. "$here/apt-foreign.sh"
foreign_apt_update
mapfile -t pkgs < <(grep -Ev '^\s*(#|$)' "$list")
# Resolve against an empty dpkg status: every dependency down to libc6 is listed.
mapfile -t all < <(foreign_apt_closure "${pkgs[@]}")
[ ${#all[@]} -gt 0 ] || { echo "sysroot: could not resolve ${pkgs[*]}" >&2; exit 1; }
echo "sysroot: ${#all[@]} packages"
( cd "$apt_work/debs" && foreign_apt download -qq "${all[@]/%/:$arch}" )

rm -rf "$sysroot.tmp"
mkdir -p "$sysroot.tmp"
for p in "${all[@]}"; do
  deb=$(compgen -G "$apt_work/debs/${p}_*_$arch.deb" || compgen -G "$apt_work/debs/${p}_*_all.deb" || true)
  deb=${deb%%$'\n'*}
  [ -n "$deb" ] || { echo "sysroot: no .deb downloaded for $p" >&2; exit 1; }
  dpkg-deb -x "$deb" "$sysroot.tmp"
done
# Absolute symlinks (libfoo.so -> /lib/aarch64-linux-gnu/libfoo.so.1) would point into
# the host; make them relative to the sysroot.
find "$sysroot.tmp" -type l -lname '/*' -print0 | while IFS= read -r -d '' link; do
  target=$(readlink "$link")
  rel=$(realpath -m --relative-to="$(dirname "$link")" "$sysroot.tmp$target")
  ln -sfn "$rel" "$link"
done
rm -rf "$sysroot"
mv "$sysroot.tmp" "$sysroot"
echo "$want" > "$sysroot/.watchpost-sysroot"
echo "sysroot: ready at $sysroot ($(du -sh "$sysroot" | cut -f1))"
