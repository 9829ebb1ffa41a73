"""The first-boot claim on a running appliance: with no user every page and API route leads to
/claim; the setup code is in the log (the journal on the image); a short press of the board's
button (simulated: SIGUSR1 toggles the line) proves physical access instead of the code, for
two minutes."""
from __future__ import annotations

import os
import re
import signal
import time

import requests

from conftest import Appliance, base_sections, wait_for


def unclaimed(tmp_path) -> Appliance:
    sections = base_sections(tmp_path / "data")
    sections["system"].update(board="rpi4", board_io="simulated")
    return Appliance(tmp_path, sections, users=False)


def test_unclaimed_box_redirects_and_the_logged_code_claims_it(tmp_path):
    app = unclaimed(tmp_path).start()
    try:
        for path in ("/", "/settings", "/api/v1/system"):
            r = requests.get(app.url(path), allow_redirects=False, timeout=5)
            assert r.status_code == 303 and r.headers["location"] == "/claim", path
        assert requests.get(app.url("/health"), timeout=5).status_code == 200
        page = requests.get(app.url("/claim"), timeout=5)
        assert page.status_code == 200 and 'name="setup_code"' in page.text
        found = wait_for(lambda: re.search(r"enter setup code ([A-Z0-9]{4}-[A-Z0-9]{4})", app.log()),
                         10, what="the setup code in the log")
        code = found.group(1)
        wrong = requests.post(app.url("/api/v1/auth/claim"), timeout=10,
                              json={"setup_code": "AAAA-2222", "user": "ann", "password": "a-long-password"})
        assert wrong.status_code == 403
        ok = requests.post(app.url("/api/v1/auth/claim"), timeout=10,
                           json={"setup_code": code, "user": "ann", "password": "a-long-password"})
        assert ok.status_code == 201, ok.text
        assert "wp_session=" in ok.headers["set-cookie"]
        assert requests.get(app.url("/api/v1/system"), auth=("ann", "a-long-password"), timeout=5).status_code == 200
        assert not (app.data_dir / "setup-code").exists()
        # The hub's warning with the code is among the recent logs the supervisor keeps for
        # the system page (a worker's warnings reach it with its heartbeats).
        page = wait_for(lambda: (p := requests.get(app.url("/system"), auth=("ann", "a-long-password"),
                                                   timeout=5)).status_code == 200
                        and "enter setup code" in p.text and p, 5, what="the warning on /system")
        assert "hub" in page.text
    finally:
        app.stop()


def test_a_short_button_press_proves_physical_access(tmp_path):
    app = unclaimed(tmp_path).start()
    try:
        status = requests.get(app.url("/api/v1/auth/claim"), timeout=5).json()
        assert status == {"claimed": False, "button": True}
        body = {"user": "ann", "password": "a-long-password"}
        # No code and no press: refused.
        r = requests.post(app.url("/api/v1/auth/claim"), json=body, timeout=10)
        assert r.status_code == 403 and r.json()["error"]["code"] == "NO_PROOF_OF_ACCESS"
        os.kill(app.proc.pid, signal.SIGUSR1)
        time.sleep(0.2)
        os.kill(app.proc.pid, signal.SIGUSR1)
        wait_for(lambda: (app.health()["board"]["last_button"] or "").startswith("publish_address"),
                 5, what="the short press")
        r = requests.post(app.url("/api/v1/auth/claim"), json=body, timeout=10)
        assert r.status_code == 201, r.text
        assert requests.get(app.url("/api/v1/auth/claim"), timeout=5).json()["claimed"] is True
    finally:
        app.stop()
