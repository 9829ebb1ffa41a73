"""Home Assistant discovery with a real Home Assistant core (issue 17).

Home Assistant and its mosquitto run in a network namespace of their own; the appliance reaches
that mosquitto through an upstream (`[[bridge.upstream]]`, `homeassistant = true`) that carries
the discovery configs and the bus's states out and Home Assistant's commands and birth message
in. The YoLink simulator's cloud broker is another mosquitto, on our loopback. pymodbus plays the Neasmart base station (it writes
four zones and reads the setpoint Home Assistant sets), the YoLink simulator plays the cloud, the
board's simulated GPIO relays are a relay module, and the camera simulator a camera. The test
asks Home Assistant itself, over its REST API, what it made of the discovery.
"""
from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "alarm"))
sys.path.insert(0, str(HERE.parent / "fieldbus"))
sys.path.insert(0, str(HERE.parent / "capture"))
from conftest import wait_for  # noqa: E402
from alarm_support import mosquitto, sia_factory, sia_receiver_toml, yolink_factory, YolinkSim  # noqa: E402,F401
from fieldbus_support import UNIT, tcp_master  # noqa: E402
from capture_support import SimCamera, capture_toml  # noqa: E402
from ha_peer import HaNamespace, HomeAssistant  # noqa: E402

NODE = "t1"
# (base, zone) → register N = 1200·(base−1) + 100·zone
ZONES = [(1, 1), (1, 2), (1, 11), (2, 3)]
DEVICES = ["door1:DoorSensor", "leak1:LeakSensor", "th1:THSensor"]


def dpt9(v: float) -> int:
    m, e = round(v * 100), 0
    while not -2048 <= m <= 2047:
        m, e = round(m / 2), e + 1
    return (0x8000 if m < 0 else 0) | (e << 11) | (m & 0x7FF)


def from_dpt9(raw: int) -> float:
    m = raw & 0x7FF
    if raw & 0x8000:
        m -= 2048
    return 0.01 * m * (1 << ((raw >> 11) & 0xF))


def register(base: int, zone: int) -> int:
    return 1200 * (base - 1) + 100 * zone


def upstream_toml(host: str, port: int) -> str:
    """The upstream that takes the appliance to Home Assistant's broker: the Home Assistant
    preset (configs and states out, birth and commands in)."""
    return (f'\n[[bridge.upstream]]\nname = "ha"\nbroker = "{host}:{port}"\n'
            'reconnect_initial_ms = 200\nhomeassistant = true\n')


def appliance_toml(mqtt_port: int, sim: YolinkSim, camera: SimCamera, frames: Path, sia_port: int,
                   ha: HaNamespace) -> str:
    return (
        sia_receiver_toml("cms", sia_port)
        + '\n[[alarms.mappings]]\nsensor = "door1"\nroutes = [{ receiver = "cms", zone = 1 }]\n'
        +
        f'\n[bridge.yolink]\nsource = "cloud"\nuaid = "ua-test"\nsecret = "s3cret"\n'
        f'api_url = "{sim.url}"\nmqtt = "127.0.0.1:{mqtt_port}"\n'
        f'\n[bridge.homeassistant]\nenabled = true\nnode_id = "{NODE}"\nsettle_s = 2\n'
        'snapshot_interval_s = 2\nconfiguration_url = "http://watchpost.test/"\n'
        + upstream_toml(ha.inner, ha.MQTT_PORT)
        + '\n[[fieldbus.relays]]\nname = "gpio"\nboard = true\npoll_interval_ms = 100\n'
        'channels = [{ channel = 1, name = "siren" }]\n'
        + capture_toml(f'\n[[capture.cameras]]\nid = "yard"\nname = "Yard"\n'
                       f'source = {{ type = "rtsp", url = "{camera.rtsp[0]}" }}\n', frames)
    )


def sections() -> dict:
    return {
        "system": {"board": "rpi4", "board_io": "simulated"},
        "bridge": {"enabled": True, "min_connect_interval_ms": 0},
        "alarms": {"enabled": True, "rate_limit_per_min": 0},
        "monitor": {"enabled": True, "system_interval_ms": 1000},
        "fieldbus": {"enabled": True, "neasmart": {"tcp_listen": "127.0.0.1:0", "setpoint_min_celsius": 5.0,
                                                   "setpoint_max_celsius": 30.0}},
    }


