"""``/thermal/<id>``: the colourised picture of a simulated thermal camera, taken by the capture
worker, written to its view ring, and served by the rtsp worker as H.264 (read by ffprobe and
ffmpeg, real clients), with its ONVIF profile and snapshot."""
from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from conftest import wait_for
from rtsp_support import ADMIN, FFPROBE_FAST, ffprobe, have, rtsp_sections, rtsp_url, toml
from rtsp_support import mount_metric as metric

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "capture"))
from capture_support import SimCamera, capture_toml, ffprobe_image  # noqa: E402

pytestmark = pytest.mark.skipif(not (have("ffprobe") and have("ffmpeg")), reason="ffprobe/ffmpeg are not installed")

FPS = 9


def thermal_appliance(appliance_factory, tmp_path: Path):
    sim = SimCamera(tmp_path, "--no-rtsp", "--thermal-port", "0", "--thermal-format", "centikelvin16")
    frames = tmp_path / "frames"
    cam = f"""
[[capture.cameras]]
id = "lepton"
name = "Boiler room"
kind = "thermal"
source = {{ type = "thermal_tcp", address = "{sim.thermal}", fps = {FPS} }}
record = {{ mode = "event" }}
reconnect = {{ initial_ms = 200, max_ms = 1000, stall_timeout_ms = 3000 }}
[capture.cameras.thermal]
format = "centikelvin16"
"""
    sections = rtsp_sections(None)
    rtsp = sections["rtsp"]
    tables = {k: rtsp.pop(k) for k in ("dashboard", "discovery", "device")}
    extra = "".join(
        f"\n[rtsp.{name}]\n" + "".join(f"{k} = {toml(v)}\n" for k, v in body.items())
        for name, body in tables.items()
    ) + capture_toml(cam, frames)
    a = appliance_factory(sections, extra_toml=extra)
    a.sim = sim
    a.ring = frames / "lepton.view.ring"
    return a


def test_thermal_view_is_restreamed(appliance_factory, tmp_path):
    a = thermal_appliance(appliance_factory, tmp_path)
    try:
        a.start(timeout=30)
        wait_for(lambda: "rtsp.rtsp" in a.listeners, 20, what="rtsp worker ready")
        wait_for(lambda: a.ring.exists(), 30, what="the capture worker's view ring")
        url = rtsp_url(a, "/thermal/lepton")

        # Codec, size (160x120 enlarged four times) and the ring's frame rate.
        info = ffprobe(url)
        assert info["codec_name"] == "h264", info
        assert (info["width"], info["height"]) == ("640", "480"), info
        num, den = (int(x) for x in info["r_frame_rate"].split("/"))
        assert num / den == pytest.approx(FPS, rel=0.01), info

        # Shared media: four parallel clients decoding 2 s each, one encoder pipeline.
        before = metric(a, "watchpost_rtsp_media_prepared_total", "/thermal/lepton")

        def read(_):
            return subprocess.run(
                ["ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-i", url, "-t", "2", "-f", "null", "-"],
                capture_output=True, text=True, timeout=60,
            )
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(read, range(4)))
        for r in results:
            assert r.returncode == 0, r.stderr
        assert metric(a, "watchpost_rtsp_media_prepared_total", "/thermal/lepton") - before == 1

        # The picture is the colourised view: a frame grabbed from the stream is not flat.
        shot = tmp_path / "frame.png"
        subprocess.run(["ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-i", url, "-frames:v", "1", "-y",
                        str(shot)], check=True, timeout=60, capture_output=True)
        stats = subprocess.run(
            ["ffprobe", "-v", "error", "-f", "lavfi", f"movie={shot},signalstats",
             "-show_entries", "frame_tags=lavfi.signalstats.YMIN,lavfi.signalstats.YMAX", "-of", "default=nw=1"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout
        tags = dict(line.split("=", 1) for line in stats.split())
        assert int(tags["TAG:lavfi.signalstats.YMAX"]) - int(tags["TAG:lavfi.signalstats.YMIN"]) > 64, tags
    finally:
        a.stop()
        a.sim.stop()


def test_thermal_onvif_profile_and_snapshot(appliance_factory, tmp_path):
    onvif = pytest.importorskip("onvif", reason="onvif-zeep is not installed (make venv)")
    a = thermal_appliance(appliance_factory, tmp_path)
    try:
        a.start(timeout=30)
        wait_for(lambda: "rtsp.onvif" in a.listeners, 20, what="rtsp worker ready")
        wait_for(lambda: a.ring.exists(), 30, what="the capture worker's view ring")
        host, port = a.addr("rtsp.onvif")
        cam = onvif.ONVIFCamera(host, port, *ADMIN, adjust_time=True)
        media = cam.create_media_service()
        profiles = {p.token: p for p in media.GetProfiles()}
        assert "thermal_lepton" in profiles, list(profiles)
        p = profiles["thermal_lepton"]
        assert p.Name == "Boiler room (thermal)"
        res = p.VideoEncoderConfiguration.Resolution
        assert (res.Width, res.Height) == (640, 480)
        uri = media.GetStreamUri({"StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}},
                                  "ProfileToken": "thermal_lepton"}).Uri
        assert uri.endswith("/thermal/lepton"), uri
        info = ffprobe(uri.replace("rtsp://", f"rtsp://{ADMIN[0]}:{ADMIN[1]}@"))
        assert info["codec_name"] == "h264"
        snap = media.GetSnapshotUri({"ProfileToken": "thermal_lepton"}).Uri
        r = wait_for(lambda: (r := requests.get(snap, auth=ADMIN, timeout=10)).status_code == 200 and r, 15,
                     what="a thermal snapshot")
        assert r.headers["content-type"] == "image/jpeg"
        (tmp_path / "thermal.jpg").write_bytes(r.content)
        probe = ffprobe_image(tmp_path / "thermal.jpg")
        assert probe["codec_name"] == "mjpeg" and (probe["width"], probe["height"]) == ("640", "480")
    finally:
        a.stop()
        a.sim.stop()
