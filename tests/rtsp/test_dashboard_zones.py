"""Only the zones a base station writes show up, in numeric order (issue 17, item 1).

The fieldbus worker publishes every possible zone (5 bases × 12); `watchpost-sim neasmart`
plays a base station writing 11 zones of base 1. The REST list has exactly those 11, in numeric
order (1.2 before 1.10), and a frame of the /dashboard stream decoded by ffmpeg has 11 tiles.
"""
from __future__ import annotations

import subprocess

import pytest

from conftest import SIM_BIN, wait_for
from rtsp_support import have, rtsp_sections, rtsp_url, testsrc, toml  # noqa: F401

pytestmark = pytest.mark.skipif(not have("ffmpeg"), reason="ffmpeg is not installed")

W, H = 960, 540
TILE = (36, 44, 54)
ZONES = 11


def frame(url: str) -> bytes:
    """The fourth frame a new client decodes (the first ones can precede a whole keyframe)."""
    out = subprocess.run(
        ["ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-i", url, "-frames:v", "4",
         "-pix_fmt", "rgb24", "-f", "rawvideo", "pipe:1"], capture_output=True, timeout=30)
    size = W * H * 3
    assert len(out.stdout) >= size and len(out.stdout) % size == 0, out.stderr.decode(errors="replace")[-500:]
    return out.stdout[-size:]


def tiles(f: bytes) -> int:
    """Tiles in a 960x540 dashboard frame (4 columns of 225 px; rows 115 px apart from y=55):
    runs of the tile colour at least 150 px long, 3 px below each tile row's top edge, where
    no text is drawn."""
    count = 0
    for row in range(4):
        y = 55 + row * 115 + 3
        run = 0
        for x in range(W):
            i = (y * W + x) * 3
            if all(abs(f[i + k] - TILE[k]) <= 12 for k in range(3)):
                run += 1
            else:
                count += run >= 150
                run = 0
        count += run >= 150
    return count


@pytest.fixture
def zones_appliance(appliance_factory):
    sections = rtsp_sections(None)
    rtsp = sections["rtsp"]
    tables = {k: rtsp.pop(k) for k in ("dashboard", "discovery", "device")}
    extra = "".join(
        f"\n[rtsp.{name}]\n" + "".join(f"{k} = {toml(v)}\n" for k, v in body.items())
        for name, body in tables.items())
    sections["fieldbus"] = {"enabled": True, "neasmart": {"tcp_listen": "127.0.0.1:0"}}
    a = appliance_factory(sections, extra_toml=extra).start(timeout=30)
    wait_for(lambda: "rtsp.rtsp" in a.listeners, 20, what="rtsp worker ready")
    host, port = a.addr("fieldbus.neasmart.tcp_listen")
    sim = subprocess.Popen([str(SIM_BIN), "neasmart", "--gateway", f"{host}:{port}", "--zones", str(ZONES),
                            "--interval-ms", "500"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    yield a
    sim.terminate()
    sim.wait(10)


def test_only_written_zones_in_numeric_order_on_the_list_and_the_dashboard(zones_appliance):
    a = zones_appliance

    def listed():
        items = a.get("/api/v1/neasmart/zones?limit=100").json()["items"]
        return items if len(items) == ZONES else None

    items = wait_for(listed, 20, interval=0.2, what=f"{ZONES} zones listed")
    assert [(z["base"], z["zone"]) for z in items] == [(1, z) for z in range(1, ZONES + 1)]
    assert all(z["temperature"] is not None for z in items)

    url = rtsp_url(a, "/dashboard")
    seen = []

    def counted():
        seen.append(tiles(frame(url)))
        return seen[-1] == ZONES

    try:
        wait_for(counted, 40, interval=0.5, what=f"{ZONES} tiles on the dashboard")
    finally:
        print("tiles counted per frame:", seen)
    # Every keyframe decodes whole (no concealed slices: tiles keep their size).
    out = subprocess.run(["ffmpeg", "-v", "info", "-rtsp_transport", "tcp", "-i", url, "-frames:v", "6",
                          "-f", "null", "-"], capture_output=True, timeout=30)
    assert b"concealing" not in out.stderr, out.stderr.decode(errors="replace")[-800:]

