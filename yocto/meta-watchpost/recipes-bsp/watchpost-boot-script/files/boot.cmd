# Watchpost A/B boot with boot counting, for U-Boot.
#
# BOOT_ORDER lists the slots to try, BOOT_A_LEFT / BOOT_B_LEFT how many attempts each
# has left. Every attempt costs one; once the booted system is healthy,
# watchpost-mark-good.service runs `rauc status mark-good booted` and RAUC's U-Boot
# backend refills the counter. A slot whose counter reaches zero is skipped, so an
# update that never becomes healthy falls back to the other slot after three boots.
# The kernel and device tree are loaded from the chosen slot's /boot, so they are
# updated together with the root filesystem.
#
# Board variables (from the board's default environment): devtype, devnum,
# rootdev_prefix (e.g. /dev/mmcblk1p), fdtfile, kernel_addr_r, fdt_addr_r.

test -n "${BOOT_ORDER}" || setenv BOOT_ORDER "A B"
test -n "${BOOT_A_LEFT}" || setenv BOOT_A_LEFT 3
test -n "${BOOT_B_LEFT}" || setenv BOOT_B_LEFT 3

setenv slotpart
for slot in ${BOOT_ORDER}; do
  if test -z "${slotpart}"; then
    if test "${slot}" = "A" && test ${BOOT_A_LEFT} -gt 0; then
      setexpr BOOT_A_LEFT ${BOOT_A_LEFT} - 1
      setenv slotpart 2
      setenv raucslot A
    elif test "${slot}" = "B" && test ${BOOT_B_LEFT} -gt 0; then
      setexpr BOOT_B_LEFT ${BOOT_B_LEFT} - 1
      setenv slotpart 3
      setenv raucslot B
    fi
  fi
done

if test -z "${slotpart}"; then
  # Both slots used up their attempts: give both another round rather than stop a
  # device that may be out of reach.
  echo "watchpost: no slot has attempts left; refilling both counters"
  setenv BOOT_A_LEFT 3
  setenv BOOT_B_LEFT 3
  saveenv
  reset
fi

saveenv
echo "watchpost: booting slot ${raucslot} (A left ${BOOT_A_LEFT}, B left ${BOOT_B_LEFT})"
setenv bootargs "${bootargs} root=${rootdev_prefix}${slotpart} rootfstype=ext4 rootwait ro rauc.slot=${raucslot}"
load ${devtype} ${devnum}:${slotpart} ${kernel_addr_r} /boot/Image
load ${devtype} ${devnum}:${slotpart} ${fdt_addr_r} /boot/${fdtfile}
booti ${kernel_addr_r} - ${fdt_addr_r}
echo "watchpost: loading slot ${raucslot} failed"
reset
