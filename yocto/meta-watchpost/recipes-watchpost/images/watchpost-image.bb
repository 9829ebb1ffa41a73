SUMMARY = "Watchpost gateway SD-card image"
DESCRIPTION = "Boot partition, two root filesystem slots (A/B) for RAUC updates and a \
data partition kept across updates, running the Watchpost appliance under systemd."
LICENSE = "MIT"

inherit core-image

# TensorFlow Lite and the NPU delegate come from the board's BSP layer where it has
# one (WATCHPOST_ML_PACKAGES is set per machine in conf/distro/watchpost.conf).
WATCHPOST_ML_PACKAGES ??= ""

IMAGE_INSTALL:append = " \
    watchpost \
    rauc \
    gstreamer1.0 \
    gstreamer1.0-plugins-base \
    gstreamer1.0-plugins-good \
    gstreamer1.0-plugins-bad \
    gstreamer1.0-plugins-ugly \
    gstreamer1.0-libav \
    gstreamer1.0-rtsp-server \
    curl \
    ${WATCHPOST_ML_PACKAGES} \
"

IMAGE_FSTYPES = "wic.bz2 wic.bmap ext4"
WKS_FILE = "watchpost-ab.wks.in"
# The boot script goes onto the boot partition (IMAGE_BOOT_FILES in the distro config).
do_image_wic[depends] += "watchpost-boot-script:do_deploy"
# Room for the root filesystem to grow within its fixed 1.5 GiB slot.
IMAGE_ROOTFS_EXTRA_SPACE = "65536"
