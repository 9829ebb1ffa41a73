#!/usr/bin/env bash
# `make image`: the QEMU test image, build/image/watchpost-qemu-arm64.img.
#
# Same layout as the SD-card image of the Yocto layer (GPT with partition labels):
#   1 boot      vfat  kernel + initramfs (U-Boot would read its script from here)
#   2 rootfs-a  ext4  the Debian base + the cross-built watchpost + the units
#   3 rootfs-b  ext4  the same content (both slots are filled when a card is flashed)
#   4 data      ext4  mounted at /var/lib/watchpost, survives updates
# RAUC is configured with a small file-backed "bootloader" (there is no U-Boot under
# -kernel), so watchpost-mark-good.service runs for real. A test-only control socket
# (port 7070, reachable only through QEMU's loopback port forward) lets tests query
# systemd and stop the supervisor; it does not exist in the product image.
#
# Needs: build/image/base.ext4 (scripts/image/base.sh), build/cross/watchpost (make cross).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=$repo/build/image
bin=$repo/build/cross/watchpost
img=$out/watchpost-qemu-arm64.img
root=$out/rootfs
mnt=$out/mnt

[ -f "$out/base.ext4" ] || { echo "image: no base image; run scripts/image/base.sh (make image-base)" >&2; exit 1; }
[ -x "$bin" ] || { echo "image: no aarch64 watchpost binary at $bin; run make cross" >&2; exit 1; }
t0=$(date +%s)
bash "$here/gen-dev-keys.sh" "$repo/build/dev-keys" >/dev/null

cleanup() { mountpoint -q "$mnt" && umount "$mnt" || true; }
trap cleanup EXIT
rm -rf "$root"
mkdir -p "$root" "$mnt"
mount -o loop,ro "$out/base.ext4" "$mnt"
cp -a "$mnt/." "$root/"
umount "$mnt"

