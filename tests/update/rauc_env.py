"""A real RAUC (Debian's ``rauc service``) on a private D-Bus system bus with file-backed slots
and a file-backed custom bootloader backend, plus a development CA and bundles signed by it.

Nothing here needs systemd, root devices or a real boot loader: the slots are plain files, the
boot loader's state (primary slot, per-slot good/bad) lives in files that RAUC's ``custom``
backend script reads and writes, and a "reboot" is a restart of the service with
``--override-boot-slot``. docs/update.md explains the layout.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

COMPATIBLE = "watchpost-test"

BACKEND = """#!/bin/sh
# File-backed stand-in for U-Boot's environment (RAUC's custom bootloader backend). While the
# file "hold" exists, marking a slot bad (what RAUC does first when it installs into it) waits:
# an install stays in RAUC's "installing" for as long as a test needs.
S=$(dirname "$0"); [ -f "$S/primary" ] || echo A > "$S/primary"; echo "$*" >> "$S/calls.log"
case "$1" in
  get-primary) cat "$S/primary";;
  set-primary) echo "$2" > "$S/primary"; echo good > "$S/state.$2";;
  get-state) cat "$S/state.$2" 2>/dev/null || echo good;;
  set-state) [ "$3" = bad ] && while [ -f "$S/hold" ]; do sleep 0.05; done; echo "$3" > "$S/state.$2";;
  *) exit 1;;
