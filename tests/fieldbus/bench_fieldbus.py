"""`make bench-fieldbus`: our Neasmart Modbus slave against pymodbus, in the same run.

- Modbus TCP: the same request mix (FC03 of a zone block, FC16 of a zone's status, alternating)
  from the same Rust load generator (`app/fieldbus/examples/modbus_load.rs`) against the
  fieldbus worker (release build of `watchpost_fieldbus::run`, `examples/fieldbus_worker.rs`)
  and against a pymodbus server with the same register layout: requests/s, p50, p99, and the
  ratios, with one request in flight per connection (how a base polls). Ours is also measured
  with requests pipelined; pymodbus 3.16 answers only the first of several requests that arrive
  in one TCP segment, so it has no pipelined figure.
- RTU turnaround on a socat pty pair at 38400 8N1: time from the end of the request frame to
  the first byte of the response, ours and pymodbus's serial server.

Figures are printed; nothing is asserted (no timing assertions in tests).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
# The fieldbus worker's `run` alone (same code and runtime shape as `watchpost worker fieldbus`).
WORKER = ROOT / "target" / "release" / "examples" / "fieldbus_worker"
LOAD = ROOT / "target" / "release" / "examples" / "modbus_load"
DEPTH = int(os.environ.get("FIELDBUS_BENCH_DEPTH", "16"))
SECONDS = float(os.environ.get("FIELDBUS_BENCH_SECONDS", "5"))
CONNECTIONS = int(os.environ.get("FIELDBUS_BENCH_CONNECTIONS", "4"))
RTU_COUNT = int(os.environ.get("FIELDBUS_BENCH_RTU_COUNT", "500"))


def ours(workdir: Path, neasmart: str) -> tuple[subprocess.Popen, dict[str, str]]:
    """The fieldbus worker and the listeners it reports once ready (`tcp_listen` may use port 0).
    No broker runs: the bus client retries in the background, as in the crate test."""
    cfg = workdir / "fieldbus.toml"
    cfg.write_text(
        f'[system]\ndata_dir = "{workdir / "data"}"\nlog_format = "text"\nlog_level = "warn"\n'
        '[broker]\nlisten = "127.0.0.1:1"\n'
        f"[fieldbus]\nenabled = true\n[fieldbus.neasmart]\n{neasmart}\n"
    )
    p = subprocess.Popen([str(WORKER), str(cfg)],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    line = p.stdout.readline()
    if not line:
        raise RuntimeError(f"the fieldbus worker exited with {p.wait()} before it was ready")
    return p, json.loads(line)


def peer(*args: str) -> tuple[subprocess.Popen, str]:
    """The pymodbus gateway and what it printed after READY (over TCP, its port)."""
    p = subprocess.Popen([sys.executable, str(HERE / "pymodbus_gateway.py"), *args],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    word, _, rest = p.stdout.readline().strip().partition(" ")
    assert word == "READY"
    return p, rest


def stop(p: subprocess.Popen) -> None:
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(5)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(*args: str, server: subprocess.Popen | None = None) -> dict:
    before = cpu_seconds(server.pid) if server else 0.0
    out = subprocess.run([str(LOAD), *args], capture_output=True, text=True, check=True, timeout=600)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    if server and r["requests"]:
        # The server's own CPU per request: what its capacity is, independent of the client.
        r["server_cpu_us_per_request"] = (cpu_seconds(server.pid) - before) * 1e6 / r["requests"]
    return r


def main() -> int:
    for need in (WORKER, LOAD):
        if not need.exists():
            print(f"bench-fieldbus: SKIPPED: {need} is not built "
                  "(cargo build --release -p watchpost-fieldbus --examples)")
            return 0
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        # --- Modbus TCP ---------------------------------------------------------------------
        p, listeners = ours(work, 'tcp_listen = "127.0.0.1:0"\ntcp_max_connections = 64')
        try:
            addr = listeners["modbus_tcp"]
            results["tcp_ours"] = load("tcp", addr, str(CONNECTIONS), str(SECONDS), "1", server=p)
            results["tcp_ours_pipelined"] = load("tcp", addr, str(CONNECTIONS), str(SECONDS), str(DEPTH), server=p)
        finally:
            stop(p)
        p, port = peer("tcp", "127.0.0.1", "0")
        try:
            results["tcp_pymodbus"] = load("tcp", f"127.0.0.1:{port}", str(CONNECTIONS), str(SECONDS), "1", server=p)
        finally:
            stop(p)
        # --- RTU turnaround on a pty -----------------------------------------------------------
        socat = shutil.which("socat")
        if socat is None:
            print("bench-fieldbus: RTU part SKIPPED: socat is not installed")
        else:
            for name in ("ours", "pymodbus"):
                a, b = work / f"{name}A", work / f"{name}B"
                s = subprocess.Popen([socat, f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
                try:
                    deadline = time.monotonic() + 5
                    while not (a.exists() and b.exists()) and time.monotonic() < deadline:
                        time.sleep(0.02)
                    if name == "ours":
                        (work / "rtu").mkdir()
                        srv, _ = ours(work / "rtu", f'serial = {{ port = "{a}", baud = 38400 }}')
                    else:
                        srv, _ = peer("rtu", str(a))
                    try:
                        results[f"rtu_{name}"] = load("rtu", str(b), str(RTU_COUNT))
                    finally:
                        stop(srv)
                finally:
                    stop(s)

    t_o, t_p = results["tcp_ours"], results["tcp_pymodbus"]
    print(f"Modbus TCP, {CONNECTIONS} connections x {SECONDS:g} s, one request in flight per connection "
          "(how a base polls); FC03 zone block / FC16 zone status alternating")
    print(f"  {'':10} {'req/s':>10} {'p50 us':>9} {'p99 us':>9} {'errors':>7}")
    for name, r in (("watchpost", t_o), ("pymodbus", t_p)):
        print(f"  {name:10} {r['rps']:>10.0f} {r['p50_us']:>9.1f} {r['p99_us']:>9.1f} {r['errors']:>7}")
    print(f"  throughput ratio watchpost/pymodbus: {t_o['rps'] / max(t_p['rps'], 1e-9):.1f}x "
          f"(target >= 20x); p99 ratio pymodbus/watchpost: {t_p['p99_us'] / max(t_o['p99_us'], 1e-9):.1f}x; "
          f"watchpost p99 {'<' if t_o['p99_us'] < 1000 else '>='} 1 ms")
    cpu_o, cpu_p = t_o["server_cpu_us_per_request"], t_p["server_cpu_us_per_request"]
    print(f"  server CPU per request: watchpost {cpu_o:.1f} us, pymodbus {cpu_p:.1f} us -> capacity per core "
          f"{1e6 / max(cpu_o, 1e-9):.0f} vs {1e6 / max(cpu_p, 1e-9):.0f} req/s, ratio {cpu_p / max(cpu_o, 1e-9):.1f}x "
          "(the closed-loop ratio above is bounded by the client's own round trips on this 2-core machine)")
    r = results["tcp_ours_pipelined"]
    print(f"  watchpost with {DEPTH} requests pipelined per connection: {r['rps']:.0f} req/s "
          f"({r['rps'] / max(t_p['rps'], 1e-9):.0f}x pymodbus's closed-loop figure), "
          f"p50 {r['p50_us']:.1f} us, p99 {r['p99_us']:.1f} us, "
          f"server CPU {r['server_cpu_us_per_request']:.1f} us/request (pymodbus 3.16 answers only the first of "
          "several requests that arrive in one segment, so it has no pipelined figure)")
    if "rtu_ours" in results:
        r_o, r_p = results["rtu_ours"], results["rtu_pymodbus"]
        print(f"RTU on a pty at 38400 8N1, {RTU_COUNT} FC03 requests (request written -> first response byte; "
              "a pty has no baud-rate timing, so this is the slave's reaction time)")
        for name, r in (("watchpost", r_o), ("pymodbus", r_p)):
            print(f"  {name:10} turnaround p50 {r['turnaround_p50_us']:>8.1f} us  p99 {r['turnaround_p99_us']:>8.1f} us"
                  f"  round trip p50 {r['roundtrip_p50_us']:>8.1f} us  errors {r['errors']}")
        print(f"  turnaround ratio pymodbus/watchpost (p50): "
              f"{r_p['turnaround_p50_us'] / max(r_o['turnaround_p50_us'], 1e-9):.1f}x")
    load_avg = os.getloadavg()[0]
    print(f"(load average when done: {load_avg:.2f} on {os.cpu_count()} CPUs; other work on the machine skews these figures)")
    print("BENCH_FIELDBUS_JSON " + json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
