# Yocto layer checks and the QEMU test image (docs/image.md).
# - yocto-check (in `make test`): oelint-adv (pinned, network rule off), kas schema,
#   LAYERSERIES_COMPAT, a BitBake syntax parse, freshness of the crate pins.
# - image / image-test: the Debian-based arm64 QEMU image with the A/B + data layout,
#   booted under qemu-system-aarch64. Long (first build ~15 min, boot test a few
#   minutes), so not part of `make test`.
TEST_STEPS += yocto-check
OELINT := $(VENV)/bin/oelint-adv
YOCTO_LAYER_FILES = $(shell find yocto/meta-watchpost -name '*.bb' -o -name '*.bbappend' -o -name '*.bbclass' -o -name '*.conf' -o -name '*.inc' | grep -v '/files/' | sort)
SRCREV ?= HEAD

.PHONY: yocto-check yocto-crates image image-base image-test
yocto-check:
	$(OELINT) --quiet --relpaths --release scarthgap --hide info \
		--suppress oelint.vars.homepageping $(YOCTO_LAYER_FILES) \
		--constantmods +yocto/oelint-constants.json
	@echo "oelint-adv: no findings"
	$(VENV)/bin/python scripts/image/yocto_check.py

# Regenerates the crate pins (and the source pin) of the Yocto recipe from Cargo.lock.
yocto-crates:
	python3 scripts/image/gen-yocto-crates.py --srcrev $(SRCREV)

image-base:
	bash scripts/cross/host-deps.sh image
	bash scripts/image/base.sh

image: cross image-base
	bash scripts/image/assemble.sh

image-test: image venv
	WATCHPOST_IMAGE_TEST=1 $(PYTEST) -q -p no:cacheprovider tests/image/test_image.py
