"""Runs inside a fresh network namespace (``unshare --net``): sets up loopback and a dummy
interface with a test address, starts the appliance with WS-Discovery on the standard port and
multicast on, probes it with the WSDiscovery package, and prints what was found as JSON on the
last line. Exit code 77 means the namespace could not be set up (the caller skips).

Usage: netns_discovery.py WORKDIR WATCHPOST_BIN
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from conftest import USERS, base_sections, render_toml, wait_for  # noqa: E402

ADDR = "10.203.0.1"


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
        print(json.dumps(found))
        return 0
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    sys.exit(main())
