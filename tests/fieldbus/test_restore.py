"""Persistence across a crash: after `kill -9` of the fieldbus worker the supervisor restarts it,
measurement registers come back from its store, command registers do not; and the store sees
coalesced writes, not one transaction per register write."""
from __future__ import annotations

import time

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


def test_persistence_coalesces_writes(gateway):
    """Many bus writes cost at most one store transaction per persist interval (200 ms here), and
    a base that only repeats unchanged values costs none."""
    def persisted() -> float:
        return metric(gateway, "watchpost_fieldbus_persist_writes_total")

    base = tcp_master(gateway)
    try:
        start_count, start = persisted(), time.monotonic()
        for i in range(300):
            assert not base.write_register(102, 0x0700 + i, device_id=UNIT).isError()
        elapsed = time.monotonic() - start
        wait_for(lambda: persisted() > start_count, 10, what="the changes persisted")

        def settled() -> float:
            # The worker reports its metrics about once a second: wait until the count stops.
            last = persisted()
            for _ in range(10):
                time.sleep(1.5)
                now = persisted()
                if now == last:
                    return now
                last = now
            raise AssertionError("persist writes never stop")

        done = settled()
        written = done - start_count
        # One per interval while changes come in, plus the interval the run started in and the
        # one after it (and a tick of slack).
        assert written <= elapsed / 0.2 + 3, f"{written} transactions for 300 writes in {elapsed:.2f} s"
        # The base repeats what it reported: nothing new to write.
        for _ in range(50):
            assert not base.write_register(102, 0x0700 + 299, device_id=UNIT).isError()
        time.sleep(2.5)
        assert persisted() == done
    finally:
        base.close()
