SUMMARY = "Watchpost RAUC update bundle"
DESCRIPTION = "Signed RAUC bundle that installs the Watchpost root filesystem into the \
inactive slot."
HOMEPAGE = "https://example.invalid/watchpost"
LICENSE = "MIT"

# A bundle is assembled from other recipes' output (an image-like recipe, no sources
# of its own).
inherit bundle

RAUC_BUNDLE_COMPATIBLE = "watchpost-${MACHINE}"
RAUC_BUNDLE_VERSION = "${DISTRO_VERSION}"
RAUC_BUNDLE_FORMAT = "verity"
RAUC_BUNDLE_SLOTS = "rootfs"
RAUC_SLOT_rootfs = "watchpost-image"
RAUC_SLOT_rootfs[fstype] = "ext4"

# Signing material: see classes/watchpost_keys.bbclass (product builds refuse dev keys).
RAUC_KEY_FILE = "${WATCHPOST_RAUC_KEY}"
RAUC_CERT_FILE = "${WATCHPOST_RAUC_CERT}"
