"""What an installer meets in the field, against the built appliance and real peers:

- RS485-to-Ethernet converters that reboot or lose their link leave half-open Modbus TCP
  connections behind. Made here by cutting a veth link between a network namespace (where
  pymodbus masters play the converters) and the appliance: a new connection is still served;
- a missing serial adapter: the fieldbus worker keeps serving Modbus TCP (pymodbus as the base
  station) and the APIs, /health says degraded with the reason, the watchdog keeps being
  petted, and the line is served once the adapter (a socat pty) appears;
- the compatibility listener's port taken: degraded with the reason, served once it is free.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import requests

from conftest import NotifyListener, VethNamespace, wait_for
from fieldbus_support import (  # noqa: F401
    UNIT,
    compat_url,
    fieldbus_sections,
    metric,
    pty_pair,
    rtu_master,
    socat,
    tcp_master,
    wait_api,
)

# A pymodbus master per connection, as converters connect: each reads once, then the process
# holds them open until it is killed.
CONVERTERS = textwrap.dedent("""
    import sys, time
    from pymodbus.client import ModbusTcpClient
    host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    clients = []
    for _ in range(n):
        c = ModbusTcpClient(host, port=port, timeout=5, retries=0)
        assert c.connect(), "connect"
        assert not c.read_holding_registers(100, count=2, device_id=240).isError()
        clients.append(c)
    print("connected", flush=True)
    time.sleep(3600)
""")


def faults(appliance, worker: str) -> list[dict]:
    return appliance.worker(worker).get("faults") or []


class Namespace(VethNamespace):
    """The converter's network: a namespace joined to ours by a veth pair."""

    def __init__(self):
        super().__init__("fb", 200)

    def cut(self) -> None:
        """The converter's side of the link goes away: nothing it sends reaches us any more."""
        self.ip("-n", self.name, "link", "set", self.peer, "down")


@pytest.fixture
def netns():
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("a network namespace needs root and iproute2 (`ip`)")
    try:
        ns = Namespace()
    except subprocess.CalledProcessError as e:
        pytest.skip(f"cannot create a network namespace: {e.stderr.decode(errors='replace')}")
    yield ns
    ns.close()


