"""The sensor-to-alarm path end to end: the YoLink cloud simulator publishes reports through a
real mosquitto broker; the appliance (bridge + hub + fieldbus) delivers alarms to pysiaalarm,
to a CHEKT bridge stand-in over HTTP and to a pymodbus relay module."""
from __future__ import annotations

import time

import pytest

from alarm_support import (  # noqa: F401 - fixtures
    chekt,
    mosquitto,
    relay_slave,
    sia_factory,
    yolink_factory,
)
from alarm_support import alarm_sections, queues, sia_receiver_toml, wait_bridge_connected, yolink_toml
from conftest import wait_for


def relay_toml(port: int, names: tuple[str, ...] = ("siren",)) -> str:
    channels = ", ".join(f"{{ channel = {i + 1}, name = \"{n}\" }}" for i, n in enumerate(names))
    return (
        "\n[[fieldbus.relays]]\nname = \"board\"\nunit_id = 1\n"
        f"tcp = \"127.0.0.1:{port}\"\nchannels = [{channels}]\n"
    )


def fieldbus_sections(mosquitto, sim) -> dict:
    sections = alarm_sections(mosquitto, sim)
    sections["fieldbus"] = {"enabled": True, "neasmart": {"enabled": False}}
    sections["supervisor"]["essential"] = ["broker", "fieldbus", "bridge", "hub"]
    return sections


def test_door_opening_reaches_sia_chekt_and_relay_and_closing_restores(
    appliance_factory, mosquitto, sia_factory, yolink_factory, chekt, relay_slave
):
    sia = sia_factory().start()
    sim = yolink_factory(mosquitto, ["door1:DoorSensor:Front door"])
    sections = fieldbus_sections(mosquitto, sim)
    extra = (
        yolink_toml(mosquitto, sim)
        + relay_toml(relay_slave.port)
        + sia_receiver_toml("cms", sia.port)
        + f"\n[[alarms.receivers]]\ntype = \"chekt\"\nid = \"chekt\"\nurl = \"{chekt.url}\"\ntoken = \"tok\"\n"
        "backoff_initial_ms = 100\nbackoff_max_ms = 1000\n"
        "\n[[alarms.receivers]]\ntype = \"relay\"\nid = \"relays\"\nmodule = \"board\"\npulse_ms = 300\n"
        "\n[[alarms.mappings]]\nsensor = \"door1\"\nroutes = [{ receiver = \"cms\", zone = 15 },"
        " { receiver = \"chekt\", channel = 3 }, { receiver = \"relays\", output = \"siren\", mode = \"pulse\" }]\n"
    )
    app = appliance_factory(sections, extra).start(timeout=30)
    wait_bridge_connected(app)
    # The state poll after connecting reads the door closed: nothing to report yet.
    sim.report("door1", "open")

    ev = sia.wait_events(1)[0]
    # SIA convention: the partition (1 unless configured) in `ri`, the zone after the code.
    assert (ev["account"], ev["code"], ev["ri"], ev["message"]) == ("AAA", "BA", "1", "15")
    assert ev["valid_timestamp"] is True
    wait_for(lambda: chekt.requests, 10, what="CHEKT request")
    req = chekt.requests[0]
    assert req["path"] == "/api/v1/events"
    assert req["body"]["target_channel"] == "3"
    assert "Front door" in req["body"]["event_description"]
    assert req["auth"] == "Basic YXBpa2V5OnRvaw=="  # apikey:tok
    # The relay pulses: coil 0 on, then off after the pulse.
    on = relay_slave.wait(lambda ls: [l for l in ls if l.get("coil") == 0 and l["on"]], 10, "relay on")
    off = relay_slave.wait(lambda ls: [l for l in ls if l.get("coil") == 0 and not l["on"]
                                       and l["t_ns"] > on[0]["t_ns"]], 10, "relay off")
    pulse_ms = (off[0]["t_ns"] - on[0]["t_ns"]) / 1e6
    assert pulse_ms >= 250, pulse_ms

    sim.report("door1", "closed")
    events = sia.wait_events(2)
    assert (events[1]["code"], events[1]["message"]) == ("BH", "15")
    assert int(events[1]["sequence"]) == int(events[0]["sequence"]) + 1
    # CHEKT gets no restore by default; the relay gets no second pulse.
    time.sleep(0.5)
    assert len(chekt.requests) == 1
    assert len([l for l in relay_slave.lines if l.get("coil") == 0 and l["on"]]) == 1

    # Status and history show every delivery.
    wait_for(lambda: {r["receiver"]: r for r in queues(app)["items"]}["cms"]["delivered_total"] == 2, 5,
             what="cms delivered 2")
    q = {r["receiver"]: r for r in queues(app)["items"]}
    assert q["chekt"]["delivered_total"] == 1 and q["relays"]["delivered_total"] == 1
    assert all(r["queued"] == 0 for r in q.values())
    def attempts():
        items = app.get("/api/v1/events", params={"kind": "alarm.attempt", "limit": 50}).json()["items"]
        return {h["source"] for h in items}
    wait_for(lambda: attempts() == {"cms", "chekt", "relays"}, 5, what="attempts in the event log")
    raised = app.get("/api/v1/events", params={"kind": "alarm.raised"}).json()["items"]
    assert raised and raised[0]["source"] == "door1"
    sensor = app.get("/api/v1/sensors/door1").json()
    assert sensor["state"] == "closed" and sensor["name"] == "Front door"
    assert app.get("/api/v1/sensors/door1/history").json()["pagination"]["total"] >= 2


