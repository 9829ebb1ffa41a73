"""The camera API of the hub against a recording appliance and the simulated RTSP camera:
status from the capture worker's retained topics, a snapshot that decodes at the camera's
resolution, the recording index, the error shapes, and no credentials in any answer."""
from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest
import requests

from capture_support import SimCamera, capture_toml, ffprobe_image, have, wait_online
from conftest import ADMIN, wait_for

pytestmark = pytest.mark.skipif(not have("ffprobe"), reason="ffprobe is not installed")

PASSWORD = "never-shown-7Qx"


@pytest.fixture
def recording(appliance_factory, tmp_path):
    sim = SimCamera(tmp_path, "--width", "320", "--height", "240", "--fps", "15", "--key-int", "15",
                    "--bitrate-kbps", "300")
    cams = f"""
[[capture.cameras]]
id = "gate"
name = "Gate"
source = {{ type = "rtsp", url = "{sim.rtsp[0]}" }}
credentials = {{ username = "viewer", password = "{PASSWORD}" }}
reconnect = {{ initial_ms = 200, max_ms = 1000, stall_timeout_ms = 2000 }}

[[capture.cameras]]
id = "spare"
enabled = false
source = {{ type = "rtsp", url = "rtsp://127.0.0.1:9/none" }}
"""
    # A long heartbeat timeout: one test stops the capture worker with SIGSTOP on purpose.
    a = appliance_factory({"supervisor": {"heartbeat_timeout_ms": 60000}},
                          capture_toml(cams, tmp_path / "frames"))
    a.start(timeout=30)
    yield a
    a.stop()
    sim.stop()