def retained_configs(ns: HaNamespace) -> dict[str, bytes]:
    """Every retained discovery config of our node on Home Assistant's broker (mosquitto_sub)."""
    out = subprocess.run(
        ["mosquitto_sub", "-h", ns.inner, "-p", str(ns.MQTT_PORT), "-t", f"homeassistant/+/{NODE}/+/config", "-v",
         "--retained-only", "-W", "2", "-F", "%t %p"],
        capture_output=True, timeout=20)
    configs = {}
    for line in out.stdout.decode(errors="replace").splitlines():
        topic, _, payload = line.partition(" ")
        configs[topic] = payload.encode()
    return configs


@pytest.fixture
def camera(tmp_path):
    cam = SimCamera(tmp_path)
    yield cam
    cam.stop()


def test_home_assistant_discovers_the_appliance_and_commands_reach_the_bus(
        tmp_path, mosquitto, yolink_factory, appliance_factory, camera, sia_factory):
    ns = HaNamespace(tmp_path)
    try:
        ha = HomeAssistant(tmp_path, ns)
        try:
            ha.start()
            run(tmp_path, ha, ns, mosquitto, yolink_factory, appliance_factory, camera, sia_factory().start())
        finally:
            ha.stop()
    finally:
        ns.close()


def run(tmp_path, ha, ns, mosquitto, yolink_factory, appliance_factory, camera, sia):
    sim = yolink_factory(mosquitto, DEVICES)
    app = appliance_factory(sections(), appliance_toml(mosquitto, sim, camera, tmp_path / "frames", sia.port, ns))
    app.start(timeout=30)

    # pymodbus, as the base station, writes four zones: state, setpoint, temperature.
    base = tcp_master(app)
    for i, (b, z) in enumerate(ZONES):
        r = base.write_registers(register(b, z), [1, dpt9(21.0), dpt9(19.5 + i)], device_id=UNIT)
        assert not r.isError(), r
    base.write_registers(7, [dpt9(-3.5), dpt9(-2.0)], device_id=UNIT)

    climates = {f"climate.watchpost_zone_{b}_{z}" for b, z in ZONES}

    def discovered():
        s = ha.states()
        have = {e for e in s if e.startswith("climate.")}
        ok = have == climates and all(s[e]["attributes"].get("current_temperature") is not None for e in climates)
        return s if ok else None

    states = wait_for(discovered, 60, interval=0.5, what="Home Assistant's climates for the four written zones")
    # Only the written zones, each with its temperature, limits, step, presets and modes.
    for i, (b, z) in enumerate(ZONES):
        a = states[f"climate.watchpost_zone_{b}_{z}"]["attributes"]
        assert a["current_temperature"] == pytest.approx(19.5 + i), a
        assert a["temperature"] == pytest.approx(21.0), a
        assert a["target_temp_step"] == 0.5, a
        assert a["min_temp"] == 5.0 and a["max_temp"] == 30.0, a
        # Home Assistant adds its own "none" preset.
        assert [p for p in a["preset_modes"] if p != "none"] == [
            "Normal", "Reduced", "Standby", "Time Program", "Party", "Absence"], a
        assert a["preset_mode"] == "Normal", a
        assert set(a["hvac_modes"]) == {"auto", "heat", "cool"}, a
        assert a["friendly_name"].endswith(f"Zone {b}.{z}"), a

    outside = wait_for(lambda: (ha.state("sensor.watchpost_neasmart_outside_temperature") or {}).get("state") not in
                       (None, "unknown", "unavailable") and ha.state("sensor.watchpost_neasmart_outside_temperature"),
                       20, interval=0.3, what="outside temperature in Home Assistant")
    assert float(outside["state"]) == pytest.approx(-3.5)
    assert outside["attributes"]["unit_of_measurement"] == "°C"
    assert outside["attributes"]["device_class"] == "temperature"
    mode = ha.state("select.watchpost_neasmart_mode")
    assert mode is not None and mode["attributes"]["options"][:3] == ["Auto", "Heating", "Cooling"], mode

    # Sensors, relays, the camera and the workers' health.
    door = wait_for(lambda: ha.state("binary_sensor.watchpost_sensor_door1"), 30, interval=0.3,
                    what="the door sensor in Home Assistant")
    assert door["attributes"]["device_class"] == "door", door
    assert ha.state("binary_sensor.watchpost_sensor_leak1")["attributes"]["device_class"] == "moisture"
    battery = wait_for(lambda: ha.state("sensor.watchpost_sensor_door1_battery"), 10, interval=0.3, what="battery")
    assert battery["attributes"]["unit_of_measurement"] == "%" and battery["attributes"]["device_class"] == "battery"
    th = wait_for(lambda: ha.state("sensor.watchpost_sensor_th1_temperature"), 10, interval=0.3, what="TH sensor")
    assert th["attributes"]["device_class"] == "temperature"
    switch = wait_for(lambda: (ha.state("switch.watchpost_relay_gpio_siren") or {}).get("state") in ("on", "off")
                      and ha.state("switch.watchpost_relay_gpio_siren"), 20, interval=0.3, what="relay switch")
    assert switch["attributes"]["friendly_name"].endswith("siren (channel 1)"), switch
    cam = wait_for(lambda: ha.state("camera.watchpost_camera_yard"), 30, interval=0.3, what="camera entity")
    assert cam["attributes"]["friendly_name"] == "Yard", cam
    wait_for(lambda: (ha.state("binary_sensor.watchpost_worker_fieldbus") or {}).get("state") == "on", 20,
             interval=0.3, what="the fieldbus worker running in Home Assistant")
    # The appliance's health, from the monitor worker's system target.
    cpu = wait_for(lambda: (ha.state("sensor.watchpost_health_system_cpu_percent") or {}).get("state")
                   not in (None, "unknown", "unavailable") and ha.state("sensor.watchpost_health_system_cpu_percent"),
                   30, interval=0.3, what="the appliance's CPU in Home Assistant")
    assert 0.0 <= float(cpu["state"]) <= 100.0 and cpu["attributes"]["unit_of_measurement"] == "%", cpu
    disk = wait_for(lambda: ha.state("sensor.watchpost_health_system_disk_used_percent_root"), 10, interval=0.3,
                    what="disk use of / in Home Assistant")
    assert disk["state"] not in ("unknown", "unavailable"), disk

    # The alarm receiver: its link, its queue and the test button (RX at pysiaalarm).
    link = wait_for(lambda: (ha.state("binary_sensor.watchpost_receiver_cms_link") or {}).get("state") in ("on", "off")
                    and ha.state("binary_sensor.watchpost_receiver_cms_link"), 30, interval=0.3, what="receiver link")
    assert link["attributes"]["device_class"] == "connectivity", link
    queued = wait_for(lambda: ha.state("sensor.watchpost_receiver_cms_queued"), 10, interval=0.3, what="queue length")
    assert queued["state"] == "0", queued
    ha.call("button", "press", {"entity_id": "button.watchpost_receiver_cms_test"})
    events = sia.wait_events(1, timeout=20)
    assert any(e.get("code") == "RX" for e in events), events
    wait_for(lambda: ha.state("binary_sensor.watchpost_receiver_cms_link")["state"] == "on", 20, interval=0.2,
             what="receiver link up in Home Assistant after the test")

    # The simulator opens the door: Home Assistant's binary sensor turns on.
    wait_for(lambda: ha.state("binary_sensor.watchpost_sensor_door1")["state"] == "off", 20, interval=0.2,
             what="door closed in Home Assistant")
    sim.report("door1", "open")
    wait_for(lambda: ha.state("binary_sensor.watchpost_sensor_door1")["state"] == "on", 20, interval=0.1,
             what="door open in Home Assistant")

    # A target temperature set through Home Assistant reaches the base station's register.
    ha.call("climate", "set_temperature", {"entity_id": "climate.watchpost_zone_1_11", "temperature": 23.5})

    def setpoint():
        r = base.read_holding_registers(register(1, 11) + 1, count=1, device_id=UNIT)
        return not r.isError() and from_dpt9(r.registers[0]) == pytest.approx(23.5)

    wait_for(setpoint, 20, interval=0.1, what="the setpoint read by the base over FC03")
    # A preset, the relay, and a refused command (logged and published, never a crash).
    ha.call("climate", "set_preset_mode", {"entity_id": "climate.watchpost_zone_2_3", "preset_mode": "Party"})
    wait_for(lambda: base.read_holding_registers(register(2, 3), count=1, device_id=UNIT).registers[0] == 5, 20,
             interval=0.1, what="the preset read by the base")
    ha.call("switch", "turn_on", {"entity_id": "switch.watchpost_relay_gpio_siren"})
    wait_for(lambda: ha.state("switch.watchpost_relay_gpio_siren")["state"] == "on", 20, interval=0.2,
             what="relay on in Home Assistant")
    subprocess.run(["mosquitto_pub", "-h", ns.inner, "-p", str(ns.MQTT_PORT), "-t", f"watchpost/ha/{NODE}/set/zone/1/1/setpoint",
                    "-m", "warm"], check=True, timeout=10)
    err = wait_for(lambda: ha.state("sensor.watchpost_command_error") if "warm" in
                   (ha.state("sensor.watchpost_command_error") or {}).get("state", "") else None,
                   20, interval=0.2, what="the refused command shown in Home Assistant")
    assert err["attributes"]["code"] == "INVALID_PAYLOAD", err
    assert app.worker("bridge")["state"] == "running"

    # Home Assistant logged no discovery or template error for our entities.
    bad = [l for l in ha.log_text().splitlines()
           if re.search(r"^\S+ \S+ (ERROR|WARNING) \([^)]*\) \[[^\]]*(mqtt|template)", l)]
    assert not bad, "\n".join(bad[:20])

    # Home Assistant announcing itself republishes every config.
    def metric(name: str) -> float:
        text = requests.get(app.url("/metrics"), timeout=5).text
        m = re.search(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M)
        return float(m.group(1)) if m else 0.0

    published = metric("watchpost_bridge_ha_discovery_published_total")
    entities = metric("watchpost_bridge_ha_entities")
    assert entities >= 30, entities
    subprocess.run(["mosquitto_pub", "-h", ns.inner, "-p", str(ns.MQTT_PORT), "-t", "homeassistant/status", "-m", "online"],
                   check=True, timeout=10)
    wait_for(lambda: metric("watchpost_bridge_ha_discovery_published_total") >= published + entities, 20,
             interval=0.2, what="a full republish after homeassistant/status online")

    # A sensor taken away: after a restart without it, its entities are removed (empty
    # retained configs) and the others stay.
    before = retained_configs(ns)
    assert f"homeassistant/binary_sensor/{NODE}/sensor_leak1/config" in before, sorted(before)
    app.stop()
    sim.proc.stop()
    sim2 = yolink_factory(mosquitto, [d for d in DEVICES if not d.startswith("leak1")])
    app2 = appliance_factory(sections(), appliance_toml(mosquitto, sim2, camera, tmp_path / "frames2", sia.port, ns))
    # The same data directory: the node id and the list of published configs carry over.
    app2.config_path.write_text(app.config_path.read_text().replace(sim.url, sim2.url)
                                .replace(str(tmp_path / "frames"), str(tmp_path / "frames2")))
    app2.data_dir = app.data_dir
    app2.start(timeout=30)

    def leak_gone():
        c = retained_configs(ns)
        return c if not any("sensor_leak1" in t for t in c) else None

    after = wait_for(leak_gone, 30, interval=0.5, what="the removed sensor's configs gone from the broker")
    assert f"homeassistant/binary_sensor/{NODE}/sensor_door1/config" in after
    wait_for(lambda: ha.state("binary_sensor.watchpost_sensor_leak1") is None, 20, interval=0.3,
             what="the removed sensor gone from Home Assistant")
    app2.stop()