def test_door_prop_by_own_timer_and_by_the_sensor_reminder(appliance_factory, mosquitto, sia_factory, yolink_factory):
    sia = sia_factory().start()
    sim = yolink_factory(mosquitto, ["door1:DoorSensor:Back door", "door2:DoorSensor:Garage"])
    extra = (
        yolink_toml(mosquitto, sim)
        + sia_receiver_toml("cms", sia.port)
        + "\n[[alarms.mappings]]\nsensor = \"door1\"\ndoor_prop_s = 2\nroutes = [{ receiver = \"cms\", zone = 1 }]\n"
        + "\n[[alarms.mappings]]\nsensor = \"door2\"\nroutes = [{ receiver = \"cms\", zone = 2 }]\n"
    )
    app = appliance_factory(alarm_sections(mosquitto, sim), extra).start(timeout=30)
    wait_bridge_connected(app)
    t0 = time.monotonic()
    sim.report("door1", "open")
    sim.report("door2", "open")
    sia.wait_events(2)
    # door1's own timer: a second BA on zone 1 about two seconds later.
    events = sia.wait_events(3, timeout=15)
    assert time.monotonic() - t0 >= 1.9
    prop = events[2]
    assert (prop["code"], prop["message"]) == ("BA", "1")
    # door2 has no timer: only the sensor's "still open" reminder raises it.
    sim.report("door2", "open", reminder=True)
    ev = sia.wait_events(4)[3]
    assert (ev["code"], ev["message"]) == ("BA", "2")
    # Closing restores the door-prop alarm and the intrusion.
    sim.report("door1", "closed")
    events = sia.wait_events(6)
    assert [(e["code"], e["message"]) for e in events[4:6]] == [("BH", "1"), ("BH", "1")]
    # History is written in batches: poll for it.
    def props():
        items = app.get("/api/v1/events", params={"kind": "alarm.raised", "limit": 10}).json()["items"]
        return [e["body"]["event"] for e in items].count("door_prop")
    wait_for(lambda: props() == 2, 5, what="two door-prop alarms in the event log")