esac
"""


def missing_tools() -> list[str]:
    need = ["rauc", "dbus-daemon", "openssl", "mkfs.ext4", "mksquashfs", "debugfs"]
    return [t for t in need if shutil.which(t) is None and not Path("/usr/sbin", t).exists()]


def _run(*cmd: str, cwd: Path | None = None, input: bytes | None = None) -> None:
    subprocess.run(cmd, cwd=cwd, input=input, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


class Pki:
    """A development CA and a code-signing leaf issued by it (as scripts/image/gen-dev-keys.sh)."""

    def __init__(self, d: Path, name: str):
        d.mkdir(parents=True, exist_ok=True)
        self.ca, self.ca_key = d / "ca.pem", d / "ca.key"
        self.cert, self.key = d / "signer.pem", d / "signer.key"
        _run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(self.ca_key),
             "-out", str(self.ca), "-days", "30", "-subj", f"/O=Watchpost Test/CN={name} CA",
             "-addext", "basicConstraints=critical,CA:true", "-addext", "keyUsage=critical,keyCertSign")
        csr = d / "signer.csr"
        _run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(self.key), "-out", str(csr),
             "-subj", f"/O=Watchpost Test/CN={name} signer")
        ext = d / "signer.ext"
        ext.write_text("basicConstraints=critical,CA:false\nkeyUsage=critical,digitalSignature\n"
                       "extendedKeyUsage=codeSigning\n")
        _run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(self.ca), "-CAkey", str(self.ca_key),
             "-CAcreateserial", "-out", str(self.cert), "-days", "30", "-extfile", str(ext))


class Rauc:
    """The RAUC service on its own bus. ``address`` is the bus's D-Bus address."""

    def __init__(self, workdir: Path):
        self.dir = workdir
        for sub in ("slots", "mnt", "data", "boot", "bundles"):
            (workdir / sub).mkdir(parents=True, exist_ok=True)
        self.pki = Pki(workdir / "pki", "Dev")
        self.other_pki = Pki(workdir / "pki-other", "Stranger")
        for s in ("A", "B"):
            with open(workdir / "slots" / f"{s}.img", "wb") as f:
                f.truncate(16 * 1024 * 1024)
        backend = workdir / "boot" / "backend.sh"
        backend.write_text(BACKEND)
        backend.chmod(0o755)
        self.conf = workdir / "system.conf"
        self.conf.write_text(f"""[system]
compatible={COMPATIBLE}
bootloader=custom
mountprefix={workdir}/mnt
data-directory={workdir}/data
[handlers]
bootloader-custom-backend={backend}
[keyring]
path={self.pki.ca}
check-purpose=codesign
[slot.rootfs.0]
device={workdir}/slots/A.img
type=ext4
bootname=A
[slot.rootfs.1]
device={workdir}/slots/B.img
type=ext4
bootname=B
""")
        self.socket = workdir / "bus"
        self.address = f"unix:path={self.socket}"
        conf = Path("/usr/share/dbus-1/system.conf").read_text()
        import re
        conf = re.sub(r"<listen>.*?</listen>", f"<listen>{self.address}</listen>", conf)
        conf = re.sub(r"<pidfile>.*?</pidfile>", "", conf)
        conf = re.sub(r"<user>.*?</user>", "", conf)
        conf = re.sub(r"<servicehelper>.*?</servicehelper>", "", conf)
        conf = conf.replace("<standard_system_servicedirs/>", "").replace("<syslog/>", "")
        conf = conf.replace("<includedir>system.d</includedir>", "<includedir>/usr/share/dbus-1/system.d</includedir>")
        (workdir / "bus.conf").write_text(conf)
        self.bus = subprocess.Popen(["dbus-daemon", "--nofork", f"--config-file={workdir / 'bus.conf'}"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.service: subprocess.Popen | None = None
        deadline = time.monotonic() + 20
        while not self.socket.exists():
            if time.monotonic() > deadline:
                raise TimeoutError("dbus-daemon did not create its socket")
            time.sleep(0.02)

    def env(self) -> dict[str, str]:
        return dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.address)

    def start(self, boot_slot: str = "A") -> None:
        """Starts the service as if booted from ``boot_slot`` (a "reboot" is stop + start)."""
        log = open(self.dir / f"service-{boot_slot}.log", "ab")
        self.service = subprocess.Popen(
            ["rauc", "-c", str(self.conf), "service", f"--override-boot-slot={boot_slot}"],
            env=self.env(), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while subprocess.run(["busctl", f"--address={self.address}", "status", "de.pengutronix.rauc"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode != 0:
            if self.service.poll() is not None:
                raise RuntimeError(f"rauc service exited {self.service.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError("rauc service did not take its bus name")
            time.sleep(0.05)

    def stop_service(self) -> None:
        if self.service and self.service.poll() is None:
            self.service.send_signal(signal.SIGTERM)
            try:
                self.service.wait(10)
            except subprocess.TimeoutExpired:
                self.service.kill()
                self.service.wait()
        self.service = None

    def close(self) -> None:
        self.stop_service()
        self.bus.terminate()
        try:
            self.bus.wait(10)
        except subprocess.TimeoutExpired:
            self.bus.kill()

    def hold(self, on: bool) -> None:
        """Holds the next install at its start (the backend's set-state bad) until released."""
        p = self.dir / "boot" / "hold"
        if on:
            p.touch()
        else:
            p.unlink(missing_ok=True)

    def backend_calls(self) -> str:
        p = self.dir / "boot" / "calls.log"
        return p.read_text() if p.exists() else ""

    def primary(self) -> str:
        p = self.dir / "boot" / "primary"
        return p.read_text().strip() if p.exists() else "A"

    def slot_release(self, slot: str) -> str:
        """The release file inside a slot image ("" when the slot holds none)."""
        r = subprocess.run(["debugfs", "-R", "cat /etc/watchpost-release", str(self.dir / "slots" / f"{slot}.img")],
                           capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else ""

    def bundle(self, name: str, version: str, compatible: str = COMPATIBLE, pki: Pki | None = None,
               pad_kib: int = 64) -> Path:
        """A plain-format bundle with one ext4 image whose /etc/watchpost-release names the version."""
        pki = pki or self.pki
        src = self.dir / "bundles" / f"{name}.d"
        content = self.dir / "bundles" / f"{name}.content"
        (content / "etc").mkdir(parents=True, exist_ok=True)
        src.mkdir(parents=True, exist_ok=True)
        (content / "etc" / "watchpost-release").write_text(f"watchpost {version}\n")
        (content / "etc" / "pad").write_bytes(os.urandom(pad_kib * 1024))
        _run("mkfs.ext4", "-q", "-F", "-d", str(content), str(src / "rootfs.ext4"), "8M")
        (src / "manifest.raucm").write_text(
            f"[update]\ncompatible={compatible}\nversion={version}\n[bundle]\nformat=plain\n"
            "[image.rootfs]\nfilename=rootfs.ext4\n")
        out = self.dir / "bundles" / f"{name}.raucb"
        if out.exists():
            out.unlink()
        _run("rauc", "bundle", f"--cert={pki.cert}", f"--key={pki.key}", str(src), str(out))
        return out
