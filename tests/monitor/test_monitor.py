"""The monitor worker against real peers: ICMP echo into a network namespace whose nftables drop
a given share of the echo requests (loss measured, a threshold rule raised and cleared with
hysteresis, recorded in the event store), an HTTP JSON endpoint (a small Python server) with
fields picked by JSON Pointer, and kill -9 of the worker while the hub and its alarm service
keep running.

Loss: nftables' ``numgen inc mod 10 < N`` drops exactly N of every ten echo requests, so any
100 consecutive echoes hold exactly 10·N losses: the figure the worker reports over its window of
100 is compared with the configured share (within 5 percentage points, as the acceptance asks),
without the spread a random drop would give a test of this length.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from conftest import VethNamespace, wait_for  # noqa: E402


class Namespace(VethNamespace):
    """A pinged host: a namespace joined to ours by a veth pair, whose nftables can drop a
    share of the echo requests."""

    def __init__(self):
        super().__init__("mo", 150)
        try:
            self._nft("add table inet wpmon\n"
                      "add chain inet wpmon input { type filter hook input priority 0; policy accept; }\n")
        except Exception:
            self.close()
            raise

    def _nft(self, script: str) -> None:
        subprocess.run(self.exec(["nft", "-f", "-"]), check=True, capture_output=True, timeout=10,
                       input=script, text=True)

    def drop_tenths(self, n: int) -> None:
        """Drops ``n`` of every ten echo requests that reach the namespace (0: none)."""
        script = "flush chain inet wpmon input\n"
        if n:
            script += (f"add rule inet wpmon input ip protocol icmp icmp type echo-request "
                       f"numgen inc mod 10 < {n} counter drop\n")
        self._nft(script)


@pytest.fixture
def netns():
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("a network namespace needs root and iproute2 (`ip`)")
    if shutil.which("nft") is None:
        pytest.skip("nft is not installed (scripts/install-deps.sh installs nftables)")
    try:
        ns = Namespace()
    except subprocess.CalledProcessError as e:
        pytest.skip(f"cannot create a network namespace: {e.stderr}")
    yield ns
    ns.close()


def target(appliance, tid: str) -> dict:
    r = appliance.get(f"/api/v1/monitor/{tid}")
    assert r.status_code == 200, r.text
    return r.json()


def figure(t: dict, metric: str, item: str | None = None) -> float | None:
    for f in t["figures"]:
        if f["metric"] == metric and f.get("item") == item:
            return f["value"]
    return None


def monitor_events(appliance, kind: str) -> list[dict]:
    r = appliance.get("/api/v1/events", params={"kind": kind, "limit": 100})
    assert r.status_code == 200, r.text
    return r.json()["items"]


def test_ping_loss_and_a_threshold_with_hysteresis_in_a_network_namespace(appliance_factory, netns):
    netns.drop_tenths(3)
    a = appliance_factory({
        "monitor": {"enabled": True, "system": False},
    }, extra_toml=f"""
[[monitor.ping]]
id = "peer"
name = "Peer in a namespace"
host = "{netns.inner}"
interval_ms = 20
timeout_ms = 300
window = 100

