"""`watchpost check-config` and `print-default-config` on good and bad files."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import BIN, ROOT


def check(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN), "check-config", str(path)], capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("example", sorted((ROOT / "examples").glob("*.toml")), ids=lambda p: p.name)
def test_shipped_examples_pass(example):
    r = check(example)
    assert r.returncode == 0, r.stderr
    assert "OK" in r.stdout


def test_default_config_round_trips(tmp_path):
    out = subprocess.run([str(BIN), "print-default-config"], capture_output=True, text=True, check=True)
    p = tmp_path / "default.toml"
    p.write_text(out.stdout)
    r = check(p)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize(
    "text, must_contain",
    [
        ("[hub]\nenabled = true\nlisten_port = 80\n", ["line 3", "listen_port"]),
        ("[supervisor]\nrestart_budget = \"ten\"\n", ["line 2", "restart_budget"]),
        ("[hub]\nlisten = \"127.0.0.1:70000\"\n", ["line 2", "out of range"]),
        ("[nonsense]\nx = 1\n", ["line 1", "nonsense"]),
        ("[supervisor]\nessential = [\"hub\", \"toaster\"]\n", ["supervisor.essential", "toaster"]),
        ("[[auth.users]]\nname = \"admin\"\npassword = \"short\"\n", ["auth.users[0].password", "8 characters"]),
        ("this is not toml\n", ["line 1"]),
    ],
    ids=["unknown-key", "wrong-type", "port-range", "unknown-section", "unknown-worker", "weak-password", "garbage"],
)
def test_bad_files_are_rejected_with_key_and_line(tmp_path, text, must_contain):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    r = check(p)
    assert r.returncode == 78, (r.returncode, r.stdout, r.stderr)
    for s in must_contain:
        assert s in r.stderr, f"{s!r} not in {r.stderr!r}"
    assert str(p) in r.stderr


# A thermal camera recording on a schedule: the two closed-set values of the acceptance cases
# are spliced in by `test_closed_sets_fail_with_key_and_line`.
CAMERA = """\
[capture]
enabled = true

[[capture.cameras]]
id = "boiler"
kind = "thermal"
source = { type = "thermal_tcp", address = "127.0.0.1:9100" }

[capture.cameras.record]
mode = "schedule"

[[capture.cameras.record.schedule]]
days = {days}
start = "07:30"
stop = "18:00"

[capture.cameras.thermal]
format = "centikelvin16"

[[capture.cameras.thermal.rules]]
id = "overheat"
statistic = {statistic}
threshold_c = 50.0
"""


def camera_config(days: str = '["Mon", "Tue"]', statistic: str = '"max"') -> str:
    return CAMERA.replace("{days}", days).replace("{statistic}", statistic)


def test_closed_sets_accept_what_users_write(tmp_path):
    p = tmp_path / "camera.toml"
    p.write_text(camera_config(days='["Mon", "tue", "weekends"]', statistic='"mean"'))
    r = check(p)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize(
    "kwargs, line, key, value",
    [
        ({"statistic": '"maximum"'}, 22, "capture.cameras[0].thermal.rules[0].statistic", "maximum"),
        ({"days": '["Mon", "Funday"]'}, 13, "capture.cameras[0].record.schedule[0].days[1]", "Funday"),
    ],
    ids=["statistic-typo", "unknown-day"],
)
def test_closed_sets_fail_with_key_and_line(tmp_path, kwargs, line, key, value):
    p = tmp_path / "bad.toml"
    p.write_text(camera_config(**kwargs))
    r = check(p)
    assert r.returncode == 78, (r.returncode, r.stdout, r.stderr)
    out = r.stderr + r.stdout
    assert f"line {line}," in out, out
    assert f"`{key}`" in out, out
    assert f"`{value}`" in out, out
    assert str(p) in out


def test_missing_file(tmp_path):
    p = tmp_path / "nope.toml"
    r = check(p)
    assert r.returncode == 78
    assert "cannot read config file" in r.stderr and str(p) in r.stderr


def test_run_refuses_bad_config_before_starting(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[hub]\nlisten = \"nope\"\n")
    r = subprocess.run([str(BIN), "run", "--config", str(p)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 78
    assert "hub" in r.stderr or "line 2" in r.stderr


def test_env_override(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("")
    import os
    env = {**os.environ, "WATCHPOST_HUB__LISTEN": "127.0.0.1:99999"}
    r = subprocess.run([str(BIN), "check-config", str(p)], capture_output=True, text=True, env=env)
    assert r.returncode == 78 and "out of range" in r.stderr
