"""/metrics through promtool, the API's authentication and shapes, and the embedded broker
through mosquitto's own client."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess

import pytest
import requests

from conftest import wait_for


def test_metrics_pass_promtool(appliance):
    promtool = shutil.which("promtool")
    if not promtool:
        pytest.skip("promtool not installed (scripts/install-deps.sh installs it)")
    text = wait_for(lambda: (t := requests.get(appliance.url("/metrics"), timeout=3).text) and "watchpost_broker_up" in t and t,
                    timeout=10, what="broker metrics")
    r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    for needle in ['watchpost_worker_up{worker="broker"} 1', 'watchpost_worker_up{worker="hub"} 1',
                   "watchpost_worker_restarts_total", "watchpost_worker_heartbeat_age_seconds",
                   "watchpost_build_info{"]:
        assert needle in text


def test_restart_shows_in_metrics_and_event_log(appliance):
    victim = appliance.worker("broker")["pid"]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: 'watchpost_worker_restarts_total{worker="broker"} 1' in requests.get(appliance.url("/metrics"), timeout=3).text,
             timeout=10, what="restart counted")
    def logged():
        r = appliance.get("/api/v1/events?kind=worker.&limit=10")
        items = r.json()["items"]
        return items if any(e["kind"] == "worker.restarted" and e["source"] == "broker" for e in items) else None
    items = wait_for(logged, timeout=10, what="restart event")
    assert items[0]["severity"] in ("warning", "critical")


def test_api_requires_authentication(appliance):
    r = requests.get(appliance.url("/api/v1/system"), timeout=5)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Basic")
    assert r.json()["error"]["code"] == "UNAUTHORIZED"
    assert appliance.get("/api/v1/system", auth=("admin", "wrong")).status_code == 401
    ok = appliance.get("/api/v1/system")
    assert ok.status_code == 200
    assert {w["name"] for w in ok.json()["workers"]} == {"broker", "hub"}
    nf = appliance.get("/api/v1/nope")
    assert nf.status_code == 404 and nf.json()["error"]["code"] == "NOT_FOUND"
    # Unauthenticated requests to unknown API paths do not reveal whether they exist.
    assert requests.get(appliance.url("/api/v1/nope"), timeout=5).status_code == 401


def test_event_list_shape_and_validation(appliance):
    r = appliance.get("/api/v1/events?page=1&limit=5")
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"items", "pagination"}
    assert set(body["pagination"]) == {"page", "limit", "total", "total_pages"}
    bad = appliance.get("/api/v1/events?limit=0")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "INVALID_LIMIT"
    bad = appliance.get("/api/v1/events?order=sideways")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "INVALID_ORDER"


def test_mosquitto_sub_sees_worker_status(appliance):
    if not shutil.which("mosquitto_sub"):
        pytest.skip("mosquitto-clients not installed (scripts/install-deps.sh installs them)")
    host, port = appliance.addr("broker.listen")
    r = subprocess.run(
        ["mosquitto_sub", "-h", host, "-p", str(port), "-t", "watchpost/system/+/status", "-v", "-C", "1", "-W", "10"],
        capture_output=True, text=True, timeout=20,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "watchpost/system/hub/status online"


def test_last_will_marks_a_killed_worker_offline_until_it_is_back(appliance):
    """The broker publishes a SIGKILLed worker's last will (`offline`, retained); the restarted
    worker sets `online` again. Read with Debian's mosquitto_sub as any bus client would."""
    if not shutil.which("mosquitto_sub"):
        pytest.skip("mosquitto-clients not installed (scripts/install-deps.sh installs them)")
    host, port = appliance.addr("broker.listen")
    sub = subprocess.Popen(
        ["mosquitto_sub", "-h", host, "-p", str(port), "-t", "watchpost/system/hub/status", "-v", "-C", "3", "-W", "30"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        # The retained `online` arrives first; then the hub is killed without a chance to say goodbye.
        first = sub.stdout.readline().strip()
        assert first == "watchpost/system/hub/status online"
        victim = appliance.worker("hub")["pid"]
        os.kill(victim, signal.SIGKILL)
        out, err = sub.communicate(timeout=40)
    finally:
        if sub.poll() is None:
            sub.kill()
    assert sub.returncode == 0, err
    assert out.split("\n")[:2] == ["watchpost/system/hub/status offline", "watchpost/system/hub/status online"]
    w = appliance.wait_healthy(10)["workers"]
    assert next(x for x in w if x["name"] == "hub")["pid"] != victim