def test_low_battery_offline_and_test_alarm(appliance_factory, mosquitto, sia_factory, yolink_factory):
    sia = sia_factory().start()
    sim = yolink_factory(mosquitto, ["leak1:LeakSensor:Basement"])
    sections = alarm_sections(mosquitto, sim)
    sections["bridge"]["offline_after_s"] = 3
    extra = (
        yolink_toml(mosquitto, sim)
        + sia_receiver_toml("cms", sia.port, "supervision_s = 1\n")
        + "\n[[alarms.mappings]]\nsensor = \"leak1\"\nroutes = [{ receiver = \"cms\", zone = 7 }]\n"
    )
    app = appliance_factory(sections, extra).start(timeout=30)
    wait_bridge_connected(app)
    sim.report("leak1", "alert", battery=1)
    codes = lambda: [(e["code"], e["message"]) for e in sia.received() if e["code"] != "RP"]  # noqa: E731
    wait_for(lambda: {("WA", "7"), ("XT", "7")} <= set(codes()), 10, what="water alarm and low battery")
    # Silent for longer than offline_after_s: supervision trouble on the zone.
    wait_for(lambda: ("US", "7") in codes(), 15, what="offline trouble")
    sim.report("leak1", "normal", battery=4)
    wait_for(lambda: {("WH", "7"), ("XR", "7"), ("UR", "7")} <= set(codes()), 10, what="restores")
    # NULL supervision messages while idle.
    wait_for(lambda: any(e["message_type"] == "NULL" for e in sia.received()), 10, what="NULL supervision")
    # A test alarm through the API.
    r = app.post("/api/v1/alarms/receivers/cms/test", json={"zone": 99})
    assert r.status_code == 202, r.text
    # A test asked for by a person is a manual test (RX), not the automatic one (RP, the NULLs).
    wait_for(lambda: any(e["code"] == "RX" and e["message"] == "99" for e in sia.received()), 10, what="test alarm")
    assert app.post("/api/v1/alarms/receivers/nope/test").status_code == 404


def test_chekt_retries_then_falls_back_to_a_relay_pulse_and_a_follow_relay_tracks_the_door(
    appliance_factory, mosquitto, yolink_factory, chekt, relay_slave
):
    chekt.status = 503  # the CHEKT bridge answers, but cannot take events
    sim = yolink_factory(mosquitto, ["door1:DoorSensor:Front door"])
    extra = (
        yolink_toml(mosquitto, sim)
        + relay_toml(relay_slave.port, ("siren", "chekt_in", "light"))
        + f"\n[[alarms.receivers]]\ntype = \"chekt\"\nid = \"chekt\"\nurl = \"{chekt.url}\"\ntoken = \"tok\"\n"
        "backoff_initial_ms = 100\nbackoff_max_ms = 200\nfallback_relay = \"relays\"\nfallback_after_failures = 2\n"
        "\n[[alarms.receivers]]\ntype = \"relay\"\nid = \"relays\"\nmodule = \"board\"\npulse_ms = 300\n"
        "\n[[alarms.mappings]]\nsensor = \"door1\"\nroutes = [{ receiver = \"chekt\", channel = 3, fallback_output = \"chekt_in\" },"
        " { receiver = \"relays\", output = \"light\", mode = \"follow\" }]\n"
    )
    app = appliance_factory(fieldbus_sections(mosquitto, sim), extra).start(timeout=30)
    wait_bridge_connected(app)
    sim.report("door1", "open")

    def on(coil: int, after_ns: int = 0):
        return lambda ls: [l for l in ls if l.get("coil") == coil and l["on"] and l["t_ns"] > after_ns]

    # Follow mode: the light (coil 2) comes on with the alarm.
    relay_slave.wait(on(2), 10, "follow relay on")
    # CHEKT: the first failure is retried over HTTP; from the second on, the alarm also pulses
    # the bridge's input (coil 1), which counts as delivered.
    pulse = relay_slave.wait(on(1), 15, "fallback pulse")[0]
    assert len(chekt.requests) >= 2
    assert pulse["t_ns"] > chekt.requests[1]["t_ns"]
    relay_slave.wait(lambda ls: [l for l in ls if l.get("coil") == 1 and not l["on"] and l["t_ns"] > pulse["t_ns"]],
                     10, "fallback pulse ends")

    def q(rid: str) -> dict:
        return {r["receiver"]: r for r in queues(app)["items"]}[rid]

    wait_for(lambda: q("chekt")["delivered_total"] == 1 and q("chekt")["queued"] == 0, 10,
             what="CHEKT alarm delivered through the fallback")
    assert q("chekt")["failed_rounds_total"] >= 1

    # Closing switches the follow relay off (restores always reach following relays).
    sim.report("door1", "closed")
    relay_slave.wait(lambda ls: [l for l in ls if l.get("coil") == 2 and not l["on"]], 10, "follow relay off")

    # The bridge is back: the next alarm goes over HTTP, and no further pulse.
    chekt.status = 200
    n = len(chekt.requests)
    sim.report("door1", "open")
    wait_for(lambda: q("chekt")["delivered_total"] == 2, 10, what="CHEKT alarm over HTTP")
    assert len(chekt.requests) == n + 1
    time.sleep(0.5)
    assert len(on(1)(relay_slave.lines)) == 1
    assert len(on(2)(relay_slave.lines)) == 2


