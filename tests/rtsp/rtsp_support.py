"""Fixtures for the RTSP/ONVIF system tests: a stand-in upstream camera and an appliance with the
rtsp worker restreaming it.

The stand-in camera is ``watchpost-rtsp-testsrc`` (built with the workspace): one H.264 RTSP
stream on 127.0.0.1 that prints ``port=N`` and then one ``media`` line per pipeline it starts,
which is how a test counts upstream reads.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
import requests

from conftest import BIN, wait_for

TESTSRC = Path(os.environ.get("WATCHPOST_RTSP_TESTSRC_BIN", BIN.parent / "watchpost-rtsp-testsrc"))
ADMIN = ("admin", "demo-admin")


class TestSource:
    """A running stand-in camera."""

    __test__ = False  # a helper, not a test class

    def __init__(self, width: int = 640, height: int = 360, fps: int = 10, pattern: str = "ball",
                 keyframe_interval: int | None = None):
        gop = ["--keyframe-interval", str(keyframe_interval)] if keyframe_interval else []
        self.proc = subprocess.Popen(
            [str(TESTSRC), "--width", str(width), "--height", str(height), "--fps", str(fps), "--path", "/stream",
             "--pattern", pattern, *gop],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.PIPE, text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        port_line = wait_for(lambda: next((l for l in self.lines if l.startswith("port=")), None), 10,
                             what="test source listening")
        self.port = int(port_line.split("=", 1)[1])
        self.url = f"rtsp://127.0.0.1:{self.port}/stream"

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.strip())

    def count(self, what: str) -> int:
        return sum(1 for l in self.lines if l == what)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture
def testsrc():
    if not TESTSRC.exists():
        pytest.skip(f"{TESTSRC} is not built (cargo build -p watchpost-rtsp)")
    src = TestSource()
    yield src
    src.stop()


def rtsp_sections(src_url: str | None, **rtsp_overrides) -> dict:
    """The [rtsp] settings of a test appliance: loopback only, discovery without multicast."""
    rtsp = {
        "enabled": True,
        "listen": "127.0.0.1:0",
        "onvif_listen": "127.0.0.1:0",
        "dashboard": {"width": 960, "height": 540, "fps": 2, "page_interval_ms": 3000,
                      "keyframe_interval_frames": 2, "bitrate_kbps": 300},
        "discovery": {"bind": "127.0.0.1", "port": 0, "multicast": False},
        "device": {"name": "Watchpost test", "mac": "02:00:00:00:00:42", "advertise_host": "127.0.0.1"},
    }
    rtsp.update(rtsp_overrides)
    return {"rtsp": rtsp}


def extra_camera_toml(url: str) -> str:
    return (
        "\n[[rtsp.extra_cameras]]\n"
        'id = "cam1"\nname = "Test camera"\n'
        f'url = "{url}"\nsub_url = "{url}"\n'
        "width = 640\nheight = 360\nfps = 10\n"
    )


@pytest.fixture
def rtsp_appliance(appliance_factory, testsrc):
    """An appliance (broker, hub, rtsp) restreaming the test source as camera `cam1`."""
    # The dashboard and device tables are TOML tables: render them after the scalar keys.
    sections = rtsp_sections(testsrc.url)
    rtsp = sections["rtsp"]
    tables = {k: rtsp.pop(k) for k in ("dashboard", "discovery", "device")}
    extra = "".join(
        f"\n[rtsp.{name}]\n" + "".join(f"{k} = {toml(v)}\n" for k, v in body.items())
        for name, body in tables.items()
    ) + extra_camera_toml(testsrc.url)
    a = appliance_factory(sections, extra_toml=extra).start(timeout=30)
    wait_for(lambda: "rtsp.rtsp" in a.listeners and "rtsp.onvif" in a.listeners, 20,
             what="rtsp worker ready")
    a.testsrc = testsrc
    return a


def toml(v) -> str:
    from conftest import toml_value
    return toml_value(v)


def rtsp_url(a, path: str, auth=ADMIN) -> str:
    host, port = a.addr("rtsp.rtsp")
    cred = f"{auth[0]}:{auth[1]}@" if auth else ""
    return f"rtsp://{cred}{host}:{port}{path}"


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


FFPROBE_FAST = ["-v", "error", "-rtsp_transport", "tcp", "-analyzeduration", "1500000", "-probesize", "200000"]


def ffprobe(url: str, timeout: float = 30, transport: str = "tcp") -> dict:
    """Codec, size and frame rate of the first video stream at `url` (RTP over `transport`)."""
    args = [a if a != "tcp" else transport for a in FFPROBE_FAST]
    out = subprocess.run(
        ["ffprobe", *args, "-select_streams", "v:0",
         "-show_entries", "stream=codec_name,width,height,r_frame_rate", "-of", "default=nw=1", url],
        capture_output=True, text=True, timeout=timeout,
    )
    if out.returncode != 0:
        raise RuntimeError(f"ffprobe {url}: {out.stderr.strip()}")
    return dict(line.split("=", 1) for line in out.stdout.split() if "=" in line)


def mount_metric(a, name: str, mount: str) -> float:
    """The value of metric `name` for `mount` in the appliance's /metrics (0 when absent)."""
    text = requests.get(a.url("/metrics"), timeout=3).text
    m = re.search(rf'^{name}{{[^}}]*mount="{re.escape(mount)}"[^}}]*}} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0
