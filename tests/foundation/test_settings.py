"""Settings at run time (docs/settings.md): pending → commit → apply by restarting only the
workers whose sections changed; backup and restore; secrets never answered.

Each test runs its own appliance (broker, bridge without a YoLink source, hub) on port 0 with
a temporary data directory, through the public API only.
"""
from __future__ import annotations

import json
import shutil

import requests

from conftest import ADMIN, SeenResponses, wait_for

SECRETS = ("demo-admin", "viewer-pass-1")
SECTIONS = {"bridge": {"enabled": True}}


def put(a, path, body):
    return requests.put(a.url(path), auth=ADMIN, json=body, timeout=5)


def delete(a, path):
    return requests.delete(a.url(path), auth=ADMIN, timeout=5)


def comparable(effective: dict) -> dict:
    """The effective configuration without what differs between two boxes by design: the
    data directory and the listen addresses resolved from port 0."""
    e = json.loads(json.dumps(effective))
    e["system"].pop("data_dir")

    def strip(v):
        if isinstance(v, dict):
            return {k: strip(x) for k, x in v.items() if not (k == "listen" or k.endswith("_listen"))}
        if isinstance(v, list):
            return [strip(x) for x in v]
        return v
    return strip(e)


def test_an_invalid_value_is_refused_with_its_key(appliance_factory):
    a = appliance_factory(SECTIONS).start()
    seen = SeenResponses(SECRETS)
    r = seen(put(a, "/api/v1/settings/pending", {"hub": {"events_max_age_days": "thirty"}}))
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "INVALID_SETTING"
    assert err["details"]["key"] == "hub.events_max_age_days"
    assert err["details"]["message"]

    r = seen(put(a, "/api/v1/settings/pending", {"bridge": {"no_such_key": 1}}))
    assert r.status_code == 422 and "no_such_key" in r.json()["error"]["message"], r.text

    r = seen(put(a, "/api/v1/settings/pending", {"supervisor": {"restart_budget": 0}}))
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"]["key"] == "supervisor.restart_budget"

    r = seen(put(a, "/api/v1/settings/pending", {"system": {"data_dir": "/elsewhere"}}))
    assert r.status_code == 422 and r.json()["error"]["details"]["key"] == "system.data_dir", r.text

    # Nothing was staged by the refusals; commit has nothing to do.
    s = seen(a.get("/api/v1/settings")).json()
    assert s["pending"] is None and s["overlay"] == {}
    assert seen(a.post("/api/v1/settings/commit")).status_code == 409
    seen.assert_no_secret()


def test_a_change_restarts_only_the_workers_that_read_it(appliance_factory):
    a = appliance_factory(SECTIONS).start()
    wait_for(lambda: all(w["state"] == "running" for w in a.health()["workers"]), 15, what="all running")
    before = a.pids()
    assert set(before) == {"broker", "bridge", "hub"}
    seen = SeenResponses(SECRETS)

    r = seen(put(a, "/api/v1/settings/pending", {"bridge": {"low_battery_level": 2}}))
    assert r.status_code == 200, r.text
    s = r.json()
    assert s["pending"] == {"bridge": {"low_battery_level": 2}}
    assert s["pending_changes"] == ["bridge.low_battery_level"]
    assert s["effective"]["bridge"]["low_battery_level"] == 1  # not committed yet

    r = seen(a.post("/api/v1/settings/commit"))
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["changed"] == ["bridge.low_battery_level"]
    assert done["apply"]["restarted"] == ["bridge"]
    assert done["apply"]["error"] is None

    a.wait_restarted("bridge", before["bridge"])
    after = a.pids()
    assert after["broker"] == before["broker"] and after["hub"] == before["hub"], (before, after)
    assert after["bridge"] != before["bridge"]

    s = seen(a.get("/api/v1/settings")).json()
    assert s["effective"]["bridge"]["low_battery_level"] == 2
    assert s["pending"] is None and s["overlay"] == {"bridge": {"low_battery_level": 2}}
    assert (a.data_dir / "settings" / "overlay.toml").exists()

    events = seen(a.get("/api/v1/events", params={"kind": "settings."})).json()["items"]
    assert events and events[0]["kind"] == "settings.committed"
    assert events[0]["body"]["changed"] == ["bridge.low_battery_level"]

    # Discarding pending changes.
    assert seen(put(a, "/api/v1/settings/pending", {"bridge": {"offline_after_s": 60}})).status_code == 200
    assert seen(delete(a, "/api/v1/settings/pending")).status_code == 204
    assert seen(a.get("/api/v1/settings")).json()["pending"] is None
    seen.assert_no_secret()


