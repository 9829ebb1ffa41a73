"""The product-build key check of the Yocto layer (classes/watchpost_keys.bbclass), run
against real certificates made with openssl: development keys, keys kept inside a
layer, and missing keys are refused; keys from outside the tree pass."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLASS = REPO / "yocto/meta-watchpost/classes/watchpost_keys.bbclass"
LAYER = REPO / "yocto/meta-watchpost"


def _load_check():
    text = CLASS.read_text()
    m = re.search(r"^def watchpost_key_problems\(d\):\n(?:(?:    .*)?\n)+", text, re.MULTILINE)
    assert m, "watchpost_key_problems not found in the class"
    scope = {}
    exec(m.group(0), scope)  # the class's own Python, unchanged
    marker = re.search(r'^WATCHPOST_DEV_KEY_MARKER = "(.*)"$', text, re.MULTILINE).group(1)
    return scope["watchpost_key_problems"], marker


class FakeData:
    def __init__(self, values):
        self.values = values

    def getVar(self, name):  # noqa: N802 (BitBake datastore API)
        return self.values.get(name)


def _cert(directory: Path, subject: str) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    directory.mkdir(parents=True, exist_ok=True)
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "1", "-subj", subject],
                   check=True, capture_output=True, timeout=60)
    return key, cert


def _data(marker, key, cert, layers=(LAYER,)):
    return FakeData({
        "BBLAYERS": " ".join(str(p) for p in layers),
        "WATCHPOST_RAUC_KEYRING": str(cert),
        "WATCHPOST_RAUC_CERT": str(cert),
        "WATCHPOST_RAUC_KEY": str(key),
        "WATCHPOST_DEV_KEY_MARKER": marker,
    })


def test_development_certificates_are_refused(tmp_path):
    check, marker = _load_check()
    key, cert = _cert(tmp_path / "dev", "/O=Watchpost Development/CN=Watchpost Development CA")
    problems = check(_data(marker, key, cert))
    assert any("development certificate" in p for p in problems), problems


def test_product_keys_outside_the_tree_pass(tmp_path):
    check, marker = _load_check()
    key, cert = _cert(tmp_path / "secrets", "/O=Example Integrator/CN=Gateway fleet CA")
    assert check(_data(marker, key, cert)) == []


def test_keys_inside_a_layer_are_refused(tmp_path):
    check, marker = _load_check()
    fake_layer = tmp_path / "meta-vendor"
    key, cert = _cert(fake_layer / "files", "/O=Example Integrator/CN=Gateway fleet CA")
    problems = check(_data(marker, key, cert, layers=(LAYER, fake_layer)))
    assert any("inside the layer" in p for p in problems), problems


def test_missing_keys_are_refused(tmp_path):
    check, marker = _load_check()
    d = FakeData({"BBLAYERS": str(LAYER), "WATCHPOST_RAUC_KEYRING": str(tmp_path / "nope.pem"),
                  "WATCHPOST_RAUC_CERT": "", "WATCHPOST_RAUC_KEY": "",
                  "WATCHPOST_DEV_KEY_MARKER": marker})
    problems = check(d)
    assert any("does not exist" in p for p in problems)
    assert any("WATCHPOST_RAUC_CERT is not set" in p for p in problems)


def test_the_dev_key_script_produces_refused_keys(tmp_path):
    check, marker = _load_check()
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    out = tmp_path / "dev-keys"
    subprocess.run(["bash", str(REPO / "scripts/image/gen-dev-keys.sh"), str(out)], check=True,
                   capture_output=True, timeout=120)
    d = _data(marker, out / "signing.key.pem", out / "signing.cert.pem")
    d.values["WATCHPOST_RAUC_KEYRING"] = str(out / "ca.cert.pem")
    problems = check(d)
    assert sum("development certificate" in p for p in problems) == 2, problems
