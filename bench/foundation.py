"""Foundation benchmarks (make bench-foundation): supervisor start-to-healthy, restart latency
after kill -9, RSS of the process tree at idle, and the embedded broker against Debian's
mosquitto in the same run. Prints figures and ratios; asserts nothing about time."""
from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("WATCHPOST_BIN", str(ROOT / "target" / "release" / "watchpost"))

import conftest  # noqa: E402  (fixtures double as a harness here)
from conftest import Appliance, base_sections, children_of, wait_for  # noqa: E402

MQTT_BENCH = ROOT / "target" / "release" / "examples" / "mqtt_bench"
BUS_RTT = ROOT / "target" / "release" / "examples" / "bus_rtt"


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def supervisor_bench(rounds: int = 5) -> None:
    conftest.BIN = Path(os.environ["WATCHPOST_BIN"])
    starts, restarts = [], []
    tree_rss = tree_pss = None
    for i in range(rounds):
        with tempfile.TemporaryDirectory() as d:
            a = Appliance(Path(d), base_sections(Path(d) / "data"))
            t0 = time.monotonic()
            a.start(wait_healthy=False)
            a.wait_healthy(30)
            starts.append(time.monotonic() - t0)
            if i == 0:
                time.sleep(2.0)  # idle
                pids = [a.proc.pid] + children_of(a.proc.pid)
                tree_rss = sum(rss_kb(p) for p in pids)
                tree_pss = sum(pss_kb(p) for p in pids)
            victim = a.worker("hub")["pid"]
            t1 = time.monotonic()
            os.kill(victim, signal.SIGKILL)

            def back():
                h = a.health()
                w = next(w for w in h["workers"] if w["name"] == "hub")
                return h["status"] == "healthy" and w["pid"] != victim

            wait_for(back, 30, interval=0.005, what="hub back")
            restarts.append(time.monotonic() - t1)
            a.stop()
    ms = lambda xs: f"median {statistics.median(xs) * 1000:.0f} ms (min {min(xs) * 1000:.0f}, max {max(xs) * 1000:.0f}, n={len(xs)})"
    print(f"supervisor start to all-healthy (broker + hub): {ms(starts)}")
    print(f"kill -9 of hub to healthy again:                 {ms(restarts)}")
    print(f"idle process tree (supervisor + broker + hub):   RSS {tree_rss / 1024:.1f} MiB, PSS {tree_pss / 1024:.1f} MiB (target < 30 MB)")


