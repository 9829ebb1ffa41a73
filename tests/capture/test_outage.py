"""A camera that goes away and comes back, seen through the hub's camera API and /metrics:
status online, then offline with a reason, then online again by itself with the reconnect
counted; the recording index shows the hole; the per-camera figures (input fps, bitrate,
dropped frames, recording bytes/s, disk usage) are reported while it records. The 20 s
outage of the acceptance, checked against the segment files, is in the capture crate's
recording test (`make test-capture`); this one uses a shorter outage."""
from __future__ import annotations

import re
import time

import pytest
import requests

from capture_support import SimCamera, camera, capture_toml, have, wait_online
from conftest import wait_for

pytestmark = pytest.mark.skipif(not have("ffprobe"), reason="ffprobe is not installed")

OUTAGE_S = 6


def metric(a, name: str, cam: str) -> float | None:
    text = requests.get(a.url("/metrics"), timeout=3).text
    m = re.search(rf'^{name}{{[^}}]*camera="{cam}"[^}}]*}} (\S+)$', text, re.M)
    return float(m.group(1)) if m else None


def test_camera_outage_shows_offline_then_online_with_the_gap_in_the_index(appliance_factory, tmp_path, held_port):
    # The camera comes back on the same address: its port is held through the outage.
    port = held_port()
    sim_args = ("--port", str(port), "--width", "320", "--height", "240", "--fps", "15", "--key-int", "15",
                "--bitrate-kbps", "300")
    sim = SimCamera(tmp_path, *sim_args)
    cams = f"""
[[capture.cameras]]
id = "yard"
source = {{ type = "rtsp", url = "{sim.rtsp[0]}" }}
reconnect = {{ initial_ms = 200, max_ms = 1000, stall_timeout_ms = 1500 }}
"""
    a = appliance_factory({}, capture_toml(cams, tmp_path / "frames")).start(timeout=30)
    try:
        st = wait_online(a, "yard")["status"]
        assert st["reconnects"] == 0 and st["reason"] is None
        # While it records: every figure of the status and its metric.
        def recording():
            s = camera(a, "yard")["status"]
            return s if s["recording"] and s["recording_bytes_per_s"] > 0 and s["disk_used_bytes"] > 0 else None
        st = wait_for(recording, 20, interval=0.3, what="recording figures")
        assert st["input_fps"] > 0 and st["bitrate_bps"] > 0 and st["frames_dropped"] >= 0
        wait_for(lambda: (metric(a, "watchpost_capture_recording_bytes_per_second", "yard") or 0) > 0, 10,
                 what="recording bytes/s metric")
        assert (metric(a, "watchpost_capture_disk_used_bytes", "yard") or 0) > 0
        assert metric(a, "watchpost_capture_dropped_frames_total", "yard") is not None
        assert metric(a, "watchpost_capture_camera_online", "yard") == 1

        # The camera goes away: offline, with the reason, and retried.
        sim.stop()
        down_at = time.time()
        st = wait_for(lambda: (s := camera(a, "yard")["status"])["state"] in ("offline", "error") and s, 15,
                      interval=0.2, what="camera offline")
        assert st["reason"], st
        wait_for(lambda: metric(a, "watchpost_capture_camera_online", "yard") == 0, 10, what="online metric 0")
        time.sleep(max(0.0, down_at + OUTAGE_S - time.time()))

        # It comes back on the same address: online again by itself, the reconnect counted.
        sim = SimCamera(tmp_path, *sim_args)
        st = wait_online(a, "yard", timeout=30)["status"]
        assert st["reconnects"] >= 1 and st["reason"] is None, st

        # The index has a hole of about the outage between two segments.
        def hole_us():
            items = a.get("/api/v1/cameras/yard/recordings", params={"order": "oldest", "limit": 100}).json()["items"]
            closed = [s for s in items if s["state"] != "open"]
            gaps = [b["start_us"] - x["end_us"] for x, b in zip(closed, closed[1:])]
            return max(gaps) if gaps and closed[-1]["start_us"] > down_at * 1e6 else None
        gap = wait_for(hole_us, 30, interval=0.5, what="a segment after the outage")
        assert (OUTAGE_S - 2) * 1e6 <= gap <= (OUTAGE_S + 15) * 1e6, gap
    finally:
        a.stop()
        sim.stop()
