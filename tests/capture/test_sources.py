"""Sources other than RTSP over TCP, and cameras that fail beside working ones: an RTSP camera
over UDP, and an HTTP MJPEG camera (ffmpeg serving `multipart/x-mixed-replace` JPEG frames, the
way IP cameras' `/video.mjpg` do) encoded once, are recorded, snapshotted and listed like any
camera, while an RTSP camera and an MJPEG camera that nobody serves stay offline with their
reason and never disturb them or the worker."""
from __future__ import annotations

import subprocess

import pytest

from capture_support import SimCamera, capture_toml, ffprobe_image, have, mjpeg_server, wait_online  # noqa: F401
from conftest import wait_for

pytestmark = pytest.mark.skipif(not have("ffmpeg") or not have("ffprobe"), reason="ffmpeg/ffprobe are not installed")


def test_mjpeg_camera_records_beside_failing_cameras(appliance_factory, tmp_path, mjpeg_server, held_port):
    # Cameras nobody serves: held ports, where connections are refused for the whole test.
    dead_port, gone_port = held_port(), held_port()
    sim = SimCamera(tmp_path, "--width", "320", "--height", "240", "--fps", "10", "--key-int", "10",
                    "--bitrate-kbps", "200")
    cams = f"""
[[capture.cameras]]
id = "udp"
source = {{ type = "rtsp", url = "{sim.rtsp[0]}", transport = "udp" }}
reconnect = {{ initial_ms = 200, max_ms = 1000, stall_timeout_ms = 3000 }}
[[capture.cameras]]
id = "door"
source = {{ type = "http_mjpeg", url = "{mjpeg_server}", fps = 10 }}
reconnect = {{ initial_ms = 200, max_ms = 1000, stall_timeout_ms = 3000 }}

[[capture.cameras]]
id = "dead"
source = {{ type = "rtsp", url = "rtsp://127.0.0.1:{dead_port}/none" }}
reconnect = {{ initial_ms = 200, max_ms = 1000, stall_timeout_ms = 2000 }}

[[capture.cameras]]
id = "gone"
source = {{ type = "http_mjpeg", url = "http://127.0.0.1:{gone_port}/video.mjpg" }}
reconnect = {{ initial_ms = 200, max_ms = 1000, stall_timeout_ms = 2000 }}
"""
    a = appliance_factory(None, capture_toml(cams, tmp_path / "frames")).start(timeout=30)
    try:
        capture_pid = a.worker("capture")["pid"]
        door = wait_online(a, "door")
        # RTP over UDP (the other cameras of the suite use TCP).
        assert wait_online(a, "udp")["source"]["transport"] == "udp"
        assert door["source"] == {"type": "http_mjpeg", "url": mjpeg_server, "fps": 10}

        # The failing cameras: offline with a reason, retried, and nothing else affected.
        def failing(cam):
            st = a.get(f"/api/v1/cameras/{cam}").json()["status"]
            return st if st["state"] in ("offline", "error") and st["reason"] and st["reconnects"] >= 2 else None
        for cam in ("dead", "gone"):
            st = wait_for(lambda cam=cam: failing(cam), 20, interval=0.3, what=f"{cam} offline and retried")
            print(f"{cam}: {st['state']}: {st['reason']}")
            if cam == "gone":
                assert st["reason"].startswith(f"cannot connect to 127.0.0.1:{gone_port}"), st
        assert a.get("/api/v1/cameras/door").json()["status"]["state"] == "online"

        # The MJPEG camera is recorded as H.264 at its own size, segments readable by ffprobe.
        def closed():
            items = a.get("/api/v1/cameras/door/recordings", params={"order": "oldest"}).json()["items"]
            done = [s for s in items if s["state"] == "closed"]
            return done if len(done) >= 2 else None
        segs = wait_for(closed, 30, interval=0.3, what="two closed MJPEG segments")
        for s in segs:
            assert s["codec"] == "h264" and (s["width"], s["height"]) == (320, 240), s
            path = a.data_dir / "recordings" / s["path"]
            out = subprocess.run(
                ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                 "stream=codec_name,width,height:format=duration", "-of", "default=noprint_wrappers=1", str(path)],
                capture_output=True, text=True, timeout=20, check=True).stdout
            probe = dict(line.split("=", 1) for line in out.split())
            assert (probe["codec_name"], probe["width"], probe["height"]) == ("h264", "320", "240")
            assert abs(float(probe["duration"]) - s["duration_ms"] / 1000) <= 0.5, (probe, s)

        r = a.get("/api/v1/cameras/door/snapshot", timeout=15)
        assert r.status_code == 200, r.text
        (tmp_path / "door.jpg").write_bytes(r.content)
        probe = ffprobe_image(tmp_path / "door.jpg")
        assert (int(probe["width"]), int(probe["height"])) == (320, 240)

        # Still the same worker process, and the failing cameras recorded nothing.
        assert a.worker("capture")["pid"] == capture_pid
        for cam in ("dead", "gone"):
            assert a.get(f"/api/v1/cameras/{cam}/recordings").json()["pagination"]["total"] == 0
        udp = wait_for(lambda: [s for s in a.get("/api/v1/cameras/udp/recordings").json()["items"]
                                if s["state"] == "closed"], 20, interval=0.3, what="a closed UDP segment")
        assert udp[0]["codec"] == "h264" and (udp[0]["width"], udp[0]["height"]) == (320, 240)
    finally:
        a.stop()
        sim.stop()
