"""Shared fixtures for Watchpost system tests.

Tests start the built binaries (``WATCHPOST_BIN``, ``WATCHPOST_SIM_BIN``; ``make`` sets them) and
talk to them only through public protocols. Every appliance gets its own temporary data
directory and listens on 127.0.0.1 with port 0: the supervisor picks free ports and writes them
to ``<data_dir>/run/listeners.json``, which the fixture reads.

Ports: a server under test binds port 0 and reports its address (the appliance through
``listeners.json``, ``watchpost-sim`` and the peer scripts on stdout). A peer that must be told
its port before it listens, or that goes away and comes back on the same port, gets a
``HeldPort``. No test binds port 0, closes the socket and starts a server on that port.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(os.environ.get("WATCHPOST_BIN", ROOT / "target" / "debug" / "watchpost"))
SIM_BIN = Path(os.environ.get("WATCHPOST_SIM_BIN", ROOT / "target" / "debug" / "watchpost-sim"))
ADMIN = ("admin", "demo-admin")


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.02, what: str = "condition") -> Any:
    """Polls ``predicate`` until it returns a truthy value or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - polled peers may not be up yet
            last_exc = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}" + (f" (last error: {last_exc})" if last_exc else ""))


class HeldPort:
    """A loopback TCP port held for a peer that must be told its port before it listens
    (mosquitto, ffmpeg, QEMU's port forwards, a receiver that is down when the test starts), or
    that goes away and comes back on the same port (an outage), or for an address where nothing
    may listen.

    The port is bound here with SO_REUSEADDR and never listened on, so a connection to it is
    refused, as with no peer at all. Linux lets another socket with SO_REUSEADDR bind and
    listen on it while no socket listens there (tokio, GLib and so gst-rtsp-server, asyncio and
    pymodbus, socketserver with ``allow_reuse_address`` as in pysiaalarm, mosquitto, ffmpeg and
    QEMU set it), and never hands a held port to a port-0 bind or to an outgoing connection:
    between the peer's runs the port stays ours, where a port found by binding port 0 and
    closing the socket could be taken by anyone. TCP only (for UDP the option shares the port).
    ``watchpost_runtime::testing::HeldPort`` is the same for the Rust crate tests.
    """

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()


