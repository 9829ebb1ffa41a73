"""The board under the appliance, on simulated lines (`[system] board_io = "simulated"`, a
Raspberry Pi 4 description): the supervisor shows the appliance's state on the status LED
(healthy, alarm while a door is open), arms the board's watchdog, and carries out the user
button's gestures (SIGUSR1 toggles the simulated button line): a short press announces the
setup page, a long press and a confirming press reset the settings and keep recordings, unless
an alarm still waits for delivery: then the reset is refused and nothing is deleted. The
board's GPIO relays are a relay module (`board = true`) that the alarm path drives like a
Modbus module."""
from __future__ import annotations

import os
import signal
import time

from alarm_support import mosquitto, sia_factory, yolink_factory  # noqa: F401 - fixtures
from alarm_support import alarm_sections, queues, sia_receiver_toml, wait_bridge_connected, yolink_toml
from conftest import wait_for

BOARD_RELAYS = (
    "\n[[fieldbus.relays]]\nname = \"gpio\"\nboard = true\npoll_interval_ms = 100\n"
    "channels = [{ channel = 1, name = \"siren\", mode = \"pulse\", pulse_ms = 400 },"
    " { channel = 2, name = \"strobe\" }]\n"
    "\n[[alarms.receivers]]\ntype = \"relay\"\nid = \"outputs\"\nmodule = \"gpio\"\n"
    "\n[[alarms.mappings]]\nsensor = \"door1\"\n"
    "routes = [{ receiver = \"outputs\", output = \"strobe\", mode = \"follow\" }]\n"
)


def board_sections(mqtt_port: int, sim) -> dict:
    sections = alarm_sections(mqtt_port, sim)
    sections["system"] = {"board": "rpi4", "board_io": "simulated"}
    sections["fieldbus"] = {"enabled": True, "neasmart": {"enabled": False}}
    sections["supervisor"].update(
        essential=["broker", "fieldbus", "bridge", "hub"],
    )
    return sections


def board(app) -> dict:
    return app.health()["board"]


def channel(app, name: str) -> dict:
    r = app.get("/api/v1/relays/gpio")
    assert r.status_code == 200, r.text
    return next(c for c in r.json()["channels"] if c["name"] == name)


def press(app, hold_s: float) -> None:
    """Presses the simulated button for ``hold_s`` seconds."""
    os.kill(app.proc.pid, signal.SIGUSR1)
    time.sleep(hold_s)
    os.kill(app.proc.pid, signal.SIGUSR1)


def confirm_reset(app) -> None:
    """A long press (the LED asks for confirmation), then a confirming press."""
    os.kill(app.proc.pid, signal.SIGUSR1)
    wait_for(lambda: board(app)["led"] == "confirm_reset", 5, what="reset armed")
    os.kill(app.proc.pid, signal.SIGUSR1)
    time.sleep(0.3)  # the button's release between the two presses
    press(app, 0.2)


def test_led_watchdog_relays_and_button_on_a_simulated_board(appliance_factory, mosquitto, yolink_factory):
    sim = yolink_factory(mosquitto, ["door1:DoorSensor:Front"])
    extra = (
        yolink_toml(mosquitto, sim)
        + "\n[supervisor.button]\nlong_press_ms = 800\nconfirm_window_ms = 5000\n"
        + BOARD_RELAYS
    )
    app = appliance_factory(board_sections(mosquitto, sim), extra).start(timeout=30)
    wait_bridge_connected(app)

    b = wait_for(lambda: (b := board(app))["led"] == "healthy" and b, 10, what="LED healthy")
    assert b["name"] == "rpi4" and b["io"] == "simulated"
    assert b["watchdog"] == "simulated" and b["button"] is True and b["error"] is None

    # The board's relays are a relay module: read back, switched by hand, pulsed by a test.
    wait_for(lambda: channel(app, "strobe")["on"] is False, 10, what="board relays read back")
    r = app.post("/api/v1/relays/gpio/channels/strobe", json={"on": True})
    assert r.status_code == 200 and r.json()["channel"]["on"] is True, r.text
    assert app.post("/api/v1/relays/gpio/channels/strobe", json={"on": False}).status_code == 200
    assert app.post("/api/v1/relays/gpio/channels/siren/test").status_code == 200
    wait_for(lambda: channel(app, "siren")["on"] is False, 5, what="test pulse released")
    # A channel the board does not have is refused by the API like any unknown channel.
    assert app.post("/api/v1/relays/gpio/channels/relay9", json={"on": True}).status_code == 404

    # A door opening: an active alarm on the LED and the follow relay on; closing restores both.
    sim.report("door1", "open")
    wait_for(lambda: board(app)["led"] == "alarm", 10, what="LED shows the alarm")
    wait_for(lambda: channel(app, "strobe")["on"] is True, 10, what="board relay follows the door")
    sim.report("door1", "closed")
    wait_for(lambda: board(app)["led"] == "healthy", 10, what="LED back to healthy")
    wait_for(lambda: channel(app, "strobe")["on"] is False, 10, what="board relay released")

    # Short press: the setup page is announced.
    press(app, 0.2)
    b = wait_for(lambda: (b := board(app))["last_button"] and b, 5, what="short press seen")
    assert b["last_button"].startswith("publish_address"), b

    # Settings made through the API, and a recording on disk.
    body = {"type": "relay", "id": "extra", "module": "gpio"}
    r = app.post("/api/v1/alarms/receivers", json=body)
    assert r.status_code == 201, r.text
    rec = app.data_dir / "recordings" / "yard" / "1.mp4"
    rec.parent.mkdir(parents=True)
    rec.write_bytes(b"not really an mp4")

    # A long press arms the reset (LED asks for confirmation); no second press cancels it.
    os.kill(app.proc.pid, signal.SIGUSR1)
    wait_for(lambda: board(app)["led"] == "confirm_reset", 5, what="reset armed")
    os.kill(app.proc.pid, signal.SIGUSR1)
    wait_for(lambda: "factory_reset_cancelled" in (board(app)["last_button"] or ""), 10,
             what="unconfirmed reset cancelled")
    assert app.get("/api/v1/alarms/receivers/extra").status_code == 200
    wait_for(lambda: board(app)["led"] == "healthy", 5, what="LED healthy after the cancellation")

    # Long press, then a confirming press: the hub has no alarm waiting for delivery, so the
    # settings are reset and the recordings kept.
    confirm_reset(app)
    wait_for(lambda: "factory_reset kept recordings" in (board(app)["last_button"] or ""), 20,
             what="factory reset done")
    app.wait_healthy(30)
    assert app.get("/api/v1/alarms/receivers/extra").status_code == 404
    ids = [r["id"] for r in app.get("/api/v1/alarms/receivers").json()["items"]]
    assert ids == ["outputs"], ids
    assert rec.read_bytes() == b"not really an mp4"
    assert "factory reset done" in app.log_path.read_text(errors="replace")


