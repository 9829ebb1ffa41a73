"""The supervisor↔worker contract (docs/supervisor.md), against the built binary."""
from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from conftest import children_of, pid_alive, wait_for


def test_all_workers_healthy_and_listed(appliance_factory):
    a = appliance_factory()
    t0 = time.monotonic()
    a.start(wait_healthy=False)
    h = a.wait_healthy(timeout=15)
    elapsed = time.monotonic() - t0
    print(f"start to all-healthy: {elapsed * 1000:.0f} ms")
    names = [w["name"] for w in h["workers"]]
    assert names == ["broker", "hub"]
    for w in h["workers"]:
        assert w["state"] == "running"
        assert w["pid"] and pid_alive(w["pid"])
        assert w["restarts"] == 0
        assert w["heartbeat_age_ms"] is not None and w["heartbeat_age_ms"] < 1000
        assert w["last_error"] is None
    assert h["version"] and h["uptime_s"] >= 0
    # Workers are children of the supervisor.
    kids = set(children_of(a.proc.pid))
    assert {w["pid"] for w in h["workers"]} <= kids


def test_kill_9_worker_is_restarted_and_others_untouched(appliance):
    before = {w["name"]: w for w in appliance.health()["workers"]}
    victim = before["broker"]["pid"]
    os.kill(victim, signal.SIGKILL)
    t0 = time.monotonic()

    def back():
        w = appliance.worker("broker")
        return w if w["state"] == "running" and w["pid"] != victim and w["restarts"] == 1 else None

    w = wait_for(back, timeout=10, what="broker restarted")
    print(f"restart after kill -9: {(time.monotonic() - t0) * 1000:.0f} ms")
    assert "SIGKILL" in (w["last_error"] or "")
    assert appliance.worker("hub")["pid"] == before["hub"]["pid"]
    assert appliance.worker("hub")["restarts"] == 0
    appliance.wait_healthy(5)


def test_stopped_worker_is_detected_by_missed_heartbeats(appliance):
    victim = appliance.worker("broker")["pid"]
    os.kill(victim, signal.SIGSTOP)
    try:
        def restarted():
            w = appliance.worker("broker")
            return w if w["pid"] != victim and w["state"] == "running" else None

        w = wait_for(restarted, timeout=10, what="stopped broker replaced")
        assert "no heartbeat" in w["last_error"]
        assert w["restarts"] == 1
        wait_for(lambda: not pid_alive(victim), timeout=5, what="stopped process killed")
    finally:
        try:
            os.kill(victim, signal.SIGCONT)
        except ProcessLookupError:
            pass


def test_configuration_exit_is_failed_not_restarted(appliance_factory):
    # The detect worker is not part of this build yet: enabling it makes the worker exit with
    # the configuration code (78) and its reason, which is what this test needs.
    a = appliance_factory({"detect": {"enabled": True}}).start(wait_healthy=False)

    def failed():
        h = a.health()
        w = next(w for w in h["workers"] if w["name"] == "detect")
        return (h, w) if w["state"] == "failed" else None

    h, w = wait_for(failed, timeout=15, what="detect failed")
    assert "not available in this build" in w["last_error"]
    assert "code 78" in w["last_error"]
    assert h["status"] == "degraded"  # detect is not essential
    time.sleep(1.0)  # long enough for several backoff periods: it must not come back
    w2 = a.worker("detect")
    assert w2["state"] == "failed" and w2["restarts"] == 0 and w2["pid"] is None


def test_sigterm_stops_every_child_within_grace(appliance):
    sup = appliance.proc.pid
    kids = children_of(sup)
    assert len(kids) == 2
    t0 = time.monotonic()
    code = appliance.stop(timeout=10)
    print(f"graceful stop: {(time.monotonic() - t0) * 1000:.0f} ms")
    assert code == 0
    for pid in kids:
        assert not pid_alive(pid), f"worker {pid} outlived the supervisor"


def test_workers_die_with_a_killed_supervisor(appliance):
    kids = children_of(appliance.proc.pid)
    appliance.proc.send_signal(signal.SIGKILL)
    appliance.proc.wait(5)
    for pid in kids:
        wait_for(lambda: not pid_alive(pid), timeout=5, what=f"orphan {pid} gone")


def test_bind_failure_is_restarted_with_backoff(appliance_factory):
    import socket

    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    try:
        a = appliance_factory({"broker": {"listen": f"127.0.0.1:{port}"}}).start(wait_healthy=False)

        def unhealthy_with_restarts():
            h = a.health()
            b = next(w for w in h["workers"] if w["name"] == "broker")
            return h if b["restarts"] >= 2 and h["status"] == "unhealthy" else None

        h = wait_for(unhealthy_with_restarts, timeout=15, what="broker restarting")
        b = next(w for w in h["workers"] if w["name"] == "broker")
        assert b["state"] in ("backoff", "starting")
    finally:
        blocker.close()
    # Once the port is free, the broker comes up on its own.
    a.wait_healthy(timeout=15)
