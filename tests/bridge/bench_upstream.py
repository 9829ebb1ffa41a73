#!/usr/bin/env python3
"""Upstream-broker benchmark: the bridge's throughput out to a real mosquitto (QoS 0 and QoS 1)
against a paho client publishing the same messages straight to that mosquitto in the same run,
and the catch-up after an outage: mosquitto stopped for ``--outage-s`` seconds while
``--queued`` QoS 1 messages are produced (they go to the bridge's durable queue), then started
again; the time until a subscriber upstream has all of them, in order.

Bridge path: a paho producer publishes to the appliance's own broker (the bus); the bridge's
`out` mapping forwards to mosquitto; a paho subscriber on mosquitto counts. The peer path: the
same producer code publishing to mosquitto directly (one broker hop less, no TLS either way).
Throughput is messages received upstream / time from the first publish to the last message.

usage: bench_upstream.py [--messages 20000] [--queued 10000] [--outage-s 60]

Binaries: WATCHPOST_BIN (release build from `make bench`).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import paho.mqtt.client as mqtt  # noqa: E402

from conftest import Appliance, base_sections, wait_for  # noqa: E402
from upstream_support import Collector, Mosquitto, local_client, metric  # noqa: E402


def produce(client: mqtt.Client, topic: str, n: int, qos: int, start: int = 0) -> None:
    # paho keeps at most max_inflight QoS 1 messages open and queues the rest itself.
    infos = [client.publish(topic, str(start + i), qos=qos) for i in range(n)]
    for i in infos:
        i.wait_for_publish(120)


def measure(producer: mqtt.Client, sub: Collector, topic_pub: str, topic_sub: str, n: int, qos: int) -> tuple[float, int]:
    before = len(sub.on(topic_sub))
    t0 = time.monotonic()
    produce(producer, topic_pub, n, qos)
    try:
        wait_for(lambda: len(sub.on(topic_sub)) - before >= n, 120, interval=0.01, what=f"{n} messages")
    except TimeoutError:
        pass
    got = len(sub.on(topic_sub)) - before
    return got / (time.monotonic() - t0), got


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--queued", type=int, default=10000)
    ap.add_argument("--outage-s", type=float, default=60)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        broker = Mosquitto(tmp / "mosquitto", certs=None, password=False)
        sections = base_sections(tmp / "data")
        sections["bridge"] = {"enabled": True}
        sections["system"]["log_level"] = "warn"
        extra = broker.upstream_toml("bench", "queue_capacity = 1000000\ninflight = 100") + (
            '[[bridge.upstream.mapping]]\npattern = "bench/#"\ndirection = "out"\nqos = 1\n'
            'local_prefix = "watchpost/"\nremote_prefix = "site/"\n'
            '[[bridge.upstream.mapping]]\npattern = "bench0/#"\ndirection = "out"\nqos = 0\n'
            'local_prefix = "watchpost/"\nremote_prefix = "site/"\n'
        )
        (tmp / "app").mkdir()
        app = Appliance(tmp / "app", sections, extra)
        sub = None
        try:
            sub = Collector(broker.client("bench-sub", clean=False), "127.0.0.1", broker.port, ["site/#"])
            app.start(timeout=60)
            wait_for(lambda: metric(app, "watchpost_bridge_upstream_connected", "bench") == 1, 30, what="bridge connected")
            producer = local_client(app, "bench-producer")
            peer = broker.client("bench-peer")
            peer.connect("127.0.0.1", broker.port)
            peer.loop_start()
            # Warm-up: the bridge's subscription is live once a message comes through.
            wait_for(lambda: (producer.publish("watchpost/bench/warm", "w", qos=1), sub.on("site/bench/warm"))[1],
                     30, interval=0.5, what="warm-up")

            print(f"throughput out, {args.messages} messages of ~5 bytes, producer paho over loopback:")
            rows = []
            for qos, ltopic, rtopic in [(0, "watchpost/bench0/q0", "site/bench0/q0"), (1, "watchpost/bench/q1", "site/bench/q1")]:
                rate, got = measure(producer, sub, ltopic, rtopic, args.messages, qos)
                prate, pgot = measure(peer, sub, f"site/peer/q{qos}", f"site/peer/q{qos}", args.messages, qos)
                rows.append((qos, rate, got, prate, pgot))
                print(f"  QoS {qos}: bridge {rate:9.0f} msg/s ({got}/{args.messages} arrived)   "
                      f"paho direct to mosquitto {prate:9.0f} msg/s ({pgot}/{args.messages})   ratio {rate / prate:.2f}")

            # Catch-up after an outage.
            base = len(sub.on("site/bench/outage"))
            broker.stop()
            wait_for(lambda: metric(app, "watchpost_bridge_upstream_connected", "bench") == 0, 30, what="bridge disconnected")
            t0 = time.monotonic()
            produce(producer, "watchpost/bench/outage", args.queued, 1)
            wait_for(lambda: metric(app, "watchpost_bridge_upstream_queue_length", "bench") == args.queued, 300,
                     interval=0.2, what="all queued")
            queue_s = time.monotonic() - t0
            rest = args.outage_s - queue_s
            if rest > 0:
                time.sleep(rest)
            t1 = time.monotonic()
            broker.start()
            wait_for(lambda: len(sub.on("site/bench/outage")) - base >= args.queued, 600, interval=0.02,
                     what="catch-up")
            catch_up = time.monotonic() - t1
            got = [int(p) for p in sub.on("site/bench/outage")[base:]]
            in_order = got == list(range(args.queued))
            dropped = metric(app, "watchpost_bridge_upstream_dropped_total", "bench", ',reason="queue_full"')
            print(f"outage of {max(args.outage_s, queue_s):.0f} s with {args.queued} QoS 1 messages queued "
                  f"(queueing took {queue_s:.1f} s, {args.queued / queue_s:.0f} msg/s into the store):")
            print(f"  catch-up after the broker's restart (reconnect back-off included): {catch_up:.2f} s, "
                  f"{args.queued / catch_up:.0f} msg/s; in order and none twice: {in_order}; dropped: {dropped:.0f}")
            return 0 if in_order else 1
        finally:
            if sub is not None:
                sub.close()
            app.stop()
            broker.close()


if __name__ == "__main__":
    sys.exit(main())
