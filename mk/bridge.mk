# Bridge upstream brokers (issue 17; docs/bridge.md).
# - The upstream module's unit tests run in `make test-unit`; tests/bridge/test_upstream.py
#   (mosquitto with TLS and a password as the upstream, an outage with a kill -9) in
#   `make test-system`.
# - bench-bridge: throughput out to an upstream mosquitto at QoS 0 and 1 against a paho client
#   publishing straight to it in the same run, and the catch-up after a 60 s outage with 10,000
#   QoS 1 messages queued (tests/bridge/bench_upstream.py, release binaries from `make bench`).
BENCH_STEPS += bench-bridge

BRIDGE_BENCH_ARGS ?= --messages 20000 --queued 10000 --outage-s 60

.PHONY: bench-bridge
bench-bridge:
	WATCHPOST_BIN=$(CURDIR)/target/release/watchpost \
		$(VENV)/bin/python tests/bridge/bench_upstream.py $(BRIDGE_BENCH_ARGS)

# bench-homeassistant: Home Assistant discovery republish time for about 200 entities (48 zones,
# 36 sensors, the Neasmart system, the workers) to Home Assistant's broker (mosquitto) through an
# upstream, against a paho client publishing the same configs (tests/bridge/bench_homeassistant.py).
BENCH_STEPS += bench-homeassistant

.PHONY: bench-homeassistant
bench-homeassistant:
	WATCHPOST_BIN=$(CURDIR)/target/release/watchpost WATCHPOST_SIM_BIN=$(CURDIR)/target/release/watchpost-sim \
		$(VENV)/bin/python tests/bridge/bench_homeassistant.py
