"""Helpers for the capture system tests: the simulated camera and an appliance that records it."""
from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import SIM_BIN, HeldPort, wait_for


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


class SimCamera:
    """``watchpost-sim camera`` on port 0 (or the ``--port`` given); ``.rtsp`` and ``.thermal`` are
    the addresses it reports."""

    def __init__(self, workdir: Path, *args: str):
        if not SIM_BIN.exists():
            pytest.skip(f"{SIM_BIN} is not built (cargo build --bin watchpost-sim)")
        self.log = open(workdir / "sim-camera.log", "wb")
        self.proc = subprocess.Popen(
            [str(SIM_BIN), "camera", *([] if "--port" in args else ["--port", "0"]), *args],
            stdout=subprocess.PIPE, stderr=self.log, stdin=subprocess.DEVNULL, text=True,
        )
        self.rtsp: list[str] = []
        self.thermal: str | None = None
        expected = 0 if "--no-rtsp" in args else 1
        expect_thermal = "--thermal-port" in args
        assert self.proc.stdout is not None
        while len(self.rtsp) < expected or (expect_thermal and self.thermal is None):
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"the simulated camera exited with {self.proc.wait()}")
            kind, _, value = line.strip().partition(" ")
            if kind == "rtsp":
                self.rtsp.append(value)
            elif kind == "thermal":
                self.thermal = value.removeprefix("tcp://")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)
        self.log.close()


def capture_toml(cameras: str, frames_dir: Path, extra: str = "") -> str:
    """``[capture]`` tables after the base sections (short segments, no free-space watermark)."""
    return f"""
[capture]
enabled = true
frames_dir = "{frames_dir}"
[capture.recording]
segment_s = 2
fragment_ms = 500
[capture.storage]
min_free_percent = 0.0
check_interval_s = 1
{extra}
{cameras}
"""


def ffprobe_image(path: Path) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=codec_name,width,height",
         "-of", "default=noprint_wrappers=1", str(path)],
        capture_output=True, text=True, timeout=20, check=True,
    ).stdout
    return dict(line.split("=", 1) for line in out.split())


def camera(appliance, cam_id: str) -> dict:
    r = appliance.get(f"/api/v1/cameras/{cam_id}")
    r.raise_for_status()
    return r.json()


def wait_online(appliance, cam_id: str, timeout: float = 30.0) -> dict:
    def online():
        c = camera(appliance, cam_id)
        return c if c["status"]["state"] == "online" and c["status"]["input_fps"] > 0 else None
    return wait_for(online, timeout, interval=0.2, what=f"camera {cam_id} online")


@pytest.fixture
def mjpeg_server(tmp_path):
    """ffmpeg as an MJPEG-over-HTTP camera: 320x240 at 10 fps on one client connection."""
    # ffmpeg cannot report a port it picked: it listens on a held one.
    held = HeldPort()
    port = held.port
    log = open(tmp_path / "ffmpeg-mjpeg.log", "wb")
    proc = subprocess.Popen(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=10",
         "-c:v", "mjpeg", "-q:v", "5", "-f", "mpjpeg", "-content_type", "multipart/x-mixed-replace;boundary=ffmpeg",
         "-listen", "1", f"http://127.0.0.1:{port}/video.mjpg"],
        stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL)

    # ffmpeg serves one connection: wait for the port without connecting to it.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        out = subprocess.run(["ss", "-ltn", f"sport = :{port}"], capture_output=True, text=True).stdout
        if f":{port}" in out:
            break
        time.sleep(0.1)
    else:
        proc.kill()
        held.close()
        pytest.fail(f"ffmpeg did not listen on {port}")
    yield f"http://127.0.0.1:{port}/video.mjpg"
    proc.kill()
    proc.wait()
    log.close()
    held.close()
