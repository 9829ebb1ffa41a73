# Mount the data partition where the watchpost service keeps its state (only in the
# watchpost distribution: the append does nothing elsewhere).
FILESEXTRAPATHS:prepend:watchpost := "${THISDIR}/files:"
SRC_URI:append:watchpost = " file://fstab-watchpost"

do_install:append:watchpost() {
    cat ${WORKDIR}/fstab-watchpost >> ${D}${sysconfdir}/fstab
    install -d ${D}${localstatedir}/lib/watchpost
}
