"""Updates through the hub's API with the real RAUC (Debian's ``rauc service``) on a private
D-Bus with file-backed slots (rauc_env.py): a good bundle signed by the development CA made
here installs with progress to 100 % and the other slot becomes primary; a bundle signed by
another CA, one for another compatible string, a cut-off upload and a cut-off bundle are each
refused with their reason and leave the slots untouched; after a "reboot" into the new slot
the status says unconfirmed until the slot is marked good.
"""
from __future__ import annotations

import socket
from pathlib import Path

import pytest

from conftest import ADMIN, wait_for
from rauc_env import Rauc, missing_tools

pytestmark = pytest.mark.skipif(bool(missing_tools()), reason=f"RAUC tools missing: {missing_tools()} (scripts/install-deps.sh)")


@pytest.fixture(scope="module")
def rauc(tmp_path_factory):
    r = Rauc(tmp_path_factory.mktemp("rauc"))
    r.start("A")
    yield r
    r.close()


def make_appliance(appliance_factory, rauc: Rauc):
    a = appliance_factory(extra_toml=f'\n[hub.update]\nkeyring = "{rauc.pki.ca}"\n')
    return a.start(env={"DBUS_SYSTEM_BUS_ADDRESS": rauc.address})


def upload(a, bundle: Path, **params):
    with open(bundle, "rb") as f:
        return a.post("/api/v1/system/update", data=f, params=params, timeout=60,
                      headers={"Content-Type": "application/octet-stream"})


def status(a) -> dict:
    r = a.get("/api/v1/system/update")
    assert r.status_code == 200, r.text
    return r.json()


def assert_untouched(rauc: Rauc):
    assert rauc.primary() == "A"
    assert rauc.slot_release("B") == ""


