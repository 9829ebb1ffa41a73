"""The SIA DC-09 path as central stations see it, against pysiaalarm: the SIA layout (partition in
``ri``, zone after the code), a manual test as RX / Contact ID 601, the time of occurrence
``[H…]`` of an alarm held back by an outage, a receiver that cannot decrypt our frames (its NAK,
``"NAK"0000L0R0A0[]…``, read and shown as a key problem), a clock correction learnt from one of
two receivers staying with it, the receivers on the bus (retained status, the test command, the
status of a receiver not configured cleared), the NULL link-test interval, and delivery totals
that survive a hub restart.

One appliance for the module, driven through the API's test alarms (no YoLink peers needed):
pysiaalarm ``good`` (real clock) holds the accounts of several receivers, ``skewed`` runs five
minutes ahead, ``late`` is down until a test starts it.
"""
from __future__ import annotations

import datetime
import json
import os
import signal
import threading
import time
from types import SimpleNamespace

import pytest

from alarm_support import SiaReceiver, queues
from conftest import Appliance, base_sections, wait_for

KEY = "0123456789ABCDEF"  # ours
OTHER_KEY = "FEDCBA9876543210"  # the receiver's, for the `wrongkey` receiver
SKEW_S = 300
NULL_S = 2


def receiver_toml(rid: str, port: int, account: str, extra: str = "") -> str:
    return (
        f"\n[[alarms.receivers]]\ntype = \"sia\"\nid = \"{rid}\"\nhost = \"127.0.0.1:{port}\"\n"
        f"account = \"{account}\"\npartition = 2\nack_timeout_ms = 3000\nattempts = 1\n"
        f"backoff_initial_ms = 100\nbackoff_max_ms = 1000\n{extra}"
    )


@pytest.fixture(scope="module")
def peers(tmp_path_factory):
    good = SiaReceiver(accounts=("AAA", "BBB", f"CCC:{OTHER_KEY}", "DDD")).start()
    skewed = SiaReceiver(accounts=("AAA",), clock_offset_s=SKEW_S).start()
    late = SiaReceiver(accounts=("EEE",))  # port held, nothing listening: down
    workdir = tmp_path_factory.mktemp("sia")
    sections = base_sections(workdir / "data")
    sections["alarms"] = {"enabled": True}
    extra = (
        receiver_toml("cms", good.port, "AAA")
        + receiver_toml("cid", good.port, "BBB", "format = \"adm_cid\"\n")
        + receiver_toml("wrongkey", good.port, "CCC", f"key = \"{KEY}\"\nkey_format = \"ascii\"\n")
        + receiver_toml("idle", good.port, "DDD", f"supervision_s = {NULL_S}\n")
        + receiver_toml("skewed", skewed.port, "AAA")
        + receiver_toml("late", late.port, "EEE")
    )
    app = Appliance(workdir, sections, "\n" + extra).start(timeout=30)
    yield SimpleNamespace(app=app, good=good, skewed=skewed, late=late)
    app.stop()
    for r in (good, skewed, late):
        r.close()


def status(app, rid: str) -> dict:
    return {r["receiver"]: r for r in queues(app)["items"]}[rid]


def ask_test_alarm(app, rid: str, zone: int) -> None:
    r = app.post(f"/api/v1/alarms/receivers/{rid}/test", json={"zone": zone})
    assert r.status_code == 202, r.text


def events_of(sia: SiaReceiver, account: str, code: str | None = None) -> list[dict]:
    return [e for e in sia.received() if e["account"] == account and (code is None or e["code"] == code)]


def wire_time(text: str) -> float:
    """Seconds since the epoch of DC-09's ``hh:mm:ss,MM-DD-YYYY`` (UTC)."""
    t = datetime.datetime.strptime(text.lstrip("_"), "%H:%M:%S,%m-%d-%Y")
    return t.replace(tzinfo=datetime.timezone.utc).timestamp()


