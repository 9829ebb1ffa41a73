"""A real Home Assistant core as a test peer (scripts/setup-ha.sh installs it into .venv-ha).

``HomeAssistant(workdir, mqtt_port).start()`` writes a minimal configuration (no default
integrations: http, api, websocket_api, onboarding, frontend, system_log, logger), an MQTT config
entry for the broker on ``mqtt_port`` with discovery on, starts ``hass`` on a held loopback port,
creates the owner through the onboarding API and keeps an access token for the REST API.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from conftest import HeldPort, wait_for  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
HASS = ROOT / ".venv-ha" / "bin" / "hass"
CLIENT_ID = "http://127.0.0.1/"


class HomeAssistant:
    def __init__(self, workdir: Path, mqtt_port: int):
        if not HASS.exists():
            pytest.skip("Home Assistant is not installed (scripts/setup-ha.sh, run by make venv)")
        self.dir = workdir / "ha"
        self.mqtt_port = mqtt_port
        self.held = HeldPort()
        self.url = f"http://127.0.0.1:{self.held.port}"
        self.proc: subprocess.Popen | None = None
        self.token = ""

    def _configure(self) -> None:
        storage = self.dir / ".storage"
        storage.mkdir(parents=True, exist_ok=True)
        (self.dir / "configuration.yaml").write_text(
            "homeassistant:\n  name: Test\n  latitude: 52.5\n  longitude: 13.4\n  elevation: 0\n"
            "  unit_system: metric\n  time_zone: UTC\n  country: DE\n"
            f"http:\n  server_host: 127.0.0.1\n  server_port: {self.held.port}\n"
            "api:\nwebsocket_api:\nonboarding:\nfrontend:\nsystem_log:\n"
            "logger:\n  default: warning\n"
            # WATCHPOST_HA_DEBUG=1 logs every MQTT message Home Assistant receives.
            + ("  logs:\n    homeassistant.components.mqtt: debug\n" if os.environ.get("WATCHPOST_HA_DEBUG") else "")
        )
        entry = {
            "entry_id": "watchpostmqtt01", "version": 1, "domain": "mqtt", "title": "mqtt",
            "source": "user", "options": {}, "unique_id": None,
            "data": {"broker": "127.0.0.1", "port": self.mqtt_port, "discovery": True,
                     "discovery_prefix": "homeassistant"},
        }
        (storage / "core.config_entries").write_text(json.dumps(
            {"version": 1, "minor_version": 1, "key": "core.config_entries", "data": {"entries": [entry]}}))

    def start(self) -> "HomeAssistant":
        self._configure()
        # hass binds the port itself: the held socket is closed just before, as for QEMU.
        self.held.close()
        self.log = open(self.dir / "hass.out", "wb")
        self.proc = subprocess.Popen(
            [str(HASS), "-c", str(self.dir), "--skip-pip"], stdout=self.log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )

        def onboarding():
            if self.proc.poll() is not None:
                raise RuntimeError(f"hass exited with {self.proc.returncode}: {self.log_text()[-3000:]}")
            try:
                return requests.get(self.url + "/api/onboarding", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_for(onboarding, 90, interval=0.2, what="Home Assistant answering")
        r = requests.post(self.url + "/api/onboarding/users", json={
            "client_id": CLIENT_ID, "name": "Test", "username": "test", "password": "test-pass-1",
            "language": "en"}, timeout=10)
        assert r.status_code == 200, r.text
        code = r.json()["auth_code"]
        r = requests.post(self.url + "/auth/token", data={
            "grant_type": "authorization_code", "code": code, "client_id": CLIENT_ID}, timeout=10)
        assert r.status_code == 200, r.text
        self.token = r.json()["access_token"]
        return self

    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}

    def states(self) -> dict[str, dict]:
        r = requests.get(self.url + "/api/states", headers=self.headers(), timeout=10)
        r.raise_for_status()
        return {s["entity_id"]: s for s in r.json()}

    def state(self, entity_id: str) -> dict | None:
        r = requests.get(self.url + f"/api/states/{entity_id}", headers=self.headers(), timeout=10)
        return r.json() if r.status_code == 200 else None

    def call(self, domain: str, service: str, data: dict) -> None:
        r = requests.post(self.url + f"/api/services/{domain}/{service}", headers=self.headers(),
                          json=data, timeout=20)
        assert r.status_code == 200, r.text

    def log_text(self) -> str:
        text = ""
        for name in ("hass.out", "home-assistant.log"):
            try:
                text += (self.dir / name).read_text(errors="replace")
            except FileNotFoundError:
                pass
        return text

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.held.close()
