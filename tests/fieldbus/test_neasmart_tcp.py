"""The Neasmart gateway over Modbus TCP with pymodbus playing the base station, and its REST API
(under /api/v1/neasmart and on the add-on compatible listener)."""
from __future__ import annotations

import socket
import struct
import subprocess
import sys
import threading
import time

import requests

from conftest import ADMIN, wait_for
from fieldbus_support import (  # noqa: F401
    UNIT,
    api_json,
    compat_url,
    gateway,
    metric,
    tcp_master,
    wait_api,
)


def test_base_writes_are_decoded_by_the_api(gateway):
    base = tcp_master(gateway)
    # Zone 1 of slave base 1 (base 2): state, setpoint 22.5, temperature 19.9 (FC16), humidity (FC06).
    assert not base.write_registers(1300, [1, 0x0C65, 0x07C6], device_id=UNIT).isError()
    assert not base.write_register(1310, 48, device_id=241).isError()
    # Outside temperatures broadcast on unit 0 (no reply allowed).
    base.write_register(7, 0x860C, device_id=0, no_response_expected=True)
    base.write_register(8, 0x02BC, device_id=0, no_response_expected=True)
    # Mixed group 2, notifications, dehumidifier 1, pump 5, global mode/state.
    assert not base.write_registers(14, [0x42, 1, 0x0ED6, 0x07D0], device_id=UNIT).isError()
    assert not base.write_registers(3, [1, 0, 1, 0], device_id=UNIT).isError()
    assert not base.write_register(22, 1, device_id=UNIT).isError()
    assert not base.write_register(35, 1, device_id=UNIT).isError()
    assert not base.write_registers(1, [2, 4], device_id=UNIT).isError()

    zone = wait_api(gateway, "/api/v1/neasmart/zones/2/1", lambda b: b["relative_humidity"] == 48)
    assert zone == {"state": 1, "setpoint": 22.5, "temperature": 19.9, "relative_humidity": 48}
    outside = wait_api(gateway, "/api/v1/neasmart/outsidetemperature", lambda b: b["filtered_outside_temperature"] == 7.0)
    assert outside == {"outside_temperature": -5.0, "filtered_outside_temperature": 7.0}
    assert api_json(gateway, "/api/v1/neasmart/mixedgroups/2") == {
        "pump_state": 1, "mixing_valve_opening_percentage": 0x42,
        "flow_temperature": 35.0, "return_temperature": 20.0,
    }
    assert api_json(gateway, "/api/v1/neasmart/notifications") == {
        "hints_present": False, "warnings_present": True, "error_present": True,
    }
    assert api_json(gateway, "/api/v1/neasmart/dehumidifiers/1") == {"dehumidifier_state": 1}
    assert api_json(gateway, "/api/v1/neasmart/pumps/5") == {"pump_state": 1}
    assert api_json(gateway, "/api/v1/neasmart/mode") == {"mode": 2}
    assert api_json(gateway, "/api/v1/neasmart/state") == {"state": 4}
    zones = api_json(gateway, "/api/v1/neasmart/zones")
    assert [(z["base"], z["zone"]) for z in zones["items"]] == [(2, 1)]
    assert zones["pagination"]["total"] == 1
    # Standby setpoint sentinel and uninitialised temperature read as null.
    assert not base.write_registers(100, [3, 0x8116, 0x7FFF], device_id=UNIT).isError()
    z = wait_api(gateway, "/api/v1/neasmart/zones/1/1", lambda b: b["state"] == 3)
    assert z["setpoint"] is None and z["temperature"] is None
    # Freshness headers and counters.
    r = gateway.get("/api/v1/neasmart/zones/2/1")
    assert r.headers["X-Rehau-Registers-Stale"] == "false"
    assert r.headers["X-Rehau-Stale-After-Seconds"] == "180"
    assert r.headers["X-Rehau-Last-Register-Write"].endswith("Z")
    wait_for(lambda: metric(gateway, "watchpost_fieldbus_broadcast_writes_total", transport="tcp") >= 2, 5,
             what="broadcast counter")
    base.close()


