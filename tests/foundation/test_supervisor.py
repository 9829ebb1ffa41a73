"""The supervisor↔worker contract (docs/supervisor.md), against the built binary."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import pytest

from conftest import BIN, NotifyListener, children_of, pid_alive, wait_for


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


def hub_starts(a) -> int:
    """How often the supervisor started the hub, from its log."""
    text = a.log_path.read_text(errors="replace")
    return len(re.findall(r'worker started.*worker="?hub"?[ ,]', text))


def test_configuration_exit_is_failed_not_restarted(appliance_factory, tmp_path):
    """A configuration error that only the worker finds when it starts: check-config accepts a
    user whose `password_hash` is not a PHC string (it checks that a password is given), and the
    hub exits with the configuration code (78) when it builds its users table. The supervisor
    marks it failed with the reason and does not start it again. The hub serves /health, so the
    supervisor is watched as systemd watches it: its STATUS= lines, its children and its log."""
    ops = '\n[[auth.users]]\nname = "ops"\npassword_hash = "not-a-phc-string"\nrole = "viewer"\n'
    a = appliance_factory(None, ops)
    # The premise: nothing before the hub's own start sees the error.
    check = subprocess.run([str(BIN), "check-config", str(a.config_path)], capture_output=True, text=True,
                           timeout=30)
    assert check.returncode == 0, (
        "check-config now rejects the hash: this test needs another error found only at a worker's start\n"
        + check.stdout + check.stderr)
    notify_path = str(tmp_path / "notify.sock")
    notify = NotifyListener(notify_path)
    try:
        a.start(wait_healthy=False, env={"NOTIFY_SOCKET": notify_path})

        def status() -> str:
            lines = notify.lines("STATUS=")
            return lines[-1][1] if lines else ""

        wait_for(lambda: "failed: hub" in status(), 15, what="the hub failed")
        assert status() == "STATUS=1/2 workers healthy; failed: hub"
        log = a.log_path.read_text(errors="replace")
        reason = re.search(r"configuration error: not restarting.*", log)
        assert reason, log[-3000:]
        assert "worker=hub" in reason[0] and "not a PHC string" in reason[0] and "code 78" in reason[0], reason[0]
        # Started once: a restart loop reaches `failed` only when its budget is spent (six starts).
        assert hub_starts(a) == 1
        # Not started again later: the broker, killed now, comes back through the supervisor's
        # backoff (longer than the one the hub would have had) while the hub stays down.
        (victim,) = children_of(a.proc.pid)
        seen = len(notify.lines("STATUS="))
        os.kill(victim, signal.SIGKILL)

        def broker_back() -> bool:
            later = [m for _, m in notify.lines("STATUS=")[seen:]]
            kids = children_of(a.proc.pid)
            return bool(later) and later[-1] == "STATUS=1/2 workers healthy; failed: hub" and victim not in kids

        wait_for(broker_back, 15, what="the broker restarted")
        assert len(children_of(a.proc.pid)) == 1
        assert hub_starts(a) == 1
    finally:
        notify.close()


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
