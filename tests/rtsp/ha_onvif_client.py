"""Home Assistant's ONVIF client against the appliance, as its `onvif` integration drives it.

Runs in .venv-ha (scripts/setup-ha.sh): onvif-zeep-async, httpx and Home Assistant's own
event parsers at the versions that Home Assistant release pins. tests/rtsp/test_onvif_ha.py
starts it and reads one JSON object per line on stdout:

1. {"phase": "setup", ...}: what the config flow and `ONVIFDevice.async_setup` read
   (homeassistant/components/onvif/{config_flow,device}.py): capabilities, the clock, device
   information, the MAC (the config entry's unique id), the media capabilities, the H.264
   profiles; the snapshot scheme chosen as `_get_snapshot_auth` chooses it (Digest first, on
   the first profile), a snapshot of every profile with that scheme (what each camera entity
   fetches), a stream URI; the event entities after the pull point's first messages.
2. The client then waits for a line on stdin (the test makes its events meanwhile) and pulls
   as the integration's PullPointManager does until the expected entities hold the expected
   values or the deadline passes: {"phase": "events", ...}.
3. The buttons (SetSystemDateAndTime the way the integration sends it, SystemReboot) and the
   unsubscribe at unload: {"phase": "done", ...}.

Usage: ha_onvif_client.py HOST PORT USER PASSWORD EXPECT_JSON
EXPECT_JSON: {"profile": token, "resolution": [w, h], "events": {name/source: value, ...},
"timeout_s": n}.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys
import time

import httpx
import onvif
from onvif import ONVIFCamera
from onvif.exceptions import ONVIFAuthError, ONVIFError
from zeep.exceptions import Fault

from homeassistant.components.onvif.event import PULLPOINT_MESSAGE_LIMIT, PULLPOINT_POLL_TIME, SUBSCRIPTION_TIME
from homeassistant.components.onvif.parsers import PARSERS


def emit(obj: dict) -> None:
    print(json.dumps(obj, default=str), flush=True)


def jpeg_facts(data: bytes | None) -> dict:
    if data is None:
        return {"ok": False}
    return {"ok": data[:3] == b"\xff\xd8\xff" and data[-2:] == b"\xff\xd9", "bytes": len(data)}


class Entities:
    """Home Assistant's EventManager.async_parse_messages, without the hass object: one
    parsed Event per uid, the latest value wins."""

    def __init__(self, unique_id: str):
        self.unique_id = unique_id
        self.events: dict[str, dict] = {}
        self.unparsed: set[str] = set()
        self.failed: list[str] = []
        self.messages = 0

    async def parse(self, messages) -> None:
        for msg in messages or []:
            self.messages += 1
            if not msg.Topic:
                continue
            topic = msg.Topic._value_1.rstrip("/.")  # noqa: SLF001 - as the integration reads it
            parser = PARSERS.get(topic)
            if parser is None:
                self.unparsed.add(topic)
                continue
            try:
                event = await parser(self.unique_id, msg)
            except (AttributeError, KeyError) as err:  # what the integration catches and logs
                event = None
                topic = f"{topic}: {err}"
            if event is None:
                self.failed.append(topic)
                continue
            source = msg.Message._value_1.Source.SimpleItem[0].Value  # noqa: SLF001
            self.events[event.uid] = {"uid": event.uid, "name": event.name, "platform": event.platform,
                                      "device_class": event.device_class, "value": event.value,
                                      "source": source}

    def values(self) -> dict[str, object]:
        """{"<entity name>/<source>": value}"""
        return {f"{e['name']}/{e['source']}": e["value"] for e in self.events.values()}


async def pull(service, entities: Entities) -> int:
    """One PullMessages as PullPointManager._async_pull_messages sends it."""
    response = await service.PullMessages({"MessageLimit": PULLPOINT_MESSAGE_LIMIT, "Timeout": PULLPOINT_POLL_TIME})
    messages = response.NotificationMessage if response else []
    await entities.parse(messages)
    return len(messages or [])


async def read_stdin_line() -> str:
    return await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


async def main() -> None:
    host, port, user, password, expect_json = sys.argv[1:6]
    expect = json.loads(expect_json)
    # homeassistant/components/onvif/device.py: get_device()
    device = ONVIFCamera(host, int(port), user, password, f"{os.path.dirname(onvif.__file__)}/wsdl/", no_cache=True)
    out: dict = {"phase": "setup"}
    try:
        # Config flow and ONVIFDevice.async_setup.
        await device.update_xaddrs()
        capabilities = await device.get_capabilities()
        out["pull_point_support"] = (capabilities.get("Events") or {}).get("WSPullPointSupport")
        out["xaddrs"] = sorted(device.xaddrs)
        mgmt = await device.create_devicemgmt_service()
        clock = await mgmt.GetSystemDateAndTime()
        c = clock.UTCDateTime
        cam_date = dt.datetime(c.Date.Year, c.Date.Month, c.Date.Day, c.Time.Hour, c.Time.Minute, c.Time.Second,
                               tzinfo=dt.timezone.utc)
        out["clock"] = {"type": clock.DateTimeType,
                        "skew_s": abs((cam_date - dt.datetime.now(dt.timezone.utc)).total_seconds())}
        info = await mgmt.GetDeviceInformation()
        out["device_info"] = {k: getattr(info, k) for k in ("Manufacturer", "Model", "FirmwareVersion", "SerialNumber")}
        mac = None
        for interface in await mgmt.GetNetworkInterfaces():
            if interface.Enabled:
                mac = interface.Info.HwAddress
        out["mac"] = mac
        media = await device.create_media_service()
        out["snapshot_capability"] = bool((await media.GetServiceCapabilities()).SnapshotUri)

        async def h264_profiles() -> list[dict]:
            return [
                {"token": p.token, "name": p.Name, "width": p.VideoEncoderConfiguration.Resolution.Width,
                 "height": p.VideoEncoderConfiguration.Resolution.Height}
                for p in await media.GetProfiles()
                if p.VideoEncoderConfiguration and p.VideoEncoderConfiguration.Encoding == "H264"
            ]

        # The integration reads the profiles once; the test asks for the measured size, which
        # the rtsp worker learns from the capture worker's status: wait for it here.
        deadline = time.monotonic() + 20
        profiles = await h264_profiles()
        want = next((p for p in profiles if p["token"] == expect["profile"]), None)
        while (want is None or [want["width"], want["height"]] != expect["resolution"]) and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            profiles = await h264_profiles()
            want = next((p for p in profiles if p["token"] == expect["profile"]), None)
        out["profiles"] = profiles

        # __init__.py: _get_snapshot_auth(): Digest, then Basic, on the first profile; the
        # scheme that brings a picture is kept, none when neither does (a camera offline at
        # setup), and then camera.py uses Digest. The probe is made on every profile here,
        # to see what it would settle on for each.
        probes: dict[str, str | None] = {}
        for p in profiles:
            probes[p["token"]] = None
            for basic_auth in (False, True):
                try:
                    if await device.get_snapshot(p["token"], basic_auth):
                        probes[p["token"]] = "basic" if basic_auth else "digest"
                        break
                except ONVIFError as err:  # ONVIFAuthError on a 401: suppressed by the integration
                    out.setdefault("snapshot_probe_errors", []).append(f"{p['token']}: {type(err).__name__}: {err}")
        out["snapshot_probes"] = probes
        scheme = probes[profiles[0]["token"]]
        out["snapshot_auth"] = scheme
        # camera.py: ONVIFCameraEntity.async_camera_image() with the scheme kept.
        out["snapshots"] = {}
        for p in profiles:
            try:
                out["snapshots"][p["token"]] = jpeg_facts(await device.get_snapshot(p["token"], scheme == "basic"))
            except ONVIFError as err:
                out["snapshots"][p["token"]] = {"ok": False, "error": f"{type(err).__name__}: {err}"}
        # A wrong password: the 401 the integration turns into ONVIFAuthError.
        uri = await device.get_snapshot_uri(expect["profile"])
        async with httpx.AsyncClient() as client:
            bad = await client.get(uri, auth=httpx.DigestAuth(user, password + "x"))
        out["snapshot_wrong_password_status"] = bad.status_code
        req = media.create_type("GetStreamUri")
        req.ProfileToken = expect["profile"]
        req.StreamSetup = {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}
        out["stream_uri"] = (await media.GetStreamUri(req)).Uri

        # event.py: PullPointManager._async_create_pullpoint_subscription, then the first pull.
        entities = Entities(mac)
        lost: list[str] = []
        manager = await device.create_pullpoint_manager(SUBSCRIPTION_TIME, lambda: lost.append("lost"))
        await manager.set_synchronization_point()  # logs and carries on when it fails
        service = manager.get_service()
        await service.SetSynchronizationPoint()  # the same call, failing loudly
        # The manager's check of the answer's times (it switches to absolute times when the
        # device gets relative ones wrong) and the Renew it sends at 80 % of the lifetime.
        out["broken_relative_time"] = device._has_broken_relative_timestamps  # noqa: SLF001
        renewed = await manager._subscription.Renew(device.get_next_termination_time(SUBSCRIPTION_TIME))  # noqa: SLF001
        out["renewed_s"] = (renewed.TerminationTime - renewed.CurrentTime).total_seconds()
        out["subscription"] = device.xaddrs["http://www.onvif.org/ver10/events/wsdl/PullPointSubscription"]
        await pull(service, entities)
        out["initial_events"] = entities.values()
        emit(out)

        # The test makes its events; pull until Home Assistant's entities show them.
        await read_stdin_line()
        out = {"phase": "events"}
        deadline = time.monotonic() + expect["timeout_s"]
        pulls = 0
        while time.monotonic() < deadline:
            values = entities.values()
            if all(values.get(k) == v for k, v in expect["events"].items()):
                break
            pulls += 1
            try:
                await asyncio.wait_for(pull(service, entities), timeout=max(deadline - time.monotonic(), 0.1))
            except TimeoutError:
                break
        out.update(events=entities.values(), entities=sorted(entities.events.values(), key=lambda e: e["uid"]),
                   unparsed_topics=sorted(entities.unparsed), parse_failures=entities.failed, pulls=pulls, subscription_lost=lost)
        emit(out)

        # button.py: SetSystemTimeButton → async_manually_set_date_and_time (the time-zone
        # fallbacks included), RebootButton → SystemReboot; then the unload's unsubscribe.
        out = {"phase": "done"}
        system_date = dt.datetime.now(dt.timezone.utc)
        dt_param = mgmt.create_type("SetSystemDateAndTime")
        dt_param.DateTimeType = "Manual"
        dt_param.DaylightSavings = bool(time.localtime().tm_isdst)
        dt_param.UTCDateTime = {
            "Date": {"Year": system_date.year, "Month": system_date.month, "Day": system_date.day},
            "Time": {"Hour": system_date.hour, "Minute": system_date.minute, "Second": system_date.second},
        }
        set_time = None
        for tz in (str(system_date.astimezone().tzinfo), None):
            dt_param.TimeZone = tz
            try:
                await mgmt.SetSystemDateAndTime(dt_param)
            except (IndexError, Fault) as err:
                out.setdefault("set_time_errors", []).append(str(err))
            else:
                set_time = "ok"
                break
        out["set_time"] = set_time
        await manager.shutdown()
        out["unsubscribed"] = True
        out["reboot"] = str(await mgmt.SystemReboot())
        emit(out)
    except (ONVIFError, ONVIFAuthError, Fault, httpx.HTTPError) as err:
        out["error"] = f"{type(err).__name__}: {err}"
        emit(out)
        raise
    finally:
        await device.close()


if __name__ == "__main__":
    asyncio.run(main())
