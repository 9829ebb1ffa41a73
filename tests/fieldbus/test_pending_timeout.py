"""The worker's timers: the startup command, a command the base never reads expiring after
`command_timeout_s` (then bus writes win again), and staleness after `stale_after_s`, as the
metrics, the status endpoint and the freshness headers report them."""
from __future__ import annotations

from conftest import wait_for
from fieldbus_support import UNIT, api_json, fieldbus_sections, metric, tcp_master, wait_api


def test_startup_command_expires_and_data_goes_stale(appliance_factory):
    a = appliance_factory(fieldbus_sections(
        {"command_timeout_s": 1, "stale_after_s": 1, "startup_global_mode": 3})).start()
    wait_for(lambda: a.get("/api/v1/neasmart/status").status_code == 200, 10, what="Neasmart state on the bus")
    # Nothing from the base yet: stale; the startup mode is a command in register 1.
    assert api_json(a, "/api/v1/neasmart/mode") == {"mode": 3}
    assert a.get("/api/v1/neasmart/mode").headers["X-Rehau-Registers-Stale"] == "true"
    wait_for(lambda: metric(a, "watchpost_fieldbus_registers_stale") == 1, 5, what="stale gauge")
    # The base never reads it: after the timeout the mark expires (counted, gauge back to 0).
    wait_for(lambda: metric(a, "watchpost_fieldbus_pending_expired_total") >= 1, 10, what="command expired")
    wait_for(lambda: metric(a, "watchpost_fieldbus_pending_commands") == 0, 5, what="pending gauge")
    wait_api(a, "/api/v1/neasmart/status", lambda b: b["pending_command_registers"] == 0)
    # Now the base's differing status write wins.
    base = tcp_master(a)
    try:
        assert not base.write_register(1, 2, device_id=UNIT).isError()
        assert base.read_holding_registers(1, count=1, device_id=UNIT).registers == [2]
    finally:
        base.close()
    wait_api(a, "/api/v1/neasmart/mode", lambda b: b == {"mode": 2}, what="bus write taken")
    assert metric(a, "watchpost_fieldbus_pending_writes_ignored_total") == 0
    # Without further bus writes the data is stale again after stale_after_s.
    wait_for(lambda: a.get("/api/v1/neasmart/mode").headers["X-Rehau-Registers-Stale"] == "true", 10,
             what="stale again after stale_after_s")
    wait_for(lambda: metric(a, "watchpost_fieldbus_registers_stale") == 1, 5, what="stale gauge again")