class VethNamespace:
    """A network namespace joined to ours by a veth pair: ``host`` is our end's address,
    ``inner`` the namespace's (a /30 in ``10.<octet + pid % 50>.<pid % 250>``). ``kind`` (a
    few letters) and ``octet`` keep the namespaces, links and subnets of tests running at the
    same time apart. Needs root and iproute2; ``close()`` removes it all."""

    def __init__(self, kind: str, octet: int):
        tag = os.getpid() % 100000
        self.name = f"wp{kind}{tag}"
        self.outer, self.peer = f"wp{kind}o{tag}", f"wp{kind}i{tag}"
        net = f"10.{octet + tag % 50}.{tag % 250}"
        self.host, self.inner = f"{net}.1", f"{net}.2"
        try:
            self.ip("netns", "add", self.name)
            self.ip("link", "add", self.outer, "type", "veth", "peer", "name", self.peer)
            self.ip("link", "set", self.peer, "netns", self.name)
            self.ip("addr", "add", f"{self.host}/30", "dev", self.outer)
            self.ip("link", "set", self.outer, "up")
            self.ip("-n", self.name, "addr", "add", f"{self.inner}/30", "dev", self.peer)
            self.ip("-n", self.name, "link", "set", self.peer, "up")
            self.ip("-n", self.name, "link", "set", "lo", "up")
        except Exception:
            self.close()
            raise

    @staticmethod
    def ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)

    def exec(self, cmd: list[str]) -> list[str]:
        """``cmd`` run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *cmd]

    def close(self) -> None:
        subprocess.run(["ip", "link", "del", self.outer], capture_output=True, timeout=10)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=10)


@pytest.fixture
def held_port():
    """``held_port()`` holds a port (``HeldPort``) until the test ends and returns its number."""
    held: list[HeldPort] = []

    def hold() -> int:
        held.append(HeldPort())
        return held[-1].port

    yield hold
    for h in held:
        h.close()


class NotifyListener:
    """A systemd stand-in on ``NOTIFY_SOCKET``: collects the supervisor's sd_notify lines
    (READY=1, STATUS=..., WATCHDOG=1) with the time they arrived."""

    def __init__(self, path: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self._stop:
            try:
                data = self.sock.recv(4096).decode()
            except socket.timeout:
                continue
            except OSError:
                return
            for line in data.splitlines():
                self.messages.append((time.monotonic(), line))

    def lines(self, prefix: str) -> list[tuple[float, str]]:
        return [(t, m) for t, m in list(self.messages) if m.startswith(prefix)]

    def close(self):
        self._stop = True
        self.thread.join(2)
        self.sock.close()


class SeenResponses:
    """Every response of a test, to check at the end that none carried one of ``secrets``
    (in its body or its headers)."""

    def __init__(self, secrets: tuple[str, ...]):
        self.secrets = secrets
        self.bodies: list[str] = []

    def __call__(self, r: requests.Response) -> requests.Response:
        self.bodies.append(r.text + json.dumps(dict(r.headers)))
        return r

    def assert_no_secret(self):
        for body in self.bodies:
            for s in self.secrets:
                assert s not in body, f"secret {s!r} in a response: {body[:500]}"


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {v!r} as TOML")


def render_toml(sections: dict[str, dict[str, Any]], extra: str = "") -> str:
    out = []
    for name, body in sections.items():
        out.append(f"[{name}]")
        for k, v in body.items():
            out.append(f"{k} = {toml_value(v)}")
        out.append("")
    return "\n".join(out) + "\n" + extra


def base_sections(data_dir: Path) -> dict[str, dict[str, Any]]:
    return {
        "system": {"data_dir": str(data_dir), "log_format": "text", "log_level": "info"},
        "supervisor": {
            "heartbeat_interval_ms": 100,
            "heartbeat_timeout_ms": 1000,
            "ready_timeout_ms": 10000,
            "backoff_initial_ms": 100,
            "backoff_max_ms": 2000,
            "stop_grace_ms": 3000,
            "essential": ["broker", "hub"],
        },
        "broker": {"listen": "127.0.0.1:0"},
        "hub": {"listen": "127.0.0.1:0", "health_timeout_ms": 1000},
        # System tests drive the API far faster than people do; the limits themselves are
        # tested in app/hub/tests/access.rs and the browser test.
        "auth": {"api_per_user_per_min": 0, "api_per_address_per_min": 0},
    }


USERS = '\n[[auth.users]]\nname = "admin"\npassword = "demo-admin"\nrole = "admin"\n'


class Appliance:
    """A running ``watchpost run`` with helpers to reach it."""

    def __init__(self, workdir: Path, sections: dict[str, dict[str, Any]], extra_toml: str = "", *,
                 users: bool = True):
        """``users=False`` leaves out the admin user (``USERS``): a box waiting to be claimed."""
        self.workdir = workdir
        self.data_dir = Path(sections["system"]["data_dir"])
        self.config_path = workdir / "watchpost.toml"
        self.config_path.write_text(render_toml(sections, (USERS if users else "") + extra_toml))
        self.log_path = workdir / "appliance.log"
        self.proc: subprocess.Popen | None = None

    # -- lifecycle --------------------------------------------------------------------------
    def start(self, wait_healthy: bool = True, timeout: float = 15.0, env: dict | None = None) -> "Appliance":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [str(BIN), "run", "--config", str(self.config_path)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})}, start_new_session=True,
        )
        if wait_healthy:
            self.wait_healthy(timeout)
        return self

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(5)

    # -- addresses --------------------------------------------------------------------------
    @property
    def listeners(self) -> dict[str, str]:
        path = self.data_dir / "run" / "listeners.json"
        return json.loads(path.read_text())

    def addr(self, key: str) -> tuple[str, int]:
        host, port = self.listeners[key].rsplit(":", 1)
        return host, int(port)

    def url(self, path: str = "/") -> str:
        return f"http://{self.listeners['hub.listen']}{path}"

    # -- health -----------------------------------------------------------------------------
    def health(self) -> dict:
        return requests.get(self.url("/health"), timeout=3).json()

    def worker(self, name: str) -> dict:
        return next(w for w in self.health()["workers"] if w["name"] == name)

    def pids(self) -> dict[str, int]:
        """Each worker's pid, by name."""
        return {w["name"]: w["pid"] for w in self.health()["workers"]}

    def wait_restarted(self, name: str, old_pid: int, timeout: float = 15.0) -> dict:
        """Waits until worker ``name`` runs again, under a pid other than ``old_pid``."""
        def back():
            w = self.worker(name)
            return w if w["pid"] != old_pid and w["state"] == "running" else None
        return wait_for(back, timeout, what=f"{name} restarted")

    def wait_healthy(self, timeout: float = 15.0) -> dict:
        def ok():
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"appliance exited with {self.proc.returncode}; log:\n{self.log()}")
            h = self.health()
            return h if h["status"] == "healthy" else None
        return wait_for(ok, timeout, what="appliance healthy")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except FileNotFoundError:
            return ""

    def get(self, path: str, auth=ADMIN, **kw) -> requests.Response:
        return requests.get(self.url(path), auth=auth, timeout=kw.pop("timeout", 5), **kw)

    def post(self, path: str, auth=ADMIN, **kw) -> requests.Response:
        return requests.post(self.url(path), auth=auth, timeout=kw.pop("timeout", 5), **kw)


