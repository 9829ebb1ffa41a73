"""Runs inside a fresh network namespace (``unshare --net``): sets up loopback and a dummy
interface with a test address, starts the appliance with WS-Discovery on the standard port and
multicast on, probes it with the WSDiscovery package, and prints as JSON on the last line what
was found and which of the device's Hello (on start) and Bye (on stop) announcements a
listener on the multicast group heard. Exit code 77 means the namespace could not be set up
(the caller skips).

Usage: netns_discovery.py WORKDIR WATCHPOST_BIN
"""
from __future__ import annotations

import json
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from conftest import USERS, base_sections, render_toml, wait_for  # noqa: E402

ADDR = "10.203.0.1"
GROUP = "239.255.255.250"


class Announcements:
    """Listens on the WS-Discovery group and port (shared, as every WS-Discovery peer does)
    and keeps the action of each message whose endpoint is not ours."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        self.sock.bind(("", 3702))
        mreq = struct.pack("4s4s", socket.inet_aton(GROUP), socket.inet_aton(ADDR))
        self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        self.sock.settimeout(0.2)
        self.messages: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                data, _ = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            self.messages.append(data.decode(errors="replace"))

    def saw(self, action: str, epr: str) -> bool:
        """A message with ``action`` from the endpoint ``epr`` (the probed device)."""
        return any(f"discovery/{action}</" in m and epr in m for m in self.messages)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        self.sock.close()


def sh(*cmd: str) -> None:
    r = subprocess.run(list(cmd), capture_output=True, text=True)
    if r.returncode != 0:
        print(f"{' '.join(cmd)}: {r.stderr.strip()}")
        sys.exit(77)


def main() -> int:
    workdir, binary = Path(sys.argv[1]), sys.argv[2]
    sh("ip", "link", "set", "lo", "up")
    # A dummy interface where the kernel has the module, else a veth pair (both ends here).
    if subprocess.run(["ip", "link", "add", "wp0", "type", "dummy"], capture_output=True).returncode != 0:
        sh("ip", "link", "add", "wp0", "type", "veth", "peer", "name", "wp1")
        sh("ip", "link", "set", "wp1", "up")
    sh("ip", "addr", "add", f"{ADDR}/24", "dev", "wp0")
    sh("ip", "link", "set", "wp0", "multicast", "on")
    sh("ip", "link", "set", "wp0", "up")
    sh("ip", "route", "add", "224.0.0.0/4", "dev", "wp0")

    data = workdir / "data"
    sections = base_sections(data)
    extra = (
        "\n[rtsp]\nenabled = true\nlisten = \"127.0.0.1:0\"\nonvif_listen = \"0.0.0.0:0\"\n"
        "\n[rtsp.dashboard]\nenabled = false\n"
        f"\n[rtsp.device]\nmac = \"02:00:00:00:00:43\"\nadvertise_host = \"{ADDR}\"\n"
        f"\n[rtsp.discovery]\nport = 3702\nbind = \"0.0.0.0\"\ninterface_addr = \"{ADDR}\"\nmulticast = true\n"
    )
    config = workdir / "watchpost.toml"
    config.write_text(render_toml(sections, USERS + extra))
    log = open(workdir / "appliance.log", "ab")
    heard = Announcements()
    proc = subprocess.Popen([binary, "run", "--config", str(config)], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        listeners = data / "run" / "listeners.json"
        wait_for(lambda: listeners.exists() and "rtsp.discovery" in json.loads(listeners.read_text()), 60,
                 what="rtsp worker ready")
        from wsdiscovery import QName, Scope
        from wsdiscovery.discovery import ThreadedWSDiscovery

        wsd = ThreadedWSDiscovery()
        wsd.start()
        try:
            found = []
            deadline = time.monotonic() + 20
            while not found and time.monotonic() < deadline:
                services = wsd.searchServices(
                    types=[QName("http://www.onvif.org/ver10/network/wsdl", "NetworkVideoTransmitter", "dn")],
                    scopes=[Scope("onvif://www.onvif.org/Profile/Streaming")],
                    timeout=3,
                )
                found = [
                    {
                        "types": [f"{t.getNamespace()}#{t.getLocalname()}" if hasattr(t, "getNamespace") else str(t)
                                  for t in s.getTypes()],
                        "scopes": [sc.getValue() for sc in s.getScopes()],
                        "xaddrs": list(s.getXAddrs()),
                        "epr": s.getEPR(),
                    }
                    for s in services
                ]
        finally:
            wsd.stop()
        epr = found[0]["epr"] if found else "-"
        hello = wait_for(lambda: heard.saw("Hello", epr), 10, what="Hello") if found else False
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
        bye = wait_for(lambda: heard.saw("Bye", epr), 5, what="Bye") if found else False
        print(json.dumps({"found": found, "hello": bool(hello), "bye": bool(bye)}))
        return 0
    finally:
        heard.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    sys.exit(main())
