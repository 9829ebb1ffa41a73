"""ONVIF profiles report what the capture worker measures on each camera's stream, not nominal
values: an independent ONVIF client (onvif-zeep) reads the resolution, frame rate and GOV length
that ffprobe measures on the same mount. A capture camera that is down is answered 503 at once,
from the capture worker's status."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import wait_for
from rtsp_support import FFPROBE_FAST, TESTSRC, TestSource, ffprobe, have, mount_metric, rtsp_sections, rtsp_url, toml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "capture"))
from capture_support import camera, capture_toml, wait_online  # noqa: E402

onvif = pytest.importorskip("onvif", reason="onvif-zeep is not installed (make venv)")
pytestmark = pytest.mark.skipif(not (have("ffmpeg") and have("ffprobe")), reason="ffmpeg/ffprobe are not installed")

ADMIN = ("admin", "demo-admin")


def wsdl_dir() -> str:
    return str(Path(onvif.__file__).resolve().parent.parent / "wsdl")


def keyframe_intervals(url: str, seconds: int = 5) -> list[int]:
    """Frames from one keyframe to the next over `seconds` of the stream, as ffprobe sees them
    (frames counted once per timestamp: ffmpeg's RTSP reader reports a keyframe that arrives
    with its parameter sets twice)."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-select_streams", "v:0",
         "-read_intervals", f"%+{seconds}", "-show_entries", "frame=key_frame,pts", "-of", "csv=p=0", url],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    frames: dict[str, bool] = {}
    for line in out.stdout.splitlines():
        fields = line.strip().split(",")
        if len(fields) >= 2 and fields[0] in ("0", "1") and fields[1] not in ("", "N/A"):
            frames[fields[1]] = frames.get(fields[1], False) or fields[0] == "1"
    keys = [i for i, key in enumerate(frames.values()) if key]
    return [b - a for a, b in zip(keys, keys[1:])]


@pytest.fixture
def camera_720p15():
    """The issue's camera: 1280x720 at 15 fps with a keyframe every 30 frames (2 s)."""
    if not TESTSRC.exists():
        pytest.skip(f"{TESTSRC} is not built (cargo build -p watchpost-rtsp)")
    src = TestSource(width=1280, height=720, fps=15, keyframe_interval=30)
    yield src
    src.stop()


def test_onvif_profile_reports_the_measured_stream(appliance_factory, tmp_path, held_port, camera_720p15):
    down_port = held_port()
    cams = f"""
[[capture.cameras]]
id = "yard"
name = "Yard"
source = {{ type = "rtsp", url = "{camera_720p15.url}" }}
reconnect = {{ initial_ms = 200, max_ms = 1000, stall_timeout_ms = 3000 }}

[[capture.cameras]]
id = "gate"
name = "Gate"
source = {{ type = "rtsp", url = "rtsp://127.0.0.1:{down_port}/stream" }}
reconnect = {{ initial_ms = 200, max_ms = 1000, stall_timeout_ms = 3000 }}
"""
    sections = rtsp_sections(None)
    rtsp = sections["rtsp"]
    tables = {k: rtsp.pop(k) for k in ("dashboard", "discovery", "device")}
    extra = "".join(
        f"\n[rtsp.{name}]\n" + "".join(f"{k} = {toml(v)}\n" for k, v in body.items())
        for name, body in tables.items()
    ) + capture_toml(cams, tmp_path / "frames")
    a = appliance_factory(sections, extra_toml=extra).start(timeout=30)
    wait_for(lambda: "rtsp.rtsp" in a.listeners and "rtsp.onvif" in a.listeners, 20, what="rtsp worker ready")
    wait_online(a, "yard")

    host, port = a.addr("rtsp.onvif")
    media = onvif.ONVIFCamera(host, port, *ADMIN, wsdl_dir()).create_media_service()

    def measured_profile():
        p = next(p for p in media.GetProfiles() if p.token == "cam_yard_main")
        vec = p.VideoEncoderConfiguration
        got = (vec.Resolution.Width, vec.Resolution.Height, vec.RateControl.FrameRateLimit, vec.H264.GovLength)
        return p if got == (1280, 720, 15, 30) else None
    # The capture worker publishes its status every 10 s; the rate needs two of them.
    profile = wait_for(measured_profile, 40, interval=1, what="the profile showing the measured stream")

    # What ffprobe measures on the same stream.
    uri_req = media.create_type("GetStreamUri")
    uri_req.ProfileToken = "cam_yard_main"
    uri_req.StreamSetup = {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}
    uri = media.GetStreamUri(uri_req).Uri
    scheme, rest = uri.split("://", 1)
    url = f"{scheme}://{ADMIN[0]}:{ADMIN[1]}@{rest}"
    info = ffprobe(url)
    num, den = (int(x) for x in info["r_frame_rate"].split("/"))
    vec = profile.VideoEncoderConfiguration
    assert (int(info["width"]), int(info["height"])) == (vec.Resolution.Width, vec.Resolution.Height), info
    assert round(num / den) == vec.RateControl.FrameRateLimit, info
    intervals = keyframe_intervals(url)
    assert intervals and set(intervals) == {vec.H264.GovLength}, intervals
    assert vec.RateControl.BitrateLimit != 4096 and vec.RateControl.BitrateLimit > 0
    # The single-configuration call and the video source say the same.
    one = media.GetVideoEncoderConfiguration({"ConfigurationToken": vec.token})
    assert (one.Resolution.Width, one.Resolution.Height, one.H264.GovLength) == (1280, 720, 30)
    sources = {s.token: s for s in media.GetVideoSources()}
    assert (sources["cam_yard"].Resolution.Width, sources["cam_yard"].Resolution.Height) == (1280, 720)
    assert sources["cam_yard"].Framerate == 15

    # The camera that is down: the capture worker says so, and its mount is answered 503 from
    # that knowledge, without a read of the camera.
    wait_for(lambda: camera(a, "gate")["status"]["state"] in ("offline", "error"), 30, what="gate offline")

    def refused_from_knowledge():
        r = subprocess.run(["ffprobe", *FFPROBE_FAST, rtsp_url(a, "/cameras/gate")],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode != 0
        assert "503" in r.stderr or "Unavailable" in r.stderr, r.stderr
        return mount_metric(a, "watchpost_rtsp_offline_answers_total", "/cameras/gate") >= 1
    wait_for(refused_from_knowledge, 30, what="503 for the offline capture camera, counted as an offline answer")
