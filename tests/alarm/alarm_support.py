"""Peers for the alarm-path system tests (imported by the test modules): mosquitto (the YoLink
broker), the YoLink simulator (`watchpost-sim yolink`), pysiaalarm (SIA DC-09 receiver), a CHEKT bridge stand-in (HTTP) and
a pymodbus relay module. Each is a real process or server on 127.0.0.1 with its own port: the
ones that can bind port 0 and report it do (the YoLink simulator, the relay module, the CHEKT
stand-in); mosquitto and the SIA receiver, which is told its port before it first listens, get
a ``HeldPort``.
"""
from __future__ import annotations

import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from conftest import ROOT, SIM_BIN, HeldPort, wait_for  # noqa: E402

PYTHON = sys.executable


class LineProcess:
    """A child process that prints JSON lines; collects them in a thread."""

    def __init__(self, args: list[str], first_key: str, env: dict | None = None):
        self.args = args
        self.lines: list[dict] = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env={**os.environ, **(env or {})}, start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        self.first = self.wait(lambda ls: next((l for l in ls if first_key in l), None), 30, f"{args[0]} ready")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                obj = json.loads(raw)
            except ValueError:
                continue
            with self.cond:
                self.lines.append(obj)
                self.cond.notify_all()

    def wait(self, pred, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                r = pred(self.lines)
                if r:
                    return r
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise TimeoutError(f"timed out waiting for {what}; got {self.lines[-5:]}")
                self.cond.wait(min(left, 0.2))

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(5)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


class SiaReceiver:
    """pysiaalarm on a fixed port; can be stopped and started again on the same port.

    Over TCP the port is held (``HeldPort``) from the start, so a test can configure the
    appliance before the receiver first listens (connections are refused until then, as with a
    receiver that is down) and nobody else can take the port between runs; pysiaalarm binds it
    with SO_REUSEADDR. Over UDP the receiver binds port 0 when it first starts and comes back on
    the port it reported.
    """

    def __init__(self, protocol: str = "tcp", accounts: tuple[str, ...] = ("AAA",), ack_delay_ms: int = 0,
                 clock_offset_s: int = 0, duh_first: int = 0):
        self.protocol, self.accounts, self.ack_delay_ms = protocol, accounts, ack_delay_ms
        self.clock_offset_s, self.duh_first = clock_offset_s, duh_first
        self.held = HeldPort() if protocol == "tcp" else None
        self.port: int | None = self.held.port if self.held else None
        self.events: list[dict] = []
        self.proc: LineProcess | None = None

    def start(self) -> "SiaReceiver":
        args = [PYTHON, str(HERE / "sia_receiver.py"), "--protocol", self.protocol, "--port", str(self.port or 0),
                "--ack-delay-ms", str(self.ack_delay_ms), "--clock-offset-s", str(self.clock_offset_s),
                "--duh-first", str(self.duh_first)]
        for a in self.accounts:
            args += ["--account", a]
        self.proc = LineProcess(args, "listening")
        self.port = self.proc.first["listening"]
        return self

    def stop(self) -> None:
        if self.proc:
            self.events.extend(self.received(current_only=True))
            self.proc.stop()
            self.proc = None

    def close(self) -> None:
        """Stops the receiver and gives its port up."""
        self.stop()
        if self.held:
            self.held.close()

    def received(self, current_only: bool = False) -> list[dict]:
        cur = [l for l in self.proc.lines if "code" in l] if self.proc else []
        return cur if current_only else self.events + cur

    def wait_events(self, n: int, timeout: float = 20) -> list[dict]:
        assert self.proc is not None
        done = len(self.events)
        self.proc.wait(lambda ls: sum(1 for l in ls if "code" in l) + done >= n, timeout, f"{n} SIA events")
        return self.received()


@pytest.fixture
def sia_factory():
    made: list[SiaReceiver] = []

    def make(**kw) -> SiaReceiver:
        r = SiaReceiver(**kw)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


class MqttPort(int):
    """The mosquitto fixture's port, with the broker's log (``log_text()``: connections with
    their client id and user name)."""

    log: Path

    def __new__(cls, port: int, log: Path) -> "MqttPort":
        obj = super().__new__(cls, port)
        obj.log = log
        return obj

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""


@pytest.fixture
def mosquitto(tmp_path: Path):
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(exe).exists():
        pytest.skip("mosquitto is not installed (make deps)")
    # mosquitto cannot report a port it picked: it listens on a held one.
    held = HeldPort()
    port = held.port
    conf = tmp_path / "mosquitto.conf"
    log = tmp_path / "mosquitto.log"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "log_dest stderr\nlog_type notice\nconnection_messages true\n")
    # Logged through our own file: mosquitto drops root for its own user, which could not
    # write into the test's directory.
    log_file = open(log, "wb")
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=log_file)

    def up():
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True

    wait_for(up, 10, what="mosquitto listening")
    yield MqttPort(port, log)
    proc.terminate()
    proc.wait(5)
    log_file.close()
    held.close()


