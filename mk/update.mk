# Updates (issue 18): the RAUC boundary and bundle checks (app/update), the hub's update API.
# Crate tests run in `make test-unit`; tests/update (the real rauc service on a private D-Bus)
# in `make test-system`.
# - fuzz-update: bounded cargo-fuzz run of what the hub parses from an uploaded bundle
#   (frame, CMS signer, keyring check, version order). FUZZ_SECONDS.
FUZZ_STEPS += fuzz-update

.PHONY: fuzz-update
fuzz-update:
	bash scripts/fuzz.sh $@ app/update/fuzz 16384 bundle
