"""Upstream MQTT brokers (issue 17, items 4-6): a real mosquitto as the upstream broker, the
appliance's bridge worker with upstreams and no YoLink source.

- TLS with a test CA and a client certificate, a password: an outage of the broker while 1,000
  QoS 1 messages are produced, with a kill -9 of the bridge worker in the middle of it; every
  message arrives, in order, none twice (the queue in the bridge's store).
- MQTT 5: the monitoring feed (one message per change, the full state), an `in` mapping, a
  `both` mapping that does not echo, and the metrics.
"""
from __future__ import annotations

import json
import os
import signal

from conftest import wait_for
from upstream_support import (
    Certs,
    Collector,
    Mosquitto,
    local_client,
    metric,
    publish_all,
    wait_collected,
    wait_metric,
)

OUT_TOPIC = "site/up/test/seq"
PROBE_TOPIC = "site/up/test/probe"


def bridge_sections() -> dict:
    # The bridge with upstreams and no YoLink source (`[bridge.yolink]` absent).
    return {"bridge": {"enabled": True}, "supervisor": {"essential": ["broker", "hub"]}}


def probe_until_queued(app, producer, queued_before: int) -> int:
    """Publishes probes until the bridge's queue grows, so its bus subscription is live (the
    bus client subscribes without waiting for the broker's SUBACK). Returns the queue length."""
    def grew():
        producer.publish("watchpost/test/probe", "probe", qos=1).wait_for_publish(5)
        try:
            return int(wait_for(lambda: (q := metric(app, "watchpost_bridge_upstream_queue_length", "mon"))
                                and q > queued_before and q, 3, interval=0.1, what="a queued probe"))
        except TimeoutError:
            return None
    return wait_for(grew, 30, interval=0, what="the bridge's bus subscription")


def test_outage_with_tls_password_and_kill9_loses_nothing_and_repeats_nothing(appliance_factory, tmp_path):
    certs = Certs(tmp_path / "certs")
    broker = Mosquitto(tmp_path / "mosquitto", certs=certs)
    mapping = ('[[bridge.upstream.mapping]]\npattern = "test/#"\ndirection = "out"\nqos = 1\n'
               'local_prefix = "watchpost/"\nremote_prefix = "site/up/"\n')
    app = appliance_factory(bridge_sections(), broker.upstream_toml("mon") + mapping)
    sub = None
    producer = None
    try:
        # The monitoring side: a persistent session (mosquitto keeps it, and queues for it,
        # across its restart).
        sub = Collector(broker.client("test-sub", clean=False), "127.0.0.1", broker.port, ["site/up/test/#"])
        app.start(timeout=30)
        wait_metric(app, "watchpost_bridge_upstream_connected", "mon", 1)
        producer = local_client(app, "test-producer")

        # Connected: direct delivery.
        def probe_arrived():
            producer.publish("watchpost/test/probe", "probe", qos=1).wait_for_publish(5)
            try:
                return wait_for(lambda: sub.on(PROBE_TOPIC), 3, what="a probe upstream")
            except TimeoutError:
                return None
        wait_for(probe_arrived, 30, interval=0, what="a probe through the bridge")
        publish_all(producer, "watchpost/test/seq", [str(i) for i in range(100)])
        wait_collected(sub, OUT_TOPIC, 100, 30)
        # Every message acknowledged before the broker goes away (so none is in flight).
        probes = len(sub.on(PROBE_TOPIC))
        wait_metric(app, "watchpost_bridge_upstream_messages_out_total", "mon", 100 + probes)

        # The outage: 500 messages, kill -9 of the bridge, 500 more.
        broker.stop()
        wait_metric(app, "watchpost_bridge_upstream_connected", "mon", 0)
        publish_all(producer, "watchpost/test/seq", [str(i) for i in range(100, 600)])
        wait_metric(app, "watchpost_bridge_upstream_queue_length", "mon", 500)
        old = app.worker("bridge")["pid"]
        os.kill(old, signal.SIGKILL)
        app.wait_restarted("bridge", old, timeout=30)
        # The new process finds the 500 in the store.
        wait_metric(app, "watchpost_bridge_upstream_queue_length", "mon", 500)
        queued = probe_until_queued(app, producer, 500)
        publish_all(producer, "watchpost/test/seq", [str(i) for i in range(600, 1100)])
        wait_metric(app, "watchpost_bridge_upstream_queue_length", "mon", queued + 500)

        broker.start()
        wait_collected(sub, OUT_TOPIC, 1100, 60)
        wait_metric(app, "watchpost_bridge_upstream_queue_length", "mon", 0)
        wait_metric(app, "watchpost_bridge_upstream_connected", "mon", 1)
        # All in order, none twice (a late duplicate would have come before the queue emptied:
        # the link sends in order and the queue is empty only once everything was acknowledged).
        got = [int(p) for p in sub.on(OUT_TOPIC)]
        assert got == list(range(1100)), f"{len(got)} messages; first out of order at " + str(
            next((i for i, (a, b) in enumerate(zip(got, range(1100))) if a != b), None))
        # The restarted worker tried while the broker was down (its counters start anew).
        assert metric(app, "watchpost_bridge_upstream_connect_errors_total", "mon") >= 1
        assert metric(app, "watchpost_bridge_upstream_dropped_total", "mon", ',reason="queue_full"') == 0
    finally:
        if sub is not None:
            sub.close()
        if producer is not None:
            producer.loop_stop()
        app.stop()
        broker.close()


