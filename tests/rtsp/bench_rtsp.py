"""RTSP benchmark (`make bench-rtsp`): prints figures, asserts nothing.

1. CPU and RSS of the rtsp worker with 1, 10 and 50 loopback clients on one restreamed 1080p
   mount (clients copy the stream without decoding, so that they leave the CPU to the server).
2. Time to first frame for a new client: on a mount already playing, and on an idle one.
3. Dashboard CPU at 1 FPS 1920x1080 with one client, for x264 and openh264.
4. A thermal view (`/thermal/<id>`, 640x480 at 9 fps from a simulated thermal camera through
   the capture worker) with one client: rtsp worker CPU, next to the capture worker's CPU for
   the same picture (it colourises and encodes it once for recording).

Uses the release binaries when present (make bench builds them), else the debug ones.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "rtsp"))

from conftest import Appliance, base_sections, wait_for  # noqa: E402
import rtsp_support as rs  # noqa: E402

CLK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def pick(name: str) -> Path:
    for profile in ("release", "debug"):
        p = ROOT / "target" / profile / name
        if p.exists():
            return p
    sys.exit(f"bench-rtsp: {name} is not built")


BIN = pick("watchpost")
TESTSRC = pick("watchpost-rtsp-testsrc")
SIM = pick("watchpost-sim")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def rss_mb(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 1e6


def measure(pid: int, seconds: float) -> tuple[float, float]:
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    c1, t1 = cpu_seconds(pid), time.monotonic()
    return 100 * (c1 - c0) / (t1 - t0), rss_mb(pid)


def clients(url: str, n: int) -> list[subprocess.Popen]:
    return [
        subprocess.Popen(["ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-i", url, "-c", "copy",
                          "-f", "null", "-"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         stdin=subprocess.DEVNULL)
        for _ in range(n)
    ]


def stop_all(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()


def first_frame_s(url: str) -> float:
    t0 = time.monotonic()
    subprocess.run(["ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-probesize", "32", "-analyzeduration", "0",
                    "-fflags", "nobuffer", "-flags", "low_delay", "-i", url, "-frames:v", "1", "-f", "null", "-"],
                   capture_output=True, timeout=60)
    return time.monotonic() - t0


def appliance(workdir: Path, extra: str) -> Appliance:
    workdir.mkdir(parents=True)
    sections = base_sections(workdir / "data")
    sections["rtsp"] = {"enabled": True, "listen": "127.0.0.1:0", "onvif_listen": "127.0.0.1:0",
                        "rtsp_auth": False, "onvif_auth": False, "max_clients_per_mount": 100}
    os.environ["WATCHPOST_BIN"] = str(BIN)
    import conftest
    conftest.BIN = BIN
    a = Appliance(workdir, sections, extra + "\n[rtsp.discovery]\nenabled = false\n")
    a.start(timeout=60)
    wait_for(lambda: "rtsp.rtsp" in a.listeners, 30, what="rtsp worker")
    return a


def worker_pid(a: Appliance, name: str = "rtsp") -> int:
    return wait_for(lambda: a.worker(name).get("pid"), 10, what=f"{name} pid")


def thermal(tmp: Path) -> None:
    import conftest
    conftest.SIM_BIN = SIM
    sys.path.insert(0, str(ROOT / "tests" / "capture"))
    import capture_support as cs
    cs.SIM_BIN = SIM
    (tmp / "thermal").mkdir()
    sim = cs.SimCamera(tmp / "thermal", "--no-rtsp", "--thermal-port", "0", "--thermal-format", "centikelvin16")
    try:
        cam = f'''
[[capture.cameras]]
id = "lepton"
kind = "thermal"
source = {{ type = "thermal_tcp", address = "{sim.thermal}", fps = 9 }}
record = {{ mode = "event" }}
[capture.cameras.thermal]
format = "centikelvin16"
'''
        extra = "\n[rtsp.dashboard]\nenabled = false\n" + cs.capture_toml(cam, tmp / "thermal" / "frames")
        t = appliance(tmp / "thermal" / "appliance", extra)
        try:
            pid, cap_pid = worker_pid(t), worker_pid(t, "capture")
            wait_for(lambda: (tmp / "thermal" / "frames" / "lepton.view.ring").exists(), 30, what="view ring")
            host, port = t.addr("rtsp.rtsp")
            idle, _ = measure(pid, 3)
            viewer = clients(f"rtsp://{host}:{port}/thermal/lepton", 1)
            time.sleep(4)
            cap0 = cpu_seconds(cap_pid)
            t0 = time.monotonic()
            cpu, rss = measure(pid, 15)
            cap_cpu = 100 * (cpu_seconds(cap_pid) - cap0) / (time.monotonic() - t0)
            stop_all(viewer)
            print(f"thermal view 640x480 at 9 fps, x264, one client: rtsp worker cpu {cpu:.2f} % of one core "
                  f"(idle {idle:.2f} %), rss {rss:.0f} MB; capture worker (decode, colourise, encode the same "
                  f"picture once) {cap_cpu:.2f} %")
        finally:
            t.stop()
    finally:
        sim.stop()


def main() -> None:
    print(f"bench-rtsp: {BIN}")
    tmp = Path(tempfile.mkdtemp(prefix="bench-rtsp-"))
    rs.TESTSRC = TESTSRC
    src = rs.TestSource(width=1920, height=1080, fps=15)
    try:
        a = appliance(tmp / "restream", "\n[rtsp.dashboard]\nenabled = false\n" + rs.extra_camera_toml(src.url)
                      .replace("width = 640\nheight = 360", "width = 1920\nheight = 1080"))
        try:
            pid = worker_pid(a)
            host, port = a.addr("rtsp.rtsp")
            url = f"rtsp://{host}:{port}/cameras/cam1"
            idle_cpu, idle_rss = measure(pid, 3)
            print(f"rtsp worker idle: cpu {idle_cpu:.1f} % of one core, rss {idle_rss:.0f} MB")
            # No independent RTSP restreamer is packaged for this machine (no mediamtx in Debian
            # 12), so there is no peer to run next to it; the figures stand alone.
            print("clients | worker cpu % of one core | worker rss MB")
            for n in (1, 10, 50):
                procs = clients(url, n)
                time.sleep(3)
                cpu, rss = measure(pid, 8)
                alive = sum(1 for p in procs if p.poll() is None)
                stop_all(procs)
                print(f"{n:7d} | {cpu:25.1f} | {rss:13.0f}   ({alive}/{n} clients still reading)")
                time.sleep(2)
            hot = clients(url, 1)
            time.sleep(3)
            warm = [first_frame_s(url) for _ in range(3)]
            stop_all(hot)
            time.sleep(3)
            cold = []
            for _ in range(3):
                cold.append(first_frame_s(url))
                time.sleep(2)
            print(f"time to first frame (ffmpeg low-delay, process start to frame): mount playing "
                  f"{statistics.median(warm):.2f} s, idle mount {statistics.median(cold):.2f} s "
                  f"(upstream keyframe every 1 s)")
        finally:
            a.stop()
        for encoder in ("x264", "openh264"):
            d = appliance(tmp / f"dashboard-{encoder}",
                          f'\n[rtsp.dashboard]\nwidth = 1920\nheight = 1080\nfps = 1\nencoder = "{encoder}"\n')
            try:
                pid = worker_pid(d)
                host, port = d.addr("rtsp.rtsp")
                viewer = clients(f"rtsp://{host}:{port}/dashboard", 1)
                time.sleep(5)
                cpu, rss = measure(pid, 20)
                stop_all(viewer)
                print(f"dashboard 1920x1080 at 1 FPS, {encoder}, one client: worker cpu {cpu:.2f} % of one core "
                      f"(target < 3 %), rss {rss:.0f} MB")
            finally:
                d.stop()
        thermal(tmp)
    finally:
        src.stop()


if __name__ == "__main__":
    main()
