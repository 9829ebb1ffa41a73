"""The alarm REST API: receivers and mappings (same model as the config file, secrets never
returned), live reload, the YoLink Local Hub source, and the back-off on refused credentials."""
from __future__ import annotations

import time

import requests

from alarm_support import chekt, mosquitto, sia_factory, yolink_factory  # noqa: F401 - fixtures
from alarm_support import alarm_sections, sia_receiver_toml, wait_bridge_connected, yolink_toml
from conftest import wait_for

KEY = "0123456789ABCDEF"


def test_receivers_and_mappings_crud_with_masked_secrets(appliance_factory, mosquitto, sia_factory, yolink_factory, chekt):
    sia = sia_factory(accounts=(f"AAA:{KEY}",)).start()
    sim = yolink_factory(mosquitto, ["door1:DoorSensor:Front", "door2:DoorSensor:Back"])
    extra = (
        yolink_toml(mosquitto, sim)
        + sia_receiver_toml("cms", sia.port, f"key = \"{KEY}\"\nkey_format = \"ascii\"\n")
        + "\n[[alarms.mappings]]\nsensor = \"door1\"\nroutes = [{ receiver = \"cms\", zone = 1 }]\n"
    )
    app = appliance_factory(alarm_sections(mosquitto, sim), extra).start(timeout=30)
    wait_bridge_connected(app)

    assert requests.get(app.url("/api/v1/alarms/receivers"), timeout=3).status_code == 401
    rs = app.get("/api/v1/alarms/receivers").json()["items"]
    assert [(r["id"], r["source"], r["key"]) for r in rs] == [("cms", "file", "***")]
    assert KEY not in app.get("/api/v1/alarms/receivers/cms").text

    body = {"type": "chekt", "id": "bridge", "url": chekt.url, "token": "tok-1",
            "backoff_initial_ms": 100, "backoff_max_ms": 1000}
    r = app.post("/api/v1/alarms/receivers", json=body)
    assert r.status_code == 201, r.text
    assert r.json()["token"] == "***" and r.json()["source"] == "api"
    assert app.post("/api/v1/alarms/receivers", json=body).status_code == 409
    bad = app.post("/api/v1/alarms/receivers", json={"type": "sia", "id": "x", "host": "127.0.0.1:1", "account": "ZZ"})
    assert bad.status_code == 422
    assert bad.json()["error"]["details"]["problems"][0]["key"].endswith(".account")
    assert app.post("/api/v1/alarms/receivers", json={"type": "sia", "id": "y"}).status_code == 422
    r = requests.put(app.url("/api/v1/alarms/receivers/cms"), auth=("admin", "demo-admin"), json={}, timeout=5)
    assert r.status_code == 409 and r.json()["error"]["code"] == "READ_ONLY"

    # A mapping to the new receiver takes effect at once.
    m = {"sensor": "door2", "routes": [{"receiver": "bridge", "channel": 4}]}
    assert app.post("/api/v1/alarms/mappings", json=m).status_code == 201
    assert app.post("/api/v1/alarms/mappings", json={"sensor": "door3", "routes": [{"receiver": "nope"}]}).status_code == 422
    sim.report("door2", "open")
    wait_for(lambda: chekt.requests, 15, what="CHEKT request after the API change")
    assert chekt.requests[0]["body"]["target_channel"] == "4"
    assert chekt.requests[0]["auth"] == "Basic YXBpa2V5OnRvay0x"  # apikey:tok-1

    # Sending the mask back keeps the stored token.
    body["token"] = "***"
    body["timeout_ms"] = 2000
    r = requests.put(app.url("/api/v1/alarms/receivers/bridge"), auth=("admin", "demo-admin"), json=body, timeout=5)
    assert r.status_code == 200, r.text
    sim.report("door2", "closed")
    sim.report("door2", "open")
    wait_for(lambda: len(chekt.requests) >= 2, 15, what="second CHEKT request")
    assert chekt.requests[1]["auth"] == "Basic YXBpa2V5OnRvay0x"

    # The file's encrypted SIA receiver works alongside.
    sim.report("door1", "open")
    ev = sia.wait_events(1)[0]
    assert (ev["code"], ev["encrypted"]) == ("BA", True)

    # Deletion: refused while in use, then allowed.
    d = requests.delete(app.url("/api/v1/alarms/receivers/bridge"), auth=("admin", "demo-admin"), timeout=5)
    assert d.status_code == 409 and d.json()["error"]["code"] == "RECEIVER_IN_USE"
    assert requests.delete(app.url("/api/v1/alarms/mappings/door2"), auth=("admin", "demo-admin"), timeout=5).status_code == 204
    assert requests.delete(app.url("/api/v1/alarms/receivers/bridge"), auth=("admin", "demo-admin"), timeout=5).status_code == 204
    assert app.get("/api/v1/alarms/receivers/bridge").status_code == 404
    maps = app.get("/api/v1/alarms/mappings").json()["items"]
    assert [(x["sensor"], x["source"]) for x in maps] == [("door1", "file")]

    sensors = app.get("/api/v1/sensors").json()
    assert sensors["pagination"]["total"] == 2
    assert {s["id"] for s in sensors["items"]} == {"door1", "door2"}
    assert app.get("/api/v1/sensors/nope").status_code == 404


def test_local_hub_source(appliance_factory, mosquitto, sia_factory, yolink_factory):
    sia = sia_factory().start()
    sim = yolink_factory(mosquitto, ["m1:MotionSensor:Hall"], mode="local")
    extra = (
        "\n[bridge.yolink]\nsource = \"local\"\n"
        f"hub_url = \"{sim.url}\"\nclient_id = \"ua-test\"\nclient_secret = \"s3cret\"\n"
        f"subnet_id = \"home-test\"\nmqtt = \"127.0.0.1:{mosquitto}\"\n"
        + sia_receiver_toml("cms", sia.port)
        + "\n[[alarms.mappings]]\nsensor = \"m1\"\nroutes = [{ receiver = \"cms\", zone = 9 }]\n"
    )
    app = appliance_factory(alarm_sections(mosquitto, sim), extra).start(timeout=30)
    wait_bridge_connected(app)
    sim.report("m1", "alert")
    ev = sia.wait_events(1)[0]
    assert (ev["code"], ev["message"]) == ("BA", "9")
    sim.report("m1", "normal")
    assert sia.wait_events(2)[1]["code"] == "BH"


def test_refused_credentials_are_retried_with_back_off_not_hammered(appliance_factory, mosquitto, yolink_factory):
    sim = yolink_factory(mosquitto, ["door1:DoorSensor:Front"])
    extra = (
        "\n[bridge.yolink]\nsource = \"cloud\"\nuaid = \"ua-test\"\nsecret = \"wrong\"\n"
        f"api_url = \"{sim.url}\"\nmqtt = \"127.0.0.1:{mosquitto}\"\n"
    )
    app = appliance_factory(alarm_sections(mosquitto, sim), extra).start(timeout=30)
    wait_for(lambda: sim.stats()["token_requests"] >= 2, 10, what="a second token request")
    time.sleep(6)
    # Back-off 1, 2, 4 s...: about four requests by now; retrying every second would be eight,
    # not backing off at all hundreds.
    stats = sim.stats()
    assert 2 <= stats["token_requests"] <= 5, stats
    assert stats["tokens_issued"] == 0
    text = requests.get(app.url("/metrics"), timeout=3).text
    assert any(l.startswith("watchpost_bridge_yolink_connected") and l.rstrip().endswith(" 0")
               for l in text.splitlines())