def sensor_view(state: str, alarm: bool, last_seen: int) -> str:
    return json.dumps({
        "id": "door1", "name": "Front door", "type": "DoorSensor", "kind": "door", "model": "YS7704",
        "state": state, "conditions": ["intrusion"] if alarm else [], "battery": 4, "signal_dbm": -60,
        "temperature_c": None, "humidity_pct": None, "last_seen_ms": last_seen,
        "state_changed_ms": 1_700_000_000_000, "online": True, "reminder": False,
        "alarm": alarm, "changed_at": 1_700_000_000_000,
    })


def test_mqtt5_feed_in_and_both_mappings_without_echo(appliance_factory, tmp_path):
    import paho.mqtt.client as mqtt

    broker = Mosquitto(tmp_path / "mosquitto", certs=None, password=True)
    extra = broker.upstream_toml("mon", 'mqtt_version = "5"') + (
        '[[bridge.upstream.mapping]]\npattern = "cmd/#"\ndirection = "in"\n'
        'local_prefix = "watchpost/remote/"\nremote_prefix = "site/"\n'
        '[[bridge.upstream.mapping]]\npattern = "both/#"\ndirection = "both"\n'
        'local_prefix = "watchpost/"\nremote_prefix = "site/"\n'
        '[bridge.upstream.feed]\ntopic = "site/feed"\nfull_interval_s = 1\n'
    )
    app = appliance_factory(bridge_sections(), extra)
    up = None
    local = None
    try:
        up = Collector(broker.client("test-up", version=mqtt.MQTTv5), "127.0.0.1", broker.port,
                       ["site/feed/#", "site/both/#"])
        app.start(timeout=30)
        wait_metric(app, "watchpost_bridge_upstream_connected", "mon", 1)
        host, port = app.addr("broker.listen")
        local = Collector(local_client(app, "test-local"), host, port, ["watchpost/remote/#", "watchpost/both/#"])

        # The feed: the sensor's retained state on the bus becomes a device message...
        local.client.publish("watchpost/sensors/door1/state", sensor_view("closed", False, 1), qos=1, retain=True)
        first = json.loads(wait_collected(up, "site/feed/devices/door1", 1, 20)[0])
        assert first["type"] == "device" and first["schema"] == "watchpost.feed.v1"
        assert first["source"] == "watchpost-mon"
        assert first["device"]["id"] == "door1" and first["device"]["state"] == "closed"
        assert first["device"]["alarm"] is False and first["device"]["battery"] == 4
        # ... a republished state that only refreshes last_seen is not a change; a new state is.
        local.client.publish("watchpost/sensors/door1/state", sensor_view("closed", False, 2), qos=1, retain=True)
        local.client.publish("watchpost/sensors/door1/state", sensor_view("open", True, 3), qos=1, retain=True)
        msgs = wait_collected(up, "site/feed/devices/door1", 2, 20)
        assert len(msgs) == 2
        second = json.loads(msgs[1])
        assert second["device"]["state"] == "open" and second["device"]["conditions"] == ["intrusion"]
        # The full state, periodically.
        full = wait_for(lambda: next((json.loads(p) for p in reversed(up.on("site/feed/full"))
                                      if json.loads(p)["devices"]), None), 20, what="full state with the door")
        assert full["type"] == "full" and [d["id"] for d in full["devices"]] == ["door1"]
        assert full["devices"][0]["state"] == "open"

        # In: upstream → bus under the local prefix.
        up.client.publish("site/cmd/relay/1", "ON", qos=1)
        assert wait_collected(local, "watchpost/remote/cmd/relay/1", 1, 20) == [b"ON"]
        # Both: each way once, no echo (the link keeps order: had "a" come back, it would be
        # upstream before "b").
        up.client.publish("site/both/a", "from-upstream", qos=1)
        assert wait_collected(local, "watchpost/both/a", 1, 20) == [b"from-upstream"]
        local.client.publish("watchpost/both/b", "from-bus", qos=1)
        assert wait_collected(up, "site/both/b", 1, 20) == [b"from-bus"]
        assert up.on("site/both/a") == [b"from-upstream"]
        assert local.on("watchpost/both/b") == [b"from-bus"]
        # Metrics reach /metrics about once a second.
        wait_metric(app, "watchpost_bridge_upstream_messages_in_total", "mon", 2)
        wait_for(lambda: metric(app, "watchpost_bridge_upstream_messages_out_total", "mon") >= 4, 10,
                 what="messages out counted")
        assert metric(app, "watchpost_bridge_upstream_feed_errors_total", "mon") == 0
    finally:
        for c in (up, local):
            if c is not None:
                c.close()
        app.stop()
        broker.close()


def test_a_tls_file_that_cannot_be_read_is_a_configuration_error(appliance_factory, tmp_path):
    extra = ('\n[[bridge.upstream]]\nname = "mon"\nbroker = "127.0.0.1:1"\n'
             f'[bridge.upstream.tls]\nca_file = "{tmp_path / "missing.pem"}"\n'
             '[[bridge.upstream.mapping]]\npattern = "#"\ndirection = "out"\n')
    # A worker that failed on its configuration leaves the appliance degraded, not healthy.
    app = appliance_factory(bridge_sections(), extra).start(wait_healthy=False)
    w = wait_for(lambda: (w := app.worker("bridge")) and w["state"] == "failed" and w, 30, what="bridge failed")
    assert "missing.pem" in (w["last_error"] or ""), w
    assert w["restarts"] == 0  # a configuration error is not restarted in a loop
