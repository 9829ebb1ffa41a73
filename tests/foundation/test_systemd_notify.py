"""sd_notify: READY=1 once essential workers are healthy, STATUS= lines, and WATCHDOG=1 only
while every essential worker is healthy (a systemd stand-in listens on NOTIFY_SOCKET)."""
from __future__ import annotations

import os
import signal
import time

from conftest import NotifyListener, wait_for


def test_ready_status_and_watchdog_gated_on_health(appliance_factory, tmp_path):
    listener = NotifyListener(str(tmp_path / "notify.sock"))
    try:
        # A slow first restart (1.5 s) makes the unhealthy window clearly longer than the ping
        # interval, so a missing ping is observable.
        a = appliance_factory({"supervisor": {"backoff_initial_ms": 1500}})
        # WatchdogSec=1s: the supervisor must ping every 0.5 s while healthy.
        a.start(wait_healthy=False, env={"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "1000000"})
        wait_for(lambda: listener.lines("READY=1"), 15, what="READY=1")
        a.wait_healthy(10)
        wait_for(lambda: len(listener.lines("WATCHDOG=1")) >= 2, 5, what="watchdog pings")
        assert any("workers healthy" in m for _, m in listener.lines("STATUS="))

        # Wedge an essential worker: pings must stop until it is replaced.
        victim = a.worker("hub")["pid"]
        os.kill(victim, signal.SIGSTOP)
        stopped_at = time.monotonic()
        # heartbeat_timeout_ms is 1000 in the fixture: the hub is replaced after about 1 s.
        wait_for(lambda: a.worker("hub")["pid"] != victim and a.health()["status"] == "healthy", 15, what="hub replaced")
        recovered_at = time.monotonic()
        # Pinging resumes once healthy again.
        n_after = lambda: [t for t, _ in listener.lines("WATCHDOG=1") if t > recovered_at]
        wait_for(lambda: len(n_after()) >= 2, 10, what="pings resume")
        pings = [t for t, _ in listener.lines("WATCHDOG=1")]
        # Between the wedge and the first ping after recovery there is a gap far longer than the
        # 0.5 s ping interval: no ping while the hub was unhealthy (heartbeat timeout, then the
        # 1.5 s backoff before its replacement).
        gaps = [b - a_ for a_, b in zip(pings, pings[1:]) if a_ >= stopped_at - 0.6 and a_ <= recovered_at]
        assert gaps and max(gaps) > 1.2, f"watchdog kept pinging while the hub was wedged: gaps {gaps}"
        try:
            os.kill(victim, signal.SIGCONT)
        except ProcessLookupError:
            pass
        a.stop()
        assert listener.lines("STOPPING=1")
    finally:
        listener.close()