@pytest.fixture
def appliance_factory(tmp_path: Path):
    """Returns ``make(sections_update=None, extra_toml="")`` that builds (not starts) an appliance.

    ``sections_update`` is merged into the base sections per section (``{"hub": {...}}``).
    Every appliance made is stopped at teardown.
    """
    made: list[Appliance] = []

    def make(sections_update: dict[str, dict[str, Any]] | None = None, extra_toml: str = "") -> Appliance:
        workdir = tmp_path / f"appliance{len(made)}"
        workdir.mkdir()
        sections = base_sections(workdir / "data")
        for k, v in (sections_update or {}).items():
            sections.setdefault(k, {}).update(v)
        a = Appliance(workdir, sections, extra_toml)
        made.append(a)
        return a

    yield make
    for a in made:
        a.stop()


@pytest.fixture
def appliance(appliance_factory) -> Appliance:
    """A started appliance with the base config (broker + hub), healthy."""
    return appliance_factory().start()


def pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    # A zombie has exited; only its parent's wait is missing.
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _proc_stats():
    """(pid, fields of /proc/<pid>/stat after the command name) of every process."""
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            stat = (p / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        yield int(p.name), stat.rsplit(")", 1)[1].split()


def children_of(pid: int) -> list[int]:
    return [p for p, f in _proc_stats() if int(f[1]) == pid]


def session_pids(sid: int) -> list[int]:
    """Live (non-zombie) processes of session ``sid``."""
    return [p for p, f in _proc_stats() if f[0] != "Z" and int(f[3]) == sid]


# A test that skips because a tool or binary is missing checks nothing. `make test` installs and
# builds every one of them and sets WATCHPOST_REQUIRE_PEERS=1, so there such a skip is a failure:
# a broken install step cannot turn into a green run that tested less. Skips for what the
# machine cannot offer (a network namespace, a camera, the QEMU image run) stay skips.
# A test network namespace is a peer too: CI runs as root, where `unshare --net` works.
_MISSING_PEER_MARKERS = ("not installed", "is not built", "is missing", "network namespace")


def _fail_missing_peer_skip(report) -> None:
    if not report.skipped or os.environ.get("WATCHPOST_REQUIRE_PEERS") != "1":
        return
    reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if any(m in reason for m in _MISSING_PEER_MARKERS):
        report.outcome = "failed"
        report.longrepr = f"skipped for a missing peer under WATCHPOST_REQUIRE_PEERS=1: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_missing_peer_skip(outcome.get_result())


# A module-level `pytest.importorskip` skips the whole module while it is collected, before any
# test runs: the same rule applies there.
@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_missing_peer_skip(outcome.get_result())


# `make test-system` runs on two xdist workers (`--dist loadgroup`). A module's tests share
# module-scoped appliances and build on each other's state, so each module stays on one worker:
# every test without an `xdist_group` of its own is grouped by its file.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))