def test_rest_command_reaches_the_base_and_wins_until_read(gateway):
    base = tcp_master(gateway)
    assert not base.write_registers(300, [1, 0x07D0, 0x07C6], device_id=UNIT).isError()
    wait_api(gateway, "/api/v1/neasmart/zones/1/3", lambda b: b["setpoint"] == 20.0)

    r = gateway.post("/api/v1/neasmart/zones/1/3", json={"setpoint": 21.5, "state": 2})
    assert r.status_code == 200, r.text
    assert r.json()["setpoint"] == 21.5 and r.json()["state"] == 2
    # The base broadcasts its old status before reading: the command is kept.
    assert not base.write_register(301, 0x07D0, device_id=UNIT).isError()
    base.write_register(300, 1, device_id=0, no_response_expected=True)
    assert api_json(gateway, "/api/v1/neasmart/zones/1/3")["setpoint"] == 21.5
    # The base reads the zone block and finds the command (DPT 9 for 21.5 = 0x0C33).
    regs = base.read_holding_registers(300, count=11, device_id=UNIT).registers
    assert regs[0] == 2 and regs[1] == 0x0C33
    # After the read the base's status writes are taken again.
    assert not base.write_register(301, 0x07D0, device_id=UNIT).isError()
    wait_api(gateway, "/api/v1/neasmart/zones/1/3", lambda b: b["setpoint"] == 20.0, what="status after read")
    assert base.read_holding_registers(301, count=1, device_id=241).registers == [0x07D0]

    # Global mode and state commands land in registers 1 and 2.
    assert gateway.post("/api/v1/neasmart/mode", json={"mode": 3}).json() == {"mode": 3}
    assert gateway.post("/api/v1/neasmart/state", json={"state": 5}).json() == {"state": 5}
    assert base.read_holding_registers(1, count=2, device_id=UNIT).registers == [3, 5]
    wait_for(lambda: metric(gateway, "watchpost_fieldbus_pending_writes_ignored_total") >= 2, 5,
             what="ignored writes counted")
    base.close()


def test_validation_errors_are_clear(gateway):
    cases = [
        ("/api/v1/neasmart/zones/6/1", {"state": 1}, "INVALID_BASE"),
        ("/api/v1/neasmart/zones/1/13", {"state": 1}, "INVALID_ZONE"),
        ("/api/v1/neasmart/zones/1/1", {"state": 7}, "INVALID_STATE"),
        ("/api/v1/neasmart/zones/1/1", {"setpoint": 60}, "SETPOINT_OUT_OF_RANGE"),
        ("/api/v1/neasmart/zones/1/1", {}, "EMPTY_COMMAND"),
        ("/api/v1/neasmart/mode", {"mode": 0}, "INVALID_MODE"),
        ("/api/v1/neasmart/state", {"state": "party"}, "INVALID_BODY"),
    ]
    for path, body, code in cases:
        r = gateway.post(path, json=body)
        assert r.status_code == 400, (path, body, r.text)
        assert r.json()["error"]["code"] == code, (path, body, r.text)
    for path, code in [
        ("/api/v1/neasmart/zones/0/1", "INVALID_BASE"),
        ("/api/v1/neasmart/mixedgroups/4", "INVALID_MIXED_GROUP"),
        ("/api/v1/neasmart/dehumidifiers/10", "INVALID_DEHUMIDIFIER"),
        ("/api/v1/neasmart/pumps/x", "INVALID_PUMP"),
    ]:
        r = gateway.get(path)
        assert r.status_code == 400 and r.json()["error"]["code"] == code, (path, r.text)
    assert gateway.get("/api/v1/neasmart/zones/1/1", auth=None).status_code == 401


def test_compatibility_listener_speaks_the_original_api(gateway):
    base = tcp_master(gateway)
    assert not base.write_registers(100, [1, 0x0C65, 0x07C6], device_id=UNIT).isError()
    base.close()
    wait_api(gateway, "/api/v1/neasmart/zones/1/1", lambda b: b["state"] == 1)
    r = requests.get(compat_url(gateway, "/zones/1/1"), timeout=3)
    assert r.status_code == 200
    assert r.json() == {"state": 1, "setpoint": 22.5, "temperature": 19.9, "relative_humidity": 0}
    assert r.headers["X-Rehau-Registers-Stale"] == "false"
    r = requests.post(compat_url(gateway, "/zones/1/1"), json={"state": 2}, timeout=5)
    assert r.status_code == 202 and r.text == ""
    assert requests.post(compat_url(gateway, "/mode"), json={"mode": 1}, timeout=5).status_code == 202
    assert requests.post(compat_url(gateway, "/state"), json={"state": 1}, timeout=5).status_code == 202
    r = requests.get(compat_url(gateway, "/zones/9/1"), timeout=3)
    assert r.status_code == 400 and "base" in r.json()["err"]
    r = requests.post(compat_url(gateway, "/zones/1/1"), json={"state": 9}, timeout=3)
    assert r.status_code == 400 and "err" in r.json()
    health = requests.get(compat_url(gateway, "/health"), timeout=3).json()
    assert health["status"] == "ok" and health["registers_stale"] is False
    assert health["pending_command_registers"] == 3
    for path in ["/mixedgroups/1", "/outsidetemperature", "/notifications", "/mode", "/state",
                 "/dehumidifiers/1", "/pumps/1"]:
        assert requests.get(compat_url(gateway, path), timeout=3).status_code == 200, path


def mbap(tid: int, unit: int, pdu: bytes) -> bytes:
    return struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu


def recv_frame(s: socket.socket, timeout: float) -> bytes | None:
    s.settimeout(timeout)
    try:
        head = s.recv(7)
    except socket.timeout:
        return None
    length = struct.unpack(">H", head[4:6])[0]
    body = b""
    while len(body) < length - 1:
        body += s.recv(length - 1 - len(body))
    return head + body