def test_an_alarm_the_receiver_does_not_understand_is_retried_until_it_does(
    appliance_factory, mosquitto, sia_factory, yolink_factory
):
    # pysiaalarm answers DUH to the first two frames it would acknowledge: a receiver that is
    # restarting or briefly misconfigured. The alarm must not be lost to it.
    sia = sia_factory(duh_first=2).start()
    sim = yolink_factory(mosquitto, ["door1:DoorSensor:Front door"])
    extra = (
        yolink_toml(mosquitto, sim)
        + sia_receiver_toml("cms", sia.port)
        + "\n[[alarms.mappings]]\nsensor = \"door1\"\nroutes = [{ receiver = \"cms\", zone = 5 }]\n"
    )
    app = appliance_factory(alarm_sections(mosquitto, sim), extra).start(timeout=30)
    wait_bridge_connected(app)
    sim.report("door1", "open")

    def cms() -> dict:
        return {r["receiver"]: r for r in queues(app)["items"]}["cms"]

    def events(kind: str) -> list[dict]:
        return app.get("/api/v1/events", params={"kind": kind, "limit": 20}).json()["items"]

    # Retried after each DUH, then delivered: the same alarm, with its sequence number.
    ev = sia.wait_events(1)[0]
    assert (ev["code"], ev["message"]) == ("BA", "5"), ev
    sim.report("door1", "closed")
    sia.wait_events(2)
    assert [e["code"] for e in sia.received()] == ["BA", "BH"]
    wait_for(lambda: cms()["queued"] == 0 and cms()["delivered_total"] == 2, 5, what="queue empty")
    s = cms()
    assert (s["not_understood_total"], s["failed_rounds_total"], s["given_up_total"]) == (2, 2, 0), s
    assert s["last_error"] is None
    tries = wait_for(lambda: (lambda a: a if len(a) == 4 else None)(events("alarm.attempt")), 5,
                     what="four attempts recorded")
    alarm = [e["body"] for e in tries if e["body"]["phase"] == "alarm"]
    assert sorted(b["result"] for b in alarm) == ["ack", "duh", "duh"], tries
    assert len({b["seq"] for b in alarm}) == 1, tries
    assert [e["body"]["result"] for e in tries if e["body"]["phase"] == "restore"] == ["ack"], tries
    # One critical event for the episode, saying what to check; nothing given up.
    duh = wait_for(lambda: events("alarm.not_understood"), 5, what="alarm.not_understood in the event log")
    assert len(duh) == 1 and duh[0]["severity"] == "critical" and duh[0]["source"] == "cms", duh
    body = duh[0]["body"]
    assert body["retried"] is True and body["sensor"] == "door1" and body["result"] == "duh", body
    assert "check account, key and format" in body["message"], body
    assert events("alarm.given_up") == []
