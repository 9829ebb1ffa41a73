"""A byte-level proxy between two serial lines (pty pairs) that can inject faults.

usage: serial_fault_proxy.py APP_SIDE DEVICE_SIDE

Forwards every byte both ways. Commands on stdin, one per line:
  inject HEX     write these bytes towards the application side, as if they came from the line
  stats          print {"to_app": n, "from_app": n} (bytes forwarded so far) as one JSON line
Exits when stdin closes.
"""
import json
import os
import select
import sys
import tty


def main() -> None:
    app = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)
    dev = os.open(sys.argv[2], os.O_RDWR | os.O_NOCTTY)
    for fd in (app, dev):
        tty.setraw(fd)
    stats = {"to_app": 0, "from_app": 0, "injected": 0}
    stdin = sys.stdin.fileno()
    pending = b""
    print("READY", flush=True)
    while True:
        ready, _, _ = select.select([app, dev, stdin], [], [], 1.0)
        for fd in ready:
            if fd == stdin:
                chunk = os.read(stdin, 4096)
                if not chunk:
                    return
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    cmd, _, arg = line.decode().strip().partition(" ")
                    if cmd == "inject":
                        data = bytes.fromhex(arg)
                        os.write(app, data)
                        stats["injected"] += len(data)
                        print("OK", flush=True)
                    elif cmd == "stats":
                        print(json.dumps(stats), flush=True)
            elif fd == app:
                data = os.read(app, 4096)
                stats["from_app"] += len(data)
                os.write(dev, data)
            else:
                data = os.read(dev, 4096)
                stats["to_app"] += len(data)
                os.write(app, data)


main()
