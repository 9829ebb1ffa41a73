#!/usr/bin/env python3
"""Capture benchmark (`make bench-capture`).

Records 1080p30 H.264 (passthrough) from the simulated RTSP camera with the capture worker
(``watchpost-capture-standalone``, release) and, in the same run and from the same stream,
with ``ffmpeg -c copy -f segment``; prints CPU (% of one core) and RSS per camera for 1 and 4
cameras and the ratios, and beside them GStreamer's RTSP receive chain alone (``gst-launch-1.0
rtspsrc ! rtph264depay ! h264parse ! fakesink``) as a reference for the library's share, and ``rtspsrc`` alone (``rtspsrc ! fakesink``: RTSP
session, RTP over TCP, jitter buffer, no depayloading) as GStreamer's floor for any recording
path built on it. Then, for one camera with the detection branch on (5 fps, 300x300):
the branch's extra CPU, and the latency from a frame's arrival to its decoded copy in the
shared-memory ring (read by mapping the ring like the detect worker would).

All cameras are clients of one shared mount, so the simulator encodes once whatever N is.
CPU is read from /proc/<pid>/stat (utime + stime, all threads) over a fixed window after a
warm-up; RSS is VmRSS at the end of the window.
"""
from __future__ import annotations

import mmap
import os
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIM = Path(os.environ.get("WATCHPOST_SIM_RELEASE", ROOT / "target/release/watchpost-sim"))
CAPTURE = Path(os.environ.get("WATCHPOST_CAPTURE_STANDALONE", ROOT / "target/release/watchpost-capture-standalone"))
WARMUP_S = float(os.environ.get("BENCH_CAPTURE_WARMUP_S", "6"))
WINDOW_S = float(os.environ.get("BENCH_CAPTURE_WINDOW_S", "20"))
TICK = os.sysconf("SC_CLK_TCK")
WIDTH, HEIGHT, FPS, KBPS = 1920, 1080, 30, 4000
DET_W, DET_H, DET_FPS, SLOTS = 300, 300, 5, 4


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def dir_bytes(d: Path) -> int:
    return sum(p.stat().st_size for p in d.rglob("*.mp4") if p.is_file())


