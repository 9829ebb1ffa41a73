"""`make demo` as a user runs it: scripts/demo.sh on examples/demo.toml with the simulators.

The demo listens on the fixed loopback ports of DESIGN.md (8080, 1883, 5020, 8554, 8000) and its
simulators on theirs, so this is the one system test that cannot use port 0; it skips, saying
which port is taken, when a demo is already running on the machine. The data directory is a
temporary one (WATCHPOST_DEMO_DATA), so a developer's ./data/demo is left alone.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from conftest import ADMIN, BIN, ROOT, SIM_BIN, session_pids, wait_for

# The demo listens on fixed ports: its tests run one after another on one xdist worker.
pytestmark = pytest.mark.xdist_group("demo")

HUB = "http://127.0.0.1:8080"
DEMO_PORTS = (8080, 1883, 5020, 8554, 8000, 8091, 8560, 9100, 12300)
# Every worker the demo config enables, in start order.
DEMO_WORKERS = ["broker", "fieldbus", "capture", "bridge", "rtsp", "monitor", "hub"]


def port_taken(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def health() -> dict:
    return requests.get(f"{HUB}/health", timeout=2).json()


def api(path: str) -> dict:
    r = requests.get(f"{HUB}/api/v1/{path}", auth=ADMIN, timeout=5)
    r.raise_for_status()
    return r.json()


@pytest.fixture
def demo(tmp_path: Path):
    for exe in (BIN, SIM_BIN):
        if not exe.exists():
            pytest.skip(f"{exe} is not built (make build)")
    taken = [p for p in DEMO_PORTS if port_taken(p)]
    if taken:
        pytest.skip(f"demo ports already in use on this machine: {taken} (is a demo running?)")
    env = dict(
        os.environ,
        WATCHPOST_DEMO_BIN=str(BIN),
        WATCHPOST_DEMO_SIM=str(SIM_BIN),
        WATCHPOST_DEMO_DATA=str(tmp_path / "demo"),
    )
    log = open(tmp_path / "demo.log", "wb")
    proc = subprocess.Popen(
        ["bash", "scripts/demo.sh"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        log.close()
        print((tmp_path / "demo.log").read_text(errors="replace")[-3000:])


def test_demo_runs_every_worker_healthy_with_live_simulators(demo):
    t0 = time.monotonic()

    def all_healthy():
        h = health()
        return h if h["status"] == "healthy" and all(w["state"] == "running" for w in h["workers"]) else None

    h = wait_for(all_healthy, timeout=60, interval=0.05, what="the demo to be healthy")
    print(f"demo start to all-healthy: {(time.monotonic() - t0) * 1000:.0f} ms (simulators and build banner included)")
    assert [w["name"] for w in h["workers"]] == DEMO_WORKERS
    for w in h["workers"]:
        assert w["pid"] and w["last_error"] is None, w

    # The simulators feed it: YoLink sensors through the cloud simulator, Neasmart zones through
    # the base-station simulator, cameras online from the RTSP and thermal simulators.
    sensors = wait_for(lambda: api("sensors")["items"], timeout=30, what="YoLink sensors")
    assert all(s["id"] and s["type"] for s in sensors)
    zones = wait_for(lambda: api("neasmart/zones")["items"], timeout=30, what="Neasmart zones")
    assert len(zones) == 4

    def cameras_online():
        cams = api("cameras")["items"]
        return cams if cams and all(c["status"]["state"] == "online" for c in cams) else None

    cams = wait_for(cameras_online, timeout=60, interval=0.2, what="demo cameras online")
    assert {c["id"] for c in cams} == {"yard", "boiler"}
    snap = requests.get(f"{HUB}/api/v1/cameras/yard/snapshot", auth=ADMIN, timeout=10)
    assert snap.status_code == 200 and snap.content[:2] == b"\xff\xd8"

    # Ctrl-C stops the whole demo: the appliance and every simulator, nothing left behind.
    os.killpg(demo.pid, signal.SIGINT)
    demo.wait(timeout=30)
    wait_for(lambda: not session_pids(demo.pid), timeout=15, what="every demo process gone")