def test_bad_frames_cost_one_frame_not_the_connection(gateway):
    host, port = gateway.addr("fieldbus.neasmart.tcp_listen")
    s = socket.create_connection((host, port), timeout=3)
    read_2 = bytes([3, 0, 2, 0, 1])
    # Unit 16 belongs to another device on the SysBus: no answer.
    s.sendall(mbap(1, 16, read_2))
    assert recv_frame(s, 0.3) is None
    # Garbage, then a frame with a length that contradicts its function: no answer...
    s.sendall(b"\xde\xad\xbe\xef" * 5 + struct.pack(">HHHB", 2, 0, 9, UNIT) + read_2 + b"\0\0\0")
    assert recv_frame(s, 0.3) is None
    # ...and the next valid frame on the same connection is answered.
    s.sendall(mbap(3, UNIT, read_2))
    answer = recv_frame(s, 2)
    assert answer is not None and answer[:2] == b"\x00\x03" and answer[7:9] == b"\x03\x02"
    # Unsupported function codes get "illegal function".
    s.sendall(mbap(4, UNIT, bytes([1, 0, 0, 0, 8])))
    answer = recv_frame(s, 2)
    assert answer is not None and answer[7:] == b"\x81\x01"
    s.close()
    wait_for(lambda: metric(gateway, "watchpost_fieldbus_frames_ignored_total", unit="16") >= 1, 5,
             what="unit 16 counted as ignored")
    assert metric(gateway, "watchpost_fieldbus_frames_dropped_total", transport="tcp", reason="garbage") >= 1


def test_without_the_fieldbus_worker_commands_are_503(appliance):
    r = appliance.post("/api/v1/neasmart/zones/1/1", json={"state": 1}, timeout=10)
    assert r.status_code == 503 and r.json()["error"]["code"] == "FIELDBUS_UNAVAILABLE"
    r = appliance.get("/api/v1/neasmart/zones/1/1")
    assert r.status_code == 503 and r.json()["error"]["code"] == "NEASMART_UNAVAILABLE"
    assert r.headers["X-Rehau-Registers-Stale"] == "true"
    _ = time


def test_a_read_right_after_a_command_sees_the_command(gateway):
    """Home Assistant's Neasmart integration refreshes an entity right after each service call:
    POST, answered 202 (compatibility listener) or 200 (/api/v1), then GET at once. 100 such
    pairs on each API with alternating values: every read shows what was just commanded."""
    base = tcp_master(gateway)
    assert not base.write_registers(1300, [1, 0x0C65, 0x07C6], device_id=UNIT).isError()
    wait_api(gateway, "/api/v1/neasmart/zones/2/1", lambda b: b["state"] == 1)
    compat = requests.Session()
    api = requests.Session()
    api.auth = ADMIN
    stale = []
    # "Under load", as the integration meets it: the base keeps writing the zone's
    # temperature, and two processes keep both cores busy, so the hub's tasks are late.
    burners = [subprocess.Popen([sys.executable, "-c", "import time\nt=time.time()+60\nwhile time.time()<t: pass"])
               for _ in range(2)]
    writer_stop = threading.Event()

    def base_writes():
        w = tcp_master(gateway)
        n = 0
        while not writer_stop.is_set():
            w.write_register(1302, 0x07C6 + n % 20, device_id=UNIT)
            n += 1

    writer = threading.Thread(target=base_writes, daemon=True)
    writer.start()
    try:
        _command_and_read(gateway, compat, api, stale)
    finally:
        writer_stop.set()
        for b in burners:
            b.kill()
            b.wait()
        writer.join(5)
    assert not stale, f"{len(stale)} reads returned the previous value: {stale[:5]}"


def _command_and_read(gateway, compat, api, stale) -> None:
    for i in range(100):
        setpoint = 20.0 + (i % 10) * 0.5
        r = compat.post(compat_url(gateway, "/zones/2/1"), json={"setpoint": setpoint}, timeout=5)
        assert r.status_code == 202, r.text
        got = compat.get(compat_url(gateway, "/zones/2/1"), timeout=5).json()["setpoint"]
        if got != setpoint:
            stale.append(("compat zone", i, setpoint, got))
        mode = 1 + i % 5
        r = api.post(gateway.url("/api/v1/neasmart/mode"), json={"mode": mode}, timeout=5)
        assert r.status_code == 200, r.text
        got = api.get(gateway.url("/api/v1/neasmart/mode"), timeout=5).json()["mode"]
        if got != mode:
            stale.append(("api mode", i, mode, got))
        state = 1 + i % 6
        r = compat.post(compat_url(gateway, "/state"), json={"state": state}, timeout=5)
        assert r.status_code == 202, r.text
        got = compat.get(compat_url(gateway, "/state"), timeout=5).json()["state"]
        if got != state:
            stale.append(("compat state", i, state, got))
