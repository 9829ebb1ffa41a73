"""RTSP mounts of the rtsp worker, read with ffprobe/ffmpeg (real clients)."""
from __future__ import annotations

import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import wait_for
from rtsp_support import FFPROBE_FAST, ffprobe, have, mount_metric, rtsp_appliance, rtsp_url, testsrc  # noqa: F401

pytestmark = pytest.mark.skipif(not have("ffprobe"), reason="ffprobe is not installed")


def test_each_mount_probes_as_h264(rtsp_appliance):
    a = rtsp_appliance
    for path, size in [("/cameras/cam1", ("640", "360")), ("/cameras/cam1/sub", ("640", "360")),
                       ("/dashboard", ("960", "540"))]:
        info = ffprobe(rtsp_url(a, path))
        assert info["codec_name"] == "h264", (path, info)
        assert (info["width"], info["height"]) == size, (path, info)
        num, den = (int(x) for x in info["r_frame_rate"].split("/"))
        assert num > 0 and den > 0, (path, info)


def test_rtp_over_udp_plays_the_restream_and_the_dashboard(rtsp_appliance):
    """RTP over UDP (the RTSP SETUP with client ports that most NVRs try first)."""
    a = rtsp_appliance
    for path in ("/cameras/cam1", "/dashboard"):
        info = ffprobe(rtsp_url(a, path), transport="udp")
        assert info["codec_name"] == "h264", (path, info)
        out = subprocess.run(
            ["ffmpeg", "-v", "error", "-rtsp_transport", "udp", "-i", rtsp_url(a, path), "-t", "2",
             "-map", "0:v:0", "-f", "framemd5", "-"],
            capture_output=True, text=True, timeout=60,
        )
        assert out.returncode == 0, out.stderr
        frames = [l for l in out.stdout.splitlines() if l and not l.startswith("#")]
        assert frames, f"{path}: no frame decoded over UDP"
        wait_for(lambda: mount_metric(a, "watchpost_rtsp_session_starts_total", path) >= 2, 10,
                 what=f"{path} sessions counted")
        assert mount_metric(a, "watchpost_rtsp_bytes_out_total", path) > 0, path
    # The dashboard's render time is measured.
    import requests
    text = requests.get(a.url("/metrics"), timeout=3).text
    render = [l for l in text.splitlines() if l.startswith("watchpost_rtsp_dashboard_render_seconds")]
    assert render and float(render[0].split()[-1]) > 0, render


def test_rtsp_requires_credentials(rtsp_appliance):
    a = rtsp_appliance
    with pytest.raises(RuntimeError, match="401|Unauthorized|authoriz"):
        ffprobe(rtsp_url(a, "/dashboard", auth=None))
    with pytest.raises(RuntimeError):
        ffprobe(rtsp_url(a, "/dashboard", auth=("admin", "wrong-password")))


def test_ten_clients_share_one_upstream_read(rtsp_appliance):
    a = rtsp_appliance
    src = a.testsrc
    before_media, before_clients = src.count("media"), src.count("client")
    url = rtsp_url(a, "/cameras/cam1")

    def read(_):
        # Each client decodes 3 s of video, so that all ten overlap.
        return subprocess.run(
            ["ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-i", url, "-t", "3", "-f", "null", "-"],
            capture_output=True, text=True, timeout=60,
        )

    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(read, range(10)))
    for r in results:
        assert r.returncode == 0, r.stderr
    assert src.count("media") - before_media == 1
    assert src.count("client") - before_clients == 1


def open_camera_appliance(appliance_factory, src_url: str, **rtsp_overrides):
    """An appliance without RTSP authentication, no dashboard and no multicast discovery,
    restreaming `src_url` as camera `cam1`."""
    from rtsp_support import extra_camera_toml, rtsp_sections
    sections = rtsp_sections(src_url, rtsp_auth=False, **rtsp_overrides)
    rtsp = sections["rtsp"]
    for k in ("dashboard", "discovery", "device"):
        rtsp.pop(k)
    extra = '\n[rtsp.discovery]\nbind = "127.0.0.1"\nport = 0\nmulticast = false\n' + \
        '\n[rtsp.dashboard]\nenabled = false\n' + extra_camera_toml(src_url)
    a = appliance_factory(sections, extra_toml=extra).start(timeout=30)
    wait_for(lambda: "rtsp.rtsp" in a.listeners, 20, what="rtsp worker ready")
    return a


