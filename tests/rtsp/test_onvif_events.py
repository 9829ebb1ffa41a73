"""ONVIF events and the device buttons, the way Home Assistant's ONVIF client uses them.

The client is onvif-zeep (the synchronous library; Home Assistant runs its async fork, which
makes the same requests): WS-UsernameToken digest on every call, CreatePullPointSubscription
with a relative InitialTerminationTime, PullMessages with Timeout/MessageLimit held open until
an event arrives, SetSynchronizationPoint, Renew and Unsubscribe on the subscription's address.

The first event comes from the YoLink simulator: a motion sensor reports `alert`, the bridge
publishes the sensor in alarm, and the pull point delivers `tns1:Device/Trigger/DigitalInput`.
Camera motion (`tns1:VideoSource/MotionAlarm`) comes from the detection worker's bus topic
(docs/bus.md), which nothing in the appliance produces yet: the test publishes it as that
worker will.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path

import pytest

from conftest import wait_for
from rtsp_support import ADMIN, extra_camera_toml, rtsp_appliance, rtsp_sections, testsrc, toml  # noqa: F401

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "alarm"))
from alarm_support import mosquitto, yolink_factory, yolink_toml  # noqa: E402,F401 - fixtures

onvif = pytest.importorskip("onvif", reason="onvif-zeep is not installed (make venv)")
mqtt = pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed (make venv)")

EVENTS_WSDL_NS = "{http://www.onvif.org/ver10/events/wsdl}"
PULLPOINT = "http://www.onvif.org/ver10/events/wsdl/PullPointSubscription"


def wsdl_dir() -> str:
    return str(Path(onvif.__file__).resolve().parent.parent / "wsdl")


def camera(a, user=ADMIN[0], password=ADMIN[1]):
    host, port = a.addr("rtsp.onvif")
    return onvif.ONVIFCamera(host, port, user, password, wsdl_dir())


def subscription_manager(cam, address: str, user=ADMIN[0], password=ADMIN[1]):
    """Renew/Unsubscribe go to the subscription's address (WS-BaseNotification binding)."""
    return onvif.ONVIFService(address, user, password, os.path.join(wsdl_dir(), "events.wsdl"),
                              binding_name=f"{EVENTS_WSDL_NS}SubscriptionManagerBinding")


TT = "{http://www.onvif.org/ver10/schema}"
WSNT = "{http://docs.oasis-open.org/wsn/b-2}"


def pull(pp, timeout_s: float, limit: int = 100) -> list[tuple[str, str, str, str, str]]:
    """One PullMessages as Home Assistant sends it (Timeout as a duration, MessageLimit); the
    (topic, operation, source value, data name, data value) of each notification, read where
    Home Assistant's parsers read them: the Topic's text, the first SimpleItem of the
    tt:Message's Source and Data.

    The answer is read from the XML: zeep drops the text of the mixed-content wsnt:Topic
    (onvif-zeep-async, Home Assistant's fork, patches zeep for it), and onvif-zeep's bundled
    events.wsdl does not import onvif.xsd, so tt:Message would come back as a bare element."""
    from lxml import etree
    with pp.zeep_client.settings(raw_response=True):
        r = pp.ws_client.PullMessages(Timeout=dt.timedelta(seconds=timeout_s), MessageLimit=limit)
    assert r.status_code == 200, r.text
    out = []
    for m in etree.fromstring(r.content).iter(f"{WSNT}NotificationMessage"):
        body = m.find(f"{WSNT}Message/{TT}Message")
        src = body.find(f"{TT}Source/{TT}SimpleItem")
        data = body.find(f"{TT}Data/{TT}SimpleItem")
        out.append((m.find(f"{WSNT}Topic").text, body.get("PropertyOperation"), src.get("Value"),
                    data.get("Name"), data.get("Value")))
    return out


def pull_until(pp, pred, timeout_s: int = 20, rounds: int = 5) -> list:
    """PullMessages (held open by the device up to `timeout_s`) until `pred` holds for one."""
    seen = []
    for _ in range(rounds):
        got = pull(pp, timeout_s)
        seen += got
        if any(pred(m) for m in got):
            return seen
    raise AssertionError(f"no matching event; seen {seen}")


@pytest.fixture
def events_appliance(appliance_factory, testsrc, mosquitto, yolink_factory):
    """broker, hub, bridge (YoLink simulator with one motion sensor) and rtsp (camera cam1)."""
    sim = yolink_factory(mosquitto, ["pir1:MotionSensor:Yard motion"])
    sections = rtsp_sections(testsrc.url)
    rtsp = sections["rtsp"]
    tables = {k: rtsp.pop(k) for k in ("dashboard", "discovery", "device")}
    extra = "".join(
        f"\n[rtsp.{name}]\n" + "".join(f"{k} = {toml(v)}\n" for k, v in body.items())
        for name, body in tables.items()
    ) + extra_camera_toml(testsrc.url) + yolink_toml(mosquitto, sim)
    sections["bridge"] = {"enabled": True, "min_connect_interval_ms": 0, "poll_state_on_connect": True}
    a = appliance_factory(sections, extra_toml=extra).start(timeout=30)
    wait_for(lambda: "rtsp.onvif" in a.listeners, 20, what="rtsp worker ready")
    a.sim = sim
    return a


