"""Peers for the upstream-broker tests and benchmark: a real mosquitto as the upstream broker
(TLS with a test CA, a client certificate required, a password file, persistence so that a
persistent subscriber's session survives the broker's restart), certificates made with the
openssl command line, paho-mqtt clients, and a reader of the appliance's metrics.

mosquitto cannot report a port it picked, so it listens on a ``HeldPort`` that stays ours
between its runs (an outage is the broker stopped and started again on the same port).
"""
from __future__ import annotations

import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from conftest import HeldPort, wait_for  # noqa: E402

import paho.mqtt.client as mqtt  # noqa: E402

USER = "site-17"
PASSWORD = "up-s3cret"


def mosquitto_exe() -> str | None:
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    return exe if Path(exe).exists() else None


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


class Certs:
    """A test CA, a server certificate for 127.0.0.1 and a client certificate (PEM files)."""

    def __init__(self, d: Path):
        d.mkdir(parents=True, exist_ok=True)
        self.ca = d / "ca.pem"
        self.ca_key = d / "ca.key"
        self.server = d / "server.pem"
        self.server_key = d / "server.key"
        self.client = d / "client.pem"
        self.client_key = d / "client.key"
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        openssl("req", "-x509", *ec, "-keyout", str(self.ca_key), "-out", str(self.ca), "-days", "2",
                "-subj", "/CN=Watchpost test CA", "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        for name, cert, key, ext in [
            ("127.0.0.1", self.server, self.server_key,
             "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"),
            ("watchpost-test-client", self.client, self.client_key, "extendedKeyUsage=clientAuth\n"),
        ]:
            csr = d / f"{key.stem}.csr"
            extfile = d / f"{key.stem}.ext"
            extfile.write_text("basicConstraints=CA:FALSE\n" + ext)
            openssl("req", "-new", *ec, "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}")
            openssl("x509", "-req", "-in", str(csr), "-CA", str(self.ca), "-CAkey", str(self.ca_key),
                    "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(extfile))


class Mosquitto:
    """mosquitto on a held port: TLS (client certificate required) and a password when
    ``certs`` is given, plain TCP with anonymous access otherwise. ``stop()`` / ``start()``
    make an outage; persistence keeps persistent sessions across it."""

    def __init__(self, workdir: Path, certs: Certs | None = None, password: bool = True):
        exe = mosquitto_exe()
        if exe is None:
            import pytest
            pytest.skip("mosquitto is not installed (scripts/install-deps.sh)")
        self.exe = exe
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.held = HeldPort()
        self.port = self.held.port
        self.certs = certs
        lines = [f"listener {self.port} 127.0.0.1",
                 # Root in CI and on development machines: stay root, so the files in the
                 # test's private directory stay readable (mosquitto drops to its own user).
                 "user root",
                 "persistence true", f"persistence_location {self.dir}/",
                 "max_queued_messages 0", "max_inflight_messages 100",
                 "log_dest stderr", "log_type error", "log_type warning", "log_type notice",
                 "connection_messages true"]
        if certs is not None:
            lines += [f"cafile {certs.ca}", f"certfile {certs.server}", f"keyfile {certs.server_key}",
                      "require_certificate true"]
        if password:
            pw = self.dir / "passwd"
            pw.write_text("")
            subprocess.run(["mosquitto_passwd", "-b", str(pw), USER, PASSWORD], check=True, capture_output=True)
            lines += ["allow_anonymous false", f"password_file {pw}"]
        else:
            lines += ["allow_anonymous true"]
        self.conf = self.dir / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self.log = self.dir / "mosquitto.log"
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        log = open(self.log, "ab")
        self.proc = subprocess.Popen([self.exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=log)
        log.close()

        def up():
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log.read_text(errors='replace')[-2000:]}")
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True

        wait_for(up, 10, what="mosquitto listening")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def close(self) -> None:
        self.stop()
        self.held.close()

    def client(self, client_id: str, clean: bool = True, version: int = mqtt.MQTTv311) -> mqtt.Client:
        """A paho client for this broker (TLS and password as the broker wants), not connected."""
        kw: dict[str, Any] = {"protocol": version}
        if version == mqtt.MQTTv5:
            c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, **kw)
        else:
            c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean, **kw)
        if self.certs is not None:
            c.tls_set(ca_certs=str(self.certs.ca), certfile=str(self.certs.client),
                      keyfile=str(self.certs.client_key), tls_version=ssl.PROTOCOL_TLS_CLIENT)
        if "password_file" in self.conf.read_text():
            c.username_pw_set(USER, PASSWORD)
        c.reconnect_delay_set(0.1, 0.5)
        return c

    def upstream_toml(self, name: str, extra: str = "", tls: bool = True) -> str:
        """The ``[[bridge.upstream]]`` table for this broker (without mappings)."""
        body = [f'[[bridge.upstream]]', f'name = "{name}"', f'broker = "127.0.0.1:{self.port}"',
                "reconnect_initial_ms = 100", "reconnect_max_ms = 1000", "connect_timeout_ms = 5000"]
        if "password_file" in self.conf.read_text():
            body += [f'username = "{USER}"', f'password = "{PASSWORD}"']
        body.append(extra)
        if tls and self.certs is not None:
            body += ["[bridge.upstream.tls]", f'ca_file = "{self.certs.ca}"',
                     f'cert_file = "{self.certs.client}"', f'key_file = "{self.certs.client_key}"']
        return "\n" + "\n".join(body) + "\n"