def test_client_cap_refuses_extra_players(appliance_factory, testsrc):
    a = open_camera_appliance(appliance_factory, testsrc.url, max_clients_per_mount=1)
    url = rtsp_url(a, "/cameras/cam1", auth=None)
    first = subprocess.Popen(
        ["ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-i", url, "-t", "20", "-f", "null", "-"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        # The cap counts clients from their PLAY on; the upstream read starts earlier (DESCRIBE).
        wait_for(lambda: mount_metric(a, "watchpost_rtsp_clients", "/cameras/cam1") >= 1, 20,
                 what="first client playing")
        second = subprocess.run(["ffprobe", *FFPROBE_FAST, url], capture_output=True, text=True, timeout=30)
        assert second.returncode != 0
        assert "503" in second.stderr or "Unavailable" in second.stderr, second.stderr
        # Metrics reach /metrics with the worker's next push.
        wait_for(lambda: mount_metric(a, "watchpost_rtsp_session_refusals_total", "/cameras/cam1") >= 1, 10,
                 what="refusal counted")
        # One client playing: what is sent is what is produced.
        produced = mount_metric(a, "watchpost_rtsp_payload_bytes_total", "/cameras/cam1")
        sent = mount_metric(a, "watchpost_rtsp_bytes_out_total", "/cameras/cam1")
        assert 0 < sent <= produced, (sent, produced)
    finally:
        first.terminate()
        first.wait(10)
    wait_for(lambda: mount_metric(a, "watchpost_rtsp_clients", "/cameras/cam1") == 0, 10,
             what="clients gauge back to 0")


def rss_kib(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def stuck_client(host: str, port: int, path: str):
    """An RTSP client that sets up RTP over its TCP connection, plays, and never reads again
    (a player that hung), with a small receive buffer so the server's queue is what fills."""
    import socket
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect((host, port))
    s.settimeout(10)
    url = f"rtsp://{host}:{port}{path}"
    buf = b""

    def request(method: str, uri: str, cseq: int, headers: str = "") -> str:
        nonlocal buf
        s.sendall(f"{method} {uri} RTSP/1.0\r\nCSeq: {cseq}\r\n{headers}\r\n".encode())
        while b"\r\n\r\n" not in buf:
            buf += s.recv(4096)
        head, buf = buf.split(b"\r\n\r\n", 1)
        text = head.decode()
        length = int(re.search(r"Content-Length: (\d+)", text).group(1)) if "Content-Length" in text else 0
        while len(buf) < length:
            buf += s.recv(4096)
        body, buf = buf[:length], buf[length:]
        assert " 200 " in text.splitlines()[0], text
        return text + "\r\n\r\n" + body.decode(errors="replace")

    describe = request("DESCRIBE", url, 1, "Accept: application/sdp\r\n")
    control = re.search(r"a=control:(\S+)", describe.split("m=video", 1)[1]).group(1)
    track = control if control.startswith("rtsp://") else f"{url}/{control}"
    setup = request("SETUP", track, 2, "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n")
    session = re.search(r"Session: ([^;\r\n]+)", setup).group(1)
    s.sendall(f"PLAY {url} RTSP/1.0\r\nCSeq: 3\r\nSession: {session}\r\n\r\n".encode())
    return s


def noisy_camera_appliance(appliance_factory, request_stop, **rtsp_overrides):
    """An appliance without RTSP authentication restreaming a 2 Mbit/s noise camera."""
    from rtsp_support import TESTSRC, TestSource
    if not TESTSRC.exists():
        pytest.skip(f"{TESTSRC} is not built (cargo build -p watchpost-rtsp)")
    testsrc = TestSource(pattern="snow")
    request_stop.append(testsrc.stop)
    return open_camera_appliance(appliance_factory, testsrc.url, **rtsp_overrides)


@pytest.fixture
def request_stop():
    stops: list = []
    yield stops
    for stop in stops:
        stop()


def test_a_client_that_stops_reading_costs_bounded_memory(appliance_factory, request_stop):
    """A hung player on RTP over TCP: the server's per-client queue is bounded (the backlog is
    dropped, not buffered), so the worker's memory stays flat while the camera keeps sending,
    and other clients keep playing."""
    # The stall watch would disconnect the hung player after 10 s; here it must stay, so that
    # what is measured is the bound on its backlog.
    a = noisy_camera_appliance(appliance_factory, request_stop, stalled_client_timeout_s=0)
    host, port = a.addr("rtsp.rtsp")
    pid = a.worker("rtsp")["pid"]
    # Warm up: one full play, so the shared media and its buffers exist.
    ffprobe(rtsp_url(a, "/cameras/cam1", auth=None))
    sock = stuck_client(host, port, "/cameras/cam1")
    produced = lambda: mount_metric(a, "watchpost_rtsp_payload_bytes_total", "/cameras/cam1")  # noqa: E731
    try:
        wait_for(lambda: mount_metric(a, "watchpost_rtsp_clients", "/cameras/cam1") >= 1, 20,
                 what="stuck client playing")
        t0 = time.monotonic()
        time.sleep(1)
        b0 = produced()
        # Another player is served normally while the stuck one's backlog fills.
        ok = subprocess.run(
            ["ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-i", rtsp_url(a, "/cameras/cam1", auth=None),
             "-t", "3", "-f", "null", "-"], capture_output=True, text=True, timeout=60)
        assert ok.returncode == 0, ok.stderr
        time.sleep(max(0.0, t0 + 6 - time.monotonic()))
        rate_kib_s = (produced() - b0) / 1024 / (time.monotonic() - t0 - 1)
        # Once the backlog is full the server stops pulling from the shared media; what the
        # camera keeps sending must not pile up in the worker.
        time.sleep(max(0.0, t0 + 14 - time.monotonic()))
        rss1 = rss_kib(pid)
        time.sleep(10)
        rss2 = rss_kib(pid)
        print(f"stuck client: camera at {rate_kib_s:.0f} KiB/s; worker RSS +{rss2 - rss1} KiB over 10 s "
              "once the client's backlog was full")
        assert rate_kib_s * 10 > 1024, "the camera sent too little for the test to mean anything"
        # Unbounded buffering would grow by what the camera sent in those 10 s.
        assert rss2 - rss1 < rate_kib_s * 10 / 4, (rss2 - rss1, rate_kib_s)
    finally:
        sock.close()



def decoded_frames(url: str, frames: int, timeout: float) -> tuple[int, str]:
    """Decodes up to `frames` video frames from `url` over TCP; returns how many were decoded.
    (A frame count, not `-t`: the stream's timestamps jump over a stall of the shared media.)"""
    try:
        out = subprocess.run(
            ["ffmpeg", "-v", "error", "-stats", "-rtsp_transport", "tcp", "-i", url, "-frames:v", str(frames),
             "-f", "null", "-"], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        return 0, "timed out: " + err[-2000:]
    counts = [int(m) for m in re.findall(r"frame=\s*(\d+)", out.stderr)]
    return (counts[-1] if counts else 0), out.stderr[-2000:]


def test_a_hung_player_does_not_starve_players_that_join_later(appliance_factory, request_stop):
    """A player that plays over TCP and then never reads fills its backlog and, alone on the
    mount, holds the shared media's send thread. A player that joins afterwards must still get
    video (the stall watch wakes the stream). The watch's disconnecting is off here, so this
    checks the wake-up alone."""
    a = noisy_camera_appliance(appliance_factory, request_stop, stalled_client_timeout_s=0)
    host, port = a.addr("rtsp.rtsp")
    url = rtsp_url(a, "/cameras/cam1", auth=None)
    sock = stuck_client(host, port, "/cameras/cam1")
    try:
        wait_for(lambda: mount_metric(a, "watchpost_rtsp_clients", "/cameras/cam1") >= 1, 20,
                 what="hung player playing")
        # Wait until its socket buffers and the server's backlog are full and the shared media
        # stops producing (up to ~4 MiB of socket buffer at 2 Mbit/s: about 20 s).
        produced = lambda: mount_metric(a, "watchpost_rtsp_payload_bytes_total", "/cameras/cam1")  # noqa: E731
        deadline = time.monotonic() + 90
        before = produced()
        while True:
            time.sleep(3)
            now = produced()
            if now == before:
                break
            assert time.monotonic() < deadline, "the hung player never held the shared media"
            before = now
        print(f"shared media stalled after {before / 1024:.0f} KiB")
        t0 = time.monotonic()
        frames, err = decoded_frames(url, 30, timeout=60)
        print(f"player joining after a hung one: {frames} frames decoded in {time.monotonic() - t0:.1f} s")
        # Two seconds of the stand-in camera (15 fps); a starved player decodes nothing.
        assert frames == 30, err
        # The hung player is still connected: the new one was served alongside it.
        assert mount_metric(a, "watchpost_rtsp_stalled_clients_closed_total", "/cameras/cam1") == 0
    finally:
        sock.close()


def test_a_hung_player_is_disconnected(appliance_factory, request_stop):
    """With `stalled_client_timeout_s`, a TCP player that takes nothing while the camera keeps
    sending loses its connection and its client slot; a healthy player is left alone."""
    a = noisy_camera_appliance(appliance_factory, request_stop, stalled_client_timeout_s=3,
                               max_clients_per_mount=2)
    host, port = a.addr("rtsp.rtsp")
    url = rtsp_url(a, "/cameras/cam1", auth=None)
    healthy = subprocess.Popen(
        ["ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-i", url, "-t", "40", "-f", "null", "-"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    request_stop.append(lambda: (healthy.kill(), healthy.wait(10)))
    wait_for(lambda: mount_metric(a, "watchpost_rtsp_clients", "/cameras/cam1") >= 1, 20,
             what="healthy player playing")
    sock = stuck_client(host, port, "/cameras/cam1")
    try:
        wait_for(lambda: mount_metric(a, "watchpost_rtsp_stalled_clients_closed_total", "/cameras/cam1") >= 1,
                 40, what="hung player disconnected")
        wait_for(lambda: mount_metric(a, "watchpost_rtsp_clients", "/cameras/cam1") == 1, 10,
                 what="its client slot released")
        # The server closed the connection: after what was buffered, the socket reads EOF.
        sock.settimeout(10)
        while True:
            try:
                chunk = sock.recv(1 << 16)
            except ConnectionResetError:
                break
            if not chunk:
                break
        # The healthy player was not disconnected and still plays.
        assert healthy.poll() is None, healthy.stderr.read() if healthy.stderr else ""
        assert mount_metric(a, "watchpost_rtsp_stalled_clients_closed_total", "/cameras/cam1") == 1
    finally:
        sock.close()