[[monitor.rules]]
id = "peer-loss"
target = "peer"
metric = "loss_percent"
above = 20.0
clear_at = 5.0
for_s = 1
""").start()

    def settled(loss: float):
        def check():
            t = target(a, "peer")
            value = figure(t, "loss_percent")
            if figure(t, "echoes") == 100 and value is not None and abs(value - loss) <= 5:
                return t
            return None
        return check

    # 30 % dropped: measured within 5 points, and the rule raises (after its second).
    t = wait_for(settled(30), 30, interval=0.2, what="30 % loss measured over 100 echoes")
    assert abs(figure(t, "loss_percent") - 30) <= 5, t
    print(f"30 % dropped: loss {figure(t, 'loss_percent')} %, rtt avg {figure(t, 'rtt_avg_ms'):.3f} ms, "
          f"jitter {figure(t, 'jitter_ms'):.3f} ms over {figure(t, 'echoes'):.0f} echoes")
    assert figure(t, "rtt_avg_ms") is not None and figure(t, "rtt_min_ms") <= figure(t, "rtt_max_ms")
    assert figure(t, "jitter_ms") is not None
    t = wait_for(lambda: (x := target(a, "peer"))["alerts"] and x, 30, interval=0.2, what="the rule raised")
    assert t["alerts"][0]["rule"] == "peer-loss" and t["alerts"][0]["threshold"] == 20.0
    raised = wait_for(lambda: monitor_events(a, "monitor.raised"), 15, interval=0.2, what="monitor.raised recorded")
    assert raised[0]["source"] == "peer" and raised[0]["severity"] == "warning"
    assert raised[0]["body"]["rule"] == "peer-loss" and raised[0]["body"]["value"] > 20

    # 10 %: under the threshold but above clear_at: the rule stays raised.
    netns.drop_tenths(1)
    t = wait_for(settled(10), 30, interval=0.2, what="10 % loss measured over 100 echoes")
    print(f"10 % dropped: loss {figure(t, 'loss_percent')} %")
    t = target(a, "peer")
    assert [x["rule"] for x in t["alerts"]] == ["peer-loss"], t
    assert monitor_events(a, "monitor.cleared") == []

    # Nothing dropped: back under clear_at, the rule clears.
    netns.drop_tenths(0)
    wait_for(lambda: not target(a, "peer")["alerts"], 30, interval=0.2, what="the rule cleared")
    cleared = wait_for(lambda: monitor_events(a, "monitor.cleared"), 15, interval=0.2, what="monitor.cleared recorded")
    assert cleared[0]["source"] == "peer" and cleared[0]["body"]["value"] <= 5
    assert len(monitor_events(a, "monitor.raised")) == 1

    # The worker pushes its metrics about once a second.
    text = wait_for(lambda: (x := requests.get(a.url("/metrics"), timeout=5).text)
                    and 'watchpost_monitor_rule_events_total{rule="peer-loss",transition="cleared"} 1' in x and x,
                    15, interval=0.2, what="the cleared event counted on /metrics")
    assert 'watchpost_monitor_target_up{target="peer",kind="ping"} 1' in text


class _Device(BaseHTTPRequestHandler):
    body = {"device": {"name": "enc-1", "temp": 41.5, "streaming": True},
            "inputs": [{"bitrate_kbps": 4500}]}

    def do_GET(self):  # noqa: N802 - the http.server API
        if self.path == "/status":
            data = json.dumps(self.body).encode()
            self.send_response(200)
        else:
            data = b'{"error": "no such page"}'
            self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def device():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Device)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_json_probe_and_kill_9_of_the_worker(appliance_factory, device):
    a = appliance_factory({
        "monitor": {"enabled": True, "system_interval_ms": 1000},
    }, extra_toml=f"""
[[monitor.http]]
id = "encoder"
url = "{device}/status"
interval_ms = 300
fields = {{ temp = "/device/temp", bitrate = "/inputs/0/bitrate_kbps", streaming = "/device/streaming", model = "/device/name" }}

[[monitor.http]]
id = "missing"
url = "{device}/nope"
interval_ms = 300
""").start()

    def up(tid: str):
        def check():
            t = target(a, tid)
            return t if t["state"] == "up" and t["probes"] > 0 else None
        return check

    t = wait_for(up("encoder"), 20, interval=0.1, what="the encoder probed")
    assert figure(t, "temp") == 41.5
    assert figure(t, "bitrate") == 4500
    assert figure(t, "streaming") == 1
    assert figure(t, "status_code") == 200
    assert figure(t, "latency_ms") is not None
    assert t["fields"] == {"model": "enc-1"}
    missing = wait_for(lambda: (x := target(a, "missing"))["state"] == "down" and x, 20, interval=0.1,
                       what="the missing page down")
    assert "status 404" in missing["reason"] and figure(missing, "status_code") == 404
    system = wait_for(lambda: figure(x := target(a, "system"), "cpu_percent") is not None and x, 20,
                      interval=0.2, what="system figures")
    assert figure(system, "uptime_seconds") > 0 and figure(system, "disk_used_percent", "/") is not None
    listing = a.get("/api/v1/monitor").json()
    assert [x["id"] for x in listing["items"]] == ["system", "encoder", "missing"]
    assert listing["pagination"]["total"] == 3

    text = wait_for(lambda: (x := requests.get(a.url("/metrics"), timeout=5).text)
                    and 'watchpost_monitor_status_code{target="missing"} 404' in x and x,
                    15, interval=0.2, what="the monitor's figures on /metrics")
    assert 'watchpost_monitor_http_field{target="encoder",field="temp"} 41.5' in text
    promtool = shutil.which("promtool")
    if promtool:
        r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
    page = a.get("/monitor")
    assert page.status_code == 200 and "enc-1" in page.text and "41.5" in page.text

    # kill -9 of the monitor: the hub, its alarm service and the broker run on untouched.
    before = {w["name"]: w for w in a.health()["workers"]}
    os.kill(before["monitor"]["pid"], signal.SIGKILL)
    assert a.get("/api/v1/alarms/queues").status_code == 200
    assert a.get("/api/v1/monitor").status_code == 200
    back = a.wait_restarted("monitor", before["monitor"]["pid"], timeout=30)
    assert back["restarts"] >= 1
    after = {w["name"]: w for w in a.health()["workers"]}
    for name in ("hub", "broker"):
        assert after[name]["pid"] == before[name]["pid"] and after[name]["restarts"] == 0, after[name]
    assert a.get("/api/v1/alarms/queues").status_code == 200
    last = t["updated_ms"]
    wait_for(lambda: (x := target(a, "encoder"))["state"] == "up" and x["updated_ms"] > last,
             20, interval=0.1, what="the encoder probed again after the restart")
