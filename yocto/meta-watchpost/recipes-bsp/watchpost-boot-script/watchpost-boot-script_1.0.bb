SUMMARY = "U-Boot A/B boot script with boot counting for Watchpost"
DESCRIPTION = "Chooses the RAUC slot to boot from BOOT_ORDER and per-slot attempt \
counters, and falls back to the other slot when one runs out of attempts."
HOMEPAGE = "https://example.invalid/watchpost"
LICENSE = "MIT"
# A script of this layer, under the layer's license.
# nooelint: oelint.var.licenseremotefile
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/MIT;md5=0835ade698e0bcf8506ecda2f7b4f302"

DEPENDS = "u-boot-mkimage-native"

SRC_URI = "file://boot.cmd"

S = "${WORKDIR}"

inherit deploy kernel-arch nopackages

do_compile() {
    mkimage -A ${UBOOT_ARCH} -T script -C none -n "Watchpost A/B boot" -d ${S}/boot.cmd ${B}/boot.scr
}

do_deploy() {
    install -m 0644 ${B}/boot.scr ${DEPLOYDIR}/boot.scr
}

addtask deploy after do_compile before do_build