class Collector:
    """A paho subscriber that keeps every message (topic, payload) in arrival order."""

    def __init__(self, client: mqtt.Client, host: str, port: int, filters: list[str], qos: int = 1):
        self.client = client
        self.filters = filters
        self.qos = qos
        self.messages: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.on_subscribe = lambda *a, **k: self.subscribed.set()
        client.connect(host, port, keepalive=30)
        client.loop_start()
        if not self.subscribed.wait(10):
            raise TimeoutError("subscriber not subscribed")

    def _on_connect(self, client, userdata, flags, reason_code, properties=None):
        client.subscribe([(f, self.qos) for f in self.filters])

    def _on_message(self, client, userdata, msg):
        with self.lock:
            self.messages.append((msg.topic, bytes(msg.payload)))

    def on(self, topic: str) -> list[bytes]:
        with self.lock:
            return [p for t, p in self.messages if t == topic]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def local_client(appliance, client_id: str) -> mqtt.Client:
    """A paho client connected to the appliance's own broker (the bus), loop running."""
    host, port = appliance.addr("broker.listen")
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
    c.connect(host, port, keepalive=30)
    c.loop_start()
    return c


def publish_all(client: mqtt.Client, topic: str, payloads: list[str], qos: int = 1, retain: bool = False) -> None:
    infos = [client.publish(topic, p, qos=qos, retain=retain) for p in payloads]
    for i in infos:
        i.wait_for_publish(30)


def metric(appliance, name: str, upstream: str, extra: str = "") -> float | None:
    """The value of ``name{upstream="..."<extra>}`` from the appliance's /metrics, or None."""
    text = requests.get(appliance.url("/metrics"), timeout=3).text
    labels = f'upstream="{upstream}"' + extra
    m = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def wait_metric(appliance, name: str, upstream: str, value: float, timeout: float = 30, extra: str = "") -> None:
    wait_for(lambda: metric(appliance, name, upstream, extra) == value, timeout,
             interval=0.1, what=f"{name}{{{upstream}}} == {value} (last {metric(appliance, name, upstream, extra)})")


def wait_collected(collector: Collector, topic: str, n: int, timeout: float) -> list[bytes]:
    return wait_for(lambda: (got := collector.on(topic)) and len(got) >= n and got, timeout, interval=0.05,
                    what=f"{n} messages on {topic} (have {len(collector.on(topic))})")


def now() -> float:
    return time.monotonic()