def test_status_snapshot_recordings_and_errors(recording):
    a = recording
    gate = wait_online(a, "gate")
    st = gate["status"]
    assert st["reason"] is None and st["bitrate_bps"] > 0 and st["reconnects"] == 0
    assert gate["name"] == "Gate" and gate["source"]["type"] == "rtsp" and gate["credentials_configured"]

    listing = a.get("/api/v1/cameras").json()
    assert listing["pagination"] == {"page": 1, "limit": 50, "total": 2, "total_pages": 1}
    by_id = {c["id"]: c for c in listing["items"]}
    assert by_id["spare"]["status"]["state"] == "disabled"
    assert a.get("/api/v1/cameras", params={"limit": 1, "page": 2}).json()["items"][0]["id"] == "spare"

    # Snapshot: a JPEG at the camera's resolution.
    r = a.get("/api/v1/cameras/gate/snapshot", timeout=15)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/jpeg"
    assert r.content[:2] == b"\xff\xd8"
    jpg = a.workdir / "gate.jpg"
    jpg.write_bytes(r.content)
    probe = ffprobe_image(jpg)
    assert probe["codec_name"] == "mjpeg"
    assert (int(probe["width"]), int(probe["height"])) == (320, 240)

    # Errors.
    r = a.get("/api/v1/cameras/nope/snapshot")
    assert r.status_code == 404 and r.json()["error"]["code"] == "CAMERA_NOT_FOUND"
    assert a.get("/api/v1/cameras/nope").status_code == 404
    r = a.get("/api/v1/cameras/spare/snapshot")
    assert r.status_code == 409 and r.json()["error"]["code"] == "CAMERA_DISABLED"
    assert a.get("/api/v1/cameras/gate/snapshot", auth=None).status_code == 401

    # The recording index: closed segments of the camera, newest first.
    def closed_segments():
        page = a.get("/api/v1/cameras/gate/recordings", params={"limit": 2}).json()
        closed = [s for s in page["items"] if s["state"] == "closed"]
        return page if page["pagination"]["total"] >= 3 and closed else None
    page = wait_for(closed_segments, 30, interval=0.3, what="three segments in the index")
    assert page["pagination"]["limit"] == 2 and page["pagination"]["total_pages"] >= 2
    items = page["items"]
    assert items[0]["start_us"] > items[1]["start_us"]
    for s in items:
        assert s["camera"] == "gate" and s["codec"] == "h264" and (s["width"], s["height"]) == (320, 240)
    oldest = a.get("/api/v1/cameras/gate/recordings", params={"order": "oldest", "limit": 1}).json()
    assert oldest["items"][0]["start_us"] <= items[-1]["start_us"]
    r = a.get("/api/v1/cameras/gate/recordings", params={"order": "sideways"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "INVALID_ORDER"

    # No credentials anywhere.
    for path in ("/api/v1/cameras", "/api/v1/cameras/gate", "/api/v1/cameras/gate/recordings"):
        assert PASSWORD not in a.get(path).text


def test_commands_on_the_bus_are_answered_in_the_one_envelope(recording):
    """The camera commands as any MQTT client sends them (docs/bus.md, section Capture): every
    answer is `{"ok": true, <fields>}` or `{"ok": false, "error": {"code", "message", "details"}}`."""
    mqtt = pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed (make venv)")
    a = recording
    wait_online(a, "gate")
    host, port = a.addr("broker.listen")
    replies: dict[str, dict] = {}
    lock = threading.Lock()
    subscribed = threading.Event()

    def on_message(_c, _u, msg):
        with lock:
            replies[msg.topic] = json.loads(msg.payload)

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.on_message = on_message
    c.on_connect = lambda client, *_: client.subscribe("watchpost/reply/pytest/#", 1)
    c.on_subscribe = lambda *_: subscribed.set()
    c.connect(host, port)
    c.loop_start()
    sent = iter(range(1, 100))

    def ask(cam: str, command: str, body: dict) -> dict:
        n = next(sent)
        reply_to = f"watchpost/reply/pytest/{n}"
        c.publish(f"watchpost/capture/camera/{cam}/{command}/set",
                  json.dumps({**body, "request_id": str(n), "reply_to": reply_to}), qos=1)

        def answer():
            with lock:
                return replies.get(reply_to)
        return wait_for(answer, 15, interval=0.05, what=f"the answer to {command} of {cam}")

    def refused(answer: dict) -> str:
        assert answer["ok"] is False and set(answer) == {"ok", "error"}, answer
        assert set(answer["error"]) == {"code", "message", "details"} and answer["error"]["message"], answer
        return answer["error"]["code"]

    try:
        assert subscribed.wait(10), "no subscription to the reply topics"
        taken = ask("gate", "snapshot", {})
        assert taken["ok"] is True and set(taken) == {"ok", "path", "bytes", "taken_at"}, taken
        assert taken["path"].endswith("gate.jpg") and taken["bytes"] > 0
        assert refused(ask("nope", "snapshot", {})) == "CAMERA_NOT_FOUND"
        assert refused(ask("spare", "snapshot", {})) == "CAMERA_NOT_FOUND"
        assert refused(ask("gate", "recordings", {"limit": 0})) == "INVALID_QUERY"
        assert refused(ask("nope", "recordings", {})) == "CAMERA_NOT_FOUND"
        # A configured camera that does not run still has its (empty) index.
        assert ask("spare", "recordings", {}) == {"ok": True, "items": [], "total": 0}
        assert refused(ask("gate", "credentials", {"username": "a:b", "password": "x"})) == "INVALID_CREDENTIALS"
        assert refused(ask("gate", "credentials", {"username": "u"})) == "INVALID_BODY"
        assert refused(ask("gate", "trigger", {"active": "yes"})) == "INVALID_BODY"
        assert ask("gate", "trigger", {"active": False, "reason": "pytest"}) == {"ok": True}
    finally:
        c.loop_stop()
        c.disconnect()


def test_snapshot_is_503_when_the_capture_worker_does_not_answer(recording):
    a = recording
    wait_online(a, "gate")
    pid = next(w for w in a.health()["workers"] if w["name"] == "capture")["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        r = a.get("/api/v1/cameras/gate/snapshot", timeout=20)
        waited = time.monotonic() - t0
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "CAPTURE_UNAVAILABLE"
        print(f"503 after {waited:.1f} s")
    finally:
        os.kill(pid, signal.SIGCONT)
    # The worker comes back and answers again.
    wait_for(lambda: a.get("/api/v1/cameras/gate/snapshot", timeout=15).status_code == 200, 20,
             interval=0.5, what="snapshot after SIGCONT")


def test_credentials_put_are_sealed_and_never_shown(recording):
    a = recording
    wait_online(a, "gate")
    secret = "rotated-Zk29-secret"

    def put(cam, body, auth=ADMIN):
        return requests.put(a.url(f"/api/v1/cameras/{cam}/credentials"), auth=auth, json=body, timeout=10)

    r = put("gate", {"username": "viewer2", "password": secret})
    assert r.status_code == 204, r.text
    assert secret not in r.text
    # The worker reconnected with them (the simulated camera does not ask for any) and is online.
    wait_for(lambda: (c := a.get("/api/v1/cameras/gate").json())["status"]["state"] == "online"
             and c["status"]["reconnects"] >= 1, 20, interval=0.2, what="gate reconnected with new credentials")

    # Bad requests, unknown and disabled cameras, no auth.
    assert put("gate", {"username": "a:b", "password": "x"}).json()["error"]["code"] == "INVALID_CREDENTIALS"
    r = put("gate", {"username": "viewer2", "password": secret, "extra": 1})
    assert r.status_code == 400 and secret not in r.text
    assert put("gate", {"username": "viewer2"}).status_code == 400
    assert put("nope", {"username": "u", "password": "p"}).status_code == 404
    assert put("spare", {"username": "u", "password": "p"}).status_code == 409
    assert put("gate", {"username": "u", "password": "p"}, auth=None).status_code == 401

    # Sealed at rest with the device key, and never in an answer or the log.
    key = a.data_dir / "secrets" / "device.key"
    assert key.stat().st_mode & 0o777 == 0o600 and key.stat().st_size == 32
    assert secret.encode() not in (a.data_dir / "capture.redb").read_bytes()
    for path in ("/api/v1/cameras", "/api/v1/cameras/gate"):
        assert secret not in a.get(path).text
    assert secret not in a.log()
