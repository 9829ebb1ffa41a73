#!/usr/bin/env python3
"""Alarm path benchmark: latency from a YoLink report published to the broker until pysiaalarm
has the SIA DC-09 frame, at 10, 100 and 500 reports/s, with the loss count.

Peers are real: mosquitto (the YoLink broker), pysiaalarm (the receiver); the YoLink simulator
serves the token and device list. Reports are published straight to mosquitto by this script
(paho-mqtt) so that the publish time is taken right at the broker's door. Each report toggles a
door, so each one must produce exactly one SIA frame (alarm or restore) on that door's zone.
The broker hop alone (publish → a paho subscriber) is measured in the same run as the floor.

usage: bench_alarm.py [--rates 10,100,500] [--seconds 10] [--doors 50]

Binaries: WATCHPOST_BIN, WATCHPOST_SIM_BIN (release builds from `make bench`).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import paho.mqtt.client as mqtt  # noqa: E402
import requests  # noqa: E402

from alarm_support import SiaReceiver, YolinkSim, sia_receiver_toml, yolink_toml  # noqa: E402
from conftest import Appliance, HeldPort, base_sections, wait_for  # noqa: E402


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def start_mosquitto(tmp: Path):
    import shutil
    import socket
    import subprocess

    # mosquitto cannot report a port it picked: it listens on a held one.
    held = HeldPort()
    port = held.port
    conf = tmp / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 100000\n")
    proc = subprocess.Popen([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def up():
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True

    wait_for(up, 10, what="mosquitto")
    return proc, held


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", default="10,100,500")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--doors", type=int, default=50)
    ap.add_argument("--log-level", default="warn", help="the appliance's log filter (its log is kept)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-alarm-"))
    mosq, mheld = start_mosquitto(tmp)
    mport = mheld.port
    sia = SiaReceiver().start()
    doors = [f"d{i}" for i in range(args.doors)]
    sim = YolinkSim(mport, [f"{d}:DoorSensor:Door {d}" for d in doors])
    sections = base_sections(tmp / "data")
    sections["system"]["log_level"] = args.log_level
    sections["bridge"] = {"enabled": True, "min_connect_interval_ms": 0, "poll_state_on_connect": True}
    sections["alarms"] = {"enabled": True, "rate_limit_per_min": 0, "queue_capacity": 100000}
    sections["supervisor"]["essential"] = ["broker", "bridge", "hub"]
    extra = yolink_toml(mport, sim) + sia_receiver_toml("cms", sia.port, "zone_placement = \"ri\"\n")
    for i, d in enumerate(doors):
        extra += f"\n[[alarms.mappings]]\nsensor = \"{d}\"\nroutes = [{{ receiver = \"cms\", zone = {i + 1} }}]\n"
    (tmp / "work").mkdir()
    app = Appliance(tmp / "work", sections, extra)
    app.start(timeout=60)
    try:
        def connected():
            text = requests.get(app.url("/metrics"), timeout=3).text
            return any(l.startswith("watchpost_bridge_yolink_connected") and l.rstrip().endswith(" 1") for l in text.splitlines())

        wait_for(connected, 30, interval=0.1, what="bridge connected")
        time.sleep(1.0)  # let the initial state poll settle

        # Broker hop floor: a subscriber on the report topics.
        hop: dict[str, int] = {}
        sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-hop")

        def on_message(_c, _u, msg):
            hop[json.loads(msg.payload)["msgid"]] = time.time_ns()

        sub.on_message = on_message
        sub.connect("127.0.0.1", mport)
        sub.subscribe("yl-home/home-test/+/report", qos=1)
        sub.loop_start()
        # The internal bus: when the bridge's sensor event for a report is out.
        bus_times: dict[str, list[int]] = {d: [] for d in doors}
        pub_times: dict[str, list[int]] = {d: [] for d in doors}
        bhost, bport = app.addr("broker.listen")
        bsub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-bus")

        def on_bus(_c, _u, msg):
            ev = json.loads(msg.payload)
            t = time.time_ns()
            if not ev.get("sync") and ev["sensor"]["id"] in bus_times:
                bus_times[ev["sensor"]["id"]].append((ev["seq"], t))

        bsub.on_message = on_bus
        bsub.connect(bhost, bport)
        bsub.subscribe("watchpost/sensors/events", qos=1)
        bsub.loop_start()
        time.sleep(0.3)
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-pub")
        pub.connect("127.0.0.1", mport)
        pub.loop_start()
        state = {d: "closed" for d in doors}
        results = []
        for rate in [int(r) for r in args.rates.split(",")]:
            n = int(rate * args.seconds)
            sent: dict[int, list[int]] = {i + 1: [] for i in range(len(doors))}
            msgids = []
            base = len(sia.received())
            per_zone_before = {z: 0 for z in sent}
            for e in sia.received():
                per_zone_before[int(e["ri"])] = per_zone_before.get(int(e["ri"]), 0) + 1
            start = time.perf_counter()
            for k in range(n):
                target = start + k / rate
                while (delay := target - time.perf_counter()) > 0:
                    time.sleep(min(delay, 0.002))
                i = k % len(doors)
                d = doors[i]
                state[d] = "open" if state[d] == "closed" else "closed"
                now = time.time_ns()
                msgid = f"b{rate}-{k}"
                report = {"event": "DoorSensor.Alert", "time": now // 1_000_000, "msgid": msgid, "deviceId": d,
                          "data": {"state": state[d], "alertType": "normal", "battery": 4,
                                   "loraInfo": {"signal": -60}, "stateChangedAt": now // 1_000_000}}
                sent[i + 1].append(time.time_ns())
                pub_times[d].append(sent[i + 1][-1])
                pub.publish(f"yl-home/home-test/{d}/report", json.dumps(report), qos=1)
                msgids.append((msgid, sent[i + 1][-1]))
            try:
                sia.wait_events(base + n, timeout=30)
            except TimeoutError:
                pass
            time.sleep(0.5)
            events = sia.received()[base:]
            got: dict[int, list[int]] = {}
            for e in events:
                got.setdefault(int(e["ri"]), []).append(e["recv_ns"])
            lat = []
            for z, times in sent.items():
                for t_pub, t_recv in zip(times, got.get(z, [])):
                    lat.append((t_recv - t_pub) / 1e6)
            lost = n - sum(min(len(sent[z]), len(got.get(z, []))) for z in sent)
            hops = [(hop[m] - t) / 1e6 for m, t in msgids if m in hop]
            bridge = []
            for d in doors:
                firsts = {}
                for seq, t in bus_times[d]:
                    firsts.setdefault(seq, t)
                times = sorted(firsts.values())
                for tp, tb in zip(pub_times[d][-(n // len(doors)):], times[-(n // len(doors)):]):
                    bridge.append((tb - tp) / 1e6)
            r = {"rate": rate, "reports": n, "received": len(events), "lost": lost,
                 "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99), "max_ms": max(lat) if lat else float("nan"),
                 "hop_p50_ms": pct(hops, 50), "hop_p99_ms": pct(hops, 99),
                 "bridge_p50_ms": pct(bridge, 50), "bridge_p99_ms": pct(bridge, 99)}
            results.append(r)
            print(f"rate {rate:>4}/s: {n:>5} reports, received {len(events):>5}, lost {lost}, "
                  f"end-to-end p50 {r['p50_ms']:.2f} ms p99 {r['p99_ms']:.2f} ms max {r['max_ms']:.2f} ms; "
                  f"broker hop p50 {r['hop_p50_ms']:.2f} ms p99 {r['hop_p99_ms']:.2f} ms; "
                  f"report→bus event p50 {r['bridge_p50_ms']:.2f} ms p99 {r['bridge_p99_ms']:.2f} ms; "
                  f"ratio p50 {r['p50_ms'] / r['hop_p50_ms']:.1f}x", flush=True)
            time.sleep(1.0)
        pub.loop_stop()
        sub.loop_stop()
        print(json.dumps({"bench": "alarm", "results": results}))
        target = next((r for r in results if r["rate"] == 100), None)
        if target:
            ok = target["p99_ms"] < 20 and target["lost"] == 0
            print(f"target (p99 < 20 ms at 100/s, 0 lost): {'met' if ok else 'NOT met'}")
    finally:
        print(f"appliance log: {app.log_path}", file=sys.stderr)
        app.stop()
        sia.close()
        sim.proc.stop()
        mosq.terminate()
        mheld.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