def cut_upload(a, data: bytes) -> None:
    """Sends the headers of a whole upload and half of its body, then closes the connection."""
    import base64
    host, port = a.addr("hub.listen")
    auth = base64.b64encode(f"{ADMIN[0]}:{ADMIN[1]}".encode()).decode()
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall((f"POST /api/v1/system/update HTTP/1.1\r\nHost: {host}\r\nAuthorization: Basic {auth}\r\n"
                   f"Content-Type: application/octet-stream\r\nContent-Length: {len(data)}\r\n\r\n").encode())
        s.sendall(data[: len(data) // 2])
        s.shutdown(socket.SHUT_WR)
        try:
            while s.recv(4096):
                pass
        except OSError:
            pass


def test_refusals_then_install_and_confirm(appliance_factory, rauc):
    a = make_appliance(appliance_factory, rauc)
    s = status(a)
    assert s["state"] == "idle", s
    assert s["booted"] == "A" and s["primary"] == "A"
    assert {x["bootname"] for x in s["slots"]} == {"A", "B"}

    # Signed by a CA the appliance does not trust.
    stranger = rauc.bundle("stranger", "0.2.0", pki=rauc.other_pki)
    r = upload(a, stranger)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "BAD_SIGNATURE"
    assert "Stranger signer" in r.json()["error"]["message"]
    assert status(a)["state"] == "refused"
    assert_untouched(rauc)

    # Made for another device.
    other = rauc.bundle("other-device", "0.2.0", compatible="other-device")
    r = upload(a, other)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "WRONG_COMPATIBLE"
    assert "other-device" in r.json()["error"]["message"]
    assert_untouched(rauc)

    good = rauc.bundle("good", "0.2.0")
    data = good.read_bytes()

    # The upload breaks off half-way.
    cut_upload(a, data)
    s = wait_for(lambda: (st := status(a))["state"] == "refused" and st["code"] == "BUNDLE_TRUNCATED" and st,
                 30, interval=0.1, what="the cut upload refused")
    assert "truncated" in s["reason"]
    assert_untouched(rauc)
    assert not any(p.name.startswith("upload") for p in (a.data_dir / "update").iterdir())

    # The whole upload of a file that was cut before.
    cut = rauc.dir / "bundles" / "cut.raucb"
    cut.write_bytes(data[: len(data) - 3000])
    r = upload(a, cut)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "BUNDLE_TRUNCATED"
    assert_untouched(rauc)

    # Older than what runs: refused unless forced (not installed here either way).
    old = rauc.bundle("old", "0.0.1")
    r = upload(a, old)
    assert r.status_code == 422 and r.json()["error"]["code"] == "OLDER_VERSION", r.text

    # The good bundle.
    r = upload(a, good)
    assert r.status_code == 202, r.text
    assert r.json()["bundle"]["version"] == "0.2.0"
    assert "Dev signer" in r.json()["bundle"]["signer"]
    percents: set[int] = set()

    def installed():
        st = status(a)
        if st["percent"] is not None:
            percents.add(st["percent"])
        assert st["state"] in ("installing", "installed_reboot_pending"), st
        return st if st["state"] == "installed_reboot_pending" else None

    s = wait_for(installed, 120, interval=0.05, what="the install to complete")
    assert s["percent"] == 100
    assert s["primary"] == "B"
    assert rauc.primary() == "B"
    assert rauc.slot_release("B") == "watchpost 0.2.0"

    kinds = [e["kind"] for e in a.get("/api/v1/events", params={"kind": "update.", "limit": 100}).json()["items"]]
    for k in ("update.refused", "update.upload_started", "update.verified", "update.install_started",
              "update.installed"):
        assert k in kinds, kinds

    # "Reboot" into B: the new slot runs unconfirmed until it is marked good.
    a.stop()
    rauc.stop_service()
    rauc.start("B")
    a.start(env={"DBUS_SYSTEM_BUS_ADDRESS": rauc.address})
    s = wait_for(lambda: (st := status(a))["state"] == "booted_unconfirmed" and st, 30, interval=0.1,
                 what="booted unconfirmed")
    assert s["booted"] == "B"
    r = a.post("/api/v1/system/update/mark", json={"state": "good", "slot": "booted"})
    assert r.status_code == 200, r.text
    assert r.json()["slot"] == "rootfs.1"
    assert status(a)["state"] == "confirmed"


def test_no_rauc_is_unavailable_not_a_failure(appliance_factory, tmp_path):
    a = appliance_factory().start(env={"DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={tmp_path}/no-bus"})
    s = status(a)
    assert s["state"] == "unavailable", s
    r = a.post("/api/v1/system/update", data=b"x" * 100, timeout=10)
    assert r.status_code == 503 and r.json()["error"]["code"] == "RAUC_UNAVAILABLE", r.text
    assert a.health()["status"] == "healthy"


def test_cli_status_refusal_and_mark(rauc):
    """``watchpost update`` talks to RAUC directly, with the hub's checks."""
    import subprocess
    from conftest import BIN

    def cli(*args):
        return subprocess.run([str(BIN), "update", *args], env=rauc.env(), capture_output=True, text=True,
                              timeout=60)

    r = cli("status")
    assert r.returncode == 0, r.stderr
    assert "booted: " in r.stdout and "rootfs.0" in r.stdout and "rootfs.1" in r.stdout
    other = rauc.bundle("cli-other", "0.3.0", compatible="other-device")
    primary = rauc.primary()
    r = cli("install", str(other), "--keyring", str(rauc.pki.ca))
    assert r.returncode == 65, (r.stdout, r.stderr)
    assert "WRONG_COMPATIBLE" in r.stderr
    stranger = rauc.bundle("cli-stranger", "0.3.0", pki=rauc.other_pki)
    r = cli("install", str(stranger), "--keyring", str(rauc.pki.ca))
    assert r.returncode == 65 and "BAD_SIGNATURE" in r.stderr, (r.stdout, r.stderr)
    assert rauc.primary() == primary
    r = cli("mark-good")
    assert r.returncode == 0, r.stderr
    assert "marked slot" in r.stdout
