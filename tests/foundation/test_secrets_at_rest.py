"""Secrets at rest (docs/settings.md, "Secrets at rest"): every secret the appliance keeps —
the settings overlay, the pending changes, the alarm receivers added through the API — is
sealed under the device key. The secrets set here through the settings API and the alarms API
appear nowhere in the data directory (as text, hex or base64, in any file), in no API answer
and in no log line; the alarm service still delivers with them (pysiaalarm decrypts), and
``watchpost check-config`` opens the overlay with the device key and refuses it with another,
naming the key and not the value.
"""
from __future__ import annotations

import base64
import shutil
import subprocess
import sys
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "alarm"))
from alarm_support import sia_factory  # noqa: E402,F401 - fixture
from conftest import ADMIN, BIN, SeenResponses, wait_for  # noqa: E402

# 16 ASCII characters each: AES-128 keys as pysiaalarm takes them (key_format = "ascii").
SETTINGS_KEY = "AtRest-Settings1"
API_KEY = "AtRest-AlarmApi2"
USER_PASSWORD = "viewer-at-rest-pw"
SECRETS = (SETTINGS_KEY, API_KEY, USER_PASSWORD)


def forms(secret: str) -> list[bytes]:
    """The byte strings a leaked secret could be stored as."""
    raw = secret.encode()
    return [
        raw,
        raw.hex().encode(),
        raw.hex().upper().encode(),
        base64.b64encode(raw),
        base64.b64encode(raw).rstrip(b"="),
        base64.urlsafe_b64encode(raw).rstrip(b"="),
        secret.encode("utf-16-le"),
    ]


def leaks(root: Path) -> list[str]:
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        for s in SECRETS:
            for f in forms(s):
                if f in data:
                    found.append(f"{path.relative_to(root)}: {s!r} as {f[:40]!r}")
    return found


def receiver(rid: str, port: int, account: str, key: str) -> dict:
    return {"type": "sia", "id": rid, "host": f"127.0.0.1:{port}", "account": account, "key": key,
            "key_format": "ascii", "ack_timeout_ms": 2000, "attempts": 1,
            "backoff_initial_ms": 100, "backoff_max_ms": 1000}


def check_config(config: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN), "check-config", str(config)], capture_output=True, text=True, timeout=30)


def test_secrets_are_sealed_at_rest_and_still_used(appliance_factory, sia_factory, tmp_path):
    sia = sia_factory(accounts=(f"AAA:{API_KEY}", f"BBB:{SETTINGS_KEY}")).start()
    a = appliance_factory({"bridge": {"enabled": True}, "alarms": {"enabled": True, "rate_limit_per_min": 0}}).start()
    seen = SeenResponses(SECRETS)

    # Through the settings API: a receiver key and a user's password, staged (pending, in the
    # hub's store) and then committed (the overlay).
    users = [{"name": "admin", "password": "***", "role": "admin"},
             {"name": "viewer1", "password": USER_PASSWORD, "role": "viewer"}]
    r = seen(requests.put(a.url("/api/v1/settings/pending"), auth=ADMIN, timeout=5, json={
        "alarms": {"receivers": [receiver("cs", sia.port, "BBB", SETTINGS_KEY)]},
        "auth": {"users": users},
    }))
    assert r.status_code == 200, r.text
    assert r.json()["pending"]["alarms"]["receivers"][0]["key"] == "***"
    assert leaks(a.data_dir) == [], "pending changes stored in clear"

    hub_pid = a.worker("hub")["pid"]
    r = seen(a.post("/api/v1/settings/commit"))
    assert r.status_code == 200, r.text
    wait_for(lambda: a.worker("hub")["pid"] != hub_pid and a.worker("hub")["state"] == "running", 20,
             what="hub restarted")
    wait_for(lambda: a.get("/api/v1/settings").status_code == 200, 10, what="hub answering")
    overlay = (a.data_dir / "settings" / "overlay.toml").read_text()
    assert 'key = "sealed:v1:' in overlay and 'password = "sealed:v1:' in overlay, overlay

    # Through the alarms API: a receiver stored in the hub's store.
    r = seen(a.post("/api/v1/alarms/receivers", json=receiver("api", sia.port, "AAA", API_KEY)))
    assert r.status_code == 201, r.text
    assert r.json()["key"] == "***"

    # The alarm service uses both keys: pysiaalarm decrypts a test alarm through each.
    for rid in ("cs", "api"):
        r = seen(a.post(f"/api/v1/alarms/receivers/{rid}/test"))
        assert r.status_code == 202, r.text
    events = sia.wait_events(2)
    assert sorted(e["account"] for e in events[:2]) == ["AAA", "BBB"], events
    assert all(e["encrypted"] for e in events[:2]), events
    # The committed user's password works (the hub opened the overlay).
    wait_for(lambda: a.get("/api/v1/system", auth=("viewer1", USER_PASSWORD)).status_code == 200, 10,
             what="the overlay's user accepted")

    # The API answers "***" wherever a secret is.
    s = seen(a.get("/api/v1/settings")).json()
    assert s["effective"]["alarms"]["receivers"][0]["key"] == "***"
    assert s["overlay"]["auth"]["users"][1]["password"] == "***"
    for path in ("/api/v1/alarms/receivers", "/api/v1/alarms/receivers/api", "/api/v1/alarms/receivers/cs",
                 "/api/v1/settings/backup", "/api/v1/alarms/queues", "/api/v1/events"):
        assert seen(a.get(path)).status_code == 200, path
    seen.assert_no_secret()

    # check-config opens the overlay with the device key...
    ok = check_config(a.config_path)
    assert ok.returncode == 0, ok.stderr

    # ...nothing in the data directory holds a secret, in any form, in any file, and no log
    # line has one.
    assert a.stop() is not None
    assert leaks(a.data_dir) == []
    log = a.log_path.read_text(errors="replace")
    for secret in SECRETS:
        assert secret not in log, f"{secret!r} logged"

    # ...and with another device key the overlay is refused, naming the key, not the value.
    other = tmp_path / "other"
    (other / "data" / "settings").mkdir(parents=True)
    shutil.copy(a.data_dir / "settings" / "overlay.toml", other / "data" / "settings" / "overlay.toml")
    (other / "data" / "secrets").mkdir()
    (other / "data" / "secrets" / "device.key").write_bytes(bytes(range(32)))
    config = other / "watchpost.toml"
    config.write_text(a.config_path.read_text().replace(str(a.data_dir), str(other / "data")))
    bad = check_config(config)
    assert bad.returncode == 78, bad.stdout + bad.stderr
    assert "sealed with another device key or damaged" in bad.stderr, bad.stderr
    assert "alarms.receivers[0].key" in bad.stderr or "auth.users[1].password" in bad.stderr, bad.stderr
    for secret in SECRETS:
        assert secret not in bad.stderr