def start_sim() -> tuple[subprocess.Popen, str]:
    p = subprocess.Popen(
        [str(SIM), "camera", "--port", "0", "--width", str(WIDTH), "--height", str(HEIGHT), "--fps", str(FPS),
         "--key-int", str(FPS), "--bitrate-kbps", str(KBPS), "--pattern", "smpte", "--horizontal-speed", "6"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline().split()
    if not line or line[0] != "rtsp":
        raise SystemExit(f"the simulated camera did not start: {line}")
    return p, line[1]


def capture_config(work: Path, url: str, n: int, detect: bool) -> Path:
    cams = "".join(f"""
[[capture.cameras]]
id = "cam{i}"
source = {{ type = "rtsp", url = "{url}" }}
detect = {{ enabled = {str(detect).lower()}, fps = {DET_FPS}, width = {DET_W}, height = {DET_H}, ring_slots = {SLOTS} }}
""" for i in range(n))
    text = f"""
[system]
data_dir = "{work / 'data'}"
log_level = "warn"
[broker]
enabled = false
[bus]
external = "127.0.0.1:9"
[capture]
enabled = true
frames_dir = "{work / 'frames'}"
[capture.recording]
segment_s = 60
fragment_ms = 1000
[capture.storage]
min_free_percent = 0.0
{cams}"""
    path = work / "capture.toml"
    path.write_text(text)
    return path


def wait_growing(dirs: list[Path], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(dir_bytes(d) > 0 for d in dirs):
            return
        time.sleep(0.2)
    raise SystemExit(f"no recording appeared in {dirs}")


def stop(p: subprocess.Popen) -> None:
    if p.poll() is None:
        p.send_signal(signal.SIGINT if p.args[0] in ("ffmpeg", "gst-launch-1.0") else signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def measure(url: str, n: int, detect: bool, with_ffmpeg: bool) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"bench-capture-{n}-"))
    procs: list[subprocess.Popen] = []
    try:
        cfg = capture_config(work, url, n, detect)
        cap = subprocess.Popen([str(CAPTURE), "--config", str(cfg)], stdout=subprocess.DEVNULL,
                               stderr=open(work / "capture.log", "wb"))
        procs.append(cap)
        ffs = []
        if with_ffmpeg:
            for i in range(n):
                out = work / f"ffmpeg{i}"
                out.mkdir()
                ffs.append(subprocess.Popen(
                    ["ffmpeg", "-nostdin", "-loglevel", "error", "-rtsp_transport", "tcp", "-i", url, "-c", "copy",
                     "-f", "segment", "-segment_time", "60", "-reset_timestamps", "1", str(out / "seg%03d.mp4")],
                    stdout=subprocess.DEVNULL, stderr=open(work / f"ffmpeg{i}.log", "wb")))
            procs.extend(ffs)
        gsts = []
        bares = []
        if with_ffmpeg and shutil.which("gst-launch-1.0"):
            # Reference: GStreamer's RTSP receive chain alone (what the worker builds before its
            # appsink), to tell the library's share of the CPU from the worker's own.
            for i in range(n):
                gsts.append(subprocess.Popen(
                    ["gst-launch-1.0", "-q", "rtspsrc", f"location={url}", "protocols=tcp", "!", "rtph264depay", "!",
                     "h264parse", "!", "video/x-h264,stream-format=avc,alignment=au", "!", "fakesink", "sync=false"],
                    stdout=subprocess.DEVNULL, stderr=open(work / f"gst{i}.log", "wb")))
            procs.extend(gsts)
            # GStreamer's floor: rtspsrc alone, its RTP packets dropped in a fakesink.
            for i in range(n):
                bares.append(subprocess.Popen(
                    ["gst-launch-1.0", "-q", "rtspsrc", f"location={url}", "protocols=tcp", "!", "fakesink",
                     "sync=false"],
                    stdout=subprocess.DEVNULL, stderr=open(work / f"bare{i}.log", "wb")))
            procs.extend(bares)
        dirs = [work / "data" / "recordings"] + [work / f"ffmpeg{i}" for i in range(len(ffs))]
        wait_growing(dirs)
        time.sleep(WARMUP_S)
        pids = [p.pid for p in procs]
        c0 = {pid: cpu_s(pid) for pid in pids}
        b0 = [dir_bytes(d) for d in dirs]
        lat = None
        t0 = time.monotonic()
        if detect:
            lat = ring_latency(work / "frames" / "cam0.ring", WINDOW_S)
        else:
            time.sleep(WINDOW_S)
        dt = time.monotonic() - t0
        c1 = {pid: cpu_s(pid) for pid in pids}
        b1 = [dir_bytes(d) for d in dirs]
        res = {
            "n": n,
            "cap_cpu": (c1[cap.pid] - c0[cap.pid]) / dt * 100,
            "cap_rss": rss_mib(cap.pid),
            "cap_rate": (b1[0] - b0[0]) / dt,
            "latency": lat,
        }
        if ffs:
            res["ff_cpu"] = sum(c1[f.pid] - c0[f.pid] for f in ffs) / dt * 100
            res["ff_rss"] = sum(rss_mib(f.pid) for f in ffs)
            res["ff_rate"] = sum(b1[i] - b0[i] for i in range(1, len(dirs))) / dt
        if gsts:
            res["gst_cpu"] = sum(c1[g.pid] - c0[g.pid] for g in gsts) / dt * 100
        if bares:
            res["bare_cpu"] = sum(c1[g.pid] - c0[g.pid] for g in bares) / dt * 100
        for p in procs:
            if p.poll() is not None:
                raise SystemExit(f"{p.args[0]} exited early ({p.returncode}); see {work}")
        return res
    finally:
        for p in procs:
            stop(p)
        shutil.rmtree(work, ignore_errors=True)


def ring_latency(path: Path, seconds: float) -> list[float]:
    """Polls the ring's `latest` word; for each new frame, now - captured_unix_ns (ms)."""
    deadline = time.monotonic() + 10
    while not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"no ring at {path}")
        time.sleep(0.05)
    frame = DET_W * DET_H * 3
    stride = -(-(64 + frame) // 4096) * 4096
    out: list[float] = []
    with open(path, "rb") as f:
        m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        assert m[:8] == b"WPFRING1"
        last = struct.unpack_from("<Q", m, 2048)[0]
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            n = struct.unpack_from("<Q", m, 2048)[0]
            if n != last:
                now = time.time_ns()
                slot = 4096 + (n % SLOTS) * stride
                seq, _pts, captured = struct.unpack_from("<QQQ", m, slot)
                if seq == 2 * n and captured:
                    out.append((now - captured) / 1e6)
                last = n
            time.sleep(0.0005)
        m.close()
    return out


def main() -> None:
    for b in (SIM, CAPTURE):
        if not b.exists():
            raise SystemExit(f"{b} is not built (make bench-capture builds it)")
    if not shutil.which("ffmpeg"):
        raise SystemExit("ffmpeg is not installed")
    sim, url = start_sim()
    try:
        print(f"capture bench: {WIDTH}x{HEIGHT}@{FPS} H.264 ~{KBPS} kbit/s from `watchpost-sim camera` (one shared "
              f"mount), recorded without decoding; warm-up {WARMUP_S:.0f} s, window {WINDOW_S:.0f} s, {os.cpu_count()} cores")
        print("watchpost: fragmented MP4, 1 s fragments, fdatasync per fragment; ffmpeg: -c copy -f segment (mp4)")
        print(f"{'cameras':>7} | {'watchpost CPU %/cam':>19} | {'ffmpeg CPU %/cam':>16} | {'CPU ratio':>9} | "
              f"{'watchpost RSS MiB':>17} | {'ffmpeg RSS MiB':>14} | {'written kB/s/cam (wp / ff)':>26} | "
              f"{'gst receive-only CPU %/cam':>26} | {'rtspsrc alone CPU %/cam':>23}")
        rows = {}
        for n in (1, 4):
            r = measure(url, n, detect=False, with_ffmpeg=True)
            rows[n] = r
            ratio = r["cap_cpu"] / r["ff_cpu"] if r["ff_cpu"] > 0 else float("inf")
            print(f"{n:>7} | {r['cap_cpu'] / n:>19.2f} | {r['ff_cpu'] / n:>16.2f} | {ratio:>9.2f} | "
                  f"{r['cap_rss']:>8.1f} ({r['cap_rss'] / n:4.1f}/cam) | {r['ff_rss'] / n:>9.1f}/cam | "
                  f"{r['cap_rate'] / n / 1000:>11.0f} / {r['ff_rate'] / n / 1000:<12.0f} | "
                  f"{r.get('gst_cpu', float('nan')) / n:>26.2f} | {r.get('bare_cpu', float('nan')) / n:>23.2f}")
        one, four = rows[1], rows[4]
        if "gst_cpu" in one:
            print("gst receive-only: gst-launch-1.0 rtspsrc protocols=tcp ! rtph264depay ! h264parse ! fakesink, "
                  "the worker's receive chain without its recorder; watchpost / gst receive-only: "
                  f"{one['cap_cpu'] / max(one['gst_cpu'], 1e-9):.2f} (1 camera), "
                  f"{four['cap_cpu'] / max(four['gst_cpu'], 1e-9):.2f} (4 cameras)")
        if "bare_cpu" in one:
            print("rtspsrc alone: gst-launch-1.0 rtspsrc protocols=tcp ! fakesink (GStreamer's floor); "
                  f"rtspsrc alone / ffmpeg: {one['bare_cpu'] / max(one['ff_cpu'], 1e-9):.2f} (1 camera), "
                  f"{four['bare_cpu'] / max(four['ff_cpu'], 1e-9):.2f} (4 cameras); watchpost / rtspsrc alone: "
                  f"{one['cap_cpu'] / max(one['bare_cpu'], 1e-9):.2f} (1 camera), "
                  f"{four['cap_cpu'] / max(four['bare_cpu'], 1e-9):.2f} (4 cameras)")
        print(f"per added camera: watchpost +{(four['cap_cpu'] - one['cap_cpu']) / 3:.2f} % CPU, "
              f"+{(four['cap_rss'] - one['cap_rss']) / 3:.1f} MiB RSS; ffmpeg +{(four['ff_cpu'] - one['ff_cpu']) / 3:.2f} % CPU, "
              f"+{(four['ff_rss'] - one['ff_rss']) / 3:.1f} MiB RSS")
        d = measure(url, 1, detect=True, with_ffmpeg=False)
        lat = sorted(d["latency"] or [0.0])
        p95 = lat[min(len(lat) - 1, int(len(lat) * 0.95))]
        print(f"detection branch ({DET_FPS} fps {DET_W}x{DET_H}, decodes every frame of the 1080p30 stream): "
              f"{d['cap_cpu']:.1f} % CPU with it vs {one['cap_cpu']:.1f} % without → +{d['cap_cpu'] - one['cap_cpu']:.1f} % "
              f"of one core; RSS {d['cap_rss']:.1f} MiB")
        print(f"latency frame arrival → ring ({len(lat)} frames, reader polls every 0.5 ms): median "
              f"{statistics.median(lat):.1f} ms, p95 {p95:.1f} ms, max {lat[-1]:.1f} ms")
    finally:
        stop(sim)


if __name__ == "__main__":
    sys.exit(main())
