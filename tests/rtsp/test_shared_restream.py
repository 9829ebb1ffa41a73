"""Restream of a camera the capture worker owns: an HTTP MJPEG camera (ffmpeg serving
`multipart/x-mixed-replace` on a single connection, so a second reader of the camera would
fail) is ingested and encoded once by the capture worker, which shares that H.264 over shared
memory; the rtsp worker serves it at `/cameras/<id>` without reading the camera or encoding
again. ffprobe and ffmpeg are the clients. (V4L2 cameras take the same branch; there is no
V4L2 device on the test machine.)"""
from __future__ import annotations

import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import wait_for
from rtsp_support import ffprobe, have, rtsp_sections, rtsp_url, toml
from rtsp_support import mount_metric as metric

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "capture"))
from capture_support import capture_toml, mjpeg_server, wait_online  # noqa: E402,F401

pytestmark = pytest.mark.skipif(not (have("ffmpeg") and have("ffprobe")), reason="ffmpeg/ffprobe are not installed")


def test_mjpeg_server_restreamed_through_capture(appliance_factory, tmp_path, mjpeg_server):
    cam = f"""
[[capture.cameras]]
id = "door"
name = "Door"
source = {{ type = "http_mjpeg", url = "{mjpeg_server}", fps = 10 }}
reconnect = {{ initial_ms = 200, max_ms = 1000, stall_timeout_ms = 3000 }}
"""
    sections = rtsp_sections(None)
    rtsp = sections["rtsp"]
    tables = {k: rtsp.pop(k) for k in ("dashboard", "discovery", "device")}
    extra = "".join(
        f"\n[rtsp.{name}]\n" + "".join(f"{k} = {toml(v)}\n" for k, v in body.items())
        for name, body in tables.items()
    ) + capture_toml(cam, tmp_path / "frames")
    # A Unix socket path has at most 107 bytes: pytest's directories under xdist
    # (`.../popen-gw1/test_mjpeg_server_restreamed_t0/appliance0/data/run/restream/door.sock`)
    # are longer, and the capture worker would (rightly) record without restreaming.
    short = Path(tempfile.mkdtemp(prefix="wp-"))
    sections["system"] = {"data_dir": str(short / "data")}
    a = appliance_factory(sections, extra_toml=extra).start(timeout=30)
    wait_for(lambda: "rtsp.rtsp" in a.listeners, 20, what="rtsp worker ready")
    wait_online(a, "door")
    sock = a.data_dir / "run" / "restream" / "door.sock"
    # The socket follows the camera's first encoded frames, a moment after "online".
    wait_for(sock.exists, 20, interval=0.1, what="the capture worker's restream socket")
    url = rtsp_url(a, "/cameras/door")

    info = ffprobe(url)
    assert info["codec_name"] == "h264", info
    assert (info["width"], info["height"]) == ("320", "240"), info

    # Three clients at once share one shared-memory reader; the camera (which serves a single
    # connection) keeps being recorded by the capture worker throughout.
    before = metric(a, "watchpost_rtsp_media_prepared_total", "/cameras/door")

    def read(_):
        return subprocess.run(
            ["ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-i", url, "-t", "2", "-f", "null", "-"],
            capture_output=True, text=True, timeout=60,
        )
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(read, range(3)))
    for r in results:
        assert r.returncode == 0, r.stderr
    assert metric(a, "watchpost_rtsp_media_prepared_total", "/cameras/door") - before == 1
    status = a.get("/api/v1/cameras/door").json()["status"]
    assert status["state"] == "online" and status["reconnects"] == 0, status
