# The device's RAUC configuration and keyring. The keyring is whatever
# WATCHPOST_RAUC_KEYRING names (classes/watchpost_keys.bbclass refuses development
# keys in a product build); system.conf gets the machine's compatible string.
# Active only in the watchpost distribution.
FILESEXTRAPATHS:prepend:watchpost := "${THISDIR}/files:"

SRC_URI:append:watchpost = " file://system.conf"
RAUC_KEYRING_FILE:watchpost = "${WATCHPOST_RAUC_KEYRING}"

# Slot devices: WATCHPOST_SLOT_A_DEVICE / _B_DEVICE from conf/distro/watchpost.conf.
do_install:append:watchpost() {
    sed -i -e 's|@WATCHPOST_COMPATIBLE@|watchpost-${MACHINE}|' \
        -e 's|@WATCHPOST_SLOT_A_DEVICE@|${WATCHPOST_SLOT_A_DEVICE}|' \
        -e 's|@WATCHPOST_SLOT_B_DEVICE@|${WATCHPOST_SLOT_B_DEVICE}|' \
        ${D}${sysconfdir}/rauc/system.conf
}