def test_factory_reset_is_refused_while_an_alarm_waits_for_delivery(
    appliance_factory, mosquitto, sia_factory, yolink_factory
):
    sia = sia_factory()  # port held, receiver not started: deliveries fail and stay queued
    sim = yolink_factory(mosquitto, ["door1:DoorSensor:Front"])
    extra = (
        yolink_toml(mosquitto, sim)
        + "\n[supervisor.button]\nlong_press_ms = 800\nconfirm_window_ms = 5000\n"
        + sia_receiver_toml("cms", sia.port)
        + "\n[[alarms.mappings]]\nsensor = \"door1\"\nroutes = [{ receiver = \"cms\", zone = 1 }]\n"
    )
    sections = alarm_sections(mosquitto, sim)
    sections["system"] = {"board": "rpi4", "board_io": "simulated"}
    app = appliance_factory(sections, extra).start(timeout=30)
    wait_bridge_connected(app)
    wait_for(lambda: board(app)["led"] == "healthy", 10, what="LED healthy")

    # A setting made through the API: it must survive a refused reset.
    body = {"type": "sia", "id": "spare", "host": f"127.0.0.1:{sia.port}", "account": "AAA"}
    r = app.post("/api/v1/alarms/receivers", json=body)
    assert r.status_code == 201, r.text

    def cms() -> dict:
        return next(r for r in queues(app)["items"] if r["receiver"] == "cms")

    # The door opens and closes: an alarm and its restore wait for the unreachable receiver.
    sim.report("door1", "open")
    wait_for(lambda: board(app)["led"] == "alarm", 10, what="LED shows the alarm")
    sim.report("door1", "closed")
    wait_for(lambda: cms()["queued"] == 2, 10, what="alarm and restore queued")
    wait_for(lambda: board(app)["led"] == "healthy", 10, what="LED back to healthy")
    hub_pid = app.worker("hub")["pid"]

    # The confirmed reset is refused, naming what waits; nothing is stopped or deleted.
    confirm_reset(app)
    note = wait_for(lambda: (n := board(app)["last_button"] or "").startswith("factory_reset refused") and n,
                    10, what="reset refused")
    assert "2 alarms not yet delivered (cms: 2)" in note, note
    assert app.worker("hub")["pid"] == hub_pid
    assert app.get("/api/v1/alarms/receivers/spare").status_code == 200
    assert cms()["queued"] == 2
    wait_for(lambda: board(app)["led"] == "healthy", 5, what="LED back to healthy after the refusal")
    assert "factory reset refused" in app.log_path.read_text(errors="replace")

    # Once the receiver has them, the same gesture resets the settings.
    sia.start()
    sia.wait_events(2, timeout=20)
    wait_for(lambda: cms()["queued"] == 0, 10, what="queue delivered")
    confirm_reset(app)
    wait_for(lambda: "factory_reset kept recordings" in (board(app)["last_button"] or ""), 20,
             what="factory reset done")
    app.wait_healthy(30)
    assert app.get("/api/v1/alarms/receivers/spare").status_code == 404