def run_mqtt_bench(addr: str, qos: int, count: int, size: int = 64) -> dict:
    out = subprocess.run([str(MQTT_BENCH), addr, str(qos), str(count), str(size)],
                         capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def cpu_s(pid: int) -> float:
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def broker_bench(count: int = 100_000) -> None:
    if not MQTT_BENCH.exists():
        print("broker bench: SKIP (target/release/examples/mqtt_bench not built)")
        return
    mosq = shutil.which("mosquitto")
    with tempfile.TemporaryDirectory() as d:
        ours_port, mosq_port = free_port(), free_port()
        cfg = Path(d) / "broker.toml"
        cfg.write_text(f'[system]\ndata_dir = "{d}/data"\nlog_format = "text"\nlog_level = "warn"\n'
                       f'[broker]\nlisten = "127.0.0.1:{ours_port}"\nmax_connections = 64\n')
        ours = subprocess.Popen([os.environ["WATCHPOST_BIN"], "worker", "broker", "--config", str(cfg)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs = {"watchpost broker (rumqttd)": (ours, f"127.0.0.1:{ours_port}")}
        mproc = None
        if mosq:
            mcfg = Path(d) / "mosquitto.conf"
            mcfg.write_text(f"listener {mosq_port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                            "max_queued_messages 0\nmax_inflight_messages 100\nset_tcp_nodelay true\n")
            mproc = subprocess.Popen([mosq, "-c", str(mcfg)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs["mosquitto"] = (mproc, f"127.0.0.1:{mosq_port}")
        else:
            print("broker bench: mosquitto not installed; measuring ours only")
        import socket
        for _, (p, addr) in procs.items():
            host, port = addr.rsplit(":", 1)
            wait_for(lambda: socket.create_connection((host, int(port)), timeout=0.2), 10, what=f"broker {addr}")
        results = {}
        try:
            for qos in (0, 1):
                for name, (p, addr) in procs.items():
                    runs = []
                    for _ in range(2):
                        c0 = cpu_s(p.pid)
                        r = run_mqtt_bench(addr, qos, count)
                        r["broker_cpu_s"] = cpu_s(p.pid) - c0
                        runs.append(r)
                    best = max(runs, key=lambda r: r["msgs_per_s"])
                    results[(name, qos)] = best
                    print(f"QoS{qos} {name:28s} {best['msgs_per_s']:>9.0f} msgs/s  received {best['received']}/{count}"
                          f"  broker CPU {best['broker_cpu_s']:.2f} s per {count}")
            if mproc:
                for qos in (0, 1):
                    a = results[("watchpost broker (rumqttd)", qos)]["msgs_per_s"]
                    b = results[("mosquitto", qos)]["msgs_per_s"]
                    print(f"QoS{qos} ratio watchpost/mosquitto: {a / b:.2f}x")
            bus_rtt_bench(procs)
        finally:
            for _, (p, _) in procs.items():
                p.terminate()
                p.wait(5)


def bus_rtt_bench(procs: dict, count: int = 2000) -> None:
    """The bus crate's typed request/reply beside a plain publish/subscribe echo, both between
    two bus clients, on each broker in the same run."""
    if not BUS_RTT.exists():
        print("bus round trip: SKIP (target/release/examples/bus_rtt not built)")
        return
    for name, (_, addr) in procs.items():
        out = subprocess.run([str(BUS_RTT), addr, str(count)], capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            print(f"bus round trip on {name}: FAILED {out.stderr.strip()[-300:]}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rr, ps = r["request_reply"], r["publish_subscribe"]
        print(f"bus round trip on {name:28s} request/reply p50 {rr['p50_us']} us p99 {rr['p99_us']} us;"
              f" publish/subscribe echo p50 {ps['p50_us']} us p99 {ps['p99_us']} us;"
              f" ratio p50 {rr['p50_us'] / max(ps['p50_us'], 1):.2f}x (n={rr['n']})")


def demo_memory_bench() -> None:
    """Sum of PSS (not RSS: shared pages are counted once) of the demo's supervisor and every
    worker at idle, the demo's simulated peripherals excluded."""
    with tempfile.TemporaryDirectory() as d:
        bin_dir = Path(os.environ["WATCHPOST_BIN"]).parent
        env = dict(os.environ, WATCHPOST_DEMO_DATA=f"{d}/data", WATCHPOST_DEMO_BIN=str(bin_dir / "watchpost"),
                   WATCHPOST_DEMO_SIM=str(bin_dir / "watchpost-sim"))
        proc = subprocess.Popen(["bash", str(ROOT / "scripts" / "demo.sh")], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            import requests
            def healthy():
                try:
                    return requests.get("http://127.0.0.1:8080/health", timeout=1).json()["status"] == "healthy"
                except Exception:
                    return False
            wait_for(healthy, 120, interval=0.2, what="demo healthy")
            time.sleep(10.0)  # idle
            sup = next((p for p in [proc.pid] + children_of(proc.pid)
                        if Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")[1:2] == [b"run"]), None)
            if sup is None:
                print("demo memory: supervisor not found")
                return
            pids = [sup] + children_of(sup)
            names = {}
            for p in pids:
                args = Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")
                names[p] = args[2].decode() if len(args) > 2 and args[1] == b"worker" else "supervisor"
            per = {names[p]: pss_kb(p) for p in pids}
            total = sum(per.values())
            detail = ", ".join(f"{n} {kb / 1024:.1f}" for n, kb in sorted(per.items(), key=lambda x: -x[1]))
            print(f"demo at idle, sum of PSS of the supervisor and every worker: {total / 1024:.1f} MiB ({detail} MiB)")
        finally:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


if __name__ == "__main__":
    which = sys.argv[1:] or ["supervisor", "broker", "demo"]
    if "supervisor" in which:
        supervisor_bench()
    if "broker" in which:
        broker_bench()
    if "demo" in which:
        demo_memory_bench()
