"""Home Assistant's own ONVIF client library against the appliance (issue 14, items 13 and 15).

The client is onvif-zeep-async at the version Home Assistant's `onvif` integration pins, with
httpx and the integration's own event parsers, all in .venv-ha (scripts/setup-ha.sh; it cannot
share .venv with onvif-zeep, which owns the same `onvif` module). tests/rtsp/ha_onvif_client.py
makes the integration's calls in its order and prints what it saw as JSON; this test starts the
appliance, makes the events and checks the answers:

- setup: device information, the MAC (the config entry's unique id), pull-point support, the
  H.264 profiles with the size the capture worker measured (640×360, where the nominal size of
  a `[capture]` camera is 1920×1080);
- snapshots: the integration's probe (Digest first, on the first profile) settles on Digest,
  and every profile's snapshot with it is a JPEG; a wrong password gets 401;
- events: the integration's PullPointManager subscription; Home Assistant's parsers turn the
  messages into entities: "Motion Alarm" for the camera (motion published on
  `detect/camera/<id>/motion`, docs/bus.md, as the detection worker will), "Person Detection"
  (`detect/camera/<id>/object/person`) and "Digital Input" for the YoLink simulator's motion
  sensor in alarm;
- buttons: SetSystemDateAndTime as the integration sends it, SystemReboot restarting the
  workers.
"""
from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

from conftest import ROOT, wait_for
from rtsp_support import ADMIN, rtsp_sections, testsrc, toml  # noqa: F401 - fixtures

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "alarm"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "capture"))
from alarm_support import mosquitto, wait_bridge_connected, yolink_factory, yolink_toml  # noqa: E402,F401
from capture_support import camera, capture_toml  # noqa: E402

mqtt = pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed (make venv)")

HA_PYTHON = ROOT / ".venv-ha" / "bin" / "python"
CLIENT = Path(__file__).resolve().parent / "ha_onvif_client.py"
MAC = "02:00:00:00:00:42"  # rtsp_sections' [rtsp.device] mac


