#!/usr/bin/env bash
# Installs what building and testing Watchpost needs on a Debian 12 machine (run as root).
# Idempotent: packages already present are skipped quickly. Used by `make demo` and `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PKGS=(
  # build
  pkg-config build-essential libclang-dev
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstrtspserver-1.0-dev
  # media runtime and test peers
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-tools ffmpeg
  # bus, serial and metrics peers
  mosquitto mosquitto-clients socat prometheus
  # misc test tools
  curl jq procps iproute2
  # the monitor's ping tests drop a share of the echoes in a network namespace (tests/monitor)
  nftables
  # the upstream-broker tests make their test CA and certificates with the openssl command
  openssl
  # over-the-air updates (tests/update): Debian's RAUC service on a private D-Bus with
  # file-backed slots; bundles are squashfs, slot images ext4 (debugfs reads them back)
  rauc rauc-service dbus squashfs-tools e2fsprogs
  # systemd-analyze, systemd-sysusers, systemd-tmpfiles check the shipped units (tests/systemd)
  systemd
  # the setup page in a real browser (tests/browser): Debian's Chromium, driven by
  # playwright-core (npm, tests/browser/package.json) which downloads no browser; its fonts
  # are only a recommendation, skipped here, and screenshots need some
  chromium fonts-liberation fonts-dejavu-core
)
# Node.js for playwright-core: Debian's (18; playwright-core 1.61 is the last release that runs
# on it) unless a node with npm is already there (NodeSource's nodejs carries its own npm and
# conflicts with Debian's npm package).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  APT_PKGS+=(nodejs npm)
fi

missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=900 update -qq
  apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Debian prometheus package starts nothing here (no systemd as PID 1); we only need promtool.
command -v promtool >/dev/null || { echo "install-deps: promtool missing after install" >&2; exit 1; }
