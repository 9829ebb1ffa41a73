"""More of the sensor-to-alarm path against real peers (mosquitto, pysiaalarm, pymodbus): the
cloud token as the MQTT user name, sensor tamper as its own alarm and restore, the test action
of CHEKT and relay receivers, single mappings read and replaced through the API, and the
simulator's scripted sensor events (what `make demo` plays)."""
from __future__ import annotations

import json
import re

import requests

from alarm_support import (  # noqa: F401 - fixtures
    chekt,
    mosquitto,
    relay_slave,
    sia_factory,
    yolink_factory,
)
from alarm_support import alarm_sections, sia_receiver_toml, wait_bridge_connected, yolink_toml
from conftest import wait_for

ADMIN = ("admin", "demo-admin")


def mqtt_users(mosquitto) -> list[str]:
    """User names of the clients mosquitto logged as connected."""
    return re.findall(r"New client connected from \S+ as \S+ \([^)]*u'([^']*)'\)", mosquitto.log_text())


def door_to_sia(appliance_factory, mosquitto, sim, sia, zone: int):
    """A started appliance on the simulated YoLink cloud whose `door1` alarms go to the SIA
    receiver `cms` on `zone`, with the bridge subscribed."""
    extra = (
        yolink_toml(mosquitto, sim)
        + sia_receiver_toml("cms", sia.port)
        + f"\n[[alarms.mappings]]\nsensor = \"door1\"\nroutes = [{{ receiver = \"cms\", zone = {zone} }}]\n"
    )
    app = appliance_factory(alarm_sections(mosquitto, sim), extra).start(timeout=30)
    wait_bridge_connected(app)
    return app


def test_token_logs_in_to_mqtt_and_tamper_alarms_and_restores(appliance_factory, mosquitto, sia_factory,
                                                             yolink_factory):
    sia = sia_factory().start()
    sim = yolink_factory(mosquitto, ["door1:DoorSensor:Front"])
    app = door_to_sia(appliance_factory, mosquitto, sim, sia, zone=3)
    # The bridge logs in to the YoLink broker with the access token as its user name.
    users = wait_for(lambda: [u for u in mqtt_users(mosquitto) if u.startswith("sim-token-")], 10,
                     what="a client logged in with the token")
    assert len(users) == 1, mqtt_users(mosquitto)
    assert sim.stats()["tokens_issued"] >= 1

    # The cover opened: a tamper alarm on the sensor's zone, beside (not instead of) intrusion.
    sim.report("door1", data={"alarmState": {"tamper": True}})
    wait_for(lambda: [e for e in sia.received() if e["code"] == "TA"], 15, what="tamper alarm")
    ev = next(e for e in sia.received() if e["code"] == "TA")
    assert (ev["account"], ev["message"]) == ("AAA", "3"), ev
    assert not [e for e in sia.received() if e["code"] == "BA"]
    sim.report("door1", data={"alarmState": {"tamper": False}})
    wait_for(lambda: [e for e in sia.received() if e["code"] == "TR" and e["message"] == "3"], 15,
             what="tamper restore")
    # The event store has the tamper alarm with its deliveries.
    def raised():
        items = app.get("/api/v1/events", params={"kind": "alarm.raised", "limit": 50}).json()["items"]
        return [e for e in items if "tamper" in json.dumps(e["body"])]
    tamper = wait_for(raised, 10, what="tamper alarm in the event store")
    assert tamper[0]["source"] == "door1", tamper


def test_local_hub_logs_in_with_its_client_id(appliance_factory, mosquitto, yolink_factory):
    sim = yolink_factory(mosquitto, ["m1:MotionSensor:Hall"], mode="local")
    extra = (
        "\n[bridge.yolink]\nsource = \"local\"\n"
        f"hub_url = \"{sim.url}\"\nclient_id = \"ua-test\"\nclient_secret = \"s3cret\"\n"
        f"subnet_id = \"home-test\"\nmqtt = \"127.0.0.1:{mosquitto}\"\n"
    )
    app = appliance_factory(alarm_sections(mosquitto, sim), extra).start(timeout=30)
    wait_bridge_connected(app)
    wait_for(lambda: "ua-test" in mqtt_users(mosquitto), 10, what="local hub login with the client id")


