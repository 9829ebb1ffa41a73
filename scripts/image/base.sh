#!/usr/bin/env bash
# Builds (once) the Debian arm64 base of the QEMU test image and caches it under
# build/image/:
#   kernel/       Debian's arm64 kernel (vmlinuz + modules), from the .deb
#   initrd.gz     a busybox initramfs that loads the virtio/ext4 modules and either runs
#                 the debootstrap second stage (`stage2` on the kernel command line) or
#                 switches to the real root
#   base.ext4     the root filesystem after `debootstrap --second-stage`
# The second stage runs inside qemu-system-aarch64 under TCG (no binfmt_misc on these
# machines, so no chroot with qemu-user): about 13 minutes. The result is reused while
# the package list, the kernel and this script are unchanged (build/image/base.key).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=$repo/build/image
suite=bookworm
# Base packages of the image: systemd as init, networking, D-Bus and RAUC for the
# mark-good unit, curl for the health wait. Kept small because every package costs
# minutes in the emulated second stage; the libraries the appliance links (GStreamer...)
# are unpacked by assemble.sh from scripts/image/runtime-packages.txt.
include=(
  systemd-sysv udev dbus kmod iproute2 netbase ca-certificates curl
  rauc rauc-service
)
initrd_modules=(virtio_pci virtio_blk crc32c_generic ext4)

mkdir -p "$out/dl"
arch=arm64
# shellcheck source=../cross/apt-foreign.sh
. "$repo/scripts/cross/apt-foreign.sh"
foreign_apt_update
kpkg=$(foreign_apt_cache depends linux-image-arm64 | awk '/Depends: linux-image-/{print $2; exit}')
kver=${kpkg#linux-image-}
mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}
# Bump when a change below must rebuild the cached base (editing comments must not).
base_format=1
key=$( (printf '%s\n' "$base_format" "$suite" "$kpkg" "${include[@]}" "${initrd_modules[@]}"; cat "$here/initrd-init") | sha256sum | cut -d' ' -f1)
if [ -f "$out/base.ext4" ] && [ "$(cat "$out/base.key" 2>/dev/null)" = "$key" ]; then
  echo "image-base: cached ($out/base.ext4, kernel $kver)"
  exit 0
fi
t0=$(date +%s)

# Kernel and busybox from Debian's arm64 packages.
echo "image-base: kernel $kpkg"
( cd "$out/dl" && foreign_apt download -qq "$kpkg:arm64" busybox-static:arm64 )
rm -rf "$out/kernel" "$out/busybox"
mkdir -p "$out/kernel" "$out/busybox"
dpkg-deb -x "$(compgen -G "$out/dl/${kpkg}_*_arm64.deb" | head -1)" "$out/kernel"
dpkg-deb -x "$(compgen -G "$out/dl/busybox-static_*_arm64.deb" | head -1)" "$out/busybox"
depmod -b "$out/kernel" "$kver"
cp "$out/kernel/boot/vmlinuz-$kver" "$out/vmlinuz"

# Initramfs: busybox, the modules needed to mount an ext4 virtio disk (dependencies
# first, from modules.dep), and /init.
ird=$out/initrd.d
rm -rf "$ird"
mkdir -p "$ird"/{bin,dev,proc,sys,newroot,lib/modules}
cp "$out/busybox/bin/busybox" "$ird/bin/busybox"
python3 - "$out/kernel/lib/modules/$kver" "${initrd_modules[@]}" > "$ird/modules.order" <<'EOF'
import sys, os
base, wanted = sys.argv[1], sys.argv[2:]
deps = {}
for line in open(os.path.join(base, "modules.dep")):
    mod, _, rest = line.partition(":")
    deps[mod] = rest.split()
by_name = {os.path.basename(m).split(".ko")[0]: m for m in deps}
order, seen = [], set()
def visit(m):
    if m in seen:
        return
    seen.add(m)
    for d in reversed(deps[m]):
        visit(d)
    order.append(m)
for name in wanted:
    visit(by_name[name])
print("\n".join(order))
EOF
while read -r m; do
  cp "$out/kernel/lib/modules/$kver/$m" "$ird/lib/modules/"
done < "$ird/modules.order"
sed -i 's#.*/##' "$ird/modules.order"
cp "$here/initrd-init" "$ird/init"
chmod +x "$ird/init"
( cd "$ird" && find . | cpio -o -H newc --quiet | gzip -9 ) > "$out/initrd.gz"

# First stage on the host, then the kernel modules into the new root.
st1=$out/stage1
rm -rf "$st1"
echo "image-base: debootstrap first stage ($suite arm64)"
debootstrap --arch=arm64 --foreign --variant=minbase --include="$(IFS=,; echo "${include[*]}")" \
  "$suite" "$st1" "$mirror" > "$out/debootstrap-stage1.log" 2>&1 \
  || { tail -20 "$out/debootstrap-stage1.log"; exit 1; }
mkdir -p "$st1/usr/lib/modules"
cp -a "$out/kernel/lib/modules/$kver" "$st1/usr/lib/modules/"
rm -f "$out/base.ext4.tmp"
truncate -s 3G "$out/base.ext4.tmp"
mkfs.ext4 -q -F -L watchpost-base -d "$st1" "$out/base.ext4.tmp"

# Second stage inside the emulated machine.
echo "image-base: debootstrap second stage under qemu-system-aarch64 (about 13 min)"
log=$out/debootstrap-stage2.log
timeout 3600 qemu-system-aarch64 -M virt -cpu cortex-a72 -smp 2 -m 1024 -nographic -no-reboot \
  -kernel "$out/vmlinuz" -initrd "$out/initrd.gz" \
  -append "console=ttyAMA0 root=/dev/vda rw stage2 panic=-1" \
  -drive "file=$out/base.ext4.tmp,format=raw,if=none,id=hd0,cache=unsafe" -device virtio-blk-pci,drive=hd0 \
  -nic none -monitor none -serial "file:$log" < /dev/null
if ! grep -q WATCHPOST-STAGE2-OK "$log"; then
  echo "image-base: second stage failed; last lines of $log:" >&2
  tail -30 "$log" >&2
  exit 1
fi
mv "$out/base.ext4.tmp" "$out/base.ext4"
rm -rf "$st1"
echo "$key" > "$out/base.key"
echo "image-base: done in $(( $(date +%s) - t0 )) s"