def occurrence(event: dict) -> float:
    """The time of occurrence ``[H…]`` of an event pysiaalarm reported."""
    blocks = (event["x_data"] or "").split("][")
    h = next((b for b in blocks if b.startswith("H")), None)
    assert h is not None, event
    return wire_time(h[1:])


def attempts(app, rid: str, limit: int = 200) -> list[dict]:
    items = app.get("/api/v1/events", params={"kind": "alarm.attempt", "limit": limit}).json()["items"]
    return [e for e in items if e["source"] == rid]


def test_a_manual_test_is_rx_601_with_the_partition_as_area_and_the_zone_after_the_code(peers):
    app, good = peers.app, peers.good
    t0 = time.time()
    ask_test_alarm(app, "cms", 5)
    ask_test_alarm(app, "cid", 6)
    wait_for(lambda: events_of(good, "AAA", "RX") and events_of(good, "BBB"), 15, what="both test alarms")
    sia = events_of(good, "AAA", "RX")[0]
    # SIA-DCS `Nri2/RX5`: the partition in `ri`, the zone after the code; its time of occurrence.
    assert (sia["ri"], sia["message"]) == ("2", "5"), sia
    assert t0 - 2 <= occurrence(sia) <= time.time() + 1, sia
    cid = events_of(good, "BBB")[0]
    # Contact ID `1601 02 006`: manual test (601, not the automatic 602), partition 2, zone 6.
    assert (cid["event_qualifier"], cid["event_type"], cid["partition"], cid["ri"]) == ("1", "601", "02", "006"), cid
    assert cid["code"] == "RX", cid
    assert t0 - 2 <= occurrence(cid) <= time.time() + 1, cid


def test_an_alarm_held_back_by_an_outage_says_when_it_happened(peers):
    app, late = peers.app, peers.late
    t0 = time.time()
    ask_test_alarm(app, "late", 1)
    wait_for(lambda: status(app, "late")["failed_rounds_total"] >= 2, 15, what="the receiver refusing connections")
    # The receiver stays away for a few seconds more, then comes back.
    wait_for(lambda: time.time() - t0 >= 3, 10, interval=0.1, what="three seconds of outage")
    late.start()
    ev = late.wait_events(1)[0]
    happened = occurrence(ev)
    sent = datetime.datetime.fromisoformat(ev["timestamp"]).timestamp()
    assert t0 - 2 <= happened <= t0 + 2, (t0, ev)
    assert sent - happened >= 2, ev


def test_a_receiver_with_another_key_is_shown_as_refusing_our_frames(peers):
    app = peers.app
    ask_test_alarm(app, "wrongkey", 3)

    def refused():
        # pysiaalarm reads about one frame in 150 with another key as a valid one and answers
        # DUH: a failed round too, shown as such until the next NAK.
        return "check the key" in (status(app, "wrongkey")["last_error"] or "")

    wait_for(refused, 20, interval=0.2, what="the key problem in the receiver's status")
    assert status(app, "wrongkey")["state"] == "retrying"

    def refusal_event():
        items = app.get("/api/v1/events", params={"kind": "alarm.refused"}).json()["items"]
        return [e for e in items if e["source"] == "wrongkey"]

    ev = wait_for(refusal_event, 5, what="alarm.refused in the event log")[0]
    assert ev["severity"] == "critical" and "check the key" in ev["body"]["message"], ev
    tries = wait_for(lambda: [a for a in attempts(app, "wrongkey") if a["body"]["result"] == "nak_key"], 5,
                     what="attempts recorded as nak_key")
    assert "check the key" in tries[0]["body"]["detail"]
    # Its NAK's clock agrees with ours: no clock correction was made from it.
    assert status(app, "wrongkey")["clock_offset_s"] == 0
    # Only one event however long it goes on.
    assert len(refusal_event()) == 1


