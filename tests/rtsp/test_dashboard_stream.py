"""The /dashboard stream, driven through the bus and read back with ffmpeg."""
from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import wait_for
from rtsp_support import have, rtsp_appliance, rtsp_url, testsrc  # noqa: F401

mqtt = pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed (make venv)")
pytestmark = pytest.mark.skipif(not have("ffmpeg"), reason="ffmpeg is not installed")

# Frames are scaled down to this size for the checks.
W, H = 96, 54


class FrameReader:
    """A client decoding the stream continuously into small RGB frames (GStreamer, else ffmpeg)."""

    def __init__(self, url: str):
        if have("gst-launch-1.0"):
            # GStreamer's client adds the least buffering of its own (ffmpeg holds about a
            # frame per decoding thread and stage, seconds at 2 FPS).
            cmd = ["gst-launch-1.0", "-q", "rtspsrc", f"location={url}", "latency=0", "protocols=tcp", "!",
                   "rtph264depay", "!", "avdec_h264", "!", "videoconvert", "!", "videoscale", "!",
                   f"video/x-raw,width={W},height={H},format=RGB", "!", "fdsink", "fd=1", "sync=false"]
        else:
            cmd = ["ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-fflags", "nobuffer", "-flags",
                   "low_delay", "-max_delay", "0", "-threads", "1", "-i", url, "-vf", f"scale={W}:{H}",
                   "-fps_mode", "passthrough", "-pix_fmt", "rgb24", "-f", "rawvideo", "pipe:1"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.frames: list[tuple[float, bytes]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        size = W * H * 3
        assert self.proc.stdout is not None
        while True:
            buf = self.proc.stdout.read(size)
            if len(buf) < size:
                return
            self.frames.append((time.monotonic(), buf))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def red_share(frame: bytes) -> float:
    px = [frame[i:i + 3] for i in range(0, len(frame), 3)]
    return sum(1 for r, g, b in px if r > 150 and g < 60 and b < 60) / len(px)


def client(a) -> "mqtt.Client":
    host, port = a.addr("broker.listen")
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.connect(host, port)
    c.loop_start()
    return c


def publish(c, topic: str, payload: dict) -> None:
    c.publish(topic, json.dumps(payload), qos=1, retain=True).wait_for_publish(5)


def test_alarm_turns_the_dashboard_red(rtsp_appliance):
    a = rtsp_appliance
    c = client(a)
    reader = FrameReader(rtsp_url(a, "/dashboard"))
    try:
        publish(c, "watchpost/sensors/door1/state", {"name": "Front door", "state": "closed", "alarm": False})
        wait_for(lambda: len(reader.frames) >= 2, 30, what="dashboard frames")
        assert red_share(reader.frames[-1][1]) < 0.1
        t0 = time.monotonic()
        publish(c, "watchpost/sensors/door1/state", {"name": "Front door", "state": "open", "alarm": True,
                                                     "battery": 4})
        first_red = wait_for(
            lambda: next((t for t, f in reader.frames if t >= t0 and red_share(f) > 0.6), None),
            20, what="a red alarm frame")
        print(f"alarm to red frame at a connected client: {first_red - t0:.2f} s")
        # A new client connecting right after the alarm: its first frame is the alarm screen.
        grab = subprocess.run(
            ["ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-skip_frame", "nokey", "-i", rtsp_url(a, "/dashboard"),
             "-frames:v", "1",
             "-vf", f"scale={W}:{H}", "-pix_fmt", "rgb24", "-f", "rawvideo", "pipe:1"],
            capture_output=True, timeout=30,
        )
        assert grab.returncode == 0, grab.stderr
        share = red_share(grab.stdout[:W * H * 3])
        if share <= 0.6:
            (Path(os.environ.get("TMPDIR", "/tmp")) / "dashboard-grab.rgb").write_bytes(grab.stdout)
        assert share > 0.6, f"first frame of a new client is {share:.0%} red"
        print(f"alarm to a new client's first frame: {time.monotonic() - t0:.2f} s")
    finally:
        reader.stop()
        c.loop_stop()


def tile_area(frame: bytes) -> bytes:
    # Skip the header rows (title and clock change every second).
    return frame[W * 3 * (H // 8):]


def test_pages_cycle(rtsp_appliance):
    a = rtsp_appliance
    c = client(a)
    # 960x540 fits 4x3 tiles; 30 sensors need three pages.
    for i in range(30):
        publish(c, f"watchpost/sensors/s{i:02}/state", {"name": f"Sensor {i:02}", "state": "closed"})
    reader = FrameReader(rtsp_url(a, "/dashboard"))
    try:
        # page_interval_ms is 3000 in the test config: 7 s of frames span at least two pages.
        wait_for(lambda: len(reader.frames) >= 2 and reader.frames[-1][0] - reader.frames[0][0] > 7, 40,
                 what="7 s of dashboard frames")
        frames = [tile_area(f) for _, f in reader.frames]
        distinct = []
        for f in frames:
            if all(sum(abs(x - y) for x, y in zip(f[::7], d[::7])) > 2000 for d in distinct):
                distinct.append(f)
        assert len(distinct) >= 2, "the tile area never changed: no paging"
    finally:
        reader.stop()
        c.loop_stop()
