"""The setup wizard's checks (docs/settings.md, "The first-boot wizard"): the YoLink connection
test against the YoLink simulator (cloud mode, reports through mosquitto) and ONVIF camera
discovery against the appliance's own WS-Discovery responder and ONVIF server (the rtsp worker
on loopback, unicast probe), through the REST routes and through the wizard's buttons.
"""
from __future__ import annotations

import html
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for sub in ("alarm", "rtsp"):
    sys.path.insert(0, str(HERE.parent / sub))

from alarm_support import mosquitto, yolink_factory, yolink_toml  # noqa: E402,F401 - fixtures
from rtsp_support import ADMIN, rtsp_appliance, testsrc  # noqa: E402,F401 - fixtures
from test_settings_page import Browser  # noqa: E402

DEVICES = ["door1:DoorSensor:Front door", "pir1:MotionSensor:Hall", "leak1:LeakSensor:Basement"]


def yolink_appliance(appliance_factory, mosquitto, sim):
    sections = {"bridge": {"enabled": True, "min_connect_interval_ms": 0}}
    return appliance_factory(sections, extra_toml=yolink_toml(mosquitto, sim)).start(timeout=30)


def test_yolink_connection_test(appliance_factory, mosquitto, yolink_factory):
    sim = yolink_factory(mosquitto, DEVICES)
    a = yolink_appliance(appliance_factory, mosquitto, sim)

    # The configured source (empty body): token, API with the sim's devices, MQTT.
    r = a.post("/api/v1/bridge/yolink/test")
    assert r.status_code == 200, r.text
    v = r.json()
    print("configured:", v)
    assert v["ok"] is True and v["stage"] == "mqtt" and v["devices"] == 3 and v["error"] is None
    assert 0 <= v["latency_ms"] < 5000

    # A candidate with "***": the configured secret.
    cand = {"source": "cloud", "uaid": "ua-test", "secret": "***", "api_url": sim.url,
            "mqtt": f"127.0.0.1:{int(mosquitto)}"}
    r = a.post("/api/v1/bridge/yolink/test", json=cand)
    assert r.status_code == 200 and r.json()["ok"] is True, r.text

    # A wrong secret: the token step fails with the API's text.
    r = a.post("/api/v1/bridge/yolink/test", json={**cand, "secret": "wrong"})
    v = r.json()
    print("wrong secret:", v)
    assert v["ok"] is False and v["stage"] == "token" and v["devices"] is None
    assert "invalid client credentials" in v["error"]

    # Nobody listening: a connect error, still within the limit.
    r = a.post("/api/v1/bridge/yolink/test?timeout_ms=2000",
               json={**cand, "api_url": "http://127.0.0.1:9"})
    v = r.json()
    assert v["ok"] is False and v["stage"] == "token" and "connect" in v["error"].lower(), v

    # A broker that is not there: the MQTT step.
    r = a.post("/api/v1/bridge/yolink/test?timeout_ms=2000", json={**cand, "mqtt": "127.0.0.1:9"})
    v = r.json()
    assert v["ok"] is False and v["stage"] == "mqtt" and v["devices"] == 3, v

    # Not a [bridge.yolink] table.
    assert a.post("/api/v1/bridge/yolink/test", json={"source": "cloud"}).status_code == 400
    # Admins only: an unauthenticated call is refused.
    assert a.post("/api/v1/bridge/yolink/test", auth=None).status_code == 401

    # The wizard's button shows the result on the step.
    b = Browser(a)
    page = b.post("/setup/yolink/check", [])
    assert page.status_code == 200, page.text
    assert 'action="/setup/yolink/check"' in page.text
    m = re.search(r'id="check-result">(.*?)</div>', page.text, re.S)
    assert m and "Connected: 3 devices" in m.group(1), page.text


def test_onvif_discovery_finds_the_appliance(rtsp_appliance):
    a = rtsp_appliance
    dhost, dport = a.addr("rtsp.discovery")
    rhost, rport = a.addr("rtsp.rtsp")
    body = {"timeout_ms": 1500, "hosts": [f"{dhost}:{dport}"], "multicast": False,
            "user": ADMIN[0], "password": ADMIN[1]}
    r = a.post("/api/v1/cameras/discover", json=body)
    assert r.status_code == 200, r.text
    found = r.json()
    print("found:", found)
    assert len(found) == 1
    cam = found[0]
    _, oport = a.addr("rtsp.onvif")
    assert cam["xaddr"] == f"http://127.0.0.1:{oport}/onvif/device_service"
    assert cam["name"] == "Watchpost test" and cam["hardware"], cam
    assert cam["error"] is None and cam["profiles"], cam
    uris = [p["stream_uri"] for p in cam["profiles"]]
    assert all(u and u.startswith(f"rtsp://{rhost}:{rport}/") for u in uris), uris
    main = next(p for p in cam["profiles"] if p["width"] == 640)
    assert main["encoding"] == "H264" and main["height"] == 360

    # A wrong password: the camera is listed with the device's refusal.
    r = a.post("/api/v1/cameras/discover", json={**body, "password": "wrong"})
    cam = r.json()[0]
    assert cam["profiles"] == [] and "NotAuthorized" in cam["error"], cam

    # Bad input.
    assert a.post("/api/v1/cameras/discover", json={"timeout_ms": 0}).status_code == 400

    # The wizard: "Find cameras" lists it, "Add" puts it into the camera form.
    b = Browser(a)
    page = b.post("/setup/cameras/check", [("user", ADMIN[0]), ("password", ADMIN[1]),
                                           ("hosts", f"{dhost}:{dport}")])
    assert page.status_code == 200, page.text
    assert "1 camera(s) answered" in page.text and "Watchpost test" in page.text
    adds = re.findall(r'name="add_url" value="([^"]+)"', page.text)
    assert adds and all(html.unescape(u).startswith(f"rtsp://{rhost}:{rport}/") for u in adds)
    url = html.unescape(adds[0])
    page = b.post("/setup/cameras/check", [("add_url", url), ("add_name", "Watchpost test")])
    assert page.status_code == 200, page.text
    area = re.search(r'<textarea[^>]*name="capture\.cameras"[^>]*>(.*?)</textarea>', page.text, re.S)
    assert area, page.text
    text = html.unescape(area.group(1))
    assert 'id = "watchpost-test"' in text and url in text and 'type = "rtsp"' in text, text
    # Staging the filled form is the ordinary step form: the configuration accepts it.
    r = b.post("/setup/cameras", [("capture.cameras", text)])
    assert r.status_code in (200, 303), r.text
    cams = b.get("/api/v1/settings").json()["effective"]["capture"]["cameras"]
    assert any(c["id"] == "watchpost-test" for c in cams), cams
