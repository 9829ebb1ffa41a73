"""The settings page and the first-boot wizard (docs/settings.md, "The settings page"):
a refused value comes back beside its field; a staged change applied restarts only its
worker; every wizard step answers and a skipped one is marked.

Each test runs its own appliance (broker, bridge without a YoLink source, hub) on port 0 with
a temporary data directory, through the pages as a browser uses them (a session cookie and
the form's CSRF field).
"""
from __future__ import annotations

import gzip
import re

import requests

from conftest import ADMIN, wait_for

SECTIONS = {"bridge": {"enabled": True}}
STEPS = ["admin", "network", "fieldbus", "yolink", "alarms", "cameras", "mqtt"]


class Browser:
    """A signed-in session and the CSRF token its forms carry."""

    def __init__(self, a):
        self.a = a
        self.s = requests.Session()
        self.csrf = ""
        r = self.s.post(a.url("/api/v1/auth/login"),
                        json={"user": ADMIN[0], "password": ADMIN[1]}, timeout=10)
        if r.status_code == 404:  # no login API in this build: HTTP Basic, no CSRF needed
            self.s.auth = ADMIN
        else:
            assert r.status_code == 200, r.text
            assert "wp_session" in self.s.cookies, r.headers
            self.csrf = r.json()["csrf"]

    def get(self, path: str) -> requests.Response:
        return self.s.get(self.a.url(path), timeout=10)

    def post(self, path: str, fields: list[tuple[str, str]]) -> requests.Response:
        return self.s.post(self.a.url(path), data=[("csrf", self.csrf), *fields],
                           allow_redirects=False, timeout=10)


def test_a_refused_value_is_named_beside_its_field(appliance_factory):
    a = appliance_factory(SECTIONS).start()
    b = Browser(a)
    page = b.get("/settings")
    assert page.status_code == 200, page.text
    assert 'name="hub.events_max_age_days"' in page.text
    assert 'href="/settings"' in page.text  # the admin's nav entry
    size = len(gzip.compress(page.content))
    print(f"/settings: {len(page.content)} bytes, {size} gzipped")
    assert size < 100 * 1024

    # A value of the right type the configuration refuses: the API's details.key names it.
    r = b.post("/settings", [("supervisor.restart_budget", "0")])
    assert r.status_code == 422, r.text
    field = re.search(r'<input id="f-supervisor\.restart_budget"[^>]*>', r.text).group(0)
    assert 'aria-invalid="true"' in field and 'aria-describedby="f-supervisor.restart_budget-error' in field
    assert re.search(r'id="f-supervisor\.restart_budget-error" class="error">[^<]+<', r.text)
    assert 'id="error-summary"' in r.text and "<code>supervisor.restart_budget</code>" in r.text

    # Not a number at all: refused by the form before the API.
    r = b.post("/settings", [("hub.events_max_age_days", "thirty")])
    assert r.status_code == 422
    assert 'id="f-hub.events_max_age_days-error"' in r.text

    # Nothing was staged.
    assert b.get("/api/v1/settings").json()["pending"] is None


def test_a_staged_change_applies_to_its_worker_only(appliance_factory):
    a = appliance_factory(SECTIONS).start()
    wait_for(lambda: all(w["state"] == "running" for w in a.health()["workers"]), 15, what="all running")
    before = a.pids()
    b = Browser(a)

    # The whole form as the page rendered it, one value changed: only that key is staged.
    page = b.get("/settings").text
    fields = [(n, v) for n, v in re.findall(r'<input id="[^"]*" name="([^"]+)" type="(?:text|number)"[^>]*value="([^"]*)"', page)]
    assert fields, "no inputs found"
    fields = [(n, "2" if n == "bridge.low_battery_level" else v.replace("&quot;", '"')) for n, v in fields]
    r = b.post("/settings", fields)
    assert r.status_code == 303, r.text
    s = b.get("/api/v1/settings").json()
    assert s["pending_changes"] == ["bridge.low_battery_level"], s["pending_changes"]
    page = b.get("/settings").text
    assert "bridge.low_battery_level</code>: 1 → 2" in page

    r = b.post("/settings/apply", [])
    assert r.status_code == 303
    assert "Restarted%3A%20bridge." in r.headers["location"], r.headers["location"]

    a.wait_restarted("bridge", before["bridge"])
    after = a.pids()
    assert after["broker"] == before["broker"] and after["hub"] == before["hub"], (before, after)
    assert b.get("/api/v1/settings").json()["effective"]["bridge"]["low_battery_level"] == 2


def test_every_wizard_step_answers_and_a_skip_is_marked(appliance_factory):
    a = appliance_factory(SECTIONS).start()
    b = Browser(a)
    r = b.get("/setup")
    assert r.status_code == 200, r.text
    for step in STEPS:
        r = b.get(f"/setup/{step}")
        assert r.status_code == 200, (step, r.text[:500])
        assert f'action="/setup/{step}/skip"' in r.text
    assert "system.timezone" in b.get("/setup/network").text

    r = b.post("/setup/yolink/skip", [])
    assert r.status_code == 303 and r.headers["location"].startswith("/setup/alarms"), r.headers
    assert re.search(r'href="/setup/yolink"[^>]*>YoLink</a> <span class="mark skipped">\(skipped\)', b.get("/setup").text)

    # Saving a step with a bad value: refused beside the field; a good one: applied, done.
    r = b.post("/setup/network", [("system.timezone", "Not/A_Zone")])
    assert r.status_code == 422, r.text
    assert 'id="f-system.timezone-error"' in r.text
    r = b.post("/setup/network", [("system.timezone", "UTC"), ("system.hostname", "watchpost-1")])
    assert r.status_code == 303, r.text
    eff = b.get("/api/v1/settings").json()["effective"]["system"]
    assert eff["hostname"] == "watchpost-1" and eff["timezone"] == "UTC"
    assert '<span class="mark done">(done)' in b.get("/setup").text
