#!/usr/bin/env python3
"""A real SIA DC-09 receiver (pysiaalarm) for the alarm tests and benchmark.

Prints one JSON object per line on stdout: first {"listening": <port>, "protocol": ...},
then one object per event pysiaalarm accepted (it calls back only for events it ACKed), with
the time of arrival in ns (`recv_ns`, CLOCK_REALTIME). Runs until SIGTERM, or until stdin closes when stdin is a pipe.

    sia_receiver.py --protocol tcp --port 0 --account AAA --account BBB:0123456789ABCDEF

``--clock-offset-s N`` plays a receiver whose clock is N seconds ahead (it judges timestamps and
writes its NAKs with that clock). An account's key that differs from the sender's plays a key
mismatch: pysiaalarm cannot parse what it decrypts and answers ``"NAK"0000L0R0A0[]_<time>``.
``--duh-first N`` plays a receiver that is restarting or briefly misconfigured: it answers DUH
to the first N frames it would have acknowledged (and does not report them), then behaves.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import stat
import sys
import threading
import time

from pysiaalarm import CommunicationsProtocol, SIAAccount, SIAClient

_lock = threading.Lock()


def emit(obj: dict) -> None:
    with _lock:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


def on_event(event) -> None:
    emit(
        {
            "recv_ns": time.time_ns(),
            "message_type": str(getattr(event.message_type, "value", event.message_type)),
            "account": event.account,
            "sequence": event.sequence,
            "receiver": event.receiver,
            "line": event.line,
            "code": event.code,
            "ri": event.ri,
            "message": event.message,
            "partition": event.partition,
            "event_qualifier": event.event_qualifier,
            "event_type": event.event_type,
            "encrypted": bool(event.encrypted),
            "valid_timestamp": bool(event.valid_timestamp),
            "timestamp": event.timestamp.isoformat() if event.timestamp else None,
            "x_data": event.x_data,
        }
    )


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--protocol", choices=["tcp", "udp"], default="tcp")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument(
        "--account",
        action="append",
        default=[],
        help="ACCOUNT or ACCOUNT:KEY (key as pysiaalarm takes it: 16/24/32 characters)",
    )
    ap.add_argument("--timeband", default="40,20", help="seconds allowed before,after now")
    ap.add_argument("--ack-delay-ms", type=int, default=0, help="wait this long before answering")
    ap.add_argument("--clock-offset-s", type=int, default=0, help="run this far ahead of the real clock")
    ap.add_argument("--duh-first", type=int, default=0, help="answer DUH to the first N frames it would ACK")
    args = ap.parse_args()
    if args.duh_first > 0:
        # The answer is a property read several times per frame (to answer it, to decide
        # whether to report it): decide once per frame.
        from pysiaalarm import event as event_module
        from pysiaalarm.utils import ResponseType

        original = event_module.SIAEvent.response
        left = [args.duh_first]
        decide = threading.Lock()

        def response(self, _orig=original):
            answer = _orig.fget(self)
            if answer is not ResponseType.ACK:
                return answer
            with decide:
                duh = self.__dict__.get("_duh")
                if duh is None:
                    duh = left[0] > 0
                    left[0] -= int(duh)
                    self.__dict__["_duh"] = duh
            return ResponseType.DUH if duh else answer

        event_module.SIAEvent.response = property(response)
    if args.clock_offset_s:
        # pysiaalarm reads the time through `datetime.now` in its event module only.
        import datetime as _datetime

        from pysiaalarm import event as event_module

        offset = _datetime.timedelta(seconds=args.clock_offset_s)

        class SkewedDatetime(_datetime.datetime):
            @classmethod
            def now(cls, tz=None):
                return _datetime.datetime.now(tz) + offset

        event_module.datetime = SkewedDatetime
    if args.ack_delay_ms > 0:
        # A slow receiver: delay every answer (tests that need deliveries to be in flight).
        from pysiaalarm.sync import handler

        for cls in (handler.SIATCPHandler, handler.SIAUDPHandler):
            original = cls.respond

            def slow(self, event, _orig=original):
                time.sleep(args.ack_delay_ms / 1000)
                return _orig(self, event)

            cls.respond = slow
    minus, plus = (int(x) for x in args.timeband.split(","))
    accounts = []
    for spec in args.account or ["AAA"]:
        acct, _, key = spec.partition(":")
        accounts.append(SIAAccount(acct, key or None, allowed_timeband=(minus, plus)))
    protocol = CommunicationsProtocol.TCP if args.protocol == "tcp" else CommunicationsProtocol.UDP
    # The threaded client: pysiaalarm's asyncio UDP server does not work on Python 3.11.
    client = SIAClient(args.host, args.port, accounts, function=on_event, protocol=protocol)
    client.start()
    port = client.sia_server.server_address[1]
    emit({"listening": port, "protocol": args.protocol})

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def watch_stdin() -> None:
        sys.stdin.read()
        stop.set()

    # A parent holding a pipe stops us by closing it; from a terminal or /dev/null, run on.
    if stat.S_ISFIFO(os.fstat(0).st_mode):
        threading.Thread(target=watch_stdin, daemon=True).start()
    stop.wait()
    client.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
