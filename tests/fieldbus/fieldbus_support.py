"""Fixtures for the fieldbus system tests: the appliance with the Neasmart gateway enabled,
pymodbus masters and slaves, socat pty pairs and the serial fault proxy."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from conftest import wait_for  # noqa: E402

pymodbus = pytest.importorskip("pymodbus", reason="pymodbus is not installed (make venv)")
from pymodbus.client import ModbusSerialClient, ModbusTcpClient  # noqa: E402

UNIT = 240


def fieldbus_sections(neasmart: dict[str, Any] | None = None, **fieldbus: Any) -> dict[str, dict[str, Any]]:
    n = {"tcp_listen": "127.0.0.1:0", "compat_listen": "127.0.0.1:0", "persist_interval_ms": 200}
    n.update(neasmart or {})
    return {
        "fieldbus": {"enabled": True, "neasmart": n, **fieldbus},
        "supervisor": {"essential": ["broker", "fieldbus", "hub"]},
    }


def tcp_master(appliance) -> ModbusTcpClient:
    host, port = appliance.addr("fieldbus.neasmart.tcp_listen")
    c = ModbusTcpClient(host, port=port, timeout=1, retries=0)
    assert c.connect(), "cannot connect to the Modbus TCP server"
    return c


def compat_url(appliance, path: str) -> str:
    return f"http://{appliance.listeners['fieldbus.neasmart.compat_listen']}{path}"


def metrics(appliance) -> str:
    return requests.get(appliance.url("/metrics"), timeout=3).text


def metric(appliance, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels`` (0 if none)."""
    total = 0.0
    for line in metrics(appliance).splitlines():
        if not line.startswith(name):
            continue
        m = re.match(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
    return total


def api_json(appliance, path: str) -> dict:
    r = appliance.get(path)
    assert r.status_code == 200, f"{path}: {r.status_code} {r.text}"
    return r.json()


def wait_api(appliance, path: str, predicate, timeout: float = 5.0, what: str = "") -> dict:
    def check():
        r = appliance.get(path)
        if r.status_code != 200:
            return None
        body = r.json()
        return body if predicate(body) else None
    return wait_for(check, timeout, what=what or f"{path} to match")


@pytest.fixture
def gateway(appliance_factory):
    """An appliance with the Neasmart gateway on Modbus TCP (and the compatibility listener)."""
    a = appliance_factory(fieldbus_sections()).start()
    wait_for(lambda: a.get("/api/v1/neasmart/status").status_code == 200, 10, what="Neasmart state on the bus")
    return a


@pytest.fixture
def socat() -> str:
    path = shutil.which("socat")
    if path is None:
        pytest.skip("socat is not installed (scripts/install-deps.sh installs it)")
    return path


class PtyPair:
    """Two linked pseudo-terminals made by socat (raw, no echo)."""

    def __init__(self, socat: str, a: Path, b: Path):
        self.a, self.b = a, b
        self.proc = subprocess.Popen(
            [socat, "-d", "-d", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        )
        wait_for(lambda: a.exists() and b.exists(), 5, what="socat pty pair")

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(5)


@pytest.fixture
def pty_pair(socat, tmp_path) -> Iterator:
    made: list[PtyPair] = []

    def make(name: str) -> PtyPair:
        p = PtyPair(socat, tmp_path / f"{name}A", tmp_path / f"{name}B")
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def rtu_master(port: Path, timeout: float = 0.5) -> ModbusSerialClient:
    c = ModbusSerialClient(str(port), baudrate=38400, bytesize=8, parity="N", stopbits=1, timeout=timeout, retries=0)
    assert c.connect(), f"cannot open {port}"
    return c


def rtu_sections(port: Path, **neasmart: Any) -> dict[str, dict[str, Any]]:
    n = {"serial": {"port": str(port), "baud": 38400}, "persist_interval_ms": 200}
    n.update(neasmart)
    return {
        "fieldbus": {"enabled": True, "neasmart": n},
        "supervisor": {"essential": ["broker", "fieldbus", "hub"]},
    }


def worker_pid(appliance, name: str) -> int:
    return wait_for(lambda: appliance.worker(name).get("pid") if appliance.worker(name)["state"] == "running" else None,
                    10, what=f"{name} running")


def kill9(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


def wait_restarted(appliance, name: str, old_pid: int, timeout: float = 15.0) -> int:
    def new_pid():
        w = appliance.worker(name)
        return w["pid"] if w["state"] == "running" and w["pid"] not in (None, old_pid) else None
    return wait_for(new_pid, timeout, what=f"{name} restarted")


__all__ = [
    "gateway", "pty_pair", "socat",
    "UNIT", "api_json", "compat_url", "fieldbus_sections", "kill9", "metric", "metrics",
    "rtu_master", "rtu_sections", "tcp_master", "wait_api", "wait_restarted", "worker_pid", "wait_for",
]