def test_pull_point_events_from_the_simulator_and_the_bus(events_appliance):
    a = events_appliance
    cam = camera(a)
    events = cam.create_events_service()
    assert events.GetServiceCapabilities().WSPullPointSupport is True
    props = events.GetEventProperties()
    assert props.FixedTopicSet is True
    sub = events.CreatePullPointSubscription({"InitialTerminationTime": "PT600S"})
    assert (sub.TerminationTime - sub.CurrentTime).total_seconds() == 600
    address = sub.SubscriptionReference.Address._value_1
    host, port = a.addr("rtsp.onvif")
    assert address.startswith(f"http://{host}:{port}/onvif/subscription_"), address
    cam.xaddrs[PULLPOINT] = address
    pp = cam.create_pullpoint_service()
    manager = subscription_manager(cam, address)

    # The sensor as the bridge first publishes it (state polled on connect): not in alarm.
    first = pull_until(pp, lambda m: m[2] == "pir1")
    pir = [m for m in first if m[2] == "pir1"]
    assert pir[0][:2] == ("tns1:Device/Trigger/DigitalInput", "Initialized"), pir
    assert pir[-1][3:] == ("LogicalState", "false"), pir

    # Motion at the simulated sensor: the held PullMessages returns with the change.
    a.sim.report("pir1", state="alert")
    got = pull_until(pp, lambda m: m[2] == "pir1" and m[4] == "true")
    change = [m for m in got if m[2] == "pir1" and m[4] == "true"][0]
    assert change == ("tns1:Device/Trigger/DigitalInput", "Changed", "pir1", "LogicalState", "true"), got

    # Camera motion and a person, as the detection worker publishes them on the bus.
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    bhost, bport = a.addr("broker.listen")
    c.connect(bhost, bport)
    c.loop_start()
    try:
        c.publish("watchpost/detect/camera/cam1/motion", json.dumps({"active": True}), qos=1,
                  retain=True).wait_for_publish(5)
        got = pull_until(pp, lambda m: m[0] == "tns1:VideoSource/MotionAlarm")
        motion = [m for m in got if m[0] == "tns1:VideoSource/MotionAlarm"][0]
        assert motion[2:] == ("cam_cam1", "State", "true"), got
        c.publish("watchpost/detect/camera/cam1/object/person", json.dumps({"active": True, "score": 0.9}),
                  qos=1, retain=True).wait_for_publish(5)
        got = pull_until(pp, lambda m: m[0].endswith("PeopleDetect"))
        person = [m for m in got if m[0].endswith("PeopleDetect")][0]
        assert person == ("tns1:RuleEngine/MyRuleDetector/PeopleDetect", "Initialized", "cam_cam1", "State",
                          "true"), got
    finally:
        c.loop_stop()

    # SetSynchronizationPoint: every property again, as Initialized.
    pp.SetSynchronizationPoint()
    resync = pull(pp, 5)
    assert {m[1] for m in resync} == {"Initialized"}, resync
    assert ("tns1:Device/Trigger/DigitalInput", "Initialized", "pir1", "LogicalState", "true") in resync
    # Nothing queued: a short Timeout comes back empty.
    assert pull(pp, 1, limit=10) == []

    renewed = manager.Renew({"TerminationTime": "PT120S"})
    assert (renewed.TerminationTime - renewed.CurrentTime).total_seconds() == 120
    manager.Unsubscribe()
    with pytest.raises(Exception) as gone:
        pp.PullMessages({"Timeout": dt.timedelta(seconds=1), "MessageLimit": 10})
    assert "no subscription" in str(gone.value), gone.value
    # Without credentials, nothing but a NotAuthorized fault (before any argument is read).
    stranger = onvif.ONVIFService(cam.xaddrs["http://www.onvif.org/ver10/events/wsdl"], ADMIN[0], "wrong",
                                  os.path.join(wsdl_dir(), "events.wsdl"),
                                  binding_name=f"{EVENTS_WSDL_NS}EventBinding")
    with pytest.raises(Exception) as err:
        stranger.CreatePullPointSubscription({"InitialTerminationTime": "bogus"})
    assert "not Authorized" in str(err.value) or "NotAuthorized" in str(err.value), err.value


def test_home_assistant_buttons(rtsp_appliance):
    """The two buttons Home Assistant creates for every ONVIF device."""
    a = rtsp_appliance
    cam = camera(a)
    mgmt = cam.devicemgmt
    # "Set System Date and Time": Manual with Home Assistant's clock; the appliance's clock is
    # NTP's, already right, so the answer is success and nothing changes.
    now = dt.datetime.now(dt.timezone.utc)
    param = mgmt.create_type("SetSystemDateAndTime")
    param.DateTimeType = "Manual"
    param.DaylightSavings = False
    param.TimeZone = {"TZ": "CET-1CEST,M3.5.0,M10.5.0/3"}
    param.UTCDateTime = {"Date": {"Year": now.year, "Month": now.month, "Day": now.day},
                         "Time": {"Hour": now.hour, "Minute": now.minute, "Second": now.second}}
    mgmt.SetSystemDateAndTime(param)
    assert mgmt.GetSystemDateAndTime().DateTimeType == "NTP"
    # "Reboot": answered, then the supervisor restarts every worker.
    old = a.pids()
    reply = mgmt.SystemReboot()
    assert reply, reply
    a.wait_restarted("rtsp", old["rtsp"], timeout=60)
    a.wait_restarted("hub", old["hub"], timeout=60)
    wait_for(lambda: camera(a).devicemgmt.GetDeviceInformation().Manufacturer == "Watchpost", 30,
             what="ONVIF answering after the restart")
