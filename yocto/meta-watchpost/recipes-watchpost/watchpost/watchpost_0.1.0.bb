SUMMARY = "Watchpost edge gateway appliance"
DESCRIPTION = "The Watchpost supervisor and its workers: Modbus/RS485 gateway, \
alarm bridge, camera capture and recording, RTSP/ONVIF server, MQTT bridge."
HOMEPAGE = "https://example.invalid/watchpost"
SECTION = "net"
LICENSE = "Apache-2.0"
# The source tree has no license file of its own yet.
# nooelint: oelint.var.licenseremotefile
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/Apache-2.0;md5=89aea4e17d99a7cacdbeed46a0096b10"

DEPENDS = "gstreamer1.0 gstreamer1.0-plugins-base gstreamer1.0-rtsp-server"

# The source: by default the checkout this layer lives in (yocto/meta-watchpost of
# the source tree; git, at the pinned SRCREV); a release build points
# WATCHPOST_SRC_URI at the public repository.
WATCHPOST_REPO_DIR ??= "${@os.path.abspath(os.path.join(d.getVar('FILE_DIRNAME'), '..', '..', '..', '..'))}"
WATCHPOST_SRC_URI ??= "git://${WATCHPOST_REPO_DIR};protocol=file;branch=main"
SRC_URI = "${WATCHPOST_SRC_URI};name=watchpost"
require watchpost-srcrev.inc
# Every crate from Cargo.lock, pinned by checksum: do_compile needs no network.
require watchpost-crates.inc

S = "${WORKDIR}/git"

inherit cargo systemd useradd

CARGO_BUILD_FLAGS:append = " --frozen --bin watchpost"

SYSTEMD_SERVICE:${PN} = "watchpost.service watchpost-mark-good.service"
SYSTEMD_AUTO_ENABLE = "enable"

USERADD_PACKAGES = "${PN}"
GROUPADD_PARAM:${PN} = "--system gpio; --system watchdog"
USERADD_PARAM:${PN} = "--system --home-dir ${localstatedir}/lib/watchpost --no-create-home \
    --shell /sbin/nologin --user-group --groups dialout,video,gpio,watchdog watchpost"

do_install() {
    install -d ${D}${bindir}
    install -m 0755 ${B}/target/${CARGO_TARGET_SUBDIR}/watchpost ${D}${bindir}/watchpost

    install -d ${D}${systemd_system_unitdir}
    install -m 0644 ${S}/systemd/watchpost.service ${D}${systemd_system_unitdir}/
    install -m 0644 ${S}/systemd/watchpost-mark-good.service ${D}${systemd_system_unitdir}/
    install -d ${D}${libexecdir}/watchpost
    install -m 0755 ${S}/systemd/libexec/wait-healthy ${D}${libexecdir}/watchpost/wait-healthy
    install -d ${D}${nonarch_libdir}/tmpfiles.d
    install -m 0644 ${S}/systemd/tmpfiles.d/watchpost.conf ${D}${nonarch_libdir}/tmpfiles.d/watchpost.conf
    install -d ${D}${nonarch_base_libdir}/udev/rules.d
    install -m 0644 ${S}/systemd/udev/60-watchpost.rules ${D}${nonarch_base_libdir}/udev/rules.d/60-watchpost.rules
    install -d ${D}${nonarch_libdir}/systemd/journald.conf.d
    install -m 0644 ${S}/systemd/journald.conf.d/watchpost-console.conf ${D}${nonarch_libdir}/systemd/journald.conf.d/watchpost-console.conf
    install -d ${D}${sysconfdir}/default
    install -m 0644 ${S}/systemd/default.watchpost ${D}${sysconfdir}/default/watchpost
    # The first-boot configuration, at the path watchpost.service passes to --config. Readable
    # by the service's group only: an installer may add receiver keys or broker passwords.
    install -d ${D}${sysconfdir}/watchpost
    install -m 0640 -g watchpost ${S}/examples/appliance.toml ${D}${sysconfdir}/watchpost/watchpost.toml
}

FILES:${PN} += "${nonarch_libdir}/tmpfiles.d ${nonarch_libdir}/systemd/journald.conf.d ${nonarch_base_libdir}/udev/rules.d ${libexecdir}/watchpost"
CONFFILES:${PN} = "${sysconfdir}/default/watchpost ${sysconfdir}/watchpost/watchpost.toml"

# GStreamer elements the workers build pipelines from: rtspsrc, jpegenc/dec, v4l2src,
# souphttpsrc (good); h264parse, shmsink/shmsrc, openh264 (bad); x264enc (ugly);
# avdec_h264/h265 (libav); rtsp-server for the onboard server.
RDEPENDS:${PN} = "curl gstreamer1.0-libav gstreamer1.0-plugins-bad gstreamer1.0-plugins-base \
    gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly gstreamer1.0-rtsp-server rauc"
