"""ONVIF Profile S with an independent client (onvif-zeep), and WS-Discovery probes."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests
from requests.auth import HTTPDigestAuth

from conftest import BIN, ROOT
from rtsp_support import ADMIN, ffprobe, have, rtsp_appliance, testsrc  # noqa: F401

onvif = pytest.importorskip("onvif", reason="onvif-zeep is not installed (make venv)")


def wsdl_dir() -> str:
    # onvif-zeep installs its WSDL files as a top-level `wsdl` directory in site-packages.
    return str(Path(onvif.__file__).resolve().parent.parent / "wsdl")


def camera(a, user=ADMIN[0], password=ADMIN[1]):
    host, port = a.addr("rtsp.onvif")
    return onvif.ONVIFCamera(host, port, user, password, wsdl_dir())


def with_credentials(uri: str) -> str:
    scheme, rest = uri.split("://", 1)
    return f"{scheme}://{ADMIN[0]}:{ADMIN[1]}@{rest}"


def test_onvif_client_streams_and_snapshot(rtsp_appliance, tmp_path):
    a = rtsp_appliance
    cam = camera(a)
    info = cam.devicemgmt.GetDeviceInformation()
    assert info.Manufacturer == "Watchpost"
    assert info.Model
    ifaces = cam.devicemgmt.GetNetworkInterfaces()
    assert ifaces[0].Info.HwAddress == "02:00:00:00:00:42"
    media = cam.create_media_service()
    profiles = media.GetProfiles()
    tokens = [p.token for p in profiles]
    assert tokens == ["cam_cam1_main", "cam_cam1_sub", "dashboard"], tokens
    assert all(p.VideoEncoderConfiguration.Encoding == "H264" for p in profiles)

    req = media.create_type("GetStreamUri")
    req.ProfileToken = "cam_cam1_main"
    req.StreamSetup = {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}
    uri = media.GetStreamUri(req).Uri
    host, port = a.addr("rtsp.rtsp")
    assert uri == f"rtsp://127.0.0.1:{port}/cameras/cam1"
    if have("ffprobe"):
        assert ffprobe(with_credentials(uri))["codec_name"] == "h264"

    snap = media.GetSnapshotUri({"ProfileToken": "dashboard"}).Uri
    r = requests.get(snap, auth=ADMIN, timeout=20)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/jpeg"
    jpeg = tmp_path / "snap.jpg"
    jpeg.write_bytes(r.content)
    assert r.content[:2] == b"\xff\xd8"
    if have("ffprobe"):
        out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,width,height",
                              "-of", "default=nw=1", str(jpeg)], capture_output=True, text=True, timeout=20)
        assert "codec_name=mjpeg" in out.stdout and "width=960" in out.stdout, out.stdout + out.stderr
    # Without credentials the snapshot is refused, with a Digest and a Basic challenge.
    refused = requests.get(snap, timeout=10)
    assert refused.status_code == 401
    challenge = refused.headers["www-authenticate"]
    assert challenge.startswith("Digest ") and 'qop="auth"' in challenge and "Basic" in challenge, challenge
    # HTTP Digest, as Home Assistant probes it first (requests' HTTPDigestAuth).
    r = requests.get(snap, auth=HTTPDigestAuth(*ADMIN), timeout=20)
    assert r.status_code == 200 and r.content[:2] == b"\xff\xd8", r.status_code
    with requests.Session() as session:
        # One nonce, counts 1, 2, 3: each request is accepted once.
        session.auth = HTTPDigestAuth(*ADMIN)
        for _ in range(3):
            assert session.get(snap, timeout=20).status_code == 200
    assert requests.get(snap, auth=HTTPDigestAuth(ADMIN[0], "wrong"), timeout=10).status_code == 401
    assert requests.get(snap, auth=(ADMIN[0], "wrong"), timeout=10).status_code == 401
    # A camera snapshot: one frame decoded from the upstream.
    cam_snap = media.GetSnapshotUri({"ProfileToken": "cam_cam1_main"}).Uri
    r = requests.get(cam_snap, auth=ADMIN, timeout=30)
    assert r.status_code == 200 and r.content[:2] == b"\xff\xd8", r.status_code
    if have("ffprobe"):
        jpeg.write_bytes(r.content)
        out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=width,height",
                              "-of", "default=nw=1", str(jpeg)], capture_output=True, text=True, timeout=20)
        assert "width=640" in out.stdout and "height=360" in out.stdout, out.stdout + out.stderr


def test_wrong_credentials_get_a_soap_fault(rtsp_appliance):
    a = rtsp_appliance
    # onvif-zeep authenticates its first call (GetCapabilities) in the constructor.
    with pytest.raises(Exception) as err:
        cam = camera(a, password="not-the-password")
        cam.devicemgmt.GetDeviceInformation()
    assert "not Authorized" in str(err.value) or "NotAuthorized" in str(err.value), err.value
    # The clock answers without any credentials.
    host, port = a.addr("rtsp.onvif")
    body = ('<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>'
            '<GetSystemDateAndTime xmlns="http://www.onvif.org/ver10/device/wsdl"/></s:Body></s:Envelope>')
    r = requests.post(f"http://{host}:{port}/onvif/device_service", data=body,
                      headers={"Content-Type": "application/soap+xml"}, timeout=10)
    assert r.status_code == 200 and "UTCDateTime" in r.text


PROBE = """<?xml version="1.0" encoding="UTF-8"?>
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" xmlns:dn="http://www.onvif.org/ver10/network/wsdl">
<s:Header><a:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</a:Action><a:MessageID>{mid}</a:MessageID><a:To>urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To></s:Header>
<s:Body><d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types><d:Scopes>onvif://www.onvif.org/Profile/Streaming</d:Scopes></d:Probe></s:Body></s:Envelope>"""


