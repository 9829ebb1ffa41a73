"""HTTPS on the hub (`[hub.tls]`, docs/hub.md), against the built appliance.

- With no certificate in `<data_dir>/tls/` the hub makes a self-signed one naming the
  configured hostname, localhost and 127.0.0.1, and `ca.pem` lets curl verify it;
- `PUT /api/v1/system/tls` refuses a key that does not belong to the certificate (422
  `KEY_MISMATCH`, naming the problem) and serves an accepted pair from the next handshake on,
  without a restart of the hub; `DELETE` goes back to a fresh self-signed certificate;
- `redirect_http` answers the plain listener with 308 to HTTPS, except `/health` and
  `/metrics`; with TLS off the routes answer 409 `TLS_DISABLED`.
"""
from __future__ import annotations

import hashlib
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
import requests

from conftest import ADMIN

HOSTNAME = "watchpost-test.local"


def need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} not installed")


def tls_appliance(appliance_factory, **tls):
    cfg = {"enabled": True, "hostname": HOSTNAME, "listen": "127.0.0.1:0", **tls}
    a = appliance_factory({"hub": {"tls": cfg}}).start()
    host, port = a.addr("hub.https")
    assert host == "127.0.0.1"
    return a, port


def served_pem(port: int) -> str:
    return ssl.get_server_certificate(("127.0.0.1", port), timeout=5)


def fingerprint(pem: str) -> str:
    digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def san(pem: str) -> str:
    out = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName"], input=pem,
                         capture_output=True, text=True, check=True, timeout=10)
    return out.stdout


def curl(ca: Path, name: str, port: int, path: str = "/health") -> subprocess.CompletedProcess:
    return subprocess.run(
        ["curl", "-sS", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}",
         "--cacert", str(ca), "--resolve", f"{name}:{port}:127.0.0.1", f"https://{name}:{port}{path}"],
        capture_output=True, text=True, timeout=20)


def make_pair(directory: Path, name: str) -> tuple[str, str]:
    """A self-signed ECDSA P-256 certificate for `name` and its key, made with openssl."""
    directory.mkdir(parents=True, exist_ok=True)
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={name}",
                    "-addext", f"subjectAltName=DNS:{name}"],
                   check=True, capture_output=True, timeout=60)
    return cert.read_text(), key.read_text()


def tls_api(a, method: str, **kw) -> requests.Response:
    return requests.request(method, a.url("/api/v1/system/tls"), auth=ADMIN, timeout=30, **kw)


