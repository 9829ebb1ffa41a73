"""The Neasmart gateway as an RTU slave on a serial line (socat pty pairs at 38400 8N1), with
pymodbus playing the base station, and faults injected into the line by a byte-level proxy."""
from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pymodbus.exceptions import ModbusIOException

from conftest import wait_for
from fieldbus_support import (  # noqa: F401
    UNIT,
    metric,
    pty_pair,
    rtu_master,
    rtu_sections,
    socat,
    wait_api,
)

HERE = Path(__file__).resolve().parent


def crc16(data: bytes) -> bytes:
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc.to_bytes(2, "little")


def frame(body: bytes) -> bytes:
    return body + crc16(body)


def test_rtu_slave_on_a_pty(appliance_factory, pty_pair):
    line = pty_pair("bus")
    a = appliance_factory(rtu_sections(line.a)).start()
    base = rtu_master(line.b)
    assert not base.write_registers(200, [4, 0x0C65, 0x07D0], device_id=UNIT).isError()
    assert not base.write_register(210, 55, device_id=241).isError()
    # Broadcast: applied, no reply (pymodbus does not wait for one).
    base.write_register(7, 0x0C65, device_id=0, no_response_expected=True)
    zone = wait_api(a, "/api/v1/neasmart/zones/1/2", lambda b: b["relative_humidity"] == 55)
    assert zone == {"state": 4, "setpoint": 22.5, "temperature": 20.0, "relative_humidity": 55}
    wait_api(a, "/api/v1/neasmart/outsidetemperature", lambda b: b["outside_temperature"] == 22.5)
    # A REST command appears in the register the base reads.
    r = a.post("/api/v1/neasmart/zones/1/2", json={"setpoint": 19.9})
    assert r.status_code == 200, r.text
    # Pending-command protocol: the base's differing status write (FC16 of the zone block, and a
    # broadcast) before it has read the command does not overwrite it...
    assert not base.write_registers(200, [4, 0x0C65], device_id=UNIT).isError()
    base.write_register(201, 0x0C65, device_id=0, no_response_expected=True)
    assert base.read_holding_registers(201, count=1, device_id=241).registers == [0x07C6]
    # ...the FC03 above delivered it, so the next status write is taken.
    assert not base.write_register(201, 0x0C65, device_id=UNIT).isError()
    wait_api(a, "/api/v1/neasmart/zones/1/2", lambda b: b["setpoint"] == 22.5, what="status after the read")
    wait_for(lambda: metric(a, "watchpost_fieldbus_pending_writes_ignored_total") >= 2, 5,
             what="ignored writes counted")
    # Unit 16 gets no answer at all.
    with pytest.raises(ModbusIOException):
        base.read_holding_registers(2, count=1, device_id=16)
    base.close()
    wait_for(lambda: metric(a, "watchpost_fieldbus_frames_ignored_total", transport="rtu", unit="16") >= 1, 5,
             what="unit 16 ignored")
    assert metric(a, "watchpost_fieldbus_frames_answered_total", transport="rtu", unit="240") >= 1
    assert metric(a, "watchpost_fieldbus_frames_received_total", transport="rtu", unit="241") >= 2
    assert metric(a, "watchpost_fieldbus_broadcast_writes_total", transport="rtu") >= 2


class FaultProxy:
    def __init__(self, app_side: Path, device_side: Path):
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "serial_fault_proxy.py"), str(app_side), str(device_side)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert self.proc.stdout.readline().strip() == "READY"

    def command(self, line: str) -> str:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def inject(self, data: bytes) -> None:
        assert self.command("inject " + data.hex()) == "OK"

    def stats(self) -> dict:
        return json.loads(self.command("stats"))

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(5)


def test_garbage_truncated_and_bad_crc_frames_get_silence(appliance_factory, pty_pair):
    app_line, dev_line = pty_pair("app"), pty_pair("dev")
    a = appliance_factory(rtu_sections(app_line.a)).start()
    proxy = FaultProxy(app_line.b, dev_line.a)
    base = rtu_master(dev_line.b)
    try:
        assert base.read_holding_registers(1, count=2, device_id=UNIT).registers == [0, 0]
        write_7 = frame(bytes([UNIT, 6, 0, 7, 0x0C, 0x65]))
        rng = random.Random(3)
        faults = [
            ("garbage", bytes(rng.randrange(256) for _ in range(40))),
            ("truncated", write_7[:5]),
            ("bad crc", write_7[:-1] + bytes([write_7[-1] ^ 0xFF])),
            ("unit 16", frame(bytes([16, 6, 0, 7, 0x0C, 0x65]))),
            ("short", b"\xf0"),
        ]
        for name, data in faults:
            before = proxy.stats()["from_app"]
            proxy.inject(data)
            # Anything the gateway said now would be a reply to the fault.
            time.sleep(0.1)
            assert proxy.stats()["from_app"] == before, f"the gateway answered {name}"
            # The next valid frame is answered.
            assert base.read_holding_registers(7, count=1, device_id=UNIT).registers == [0], name
        # None of the faulty writes reached the register.
        assert base.read_holding_registers(7, count=1, device_id=241).registers == [0]

        def dropped(reason: str) -> float:
            return metric(a, "watchpost_fieldbus_frames_dropped_total", transport="rtu", reason=reason)

        wait_for(lambda: dropped("bad_crc") >= 1 and dropped("short") >= 2, 5, what="drop counters")
        assert dropped("garbage") + dropped("bad_crc") + dropped("short") >= 3
        assert metric(a, "watchpost_fieldbus_frames_ignored_total", transport="rtu", unit="16") >= 1
        assert a.worker("fieldbus")["restarts"] == 0
    finally:
        base.close()
        proxy.close()


def test_rs485_line_without_kernel_rs485_mode_is_served_with_a_warning(appliance_factory, pty_pair):
    """`rs485 = true` on a device the board description does not describe and that refuses the
    kernel RS485 mode (a pty answers TIOCSRS485 with ENOTTY): a warning, and the line is served
    without direction switching (the worker neither fails nor restarts)."""
    line = pty_pair("rs485")
    sections = rtu_sections(line.a)
    sections["fieldbus"]["neasmart"]["serial"]["rs485"] = True
    a = appliance_factory(sections).start()
    base = rtu_master(line.b)
    try:
        assert not base.write_register(7, 0x0C65, device_id=UNIT).isError()
        assert base.read_holding_registers(7, count=1, device_id=241).registers == [0x0C65]
    finally:
        base.close()
    assert a.worker("fieldbus")["restarts"] == 0
    wait_for(lambda: "no kernel RS485 mode" in a.log_path.read_text(errors="replace"), 5,
             what="the RS485 warning in the log")
