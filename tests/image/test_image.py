"""Boots the QEMU test image (make image) under qemu-system-aarch64 and checks it from
the host, through QEMU's port forwards on 127.0.0.1 only:

- systemd reaches multi-user.target;
- the appliance reports healthy on /health and its web/API port answers;
- the supervisor holds the (emulated i6300esb) hardware watchdog;
- watchpost-mark-good.service marks the booted RAUC slot good once healthy;
- a wedged supervisor (SIGSTOP) is restarted by systemd's watchdog and becomes healthy again.

Run by `make image-test` (WATCHPOST_IMAGE_TEST=1); skipped in `make test`, where a boot
of several minutes does not fit. Timings go to build/image/image-test-times.json.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from conftest import HeldPort

REPO = Path(__file__).resolve().parents[2]
IMAGE_DIR = REPO / "build/image"
IMAGE = IMAGE_DIR / "watchpost-qemu-arm64.img"
TIMES = IMAGE_DIR / "image-test-times.json"
BOOT_DEADLINE_S = 420
HEALTH_DEADLINE_S = 300
# WatchdogSec=20s in watchpost.service, plus stop/restart time under emulation.
WATCHDOG_RESTART_DEADLINE_S = 240

pytestmark = pytest.mark.skipif(
    os.environ.get("WATCHPOST_IMAGE_TEST") != "1",
    reason="boots the QEMU image for several minutes: run `make image-test`",
)


def _wait(what, deadline_s, probe, interval_s=1.0):
    end = time.monotonic() + deadline_s
    last = None
    while time.monotonic() < end:
        try:
            result = probe()
        except (OSError, requests.RequestException) as e:
            result, last = None, e
        if result:
            return result
        time.sleep(interval_s)
    pytest.fail(f"{what} not reached within {deadline_s} s (last error: {last})")


class Vm:
    def __init__(self, tmp):
        for tool in ("qemu-system-aarch64", "qemu-img"):
            if shutil.which(tool) is None:
                pytest.fail(f"{tool} missing: make image-test installs it (scripts/cross/host-deps.sh image)")
        if not IMAGE.exists():
            pytest.fail(f"{IMAGE} missing: run make image")
        self.console = tmp / "console.log"
        overlay = tmp / "overlay.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(IMAGE), "-F", "raw",
                        str(overlay)], check=True, timeout=60)
        # QEMU's port forwards cannot report a port they picked: they listen on held ones.
        self.held = (HeldPort(), HeldPort())
        self.http_port, self.hook_port = (h.port for h in self.held)
        cmd = [
            "qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a72", "-smp", "2", "-m", "1024",
            "-nographic", "-no-reboot",
            "-kernel", str(IMAGE_DIR / "vmlinuz"), "-initrd", str(IMAGE_DIR / "initrd.gz"),
            "-append", "console=ttyAMA0 root=/dev/vda2 rw rauc.slot=A net.ifnames=0 panic=-1",
            "-drive", f"file={overlay},format=qcow2,if=none,id=hd0,cache=unsafe",
            "-device", "virtio-blk-pci,drive=hd0",
            "-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{self.http_port}-:8080,"
                       f"hostfwd=tcp:127.0.0.1:{self.hook_port}-:7070",
            "-device", "virtio-net-pci,netdev=n0,romfile=",
            "-device", "i6300esb", "-watchdog-action", "reset",
            "-monitor", "none", "-serial", f"file:{self.console}",
        ]
        self.started = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        self.times = {}

    def elapsed(self):
        return round(time.monotonic() - self.started, 1)

    def console_text(self):
        return self.console.read_text(errors="replace") if self.console.exists() else ""

    def alive(self):
        if self.proc.poll() is not None:
            err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
            pytest.fail(f"qemu exited ({self.proc.returncode}): {err}\n{self.console_text()[-3000:]}")

    def hook(self, command, timeout_s=20):
        with socket.create_connection(("127.0.0.1", self.hook_port), timeout=timeout_s) as s:
            s.sendall(command.encode() + b"\n")
            s.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")

    def status(self):
        fields, calls = {}, []
        for line in self.hook("status").splitlines():
            key, _, value = line.partition("=")
            if key == "RaucCall":
                calls.append(value)
            elif key:
                fields[key] = value
        fields["RaucCalls"] = calls
        return fields

    def health(self):
        r = requests.get(f"http://127.0.0.1:{self.http_port}/health", timeout=5)
        return r.json() if r.status_code == 200 else None

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.hook("poweroff", timeout_s=5)
                self.proc.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(timeout=30)
        for h in self.held:
            h.close()


@pytest.fixture(scope="module")
def vm(tmp_path_factory):
    machine = Vm(tmp_path_factory.mktemp("qemu"))
    yield machine
    machine.stop()
    IMAGE_DIR.mkdir(parents=True, exist_ok=True)
    TIMES.write_text(json.dumps(machine.times, indent=2) + "\n")
    print(f"\nimage test timings (s since qemu start): {machine.times}")


def test_boots_to_multi_user(vm):
    def reached():
        vm.alive()
        return re.search(r"Reached target.*[Mm]ulti-[Uu]ser", vm.console_text())
    _wait("multi-user.target", BOOT_DEADLINE_S, reached)
    vm.times["multi_user_s"] = vm.elapsed()


def test_health_is_healthy_over_the_forwarded_port(vm):
    def healthy():
        vm.alive()
        h = vm.health()
        return h if h and h.get("status") == "healthy" else None
    h = _wait("healthy /health", HEALTH_DEADLINE_S, healthy)
    vm.times["healthy_s"] = vm.elapsed()
    names = {w["name"] for w in h["workers"]}
    assert {"broker", "hub"} <= names, h


def test_api_port_answers(vm):
    metrics = requests.get(f"http://127.0.0.1:{vm.http_port}/metrics", timeout=10)
    assert metrics.status_code == 200 and "watchpost" in metrics.text, metrics.text[:300]
    # The API answers: without credentials it asks for them, with wrong ones it refuses.
    api = requests.get(f"http://127.0.0.1:{vm.http_port}/api/v1/relays", timeout=10)
    assert api.status_code == 401, (api.status_code, api.text[:200])
    bad = requests.get(f"http://127.0.0.1:{vm.http_port}/api/v1/relays", auth=("admin", "wrong"), timeout=10)
    assert bad.status_code == 401, (bad.status_code, bad.text[:200])


def test_supervisor_runs_under_systemd_with_the_hardware_watchdog(vm):
    s = vm.status()
    assert s["ActiveState"] == "active" and s["SubState"] == "running", s
    assert s["HardwareWatchdog"] == "/dev/watchdog0", s
    journal = vm.hook("journal")
    # The supervisor found the board from the device tree and armed the watchdog its
    # description names (board/boards/qemu-virt-arm64.toml).
    assert "board watchdog armed" in journal, journal[-2000:]
    board = vm.health()["board"]
    assert board["name"] == "qemu-virt-arm64" and board["io"] == "hardware", board
    assert board["watchdog"] == "/dev/watchdog0" and board["error"] is None, board


def test_mark_good_after_healthy(vm):
    def marked():
        s = vm.status()
        return s if any(c.endswith("set-state A good") for c in s["RaucCalls"]) else None
    s = _wait("RAUC mark-good of slot A", 120, marked, interval_s=2)
    vm.times["marked_good_s"] = vm.elapsed()
    assert s["MarkGood"] == "active", s


def test_wedged_supervisor_is_restarted_by_the_systemd_watchdog(vm):
    before = vm.status()
    old_pid, old_restarts = before["MainPID"], int(before["NRestarts"])
    out = vm.hook("stop-supervisor")
    assert f"Stopped={old_pid}" in out, out
    stopped_at = time.monotonic()

    def restarted():
        vm.alive()
        s = vm.status()
        ok = (int(s["NRestarts"]) > old_restarts and s["MainPID"] not in ("0", old_pid)
              and s["ActiveState"] == "active")
        return s if ok else None
    s = _wait("restart by the systemd watchdog", WATCHDOG_RESTART_DEADLINE_S, restarted, interval_s=2)
    vm.times["watchdog_restart_after_stop_s"] = round(time.monotonic() - stopped_at, 1)

    def healthy():
        h = vm.health()
        return h if h and h.get("status") == "healthy" else None
    _wait("healthy again after the restart", HEALTH_DEADLINE_S, healthy)
    vm.times["healthy_again_after_stop_s"] = round(time.monotonic() - stopped_at, 1)
    journal = vm.hook("journal")
    assert "Watchdog timeout" in journal, journal[-3000:]
    assert int(s["NRestarts"]) == old_restarts + 1, s
