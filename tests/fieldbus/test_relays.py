"""Relay outputs: pymodbus plays a Modbus TCP relay module; the fieldbus worker drives its coils
in manual, pulse and follower mode, and opens its circuit breaker when the module goes away."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pymodbus.client import ModbusTcpClient

from conftest import HeldPort, wait_for
from fieldbus_support import fieldbus_sections, metric, pty_pair, socat  # noqa: F401

paho_publish = pytest.importorskip("paho.mqtt.publish", reason="paho-mqtt is not installed (make venv)")

HERE = Path(__file__).resolve().parent


class RelayModule:
    """The pymodbus relay module process (unit 1, coils from address 0). Over TCP it goes away
    and comes back on the same port (an outage), so the port is held (``HeldPort``) for the
    module's life; pymodbus binds it with SO_REUSEADDR."""

    def __init__(self, rtu: Path | None = None):
        self.rtu = rtu
        self.held = HeldPort() if rtu is None else None
        self.port = self.held.port if self.held else 0
        self.proc: subprocess.Popen | None = None

    def start(self) -> "RelayModule":
        extra = ["--rtu", str(self.rtu)] if self.rtu is not None else []
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "relay_module.py"), "127.0.0.1", str(self.port), "1", *extra],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        assert self.proc.stdout.readline().strip() == "READY"
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def close(self) -> None:
        """Stops the module and gives its port up."""
        self.stop()
        if self.held:
            self.held.close()

    def coils(self) -> list[bool]:
        if self.rtu is not None:
            # The worker is the master of the serial line: ask the module process itself.
            self.proc.stdin.write("coils\n")
            self.proc.stdin.flush()
            return json.loads(self.proc.stdout.readline())
        c = ModbusTcpClient("127.0.0.1", port=self.port, timeout=1, retries=0)
        try:
            assert c.connect()
            return c.read_coils(0, count=3, device_id=1).bits[:3]
        finally:
            c.close()


@pytest.fixture
def relay_module():
    m = RelayModule().start()
    yield m
    m.close()


def test_pulse_follower_manual_and_breaker(appliance_factory, relay_module):
    module = {
        "name": "out", "unit_id": 1, "tcp": f"127.0.0.1:{relay_module.port}",
        "timeout_ms": 200, "poll_interval_ms": 200, "breaker_failures": 2, "breaker_open_ms": 500,
        "channels": [
            {"channel": 1, "name": "siren", "mode": "pulse", "pulse_ms": 400},
            {"channel": 2, "name": "light", "mode": "follower", "follow_topic": "test/armed"},
            {"channel": 3, "name": "door", "mode": "manual"},
        ],
    }
    a = appliance_factory(fieldbus_sections(relays=[module])).start()

    def status():
        r = a.get("/api/v1/relays/out")
        return r.json() if r.status_code == 200 else None

    wait_for(lambda: (s := status()) and s["breaker"] == "closed" and all(c["on"] is not None for c in s["channels"]),
             10, what="relay module polled")
    listing = a.get("/api/v1/relays").json()
    assert [m["module"] for m in listing["items"]] == ["out"]

    # Manual channel: on, then off, confirmed after the coil write.
    r = a.post("/api/v1/relays/out/channels/door", json={"on": True})
    assert r.status_code == 200 and r.json()["channel"]["on"] is True, r.text
    assert relay_module.coils()[2] is True
    assert a.post("/api/v1/relays/out/channels/door", json={"on": False}).status_code == 200
    assert relay_module.coils()[2] is False

    # Pulse channel: "on" energises it for pulse_ms, then it is released on its own.
    r = a.post("/api/v1/relays/out/channels/siren", json={"on": True})
    assert r.status_code == 200, r.text
    assert relay_module.coils()[0] is True
    wait_for(lambda: relay_module.coils()[0] is False, 5, what="pulse released")
    # The channel test pulses too.
    assert a.post("/api/v1/relays/out/channels/siren/test").status_code == 200
    wait_for(lambda: relay_module.coils()[0] is False, 5, what="test pulse released")

    # Follower channel copies the bus topic.
    host, port = a.addr("broker.listen")
    paho_publish.single("test/armed", "ON", hostname=host, port=port, qos=1)
    wait_for(lambda: relay_module.coils()[1] is True, 5, what="follower on")
    paho_publish.single("test/armed", '{"state": "off"}', hostname=host, port=port, qos=1)
    wait_for(lambda: relay_module.coils()[1] is False, 5, what="follower off")

    # Errors: unknown channel, bad body.
    assert a.post("/api/v1/relays/out/channels/nope", json={"on": True}).status_code == 404
    assert a.post("/api/v1/relays/out/channels/door", json={"on": "maybe"}).status_code == 400
    assert a.get("/api/v1/relays/missing").status_code == 404

    # The module goes away: the breaker opens and the API says so; commands fail fast.
    relay_module.stop()
    wait_for(lambda: (s := status()) and s["breaker"] in ("open", "half_open") and s["last_error"], 10,
             what="breaker open")
    wait_for(lambda: metric(a, "watchpost_fieldbus_relay_breaker_opens_total", module="out") >= 1, 5,
             what="breaker opens counted")
    r = a.post("/api/v1/relays/out/channels/door", json={"on": True})
    assert r.status_code == 503, r.text
    # It comes back: the probe succeeds and the breaker closes.
    relay_module.start()
    wait_for(lambda: (s := status()) and s["breaker"] == "closed", 10, what="breaker closed again")
    assert a.post("/api/v1/relays/out/channels/door", json={"on": True}).status_code == 200
    assert relay_module.coils()[2] is True
    assert metric(a, "watchpost_fieldbus_relay_failures_total", module="out") >= 2