def test_chekt_and_relay_test_actions_and_single_mappings(appliance_factory, mosquitto, sia_factory,
                                                         yolink_factory, chekt, relay_slave):
    sia = sia_factory().start()
    sim = yolink_factory(mosquitto, ["door1:DoorSensor:Front", "door2:DoorSensor:Back"])
    sections = alarm_sections(mosquitto, sim)
    sections["fieldbus"] = {"enabled": True, "neasmart": {"enabled": False}}
    sections["supervisor"]["essential"] = ["broker", "fieldbus", "bridge", "hub"]
    extra = (
        yolink_toml(mosquitto, sim)
        + sia_receiver_toml("cms", sia.port)
        + f"\n[[alarms.receivers]]\ntype = \"chekt\"\nid = \"bridge\"\nurl = \"{chekt.url}\"\ntoken = \"t\"\n"
        + "\n[[fieldbus.relays]]\nname = \"out\"\nunit_id = 1\n"
        + f"tcp = \"127.0.0.1:{relay_slave.port}\"\nchannels = [{{ channel = 1, name = \"siren\" }},"
        + " { channel = 2, name = \"strobe\" }]\n"
        + "\n[[alarms.receivers]]\ntype = \"relay\"\nid = \"relays\"\nmodule = \"out\"\npulse_ms = 300\n"
        + "\n[[alarms.mappings]]\nsensor = \"door1\"\nroutes = [{ receiver = \"cms\", zone = 1 }]\n"
    )
    app = appliance_factory(sections, extra).start(timeout=30)
    wait_bridge_connected(app)

    # Test alarms per receiver kind: a CHEKT request on the asked channel, a relay pulse.
    r = app.post("/api/v1/alarms/receivers/bridge/test", json={"channel": 5})
    assert r.status_code == 202, r.text
    req = wait_for(lambda: chekt.requests and chekt.requests[0], 10, what="CHEKT test request")
    assert req["body"]["target_channel"] == "5", req
    r = app.post("/api/v1/alarms/receivers/relays/test", json={"output": "strobe"})
    assert r.status_code == 202, r.text
    on = relay_slave.wait(lambda ls: [l for l in ls if l.get("coil") == 1 and l["on"]], 10, "test pulse on")
    relay_slave.wait(lambda ls: [l for l in ls if l.get("coil") == 1 and not l["on"] and l["t_ns"] > on[0]["t_ns"]],
                     10, "test pulse off")
    q = {r["receiver"]: r for r in app.get("/api/v1/alarms/queues").json()["items"]}
    assert q["bridge"]["delivered_total"] == 1 and q["relays"]["delivered_total"] == 1, q

    # Single mappings: the file's is read-only, an API one is read and replaced in place.
    m = app.get("/api/v1/alarms/mappings/door1").json()
    assert (m["sensor"], m["source"], m["routes"][0]["zone"]) == ("door1", "file", 1), m
    put = requests.put(app.url("/api/v1/alarms/mappings/door1"), auth=ADMIN, json=m, timeout=5)
    assert put.status_code == 409 and put.json()["error"]["code"] == "READ_ONLY", put.text
    assert app.get("/api/v1/alarms/mappings/door2").status_code == 404
    body = {"sensor": "door2", "routes": [{"receiver": "cms", "zone": 20}]}
    assert app.post("/api/v1/alarms/mappings", json=body).status_code == 201
    sim.report("door2", "open")
    wait_for(lambda: [e for e in sia.received() if e["code"] == "BA" and e["message"] == "20"], 15, what="zone 20")
    body["routes"][0]["zone"] = 21
    put = requests.put(app.url("/api/v1/alarms/mappings/door2"), auth=ADMIN, json=body, timeout=5)
    assert put.status_code == 200 and put.json()["routes"][0]["zone"] == 21, put.text
    got = app.get("/api/v1/alarms/mappings/door2").json()
    assert (got["source"], got["routes"][0]["zone"]) == ("api", 21), got
    mismatch = requests.put(app.url("/api/v1/alarms/mappings/door2"), auth=ADMIN,
                            json={**body, "sensor": "door1"}, timeout=5)
    assert mismatch.status_code == 400, mismatch.text
    sim.report("door2", "closed")
    wait_for(lambda: [e for e in sia.received() if e["code"] == "BH" and e["message"] == "21"], 15,
             what="restore on the replaced zone")


def test_simulator_script_drives_the_path(appliance_factory, mosquitto, sia_factory, yolink_factory, tmp_path):
    sia = sia_factory().start()
    script = tmp_path / "door.jsonl"
    script.write_text(
        json.dumps({"after_ms": 700, "device": "door1", "state": "open"}) + "\n"
        + json.dumps({"after_ms": 700, "device": "door1", "state": "closed"}) + "\n"
    )
    sim = yolink_factory(mosquitto, ["door1:DoorSensor:Front"], script=script, repeat=True)
    app = door_to_sia(appliance_factory, mosquitto, sim, sia, zone=4)
    # The script cycles (--repeat, as in the demo): open, then closed, 0.7 s apart.
    codes = lambda: [e["code"] for e in sia.received() if e["message"] == "4"]  # noqa: E731
    wait_for(lambda: "BA" in codes() and "BH" in codes()[codes().index("BA"):], 20,
             what="scripted door alarm and restore")
    assert sim.stats()["published"] >= 2
