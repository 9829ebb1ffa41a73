#!/usr/bin/env python3
"""Writes docs/api.md from the hub's OpenAPI document (`watchpost print-openapi`): every route
with its minimum role, what it answers and its errors. `make api-doc` runs it;
tests/foundation/test_openapi.py fails when docs/api.md is not what this prints."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAD = """# The hub's HTTP API

The `hub` worker serves the appliance's HTTP API on `[hub] listen` (the demo:
`http://127.0.0.1:8080`). This page is generated from the OpenAPI 3.1 document that the hub
serves at `GET /api/v1/openapi.json` and that `watchpost print-openapi` prints
(`make api-doc` writes this page again; a test fails when it is out of date).

- **Authentication.** Every route under `/api/v1/` but the login and the first-boot claim
  requires it, in one of three ways: an API token (`Authorization: Bearer wpt_…`, made by an
  administrator with `POST /api/v1/tokens`, shown once, revocable); a browser session (the
  `wp_session` cookie from `POST /api/v1/auth/login`; state-changing requests with it also
  send the session's `X-CSRF-Token`); or HTTP Basic against the appliance's users, kept for
  existing clients (refused for users with two-factor sign-in). `/health` and `/metrics` are
  open. Until the first administrator exists, every route but these and the claim answers
  `303` to `/claim`.
- **Roles.** Each route names the least role that may call it, and the hub enforces it
  (`403 FORBIDDEN`): `viewer` reads, `operator` also commands (zones, relays, cameras, test
  alarms), `admin` also changes settings, users and tokens. `public` routes need nothing.
- **Limits.** Five wrong passwords for a user (twenty from one address) lock it out for 30 s,
  doubling with each further failure up to 15 min; API requests are limited to 100 a minute
  per user and 1000 per address (`[auth]` settings). Both answer `429` with `Retry-After`.
- **Errors** have one shape, `{"error": {"code": "ZONE_NOT_FOUND", "message": "...",
  "details": {}}}`, with the HTTP status below; `code` is stable, `message` is for people.
  Malformed query strings, paths and JSON bodies are `400` with `INVALID_QUERY`,
  `INVALID_PATH` or `INVALID_BODY`; unknown paths under `/api/v1/` are `404 NOT_FOUND`; missing
  or wrong credentials are `401 UNAUTHORIZED`.
- **Lists** have one shape, `{"items": [...], "pagination": {"page", "limit", "total",
  "total_pages"}}`, with `?page` (from 1) and `?limit` (1 to 500, default 50);
  `total_pages` is 0 for an empty list.

"""


def codes(text: str) -> str:
    found = re.findall(r"`([A-Z][A-Z0-9_]+)`", text or "")
    return ", ".join(f"`{c}`" for c in dict.fromkeys(found))


def render(doc: dict) -> str:
    out = [HEAD]
    by_tag: dict[str, list] = {}
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method not in ("get", "post", "put", "delete", "patch"):
                continue
            tag = (op.get("tags") or ["other"])[0]
            by_tag.setdefault(tag, []).append((path, method.upper(), op))
    for tag in sorted(by_tag):
        out.append(f"## {tag}\n\n| route | role | what | answers |\n| --- | --- | --- | --- |\n")
        for path, method, op in sorted(by_tag[tag], key=lambda r: (r[0], r[1])):
            role = op.get("x-watchpost-role", "public" if op.get("security") == [{}] else "?")
            what = (op.get("summary") or op.get("description") or "").strip().replace("\n", " ")
            answers = []
            for status, resp in op.get("responses", {}).items():
                c = codes(resp.get("description", ""))
                answers.append(f"{status}" + (f" {c}" if c else ""))
            out.append(f"| `{method} {path}` | {role} | {what} | {'; '.join(answers)} |\n")
        out.append("\n")
    return "".join(out).rstrip() + "\n"


def main() -> int:
    binary = os.environ.get("WATCHPOST_BIN", str(ROOT / "target" / "debug" / "watchpost"))
    doc = json.loads(subprocess.run([binary, "print-openapi"], check=True, capture_output=True, text=True).stdout)
    text = render(doc)
    if "--check" in sys.argv:
        current = (ROOT / "docs" / "api.md").read_text() if (ROOT / "docs" / "api.md").exists() else ""
        if current != text:
            print("docs/api.md is out of date: run `make api-doc`", file=sys.stderr)
            return 1
        return 0
    (ROOT / "docs" / "api.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