# Runtime libraries the appliance links, resolved against the base's own dpkg status
# so only what is missing comes along, and unpacked (no package scripts: libraries only).
mapfile -t runtime < <(grep -Ev '^\s*(#|$)' "$here/runtime-packages.txt")
if [ ${#runtime[@]} -gt 0 ]; then
  arch=arm64
  # shellcheck source=../cross/apt-foreign.sh
  . "$repo/scripts/cross/apt-foreign.sh"
  foreign_apt_update
  mapfile -t need < <(foreign_apt -o "Dir::State::status=$root/var/lib/dpkg/status" install -s -qq "${runtime[@]}" \
    | awk '/^Inst /{print $2}' | sort -u)
  if [ ${#need[@]} -gt 0 ]; then
    ( cd "$apt_work/debs" && foreign_apt download -qq "${need[@]/%/:arm64}" )
    for p in "${need[@]}"; do
      deb=$(compgen -G "$apt_work/debs/${p}_*_arm64.deb" || compgen -G "$apt_work/debs/${p}_*_all.deb" || true)
      # --keep-directory-symlink: the root is merged-/usr (/lib -> usr/lib); a plain
      # `dpkg-deb -x` would replace those links with directories.
      dpkg-deb --fsys-tarfile "${deb%%$'\n'*}" | tar -x --keep-directory-symlink -C "$root"
    done
    echo "image: unpacked ${#need[@]} runtime packages"
    # Refresh the loader cache with the image's own (static) ldconfig under qemu-user;
    # Debian's loader also searches the multiarch directories without it.
    qemu-aarch64-static "$root/sbin/ldconfig" -r "$root" 2>/dev/null || echo "image: ldconfig skipped"
  fi
fi

# The appliance and its units, installed where the Yocto recipe puts them.
install -D -m 0755 "$bin" "$root/usr/bin/watchpost"
install -D -m 0644 "$repo/systemd/watchpost.service" "$root/usr/lib/systemd/system/watchpost.service"
install -D -m 0644 "$repo/systemd/watchpost-mark-good.service" "$root/usr/lib/systemd/system/watchpost-mark-good.service"
install -D -m 0755 "$repo/systemd/libexec/wait-healthy" "$root/usr/libexec/watchpost/wait-healthy"
install -D -m 0644 "$repo/systemd/sysusers.d/watchpost.conf" "$root/usr/lib/sysusers.d/watchpost.conf"
install -D -m 0644 "$repo/systemd/tmpfiles.d/watchpost.conf" "$root/usr/lib/tmpfiles.d/watchpost.conf"
install -D -m 0644 "$repo/systemd/journald.conf.d/watchpost-console.conf" "$root/usr/lib/systemd/journald.conf.d/watchpost-console.conf"
install -D -m 0644 "$repo/systemd/udev/60-watchpost.rules" "$root/usr/lib/udev/rules.d/60-watchpost.rules"
systemd-sysusers --root="$root" "$repo/systemd/sysusers.d/watchpost.conf" >/dev/null
install -d -m 0755 "$root/etc/watchpost"
install -m 0644 "$here/qemu/watchpost.toml" "$root/etc/watchpost/watchpost.toml"
install -m 0644 "$here/qemu/default.watchpost" "$root/etc/default/watchpost"

# RAUC: two slots by partition label, the development keyring, a file-backed bootloader.
install -D -m 0644 "$here/qemu/rauc-system.conf" "$root/etc/rauc/system.conf"
install -D -m 0644 "$repo/build/dev-keys/ca.cert.pem" "$root/etc/rauc/ca.cert.pem"
install -D -m 0755 "$here/qemu/rauc-qemu-bootloader" "$root/usr/libexec/watchpost/rauc-qemu-bootloader"

# System basics: hostname, DHCP on the virtio NIC, the data partition, the test hook.
echo watchpost-qemu > "$root/etc/hostname"
install -D -m 0644 "$here/qemu/20-wired.network" "$root/etc/systemd/network/20-wired.network"
cat > "$root/etc/fstab" <<'EOF'
# The root filesystem is the slot named on the kernel command line (root=, rauc.slot=).
LABEL=data  /var/lib/watchpost  ext4  defaults,noatime,nofail  0  2
EOF
install -D -m 0644 "$here/qemu/watchpost-test-hook.socket" "$root/etc/systemd/system/watchpost-test-hook.socket"
install -D -m 0644 "$here/qemu/watchpost-test-hook@.service" "$root/etc/systemd/system/watchpost-test-hook@.service"
install -D -m 0755 "$here/qemu/test-hook" "$root/usr/libexec/watchpost/test-hook"
systemctl --root="$root" enable systemd-networkd.service watchpost.service watchpost-mark-good.service \
  watchpost-test-hook.socket >/dev/null 2>&1
# No console login is needed; keep the boot quiet and quick.
systemctl --root="$root" mask getty@tty1.service serial-getty@ttyAMA0.service apt-daily.timer \
  apt-daily-upgrade.timer e2scrub_all.timer >/dev/null 2>&1 || true

# The configuration must pass the appliance's own check before it goes into the image.
"$repo/scripts/cross/run-aarch64" "$bin" check-config "$root/etc/watchpost/watchpost.toml"

# Filesystems and the partitioned disk.
part_mib() { echo $(( $1 * 1024 * 1024 )); }
rm -f "$out"/part-*.img
mkfs.ext4 -q -F -L rootfs-a -d "$root" "$out/part-rootfs-a.img" 1536M
mkfs.ext4 -q -F -L rootfs-b -d "$root" "$out/part-rootfs-b.img" 1536M
mkfs.ext4 -q -F -L data "$out/part-data.img" 256M
truncate -s 64M "$out/part-boot.img"
mkfs.vfat -n BOOT "$out/part-boot.img" >/dev/null
mcopy -i "$out/part-boot.img" "$out/vmlinuz" ::/vmlinuz
mcopy -i "$out/part-boot.img" "$out/initrd.gz" ::/initrd.gz

rm -f "$img"
truncate -s $(( 1 + 64 + 1536 + 1536 + 256 + 1 ))M "$img"
sfdisk -q "$img" <<'EOF'
label: gpt
unit: sectors
start=2048, size=131072, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="boot"
size=3145728, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="rootfs-a"
size=3145728, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="rootfs-b"
size=524288, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="data"
EOF
offset=1
for p in boot rootfs-a rootfs-b data; do
  dd if="$out/part-$p.img" of="$img" bs=1M seek=$offset conv=notrunc,sparse status=none
  size=$(( $(stat -c %s "$out/part-$p.img") / 1024 / 1024 ))
  offset=$(( offset + size ))
done
rm -f "$out"/part-*.img
echo "image: $img ($(du -h --apparent-size "$img" | cut -f1) apparent, $(du -h "$img" | cut -f1) on disk) in $(( $(date +%s) - t0 )) s"
sfdisk -l "$img" | tail -5
