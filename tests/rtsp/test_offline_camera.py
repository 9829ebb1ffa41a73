"""A camera that is down must not hold up the other mounts, and its own mount answers at once.

Three upstreams as `[[rtsp.extra_cameras]]`: `cam1` (the stand-in camera, up), `hung` (a TCP
listener that accepts and never answers, like a camera whose RTSP service hangs: the read waits
for the whole upstream timeout) and `down` (a port where nothing listens). ffprobe and ffmpeg
are the clients.
"""
from __future__ import annotations

import socket
import subprocess
import threading

import pytest

from conftest import wait_for
from rtsp_support import FFPROBE_FAST, have, mount_metric, rtsp_sections, rtsp_url, testsrc, toml  # noqa: F401

pytestmark = pytest.mark.skipif(not (have("ffmpeg") and have("ffprobe")), reason="ffmpeg/ffprobe are not installed")


class Blackhole:
    """Accepts TCP connections and never answers on them."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self):
        self.sock.close()
        for c in self.accepted:
            c.close()


def camera_toml(cam_id: str, url: str) -> str:
    return f'\n[[rtsp.extra_cameras]]\nid = "{cam_id}"\nurl = "{url}"\nwidth = 640\nheight = 360\nfps = 10\n'


def play(url: str, seconds: int = 1) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-i", url, "-t", str(seconds), "-f", "null", "-"],
        capture_output=True, text=True, timeout=60,
    )


def test_an_offline_camera_blocks_no_other_mount_and_answers_at_once(appliance_factory, testsrc, held_port):
    hole = Blackhole()
    down_port = held_port()
    # A long upstream timeout, as with rtspsrc's default of 20 s: the hung camera's read stays
    # pending for the whole time the other mounts are played.
    sections = rtsp_sections(None, upstream_timeout_ms=45000)
    rtsp = sections["rtsp"]
    tables = {k: rtsp.pop(k) for k in ("dashboard", "discovery", "device")}
    extra = "".join(
        f"\n[rtsp.{name}]\n" + "".join(f"{k} = {toml(v)}\n" for k, v in body.items())
        for name, body in tables.items()
    )
    extra += camera_toml("cam1", testsrc.url)
    extra += camera_toml("hung", f"rtsp://127.0.0.1:{hole.port}/stream")
    extra += camera_toml("down", f"rtsp://127.0.0.1:{down_port}/stream")
    a = appliance_factory(sections, extra_toml=extra).start(timeout=30)
    wait_for(lambda: "rtsp.rtsp" in a.listeners, 20, what="rtsp worker ready")
    try:
        # A client asks for the hung camera; the server's read of it waits on the camera.
        pending = subprocess.Popen(
            ["ffprobe", *FFPROBE_FAST, rtsp_url(a, "/cameras/hung")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        try:
            wait_for(lambda: hole.accepted, 20, what="the rtsp worker connecting to the hung camera")
            # Meanwhile, fresh connections to the dashboard and to another camera are served.
            for path in ("/dashboard", "/cameras/cam1"):
                r = play(rtsp_url(a, path))
                assert r.returncode == 0, (path, r.stderr)
            assert pending.poll() is None, "the hung camera's DESCRIBE was expected to be still waiting"
        finally:
            pending.kill()
            pending.wait(10)

        # A camera that refuses connections is known to be offline (connection probe): its
        # DESCRIBE is answered 503 from that knowledge, without a read.
        def refused_from_knowledge():
            r = subprocess.run(["ffprobe", *FFPROBE_FAST, rtsp_url(a, "/cameras/down")],
                               capture_output=True, text=True, timeout=30)
            assert r.returncode != 0
            assert "503" in r.stderr or "Unavailable" in r.stderr, r.stderr
            return mount_metric(a, "watchpost_rtsp_offline_answers_total", "/cameras/down") >= 1
        wait_for(refused_from_knowledge, 30, what="503 for the offline camera, counted as an offline answer")
        # The refused camera was never read by the server (the answer came from the probe).
        assert mount_metric(a, "watchpost_rtsp_media_prepared_total", "/cameras/down") == 0
        # And the camera that is up still plays.
        r = play(rtsp_url(a, "/cameras/cam1"))
        assert r.returncode == 0, r.stderr
    finally:
        hole.close()
