"""The image's first-boot configuration (examples/appliance.toml): the built binary accepts it,
it is what an installer expects of a fresh box (no users, HTTPS on, optional areas off), and the
Yocto recipe installs it, as a config file, at the path watchpost.service passes to --config."""
from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from conftest import BIN, ROOT

CONFIG = ROOT / "examples" / "appliance.toml"
RECIPE = ROOT / "yocto" / "meta-watchpost" / "recipes-watchpost" / "watchpost" / "watchpost_0.1.0.bb"
UNIT = ROOT / "systemd" / "watchpost.service"
# BitBake's defaults for the variables the recipe's paths use (oe-core's bitbake.conf).
BB_PATHS = {"sysconfdir": "/etc", "localstatedir": "/var", "bindir": "/usr/bin"}


def unit_config_path() -> str:
    m = re.search(r"^ExecStart=\S+ run --config (\S+)$", UNIT.read_text(), re.MULTILINE)
    assert m, "watchpost.service has no `ExecStart=... run --config FILE`"
    return m.group(1)


def expand(value: str) -> str:
    return re.sub(r"\$\{(\w+)\}", lambda m: BB_PATHS[m.group(1)], value)


def test_check_config_accepts_the_image_configuration():
    if not BIN.exists():
        pytest.skip(f"{BIN} is not built (make build)")
    out = subprocess.run([str(BIN), "check-config", str(CONFIG)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_image_configuration_is_a_first_boot_one():
    cfg = tomllib.loads(CONFIG.read_text())
    assert cfg["system"]["data_dir"] == "/var/lib/watchpost"
    # The unit's state directory is the data directory.
    assert "StateDirectory=watchpost\n" in UNIT.read_text()
    assert cfg["hub"]["listen"] == "0.0.0.0:80"
    assert cfg["hub"]["tls"]["enabled"] is True and cfg["hub"]["tls"]["listen"] == "0.0.0.0:443"
    assert cfg["broker"]["listen"].startswith("127.0.0.1:")
    assert cfg["auth"].get("users", []) == [], "the image ships no user: the first-boot claim creates one"
    assert not re.search(r"^\s*(password|password_hash)\s*=", CONFIG.read_text(), re.MULTILINE)
    for area in ("fieldbus", "alarms", "capture", "detect", "bridge", "rtsp"):
        assert cfg[area]["enabled"] is False, f"[{area}] is off until the setup wizard turns it on"
    # Every key is explained for an installer: a comment right above it (or above its block).
    lines = CONFIG.read_text().splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^\w+ = ", line):
            above = lines[i - 1] if i else ""
            assert above.startswith("#") or re.match(r"^\w+ = ", above), f"line {i + 1} `{line}` has no comment"


def test_the_recipe_installs_it_where_the_unit_reads_it_as_a_config_file():
    recipe = RECIPE.read_text()
    installs = re.findall(r"^\s*install\s+(?:-\S+\s+(?:\S+\s+)?)*\$\{S\}/examples/appliance\.toml\s+\$\{D\}(\S+)$",
                          recipe, re.MULTILINE)
    assert installs, "the recipe does not install examples/appliance.toml"
    target = expand(installs[0])
    assert target == unit_config_path() == "/etc/watchpost/watchpost.toml"
    conffiles = re.search(r'^CONFFILES:\$\{PN\} = "([^"]*)"', recipe, re.MULTILINE)
    assert conffiles and target in [expand(p) for p in conffiles.group(1).split()], \
        "the installed configuration is not in CONFFILES (an upgrade would overwrite the installer's edits)"
    assert "watchpost.service" in recipe
