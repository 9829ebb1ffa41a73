"""Thermal cameras end to end: the simulator's radiometric cameras (both raw formats, a scene
with known temperatures whose hot block switches on and off) recorded by the appliance.
Statistics on the bus are exact, the rule fires after its hold time and clears with
hysteresis, the colourised stream is recorded on the rule's events, snapshotted through the
API, and written to the view ring for restreaming."""
from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from capture_support import SimCamera, capture_toml, ffprobe_image, have, wait_online
from conftest import wait_for

mqtt = pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed (make venv)")
pytestmark = pytest.mark.skipif(not have("ffprobe"), reason="ffprobe is not installed")

# watchpost_thermal::synthetic::Scene::default(): 160x120, exact in both raw formats.
AMBIENT_C, HOT_C, COLD_C = 22.10, 65.35, 5.10
HOT = {"x": 100, "y": 40, "width": 20, "height": 20}
HOT_MEAN_C = ((160 * 120 - 400 - 256) * AMBIENT_C + 400 * HOT_C + 256 * COLD_C) / (160 * 120)


class Bus:
    def __init__(self, host: str, port: int, *topics: str):
        self.messages: list[tuple[str, dict]] = []
        self.lock = threading.Lock()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.c.on_message = self.on_message
        self.c.on_connect = lambda c, *_: c.subscribe([(topic, 1) for topic in topics])
        self.c.connect(host, port)
        self.c.loop_start()

    def on_message(self, _c, _u, msg):
        try:
            body = json.loads(msg.payload)
        except ValueError:
            return
        with self.lock:
            self.messages.append((msg.topic, body))

    def find(self, pred):
        with self.lock:
            return [b for t, b in self.messages if pred(t, b)]

    def stop(self):
        self.c.loop_stop()
        self.c.disconnect()


def thermal_camera(cam_id: str, address: str, fmt: str) -> str:
    region = ", ".join(f"{k} = {v}" for k, v in HOT.items())
    return f"""
[[capture.cameras]]
id = "{cam_id}"
kind = "thermal"
source = {{ type = "thermal_tcp", address = "{address}", fps = 9 }}
record = {{ mode = "event", preroll_s = 1, postroll_s = 1 }}
reconnect = {{ initial_ms = 200, max_ms = 1000, stall_timeout_ms = 3000 }}
[capture.cameras.thermal]
format = "{fmt}"
stats_interval_ms = 250
[[capture.cameras.thermal.rules]]
id = "hotspot"
region = {{ {region} }}
threshold_c = 50.0
hold_ms = 1000
hysteresis_c = 2.0
"""


