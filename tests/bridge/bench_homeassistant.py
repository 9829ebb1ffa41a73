#!/usr/bin/env python3
"""Home Assistant discovery benchmark: how long the bridge takes to publish its discovery configs
for about 200 entities to Home Assistant's broker, against a paho client publishing the very same
configs straight to that broker in the same run.

Set-up: mosquitto as Home Assistant's broker; the appliance with an upstream to it
(`homeassistant = true`); pymodbus writes 48 zones (48 climates) and the YoLink simulator plays
36 door sensors (4 entities each), with the Neasmart system and the workers' entities: about 200.
Measured: `homeassistant/status online` (Home Assistant's birth) makes the bridge republish
everything; the time from the first to the last config a subscriber on mosquitto receives (the
bridge's random delay before a republish is not counted). The peer publishes the configs it
captured, QoS 1 and retained, with one paho client, timed the same way.

usage: bench_homeassistant.py [--sensors 36] [--zones 48] [--rounds 5]

Binaries: WATCHPOST_BIN and WATCHPOST_SIM_BIN (release builds from `make bench`).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "alarm"))

import paho.mqtt.client as mqtt  # noqa: E402
from pymodbus.client import ModbusTcpClient  # noqa: E402

from alarm_support import YolinkSim  # noqa: E402
from conftest import Appliance, base_sections, wait_for  # noqa: E402
from upstream_support import Mosquitto  # noqa: E402

NODE = "bench"


class Timed:
    """Subscriber on ``filter`` keeping (arrival time, topic, payload)."""

    def __init__(self, port: int, filter: str):
        self.items: list[tuple[float, str, bytes]] = []
        self.lock = threading.Lock()
        ready = threading.Event()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-sub-{time.time_ns()}")
        self.c.on_connect = lambda c, *a: c.subscribe(filter, 1)
        self.c.on_subscribe = lambda *a: ready.set()
        self.c.on_message = self._on

        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        ready.wait(10)

    def _on(self, c, u, m):
        with self.lock:
            self.items.append((time.monotonic(), m.topic, bytes(m.payload)))

    def take(self) -> list[tuple[float, str, bytes]]:
        with self.lock:
            out, self.items = self.items, []
        return out

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def burst(sub: Timed, n: int, timeout: float = 60) -> float:
    """Seconds from the first to the n-th message received."""
    wait_for(lambda: len(sub.items) >= n, timeout, interval=0.01, what=f"{n} configs")
    items = sub.take()
    return items[n - 1][0] - items[0][0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sensors", type=int, default=36)
    ap.add_argument("--zones", type=int, default=48)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        broker = Mosquitto(tmp / "mosquitto", password=False)
        sim = YolinkSim(broker.port, [f"door{i}:DoorSensor" for i in range(args.sensors)])
        sections = base_sections(tmp / "data")
        sections["bridge"] = {"enabled": True, "min_connect_interval_ms": 0}
        sections["fieldbus"] = {"enabled": True, "neasmart": {"tcp_listen": "127.0.0.1:0"}}
        extra = (f'\n[bridge.yolink]\nsource = "cloud"\nuaid = "ua-test"\nsecret = "s3cret"\n'
                 f'api_url = "{sim.url}"\nmqtt = "127.0.0.1:{broker.port}"\n'
                 f'\n[bridge.homeassistant]\nenabled = true\nnode_id = "{NODE}"\nsnapshot_interval_s = 0\n'
                 f'\n[[bridge.upstream]]\nname = "ha"\nbroker = "127.0.0.1:{broker.port}"\nhomeassistant = true\n')
        app = Appliance(tmp, sections, extra).start(timeout=30)
        try:
            host, port = app.listeners["fieldbus.neasmart.tcp_listen"].rsplit(":", 1)
            base = ModbusTcpClient(host, port=int(port), timeout=2)
            base.connect()
            for k in range(args.zones):
                b, z = divmod(k, 12)
                base.write_registers(1200 * b + 100 * (z + 1), [1, 0x0C65, 0x07C6], device_id=240)
            base.close()
            sub = Timed(broker.port, f"homeassistant/+/{NODE}/+/config")

            def settled():
                n = len({t for _, t, _ in sub.items})
                time.sleep(1.0)
                return n if n == len({t for _, t, _ in sub.items}) and n >= args.sensors * 4 + args.zones else None

            n = wait_for(settled, 90, interval=0.1, what="discovery settled")
            configs = {t: p for _, t, p in sub.take()}
            bridge, peer = [], []
            pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-peer")
            pub.max_inflight_messages_set(100)
            pub.connect("127.0.0.1", broker.port)
            pub.loop_start()
            for _ in range(args.rounds):
                pub.publish("homeassistant/status", "online", qos=1).wait_for_publish(10)
                bridge.append(burst(sub, n))
                time.sleep(0.5)
                sub.take()
                infos = [pub.publish(t, p, qos=1, retain=True) for t, p in configs.items()]
                for i in infos:
                    i.wait_for_publish(30)
                peer.append(burst(sub, n))
                time.sleep(0.5)
                sub.take()
            pub.loop_stop()
            sub.close()
            b, p = statistics.median(bridge), statistics.median(peer)
            print(f"discovery republish of {n} entities (median of {args.rounds}): "
                  f"bridge {b * 1000:.1f} ms, paho peer {p * 1000:.1f} ms, ratio {b / p:.2f}")
        finally:
            app.stop()
            sim.proc.stop()
            broker.close()


if __name__ == "__main__":
    main()
