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


VIEWER = ("watcher", "demo-viewer")
BOARD = {"system": {"board": "rpi4", "board_io": "simulated"}}


def make_board_appliance(appliance_factory, rauc: Rauc):
    """With simulated board IO (/health shows the status LED) and a viewer besides the admin."""
    a = appliance_factory(BOARD, extra_toml=f'\n[hub.update]\nkeyring = "{rauc.pki.ca}"\n'
                          f'\n[[auth.users]]\nname = "{VIEWER[0]}"\npassword = "{VIEWER[1]}"\nrole = "viewer"\n')
    return a.start(env={"DBUS_SYSTEM_BUS_ADDRESS": rauc.address})


def led(a) -> str:
    return a.health()["board"]["led"]


def test_update_page_for_admins_and_viewers(appliance_factory, rauc):
    """The page shows version, slots and state to everyone; the controls only to admins; the
    upload the page's script makes (the file as the body, the session's CSRF header) reaches the
    update API's checks."""
    import requests

    a = make_board_appliance(appliance_factory, rauc)
    admin = a.get("/update")
    assert admin.status_code == 200, admin.text
    h = admin.text
    assert "data-update-upload" in h and 'name="force"' in h and 'action="/update/mark"' in h
    assert "data-running-version" in h and "rootfs.0" in h and "rootfs.1" in h
    assert 'href="/update"' in h, "the navigation has the update page"
    viewer = a.get("/update", auth=VIEWER)
    assert viewer.status_code == 200, viewer.text
    assert "data-update-upload" not in viewer.text and "/update/mark" not in viewer.text
    assert "rootfs.1" in viewer.text and "data-update" in viewer.text
    assert a.post("/update/mark", auth=VIEWER, data={"state": "good"}).status_code == 403
    with open(rauc.bundle("page-stranger", "0.9.0", pki=rauc.other_pki), "rb") as f:
        body = f.read()
    assert a.post("/api/v1/system/update", auth=VIEWER, data=b"x" * 100).status_code == 403

    # A browser session, as the page's script sends the file.
    s = requests.Session()
    r = s.post(a.url("/api/v1/auth/login"), json={"user": ADMIN[0], "password": ADMIN[1]}, timeout=10)
    assert r.status_code == 200, r.text
    csrf = r.json()["csrf"]
    octet = {"Content-Type": "application/octet-stream"}
    r = s.post(a.url("/api/v1/system/update"), data=b"x" * 100, headers={**octet, "Connection": "close"}, timeout=30)
    assert r.status_code == 403, "no CSRF header, refused"
    r = s.post(a.url("/api/v1/system/update"), data=body, headers={**octet, "X-CSRF-Token": csrf}, timeout=30)
    assert r.status_code == 422 and r.json()["error"]["code"] == "BAD_SIGNATURE", r.text
    page = s.get(a.url("/update"), timeout=10).text
    assert "BAD_SIGNATURE" in page and "refused" in page
    # The live stream carries the update status (sent once on connect, then on each change).
    import json
    with s.get(a.url("/live"), stream=True, timeout=10) as live:
        lines = live.iter_lines(decode_unicode=True)
        for line in lines:
            if line == "event: update":
                data = json.loads(next(lines).removeprefix("data: "))
                break
    assert data["state"] == "refused" and data["reason"].startswith("BAD_SIGNATURE"), data
    # Mark good from the page's form (the running slot).
    r = s.post(a.url("/update/mark"), data={"csrf": csrf, "state": "good"}, headers={"Accept": "application/json"},
               timeout=30)
    assert r.status_code == 200 and r.json()["ok"], r.text


def test_hub_killed_mid_install(appliance_factory, rauc):
    """kill -9 of the hub while RAUC installs: RAUC carries on, the restarted hub follows it
    again (installing, with why), the old slot stays primary until RAUC completes, the LED shows
    "updating" throughout, and the next install is accepted."""
    import os
    import signal

    a = make_board_appliance(appliance_factory, rauc)
    before = rauc.primary()
    wait_for(lambda: led(a) not in ("booting", "updating"), 30, what="LED settled")
    rauc.hold(True)
    try:
        calls = len(rauc.backend_calls())
        r = upload(a, rauc.bundle("killed", "0.5.0"))
        assert r.status_code == 202, r.text
        wait_for(lambda: "set-state" in rauc.backend_calls()[calls:], 30, what="RAUC held at the install's start")
        s = status(a)
        assert s["state"] == "installing" and s["primary"] == before, s
        wait_for(lambda: led(a) == "updating", 15, what="LED updating")

        pid = a.pids()["hub"]
        os.kill(pid, signal.SIGKILL)
        a.wait_restarted("hub", pid, 30)
        s = wait_for(lambda: (st := status(a))["state"] == "installing" and st, 30, what="installing after restart")
        assert "restarted" in s["reason"], s
        # RAUC answers no slot query while it installs: the restarted hub knows the booted slot
        # (a property) but not which is primary; the boot loader's state says it is unchanged.
        assert s["booted"] is not None and s["primary"] in (None, before), s
        assert rauc.primary() == before
        wait_for(lambda: led(a) == "updating", 15, what="LED updating after the restart")
        r = upload(a, rauc.bundle("meanwhile", "0.6.0"))
        assert r.status_code == 409 and r.json()["error"]["code"] == "UPDATE_IN_PROGRESS", r.text
    finally:
        rauc.hold(False)

    s = wait_for(lambda: (st := status(a))["state"] != "installing" and st, 60, interval=0.1,
                 what="the install followed to its end")
    assert s["state"] == "installed_reboot_pending", s
    assert s["percent"] == 100 and s["primary"] != before and rauc.primary() == s["primary"]
    assert rauc.slot_release(s["primary"]) == "watchpost 0.5.0"
    wait_for(lambda: led(a) != "updating", 15, what="LED off updating")

    # The next install is accepted and completes.
    r = upload(a, rauc.bundle("after", "0.6.0"))
    assert r.status_code == 202, r.text
    s = wait_for(lambda: (st := status(a))["state"] == "installed_reboot_pending" and st, 60, interval=0.1,
                 what="the next install")
    assert rauc.slot_release(s["primary"]) == "watchpost 0.6.0"