def test_a_clock_correction_belongs_to_the_receiver_that_sent_it(peers):
    app, good, skewed = peers.app, peers.good, peers.skewed
    ask_test_alarm(app, "skewed", 7)
    ev = skewed.wait_events(1)[0]
    assert ev["valid_timestamp"] is True
    offset = status(app, "skewed")["clock_offset_s"]
    assert SKEW_S - 5 <= offset <= SKEW_S + 5, offset
    # The other receiver keeps our own clock: accepted at once, never NAKed for its time.
    before = len(events_of(good, "AAA"))
    ask_test_alarm(app, "cms", 8)
    wait_for(lambda: len(events_of(good, "AAA")) > before, 15, what="cms test alarm")
    ev = events_of(good, "AAA")[-1]
    assert ev["valid_timestamp"] is True and ev["message"] == "8"
    stamped = datetime.datetime.fromisoformat(ev["timestamp"]).timestamp()
    assert abs(stamped - time.time()) < 30, ev
    assert status(app, "cms")["clock_offset_s"] == 0
    results = {a["body"]["result"] for a in attempts(app, "cms")}
    assert results == {"ack"}, results


class BusClient:
    """A paho client of the appliance's broker: the latest message per topic, and requests."""

    def __init__(self, app: Appliance, *filters: str):
        import paho.mqtt.client as mqtt

        self.latest: dict[str, bytes] = {}
        self.lock = threading.Lock()
        subscribed = threading.Event()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)

        def on_message(_c, _u, msg):
            with self.lock:
                self.latest[msg.topic] = msg.payload

        def on_connect(client, *_):
            client.subscribe([(f, 1) for f in (*filters, "watchpost/reply/pytest-alarms/#")])

        self.c.on_message = on_message
        self.c.on_connect = on_connect
        self.c.on_subscribe = lambda *_: subscribed.set()
        self.c.connect(*app.addr("broker.listen"))
        self.c.loop_start()
        assert subscribed.wait(10), "no subscription on the appliance's broker"
        self.sent = 0

    def json(self, topic: str) -> dict | None:
        with self.lock:
            raw = self.latest.get(topic)
        return json.loads(raw) if raw else None

    def payload(self, topic: str) -> bytes | None:
        with self.lock:
            return self.latest.get(topic)

    def ask(self, topic: str, body: dict) -> dict:
        self.sent += 1
        reply_to = f"watchpost/reply/pytest-alarms/{self.sent}"
        self.c.publish(topic, json.dumps({**body, "request_id": str(self.sent), "reply_to": reply_to}), qos=1)
        return wait_for(lambda: self.json(reply_to), 15, interval=0.05, what=f"the answer on {topic}")

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def test_receivers_on_the_bus_status_and_test_command(peers):
    """For Home Assistant: each receiver's retained status and its test command (docs/bus.md)."""
    pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed (make venv)")
    app, good = peers.app, peers.good
    ghost = "watchpost/alarms/receiver/ghost/status"
    bus = BusClient(app, "watchpost/alarms/receiver/+/status")
    try:
        # A receiver that is not configured (as one removed from the file before a start)
        # left a retained status behind.
        bus.c.publish(ghost, json.dumps({"id": "ghost"}), qos=1, retain=True).wait_for_publish(10)
        topic = "watchpost/alarms/receiver/cms/status"
        before = wait_for(lambda: bus.json(topic), 10, what="the retained status of cms")
        assert (before["id"], before["type"], before["state"]) == ("cms", "sia", "idle"), before
        assert before["capacity"] > 0 and before["oldest_queued_unix_ms"] is None, before
        # Earlier tests delivered to cms: its last round was acknowledged.
        assert before["link_up"] is True and before["last_error"] is None and before["queued"] == 0, before
        assert before["delivered_total"] >= 1 and before["clock_offset_s"] == 0, before
        assert "name" not in before, before
        # The ghost's retained status is cleared with an empty retained payload.
        wait_for(lambda: bus.payload(ghost) == b"", 10, what="the ghost's status cleared")
        late = wait_for(lambda: bus.json("watchpost/alarms/receiver/late/status"), 10, what="status of late")
        assert late["type"] == "sia" and late["failed_total"] >= 2, late

        # The test command: queued, answered, delivered as RX with the zone asked for.
        n = len(events_of(good, "AAA", "RX"))
        answer = bus.ask("watchpost/alarms/receiver/cms/test", {"zone": 9})
        assert answer["ok"] is True and answer["receiver"] == "cms", answer
        assert set(answer) == {"ok", "alarm_id", "receiver", "queue_seq"}, answer
        rx = wait_for(lambda: events_of(good, "AAA", "RX")[n:], 15, what="RX from the bus command")[0]
        assert (rx["ri"], rx["message"]) == ("2", "9"), rx
        # The status follows: one more delivered, published on the change.
        after = wait_for(lambda: (lambda s: s if s and s["delivered_total"] > before["delivered_total"] else None)(
            bus.json(topic)), 10, what="the status after the test")
        assert after["link_up"] is True and after["updated_unix_ms"] > before["updated_unix_ms"], after

        def refused(body: dict, rid: str = "cms") -> str:
            a = bus.ask(f"watchpost/alarms/receiver/{rid}/test", body)
            assert a["ok"] is False and set(a["error"]) == {"code", "message", "details"}, a
            return a["error"]["code"]

        assert refused({}, "nope") == "RECEIVER_NOT_FOUND"
        assert refused({"zone": "nine"}) == "INVALID_BODY"
        assert refused({"siren": True}) == "INVALID_BODY"
    finally:
        bus.close()
    # The ghost stays gone for a new subscriber: nothing retained comes for it before the
    # retained status of cms, asked for after it in the same subscription.
    fresh = BusClient(app, ghost, topic)
    try:
        wait_for(lambda: fresh.json(topic), 10, what="the retained status of cms")
        assert fresh.payload(ghost) is None
    finally:
        fresh.close()