def test_thermal_cameras_stats_rules_recording_snapshot_ring(appliance_factory, tmp_path):
    sims = {
        "lepton": SimCamera(tmp_path, "--no-rtsp", "--thermal-port", "0", "--thermal-format", "centikelvin16",
                            "--hot-period-s", "3"),
        "split": SimCamera(tmp_path, "--no-rtsp", "--thermal-port", "0", "--thermal-format", "split-frame",
                           "--hot-period-s", "3"),
    }
    frames = tmp_path / "frames"
    cams = thermal_camera("lepton", sims["lepton"].thermal, "centikelvin16") + \
        thermal_camera("split", sims["split"].thermal, "split_frame")
    a = appliance_factory(None, capture_toml(cams, frames)).start(timeout=30)
    host, port = a.addr("broker.listen")
    bus = Bus(host, port, "watchpost/capture/camera/+/thermal/#", "watchpost/capture/camera/+/snapshot/event",
              "watchpost/capture/camera/+/recording")
    try:
        for cam in ("lepton", "split"):
            wait_online(a, cam)

            def stats(hot: bool, cam=cam):
                return bus.find(lambda t, b: t.endswith(f"/{cam}/thermal") and b["max_c"] == (HOT_C if hot else AMBIENT_C))
            hot = wait_for(lambda: stats(True), 15, interval=0.1, what=f"{cam}: hot statistics")[0]
            assert hot["min_c"] == COLD_C and (hot["width"], hot["height"]) == (160, 120)
            assert (hot["hottest"]["x"], hot["hottest"]["y"]) == (HOT["x"], HOT["y"])
            assert (hot["coldest"]["x"], hot["coldest"]["y"]) == (20, 80)
            assert abs(hot["mean_c"] - HOT_MEAN_C) <= 0.005
            # Per-region statistics: the rule's region is exactly the hot block.
            region = hot["rules"][0]
            assert region["id"] == "hotspot"
            assert (region["min_c"], region["max_c"], region["mean_c"]) == (HOT_C, HOT_C, HOT_C)
            assert (region["hottest"]["x"], region["hottest"]["y"]) == (HOT["x"], HOT["y"])
            wait_for(lambda: stats(False), 15, interval=0.1, what=f"{cam}: cool statistics")

            def events(cam=cam):
                return bus.find(lambda t, b: t.endswith(f"/{cam}/thermal/event"))
            wait_for(lambda: [e["event"] for e in events()][:2] == ["fired", "cleared"], 20, interval=0.1,
                     what=f"{cam}: the rule fires and clears")
            fired, cleared = events()[:2]
            assert fired["rule"] == "hotspot" and fired["value_c"] == HOT_C and fired["threshold_c"] == 50.0
            assert cleared["value_c"] == AMBIENT_C

            # The rule firing took a snapshot, announced with its reason.
            snap = wait_for(lambda cam=cam: bus.find(lambda t, b: t.endswith(f"/{cam}/snapshot/event")), 15,
                            interval=0.1, what=f"{cam}: a snapshot on the rule's event")[0]
            assert snap["camera"] == cam and snap["reason"] == "thermal:hotspot" and snap["bytes"] > 0
            probe = ffprobe_image(Path(snap["path"]))
            assert (probe["codec_name"], int(probe["width"]), int(probe["height"])) == ("mjpeg", 640, 480)

        # The API shows the latest statistics, and a snapshot of the colourised picture (160x120
        # enlarged four times).
        cam = wait_for(lambda: (c := a.get("/api/v1/cameras/lepton").json())["thermal"] and c, 10,
                       what="thermal statistics in the API")
        assert cam["kind"] == "thermal" and cam["source"]["type"] == "thermal_tcp"
        assert cam["thermal"]["min_c"] == COLD_C
        r = a.get("/api/v1/cameras/lepton/snapshot", timeout=15)
        assert r.status_code == 200, r.text
        (tmp_path / "thermal.jpg").write_bytes(r.content)
        probe = ffprobe_image(tmp_path / "thermal.jpg")
        assert (int(probe["width"]), int(probe["height"])) == (640, 480)

        # Event recording: segments whose trigger is the rule.
        def rule_segments():
            items = a.get("/api/v1/cameras/lepton/recordings", params={"order": "oldest"}).json()["items"]
            return [s for s in items if s["state"] == "closed"
                    and s["trigger"] == {"kind": "event", "reason": "thermal:hotspot"}]
        seg = wait_for(rule_segments, 20, interval=0.3, what="a segment recorded on the rule")[0]
        assert seg["codec"] == "h264" and (seg["width"], seg["height"]) == (640, 480)
        # Recording start and stop are events on the bus, naming the file and the trigger.
        rec = wait_for(lambda: [b["event"] for b in bus.find(lambda t, b: t.endswith("/lepton/recording"))][:2]
                       == ["started", "stopped"] and bus.find(lambda t, b: t.endswith("/lepton/recording")), 20,
                       interval=0.2, what="recording started and stopped on the bus")
        started, stopped = rec[:2]
        assert started["trigger"] == stopped["trigger"] == {"kind": "event", "reason": "thermal:hotspot"}
        # (`started` names the session's first segment, `stopped` its last.)
        assert started["path"].endswith(".mp4") and stopped["path"].endswith(".mp4")
        assert started["at"] < stopped["at"]

        # The view ring for restreaming.
        ring = (frames / "lepton.view.ring").read_bytes()
        assert ring[:8] == b"WPFRING1"
    finally:
        bus.stop()
        a.stop()
        for s in sims.values():
            s.stop()