def test_relay_modules_on_a_serial_line_and_a_dead_neighbour(appliance_factory, pty_pair):
    """Two modules share one RTU line (38400 8N1 over a socat pty pair): unit 1 is a pymodbus relay
    module, unit 2 never answers. The port's arbiter keeps serving unit 1 while unit 2's breaker
    is open."""
    line = pty_pair("relays")
    module = RelayModule(rtu=line.b).start()
    try:
        serial = {"port": str(line.a), "baud": 38400}
        common = {"serial": serial, "timeout_ms": 200, "poll_interval_ms": 200,
                  "breaker_failures": 2, "breaker_open_ms": 2000}
        modules = [
            {"name": "live", "unit_id": 1, **common, "channels": [
                {"channel": 1, "name": "siren", "mode": "pulse", "pulse_ms": 400},
                {"channel": 3, "name": "door", "mode": "manual"},
            ]},
            {"name": "dead", "unit_id": 2, **common, "channels": [
                {"channel": 1, "name": "lamp", "mode": "manual"},
            ]},
        ]
        a = appliance_factory(fieldbus_sections(relays=modules)).start()

        def status(name: str):
            r = a.get(f"/api/v1/relays/{name}")
            return r.json() if r.status_code == 200 else None

        wait_for(lambda: (s := status("dead")) and s["breaker"] in ("open", "half_open"), 10,
                 what="the silent module's breaker open")
        wait_for(lambda: (s := status("live")) and s["breaker"] == "closed"
                 and all(c["on"] is not None for c in s["channels"]), 10, what="the live module polled")
        # Commands to the live module go through while its neighbour is dead.
        for on in (True, False, True):
            r = a.post("/api/v1/relays/live/channels/door", json={"on": on})
            assert r.status_code == 200 and r.json()["channel"]["on"] is on, r.text
            assert module.coils()[2] is on
        r = a.post("/api/v1/relays/live/channels/siren", json={"on": True})
        assert r.status_code == 200, r.text
        assert module.coils()[0] is True
        wait_for(lambda: module.coils()[0] is False, 5, what="pulse released")
        # The dead one refuses at once and says why.
        r = a.post("/api/v1/relays/dead/channels/lamp", json={"on": True})
        assert r.status_code == 503, r.text
        assert status("live")["breaker"] == "closed"
        wait_for(lambda: metric(a, "watchpost_fieldbus_relay_failures_total", module="dead") >= 2, 5,
                 what="the silent module's failures counted")
        # Breaker state gauge: 0 closed, 1 half-open, 2 open.
        assert metric(a, "watchpost_fieldbus_relay_breaker_state", module="live") == 0
        assert metric(a, "watchpost_fieldbus_relay_breaker_state", module="dead") in (1, 2)
    finally:
        module.stop()