def test_backup_restores_on_a_fresh_data_directory_with_the_device_key(appliance_factory):
    a = appliance_factory(SECTIONS).start()
    seen = SeenResponses(SECRETS)
    # A change with a secret (a second user) and one that restarts the hub itself: the commit
    # is answered before the hub goes down.
    users = [{"name": "admin", "password": "***", "role": "admin"},
             {"name": "viewer1", "password": "viewer-pass-1", "role": "viewer"}]
    r = seen(put(a, "/api/v1/settings/pending", {"auth": {"users": users}, "bridge": {"offline_after_s": 120}}))
    assert r.status_code == 200, r.text
    assert r.json()["pending"]["auth"]["users"][0]["password"] == "***"
    hub_pid = a.worker("hub")["pid"]
    r = seen(a.post("/api/v1/settings/commit"))
    assert r.status_code == 200, r.text
    assert sorted(r.json()["apply"]["restarted"]) == ["bridge", "hub"]
    a.wait_restarted("hub", hub_pid, 20)
    wait_for(lambda: a.get("/api/v1/settings").status_code == 200, 10, what="hub answering")
    source = seen(a.get("/api/v1/settings")).json()
    assert source["effective"]["auth"]["users"][1]["password"] == "***"

    # A user of the hub's own user table (not of the configuration) travels in the backup too.
    r = a.post("/api/v1/users", json={"name": "olga", "password": "olga-pass-1", "role": "operator"})
    assert r.status_code == 201, r.text
    r = seen(a.get("/api/v1/settings/backup"))
    assert r.status_code == 200, r.text
    assert r.headers["content-disposition"].startswith("attachment")
    backup = r.json()
    assert backup["format"] == "watchpost-settings-backup"
    assert {(u["name"], u["role"]) for u in backup["users"]} >= {("admin", "admin"), ("olga", "operator")}
    assert all(u["sealed"] and "$argon2" not in u["sealed"] for u in backup["users"])
    assert backup["overlay"]["auth"]["users"][1]["password"].startswith("sealed:")

    b = appliance_factory(SECTIONS).start()
    # Without the device key of the box that made it, the backup does not open.
    r = seen(b.post("/api/v1/settings/restore", json=backup))
    assert r.status_code == 422 and r.json()["error"]["code"] == "BACKUP_KEY_MISMATCH", r.text
    # As docs/settings.md says: copy secrets/device.key over, then restore.
    shutil.copy(a.data_dir / "secrets" / "device.key", b.data_dir / "secrets" / "device.key")
    r = seen(b.post("/api/v1/settings/restore", json=backup, timeout=10))
    assert r.status_code == 200, r.text
    assert r.json()["base_file_matches"] is False  # another data_dir in its file
    b.wait_healthy(20)
    wait_for(lambda: b.get("/api/v1/settings").status_code == 200, 10, what="hub answering")
    restored = seen(b.get("/api/v1/settings")).json()
    assert comparable(restored["effective"]) == comparable(source["effective"])
    assert restored["overlay"] == source["overlay"]
    # The restored user can log in on the new box.
    wait_for(lambda: b.get("/api/v1/system", auth=("viewer1", "viewer-pass-1")).status_code == 200, 10,
             what="restored user accepted")
    assert b.get("/api/v1/auth/me", auth=("olga", "olga-pass-1")).json()["role"] == "operator"
    seen.assert_no_secret()
