"""Persistence across a crash: after `kill -9` of the fieldbus worker the supervisor restarts it,
measurement registers come back from its store, command registers do not."""
from __future__ import annotations

from conftest import wait_for
from fieldbus_support import (  # noqa: F401
    UNIT,
    fieldbus_sections,
    gateway,
    kill9,
    metric,
    tcp_master,
    wait_api,
    wait_restarted,
    worker_pid,
)


def test_kill9_restores_measurements_not_commands(gateway):
    base = tcp_master(gateway)
    # Measurements: zone 2 temperature and humidity, outside temperature, a pump.
    assert not base.write_registers(200, [1, 0x0C65, 0x07C6], device_id=UNIT).isError()
    assert not base.write_register(210, 40, device_id=UNIT).isError()
    assert not base.write_register(7, 0x860C, device_id=UNIT).isError()
    assert not base.write_register(31, 1, device_id=UNIT).isError()
    # Commands: a REST setpoint and the global mode.
    assert gateway.post("/api/v1/neasmart/zones/1/2", json={"setpoint": 23.0}).status_code == 200
    assert gateway.post("/api/v1/neasmart/mode", json={"mode": 2}).status_code == 200
    base.close()

    before = metric(gateway, "watchpost_fieldbus_persist_writes_total")
    # Wait for a coalesced write that happened after the writes above (interval 200 ms).
    wait_for(lambda: metric(gateway, "watchpost_fieldbus_persist_writes_total") > before, 10,
             what="measurements persisted")

    pid = worker_pid(gateway, "fieldbus")
    kill9(pid)
    wait_restarted(gateway, "fieldbus", pid)

    base = tcp_master(gateway)
    try:
        # Zone block: state and setpoint are command registers (0), temperature and humidity back.
        regs = base.read_holding_registers(200, count=11, device_id=UNIT).registers
        assert regs[0] == 0 and regs[1] == 0, regs
        assert regs[2] == 0x07C6 and regs[10] == 40, regs
        assert base.read_holding_registers(1, count=1, device_id=UNIT).registers == [0]
        assert base.read_holding_registers(7, count=1, device_id=UNIT).registers == [0x860C]
        assert base.read_holding_registers(31, count=1, device_id=UNIT).registers == [1]
    finally:
        base.close()
    # The restarted worker republishes its state: the API shows the same picture.
    zone = wait_api(gateway, "/api/v1/neasmart/zones/1/2", lambda b: b["state"] == 0 and b["temperature"] == 19.9)
    assert zone["relative_humidity"] == 40 and zone["setpoint"] == 0.0
    wait_api(gateway, "/api/v1/neasmart/mode", lambda b: b == {"mode": 0})
    # Restored data is not fresh: no bus write since the restart.
    status = gateway.get("/api/v1/neasmart/status").json()
    assert status["pending_command_registers"] == 0