def test_self_signed_certificate_upload_hot_swap_and_reset(appliance_factory, tmp_path):
    for tool in ("curl", "openssl"):
        need(tool)
    a, port = tls_appliance(appliance_factory)
    tls_dir = a.data_dir / "tls"
    ca = tls_dir / "ca.pem"
    assert (tls_dir / "key.pem").stat().st_mode & 0o777 == 0o600
    assert (tls_dir / "cert.pem").stat().st_mode & 0o777 == 0o644

    # The self-signed certificate: curl trusts it through ca.pem under the configured name.
    r = curl(ca, HOSTNAME, port)
    assert r.stdout == "200", r.stderr
    pem = served_pem(port)
    names = san(pem)
    for n in (f"DNS:{HOSTNAME}", "DNS:localhost", "IP Address:127.0.0.1"):
        assert n in names, names
    info = tls_api(a, "GET").json()
    assert info["self_signed"] and info["generated"], info
    assert HOSTNAME in info["sans"] and "127.0.0.1" in info["sans"], info
    assert info["sha256_fingerprint"] == fingerprint(pem)
    assert "key" not in " ".join(info).lower(), info
    # The same router, credentials included, over HTTPS.
    https = f"https://127.0.0.1:{port}"
    assert requests.get(f"{https}/api/v1/system", auth=ADMIN, verify=str(ca), timeout=5).status_code == 200
    assert requests.get(f"{https}/api/v1/system", verify=str(ca), timeout=5).status_code == 401
    pid = a.worker("hub")["pid"]

    # A key that is not the certificate's is refused, and nothing changes.
    cert_a, key_a = make_pair(tmp_path / "a", "uploaded.test")
    _, key_b = make_pair(tmp_path / "b", "other.test")
    r = tls_api(a, "PUT", json={"certificate": cert_a, "private_key": key_b})
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "KEY_MISMATCH" and "does not belong to the certificate" in err["message"], err
    r = tls_api(a, "PUT", json={"certificate": "not a certificate", "private_key": key_a})
    assert r.status_code == 422 and r.json()["error"]["code"] == "INVALID_CERTIFICATE", r.text
    assert fingerprint(served_pem(port)) == info["sha256_fingerprint"]

    # An accepted pair is served from the next handshake on, by the same hub process.
    r = tls_api(a, "PUT", json={"certificate": cert_a, "private_key": key_a})
    assert r.status_code == 200, r.text
    up = r.json()
    assert up["sans"] == ["uploaded.test"] and not up["generated"], up
    assert fingerprint(served_pem(port)) == fingerprint(cert_a) == up["sha256_fingerprint"]
    r = curl(tmp_path / "a" / "cert.pem", "uploaded.test", port)
    assert r.stdout == "200", r.stderr
    assert curl(ca, HOSTNAME, port).stdout != "200", "the old certificate is no longer served"
    assert a.worker("hub")["pid"] == pid, "the hub restarted"
    assert tls_api(a, "GET").json() == up

    # Back to a fresh self-signed certificate, again trusted through ca.pem.
    r = tls_api(a, "DELETE")
    assert r.status_code == 200, r.text
    fresh = r.json()
    assert fresh["generated"] and fresh["sha256_fingerprint"] not in (info["sha256_fingerprint"], up["sha256_fingerprint"])
    assert fingerprint(served_pem(port)) == fresh["sha256_fingerprint"]
    assert curl(ca, HOSTNAME, port).stdout == "200"
    assert a.worker("hub")["pid"] == pid

    assert a.stop() == 0, a.log()


def test_the_certificate_survives_a_restart(appliance_factory):
    need("openssl")
    a, port = tls_appliance(appliance_factory)
    first = fingerprint(served_pem(port))
    assert a.stop() == 0, a.log()
    a.start()
    _, port = a.addr("hub.https")
    assert fingerprint(served_pem(port)) == first


def test_redirect_http_sends_browsers_to_https(appliance_factory):
    a, port = tls_appliance(appliance_factory, redirect_http=True)
    for path in ("/api/v1/system?x=1", "/"):
        r = requests.get(a.url(path), allow_redirects=False, timeout=5)
        assert r.status_code == 308, (path, r.status_code, r.text)
        assert r.headers["location"] == f"https://127.0.0.1:{port}{path}", r.headers
    r = requests.get(a.url("/setup"), headers={"Host": f"{HOSTNAME}:80"}, allow_redirects=False, timeout=5)
    assert r.status_code == 308 and r.headers["location"] == f"https://{HOSTNAME}:{port}/setup", r.headers
    # Probes and scrapers keep plain HTTP.
    assert requests.get(a.url("/health"), timeout=5).status_code == 200
    assert requests.get(a.url("/metrics"), timeout=5).status_code == 200
    ca = str(a.data_dir / "tls" / "ca.pem")
    assert requests.get(f"https://127.0.0.1:{port}/api/v1/system", auth=ADMIN, verify=ca, timeout=5).status_code == 200


def test_tls_routes_answer_409_when_tls_is_off(appliance):
    r = tls_api(appliance, "GET")
    assert r.status_code == 409 and r.json()["error"]["code"] == "TLS_DISABLED", r.text
    assert "hub.https" not in appliance.listeners
    assert not (appliance.data_dir / "tls").exists()