def ha_python() -> Path:
    if not HA_PYTHON.exists():
        pytest.skip("Home Assistant's ONVIF client is not installed (.venv-ha: scripts/setup-ha.sh, run by make venv)")
    probe = subprocess.run([str(HA_PYTHON), "-c", "import onvif, homeassistant.components.onvif.parsers"],
                           capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip("onvif-zeep-async is not installed in .venv-ha (run scripts/setup-ha.sh): "
                    + probe.stderr.strip().splitlines()[-1])
    return HA_PYTHON


class Client:
    """ha_onvif_client.py running in .venv-ha; its JSON lines in order."""

    def __init__(self, host: str, port: int, expect: dict, log: Path):
        self.log = open(log, "wb")
        self.proc = subprocess.Popen(
            [str(ha_python()), str(CLIENT), host, str(port), *ADMIN, json.dumps(expect)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True,
        )
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def next(self, phase: str, timeout: float) -> dict:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no {phase} answer from the Home Assistant client in {timeout} s") from None
        assert line is not None, f"the Home Assistant client exited: {self.stderr()}"
        got = json.loads(line)
        print("Home Assistant client:", line.strip())  # shown when the test fails
        assert got["phase"] == phase and "error" not in got, (got, self.stderr())
        return got

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def stderr(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self.log.close()


@pytest.fixture
def ha_appliance(appliance_factory, tmp_path, held_port, testsrc, mosquitto, yolink_factory):
    """broker, hub, bridge (YoLink simulator with one motion sensor), capture and rtsp. The
    capture worker has two cameras: `gate`, whose address refuses connections (so its profile,
    the first, is offline when Home Assistant sets up), and `yard`, the stand-in camera."""
    ha_python()
    sim = yolink_factory(mosquitto, ["pir1:MotionSensor:Yard motion"])
    down_port = held_port()
    sections = rtsp_sections(None)
    rtsp = sections["rtsp"]
    tables = {k: rtsp.pop(k) for k in ("dashboard", "discovery", "device")}
    cams = f"""
[[capture.cameras]]
id = "gate"
name = "Gate"
source = {{ type = "rtsp", url = "rtsp://127.0.0.1:{down_port}/stream" }}
reconnect = {{ initial_ms = 200, max_ms = 1000, stall_timeout_ms = 3000 }}

[[capture.cameras]]
id = "yard"
name = "Yard"
source = {{ type = "rtsp", url = "{testsrc.url}" }}
reconnect = {{ initial_ms = 200, max_ms = 1000, stall_timeout_ms = 3000 }}
"""
    extra = "".join(
        f"\n[rtsp.{name}]\n" + "".join(f"{k} = {toml(v)}\n" for k, v in body.items())
        for name, body in tables.items()
    ) + yolink_toml(mosquitto, sim) + capture_toml(cams, tmp_path / "frames")
    sections["bridge"] = {"enabled": True, "min_connect_interval_ms": 0, "poll_state_on_connect": True}
    a = appliance_factory(sections, extra_toml=extra).start(timeout=30)
    wait_for(lambda: "rtsp.onvif" in a.listeners, 20, what="rtsp worker ready")
    a.sim = sim
    return a


class Bus:
    """A client of the appliance's broker: retained states seen, and publishing as a worker."""

    def __init__(self, a):
        self.seen: dict[str, dict] = {}
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.c.on_message = lambda _c, _u, m: self.seen.__setitem__(m.topic, json.loads(m.payload or b"null"))
        self.c.on_connect = lambda c, *_: c.subscribe("watchpost/sensors/+/state")
        host, port = a.addr("broker.listen")
        self.c.connect(host, port)
        self.c.loop_start()

    def publish(self, topic: str, payload: dict) -> None:
        self.c.publish(f"watchpost/{topic}", json.dumps(payload), qos=1, retain=True).wait_for_publish(5)

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def test_home_assistant_onvif_client(ha_appliance, tmp_path):
    a = ha_appliance
    bus = Bus(a)
    try:
        # Before Home Assistant subscribes: the sensor as the bridge first publishes it (not in
        # alarm) and no camera motion, so both are entities before they change.
        wait_bridge_connected(a)
        wait_for(lambda: "watchpost/sensors/pir1/state" in bus.seen, 20, interval=0.1, what="sensor pir1 published")
        bus.publish("detect/camera/yard/motion", {"active": False})
        wait_for(lambda: camera(a, "gate")["status"]["state"] in ("offline", "error"), 30, interval=0.2,
                 what="the capture worker reporting the gate camera offline")

        host, port = a.addr("rtsp.onvif")
        events = {"Motion Alarm/cam_yard": True, "Person Detection/cam_yard": True, "Digital Input/pir1": True}
        client = Client(host, port, {"profile": "cam_yard_main", "resolution": [640, 360], "events": events,
                                     "timeout_s": 30}, tmp_path / "ha-client.log")
        try:
            setup = client.next("setup", 90)
            assert setup["device_info"]["Manufacturer"] == "Watchpost", setup
            assert setup["mac"] == MAC, setup
            assert setup["pull_point_support"] is True, setup
            assert setup["clock"]["type"] == "NTP" and setup["clock"]["skew_s"] < 5, setup
            profiles = {p["token"]: p for p in setup["profiles"]}
            assert {"cam_yard_main", "dashboard"} <= set(profiles), profiles
            assert (profiles["cam_yard_main"]["width"], profiles["cam_yard_main"]["height"]) == (640, 360), profiles
            assert setup["stream_uri"].startswith("rtsp://127.0.0.1:") and "/cameras/yard" in setup["stream_uri"], setup
            # Snapshots. The integration probes the first profile, the offline gate camera:
            # no picture with either scheme but no authentication error, so it keeps no scheme
            # and uses Digest, with which every online profile gives a JPEG. On an online
            # profile the probe settles on Digest.
            assert setup["snapshot_capability"] is True, setup
            assert setup["profiles"][0]["token"] == "cam_gate_main", setup["profiles"]
            assert setup["snapshot_probes"] == {"cam_gate_main": None, "cam_yard_main": "digest",
                                                "dashboard": "digest"}, setup
            assert "snapshot_probe_errors" not in setup, setup
            assert setup["snapshot_auth"] is None, setup
            shots = setup["snapshots"]
            assert shots["cam_yard_main"]["ok"] and shots["dashboard"]["ok"], shots
            assert shots["cam_gate_main"] == {"ok": False}, shots
            # Refused at once from the capture worker's knowledge (a read would take 10 s, past
            # the library's 5 s: the probe's errors above would be timeouts).
            # The rtsp worker's metrics reach /metrics with its next report.
            offline = 'watchpost_rtsp_snapshots_total{profile="cam_gate_main",result="offline"} 3'
            wait_for(lambda: offline in requests.get(a.url("/metrics"), timeout=3).text.splitlines(), 20,
                     interval=0.5, what="three snapshots of the gate camera refused as offline")
            assert setup["snapshot_wrong_password_status"] == 401, setup
            # The first pull: the entities Home Assistant creates at setup.
            initial = setup["initial_events"]
            assert setup["broken_relative_time"] is False, setup
            assert setup["renewed_s"] == 600, setup
            assert initial.get("Digital Input/pir1") is False, initial
            assert initial.get("Motion Alarm/cam_yard") is False, initial
            assert "Person Detection/cam_yard" not in initial, initial

            # Motion and a person in the yard (the detection worker's topics), the sensor in alarm.
            bus.publish("detect/camera/yard/motion", {"active": True})
            bus.publish("detect/camera/yard/object/person", {"active": True, "score": 0.9})
            a.sim.report("pir1", state="alert")
            old = a.pids()
            client.go()
            got = client.next("events", 60)
            assert {k: got["events"].get(k) for k in events} == events, got
            assert got["parse_failures"] == [], got
            entities = {e["name"]: e for e in got["entities"]}
            assert entities["Motion Alarm"]["platform"] == "binary_sensor", entities
            assert entities["Motion Alarm"]["device_class"] == "motion", entities
            assert entities["Person Detection"]["uid"].startswith(MAC), entities
            assert got["subscription_lost"] == [], got

            # The buttons.
            done = client.next("done", 60)
            assert done["set_time"] == "ok", done
            assert done["unsubscribed"] is True, done
            assert "Restarting" in done["reboot"], done
            a.wait_restarted("rtsp", old["rtsp"], timeout=60)
        finally:
            client.stop()
    finally:
        bus.close()