def established_to(port: int) -> list[str]:
    out = subprocess.run(["ss", "-tnoH", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True, timeout=10).stdout
    return [line for line in out.splitlines() if line.strip()]


def test_half_open_converter_connections_give_way_to_a_new_one(appliance_factory, netns):
    """Eight converters connect from the namespace (the default tcp_max_connections) and the
    link is cut under them, so none of them can close: the appliance still holds eight
    established connections with nobody behind them. A converter connecting again is served
    (the connection silent longest gives way), and keepalive is on for every connection."""
    a = appliance_factory(fieldbus_sections({
        "tcp_listen": f"{netns.host}:0",
        # The default is 5 s; shorter here so the test need not wait.
        "tcp_replace_after_s": 1,
    })).start()
    host, port = a.addr("fieldbus.neasmart.tcp_listen")
    converters = subprocess.Popen(
        ["ip", "netns", "exec", netns.name, sys.executable, "-c", CONVERTERS, host, str(port), "8"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert converters.stdout.readline().strip() == "connected", converters.stderr.read()
        wait_for(lambda: metric(a, "watchpost_fieldbus_tcp_connections") == 8, 10, what="8 connections")
        # Keepalive is on by default: the kernel runs a keepalive timer on each of them.
        conns = established_to(port)
        assert len(conns) == 8 and all("keepalive" in c for c in conns), conns

        netns.cut()
        os.killpg(converters.pid, signal.SIGKILL)
        converters.wait(10)
        # Nothing reached us: all eight are still open on our side.
        assert len(established_to(port)) == 8
        assert metric(a, "watchpost_fieldbus_tcp_connections") == 8

        def served() -> bool:
            c = tcp_master(a)
            try:
                r = c.read_holding_registers(100, count=2, device_id=UNIT)
                return not r.isError()
            except Exception:  # noqa: BLE001 - refused while none has been silent 1 s yet
                return False
            finally:
                c.close()

        wait_for(served, 15, interval=0.2, what="a new connection served")
        # (metrics reach /metrics about once a second)
        wait_for(lambda: metric(a, "watchpost_fieldbus_tcp_replaced_total") >= 1, 10, what="replaced counted")
        # And it keeps working: the base writes, the API reads it.
        base = tcp_master(a)
        assert not base.write_registers(100, [2, 0x0C65], device_id=UNIT).isError()
        wait_api(a, "/api/v1/neasmart/zones/1/1", lambda b: b["setpoint"] == 22.5)
        base.close()
        assert metric(a, "watchpost_fieldbus_tcp_connections") <= 8
    finally:
        if converters.poll() is None:
            os.killpg(converters.pid, signal.SIGKILL)
            converters.wait(10)


def test_missing_serial_adapter_degrades_but_serves_tcp_and_the_apis(appliance_factory, pty_pair, tmp_path):
    """The configured adapter is not plugged in. The fieldbus worker does not exit: Modbus TCP,
    the REST API and the compatibility listener answer, /health is degraded (200) with the
    reason, the worker is never restarted and the watchdog keeps being petted. When the adapter
    appears (a socat pty at the configured path), the line is served and the fault ends."""
    port = tmp_path / "usbA"
    sections = fieldbus_sections({"serial": {"port": str(port), "baud": 38400}})
    notify_path = str(tmp_path / "notify.sock")
    notify = NotifyListener(notify_path)
    try:
        a = appliance_factory(sections)
        a.start(wait_healthy=False, env={"NOTIFY_SOCKET": notify_path, "WATCHDOG_USEC": "1000000"})

        def degraded():
            r = requests.get(a.url("/health"), timeout=3)
            body = r.json()
            return (r.status_code, body) if body["status"] == "degraded" and faults(a, "fieldbus") else None

        code, health = wait_for(degraded, 20, what="/health degraded by the missing adapter")
        assert code == 200
        fieldbus = next(w for w in health["workers"] if w["name"] == "fieldbus")
        assert fieldbus["state"] == "running" and fieldbus["essential"] is True
        (fault,) = fieldbus["faults"]
        assert fault["subject"] == f"neasmart serial {port}"
        assert str(port) in fault["reason"] and "No such file or directory" in fault["reason"], fault

        # The base station over Modbus TCP, the REST API and the compatibility listener answer.
        base = tcp_master(a)
        assert not base.write_registers(100, [1, 0x0C65, 0x07C6], device_id=UNIT).isError()
        wait_api(a, "/api/v1/neasmart/zones/1/1", lambda b: b["temperature"] == 19.9)
        assert a.post("/api/v1/neasmart/zones/1/1", json={"setpoint": 21.0}).status_code == 200
        r = requests.get(compat_url(a, "/zones/1/1"), timeout=5)
        assert r.status_code == 200 and r.json()["setpoint"] == 21.0, r.text
        base.close()
        # Reported in the metrics, retried, never a worker restart.
        wait_for(lambda: metric(a, "watchpost_fieldbus_serial_open_failures_total") >= 2, 10,
                 what="open retried")
        assert metric(a, "watchpost_fieldbus_serial_line_up") == 0
        assert a.worker("fieldbus")["restarts"] == 0
        # No peripheral fault stops the watchdog: pets go on while degraded.
        seen = len(notify.lines("WATCHDOG=1"))
        wait_for(lambda: len(notify.lines("WATCHDOG=1")) >= seen + 3, 10, what="watchdog pets while degraded")
        assert a.health()["status"] == "degraded"
        assert any("degraded: fieldbus" in m for _, m in notify.lines("STATUS="))

        # The adapter is plugged in: served on a retry, the fault ends.
        line = pty_pair("usb")
        a.wait_healthy(20)
        assert faults(a, "fieldbus") == []
        master = rtu_master(line.b)
        r = master.read_holding_registers(100, count=2, device_id=UNIT)
        assert not r.isError(), r
        assert r.registers[1] == 0x0C1A  # 21.0 °C, the command from the API
        master.close()
        wait_for(lambda: metric(a, "watchpost_fieldbus_serial_line_up") == 1, 10, what="line up in the metrics")
        assert a.worker("fieldbus")["restarts"] == 0
    finally:
        notify.close()


def test_compat_port_taken_degrades_then_serves_once_free(appliance_factory, held_port):
    """Another process listens on the compatibility listener's port. The hub reports it
    (degraded, with the reason) and binds again until the port is free, then serves it."""
    port = held_port()  # ours for the whole test; the taker below listens on it
    taker = socket.socket()
    taker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    taker.bind(("127.0.0.1", port))
    taker.listen()
    try:
        a = appliance_factory(fieldbus_sections({"compat_listen": f"127.0.0.1:{port}"}))
        a.start(wait_healthy=False)

        def degraded():
            h = a.health()
            return h if h["status"] == "degraded" and faults(a, "hub") else None

        health = wait_for(degraded, 20, what="/health degraded by the taken port")
        hub = next(w for w in health["workers"] if w["name"] == "hub")
        assert hub["state"] == "running"
        (fault,) = hub["faults"]
        assert fault["subject"] == f"neasmart compat listener 127.0.0.1:{port}"
        assert "Address already in use" in fault["reason"] or "in use" in fault["reason"], fault
        # The rest of the hub serves.
        wait_for(lambda: a.get("/api/v1/neasmart/status").status_code == 200, 10, what="the REST API")
    finally:
        taker.close()
    a.wait_healthy(30)
    assert faults(a, "hub") == []
    r = wait_for(lambda: requests.get(f"http://127.0.0.1:{port}/health", timeout=3), 10, what="compat served")
    assert r.status_code == 200 and r.json()["status"] == "ok", r.text
    assert a.worker("hub")["restarts"] == 0