class YolinkSim:
    def __init__(self, mqtt_port: int, devices: list[str], mode: str = "cloud", token_lifetime_s: int | None = None,
                 script: Path | None = None, repeat: bool = False):
        if not SIM_BIN.exists():
            pytest.skip(f"{SIM_BIN} is not built (make build)")
        args = [str(SIM_BIN), "yolink", "--mode", mode, "--mqtt", f"127.0.0.1:{mqtt_port}",
                "--client-id", "ua-test", "--secret", "s3cret", "--home-id", "home-test"]
        if token_lifetime_s is not None:
            args += ["--token-lifetime-s", str(token_lifetime_s)]
        for d in devices:
            args += ["--device", d]
        if script is not None:
            args += ["--script", str(script)] + (["--repeat"] if repeat else [])
        self.proc = LineProcess(args, "listening")
        self.url = "http://" + self.proc.first["listening"]

    def report(self, device: str, state: str | None = None, **kw: Any) -> None:
        body = {"device": device, **kw}
        if state is not None:
            body["state"] = state
        r = requests.post(self.url + "/sim/report", json=body, timeout=5)
        assert r.status_code == 200, r.text

    def stats(self) -> dict:
        return requests.get(self.url + "/sim/stats", timeout=5).json()


@pytest.fixture
def yolink_factory():
    made: list[YolinkSim] = []

    def make(mqtt_port: int, devices: list[str], mode: str = "cloud", **kw: Any) -> YolinkSim:
        s = YolinkSim(mqtt_port, devices, mode, **kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.proc.stop()


class ChektReceiver:
    """Records POSTs like a CHEKT bridge's local API; `status` sets the answer."""

    def __init__(self):
        self.requests: list[dict] = []
        self.status = 200
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server API
                n = int(self.headers.get("content-length", 0))
                body = self.rfile.read(n)
                outer.requests.append({"path": self.path, "auth": self.headers.get("authorization"),
                                       "body": json.loads(body or b"null"), "t_ns": time.time_ns()})
                self.send_response(outer.status)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1/events"


@pytest.fixture
def chekt():
    c = ChektReceiver()
    yield c
    c.server.shutdown()


@pytest.fixture
def relay_slave():
    pytest.importorskip("pymodbus", reason="pymodbus is not installed (make venv)")
    p = LineProcess([PYTHON, str(HERE / "relay_slave.py"), "127.0.0.1", "0", "1"], "ready")
    p.port = p.first["port"]  # type: ignore[attr-defined]
    yield p
    p.stop()


def alarm_sections(mqtt_port: int, sim: YolinkSim, **alarms: Any) -> dict[str, dict[str, Any]]:
    return {
        "bridge": {"enabled": True, "min_connect_interval_ms": 0, "resend_interval_ms": 1000,
                   "poll_state_on_connect": True},
        "alarms": {"enabled": True, "rate_limit_per_min": 0, **alarms},
        "supervisor": {"essential": ["broker", "bridge", "hub"]},
    }


def yolink_toml(mqtt_port: int, sim: YolinkSim) -> str:
    return (
        "\n[bridge.yolink]\nsource = \"cloud\"\nuaid = \"ua-test\"\nsecret = \"s3cret\"\n"
        f"api_url = \"{sim.url}\"\nmqtt = \"127.0.0.1:{mqtt_port}\"\n"
    )


def sia_receiver_toml(rid: str, port: int, extra: str = "") -> str:
    return (
        f"\n[[alarms.receivers]]\ntype = \"sia\"\nid = \"{rid}\"\nhost = \"127.0.0.1:{port}\"\n"
        f"account = \"AAA\"\nack_timeout_ms = 2000\nattempts = 1\nbackoff_initial_ms = 100\nbackoff_max_ms = 1000\n{extra}"
    )


def queues(appliance) -> dict:
    return appliance.get("/api/v1/alarms/queues").json()


def wait_bridge_connected(appliance, timeout: float = 20) -> None:
    def ok():
        text = requests.get(appliance.url("/metrics"), timeout=3).text
        return any(l.startswith("watchpost_bridge_yolink_connected") and l.rstrip().endswith(" 1")
                   for l in text.splitlines())
    wait_for(ok, timeout, interval=0.1, what="bridge subscribed to YoLink reports")