def test_unicast_probe_is_answered(rtsp_appliance):
    a = rtsp_appliance
    host, port = a.addr("rtsp.discovery")
    mid = f"urn:uuid:{uuid.uuid4()}"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        s.sendto(PROBE.format(mid=mid).encode(), (host, port))
        data, _ = s.recvfrom(65536)
    text = data.decode()
    assert mid in text and "ProbeMatches" in text
    assert "dn:NetworkVideoTransmitter" in text
    assert "onvif://www.onvif.org/Profile/Streaming" in text
    onvif_host, onvif_port = a.addr("rtsp.onvif")
    assert f"http://127.0.0.1:{onvif_port}/onvif/device_service" in text


def test_ws_discovery_in_network_namespace(tmp_path):
    """WSDiscovery's multicast probe, inside a private network namespace (no LAN traffic), and
    the device's Hello on start and Bye on stop heard on the multicast group."""
    if not have("unshare") or not have("ip"):
        pytest.skip("unshare or ip (iproute2) is missing")
    if not BIN.exists():
        pytest.skip(f"{BIN} is not built")
    helper = Path(__file__).with_name("netns_discovery.py")
    out = subprocess.run(
        ["unshare", "--net", "--", sys.executable, str(helper), str(tmp_path), str(BIN)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    if out.returncode == 77:
        pytest.skip(f"cannot set up a test network namespace: {out.stdout.strip()} {out.stderr.strip()[-300:]}")
    if "unshare failed" in out.stderr or "Operation not permitted" in out.stderr[:200]:
        pytest.skip(f"cannot create a network namespace here: {out.stderr.strip()[:200]}")
    assert out.returncode == 0, out.stdout + out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    found = result["found"]
    assert found, "no device found"
    # The device announced itself on the group when it started and when it stopped.
    assert result["hello"] and result["bye"], result
    dev = found[0]
    assert any(t.endswith("NetworkVideoTransmitter") for t in dev["types"]), dev
    assert "onvif://www.onvif.org/Profile/Streaming" in dev["scopes"], dev
    assert any(x.endswith("/onvif/device_service") for x in dev["xaddrs"]), dev