def test_null_link_tests_come_every_interval(peers):
    good = peers.good
    n = 6
    nulls = wait_for(lambda: (lambda l: l if len(l) >= n else None)(
        [e for e in events_of(good, "DDD") if e["message_type"] == "NULL"]), 8 * NULL_S + 10,
        interval=0.2, what=f"{n} NULL messages")
    times = [e["recv_ns"] / 1e9 for e in nulls[-n:]]
    mean = (times[-1] - times[0]) / (n - 1)
    # Every NULL_S seconds, not one more each time (spacing on average; a single gap may vary
    # with the machine's load, the grid does not drift).
    assert NULL_S - 0.5 <= mean <= NULL_S + 0.5, [round(b - a, 3) for a, b in zip(times, times[1:])]


def test_delivery_totals_survive_a_hub_restart(peers):
    app = peers.app
    before = {r["receiver"]: r for r in queues(app)["items"]}
    assert before["cms"]["delivered_total"] >= 2 and before["skewed"]["delivered_total"] >= 1, before
    assert before["wrongkey"]["attempts_total"] >= 1, before
    pid = app.worker("hub")["pid"]
    os.kill(pid, signal.SIGTERM)
    app.wait_restarted("hub", pid, timeout=30)
    after = wait_for(lambda: {r["receiver"]: r for r in queues(app)["items"]} or None, 15,
                     what="the alarm service back")
    for rid in ("cms", "cid", "skewed", "late", "idle"):
        for k in ("delivered_total", "attempts_total", "failed_rounds_total"):
            assert after[rid][k] >= before[rid][k], (rid, k, before[rid], after[rid])
    assert after["cms"]["delivered_total"] >= 2
    assert after["wrongkey"]["attempts_total"] >= before["wrongkey"]["attempts_total"]
    assert after["late"]["failed_rounds_total"] >= 2
    assert after["cms"]["last_delivered_ms"] == before["cms"]["last_delivered_ms"]
