"""The setup page's HTML pages on the demo appliance (`make demo`), as a browser gets them.

- every page answers 200 to a signed-in session (the session cookie of
  `POST /api/v1/auth/login`; HTTP Basic where that route does not exist), is under 100 KB
  transferred with gzip, carries the strict Content-Security-Policy, `nosniff` and
  `same-origin` headers, and loads nothing from elsewhere (no `http://` or `https://` in a `src`
  or `href`; the RTSP link is `rtsp://`);
- its assets are served gzipped, cacheable forever under their content-hashed names;
- a door the simulated YoLink cloud opens arrives on the Server-Sent Events stream `/live`
  within 2 s.
"""
from __future__ import annotations

import gzip
import json
import re
import threading
import time

import requests

from conftest import ADMIN, wait_for
from test_demo import HUB, demo, health  # noqa: F401  (the demo fixture)

PAGES = ["/", "/zones", "/cameras", "/events", "/alarms", "/relays", "/system"]
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
       "frame-ancestors 'none'")
YOLINK_SIM = "http://127.0.0.1:8091"  # scripts/demo.d: watchpost-sim yolink --listen
LIMIT = 100 * 1024


def signed_in() -> requests.Session:
    """A session as a browser has it: the login cookie, or HTTP Basic without the login API."""
    s = requests.Session()
    r = s.post(f"{HUB}/api/v1/auth/login", json={"user": ADMIN[0], "password": ADMIN[1]}, timeout=10)
    if r.status_code == 404:
        s.auth = ADMIN
    else:
        assert r.status_code in (200, 204), r.text
        assert s.cookies, "the login set no cookie"
    return s


def transferred(s: requests.Session, path: str) -> tuple[requests.Response, int]:
    """The answer and the bytes on the wire (compressed), asking for gzip."""
    r = s.get(f"{HUB}{path}", headers={"Accept-Encoding": "gzip"}, stream=True, timeout=10)
    raw = r.raw.read(decode_content=False)
    return r, len(raw)


def test_pages_and_their_live_stream(demo):
    """One demo run for both checks (the demo holds fixed ports, which a second run in the same
    module may find still closing)."""
    wait_for(lambda: health()["status"] == "healthy", timeout=60, interval=0.1, what="the demo to be healthy")
    s = signed_in()
    every_page_is_small_strict_and_self_contained(s)
    a_door_opened_shows_on_the_live_stream_within_two_seconds(s)


def every_page_is_small_strict_and_self_contained(s: requests.Session):
    assets = set()
    for path in PAGES:
        r, size = transferred(s, path)
        assert r.status_code == 200, (path, r.status_code)
        assert r.headers["content-type"].startswith("text/html"), path
        assert r.headers.get("content-encoding") == "gzip", path
        assert size < LIMIT, (path, size)
        assert r.headers["content-security-policy"] == CSP, path
        assert r.headers["x-content-type-options"] == "nosniff", path
        assert r.headers["referrer-policy"] == "same-origin", path
        html = s.get(f"{HUB}{path}", timeout=10).text
        assert '<html lang="en">' in html, path
        assert "<main" in html and 'aria-label="Main"' in html, path
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), f"inline script on {path}"
        assert "style=" not in html, f"inline style on {path}"
        for url in re.findall(r'(?:src|href|action)="([^"]*)"', html):
            assert not url.startswith(("http://", "https://", "//")), (path, url)
            if url.startswith("/assets/"):
                assets.add(url)
        print(f"{path}: {size} B gzipped")
    assert len(assets) == 3, assets
    for url in assets:
        r, size = transferred(s, url)
        assert r.status_code == 200 and r.headers.get("content-encoding") == "gzip", url
        assert r.headers["cache-control"] == "public, max-age=31536000, immutable", url
        plain = requests.get(f"{HUB}{url}", headers={"Accept-Encoding": "identity"}, timeout=5)
        assert "content-encoding" not in plain.headers
        r = s.get(f"{HUB}{url}", headers={"Accept-Encoding": "gzip"}, stream=True, timeout=5)
        assert gzip.decompress(r.raw.read(decode_content=False)) == plain.content, url
    assert requests.get(f"{HUB}/assets/app.css", timeout=5).status_code == 404


def a_door_opened_shows_on_the_live_stream_within_two_seconds(s: requests.Session):
    # The door's current state, from the stream's first events (every sensor once).
    events: list[tuple[float, str, dict]] = []
    stop = threading.Event()

    def read():
        try:
            stream()
        except requests.RequestException:
            if not stop.is_set():
                raise

    def stream():
        with s.get(f"{HUB}/live", stream=True, timeout=(5, 30)) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            name = None
            for line in r.iter_lines(decode_unicode=True):
                if stop.is_set():
                    return
                if line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:") and name:
                    events.append((time.monotonic(), name, json.loads(line[5:])))

    t = threading.Thread(target=read, daemon=True)
    t.start()
    try:
        door = wait_for(lambda: next((e[2] for e in events if e[1] == "sensor" and e[2]["id"] == "door1"), None),
                        timeout=30, interval=0.05, what="door1 on the stream")
        want = "closed" if door["state"] == "open" else "open"
        seen = len(events)
        t0 = time.monotonic()
        r = requests.post(f"{YOLINK_SIM}/sim/report", json={"device": "door1", "state": want}, timeout=5)
        assert r.status_code == 200, r.text
        hit = wait_for(lambda: next((e for e in events[seen:] if e[1] == "sensor" and e[2]["id"] == "door1"
                                     and e[2]["state"] == want), None),
                       timeout=5, interval=0.01, what=f"door1 {want} on the stream")
        latency = hit[0] - t0
        print(f"door1 {want}: on the stream after {latency * 1000:.0f} ms")
        assert latency < 2.0
    finally:
        stop.set()
