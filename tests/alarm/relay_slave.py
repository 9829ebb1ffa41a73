#!/usr/bin/env python3
"""A Modbus TCP relay module (pymodbus) that reports every coil change.

usage: relay_slave.py HOST PORT [UNIT]
Prints {"ready": true, "port": <port>} once listening (PORT 0 picks a free port, reported here),
then one JSON line per change of coils 0–7, as seen by reading them back every 10 ms:
{"coil": <0-based address>, "on": bool, "t_ns": ...}.
"""
import asyncio
import json
import sys
import time
import warnings

warnings.filterwarnings("ignore", category=DeprecationWarning)
from pymodbus.client import AsyncModbusTcpClient  # noqa: E402
from pymodbus.datastore import (  # noqa: E402
    ModbusDeviceContext,
    ModbusSequentialDataBlock,
    ModbusServerContext,
)
from pymodbus.server import ModbusTcpServer  # noqa: E402


async def watch(host: str, port: int, unit: int) -> None:
    client = AsyncModbusTcpClient(host, port=port, timeout=1, retries=0)
    await client.connect()
    last = [False] * 8
    while True:
        try:
            r = await client.read_coils(0, count=8, device_id=unit)
            bits = list(r.bits[:8])
        except Exception:  # noqa: BLE001 - reconnect on any client error
            await asyncio.sleep(0.05)
            if not client.connected:
                await client.connect()
            continue
        for i, (a, b) in enumerate(zip(last, bits)):
            if a != b:
                print(json.dumps({"coil": i, "on": bool(b), "t_ns": time.time_ns()}), flush=True)
        last = bits
        await asyncio.sleep(0.01)


async def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    unit = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    device = ModbusDeviceContext(co=ModbusSequentialDataBlock(1, [False] * 32))
    context = ModbusServerContext(devices={unit: device}, single=False)
    server = ModbusTcpServer(context, address=(host, port))
    # Returns once the socket listens; the server then serves until `serving` is done.
    await server.serve_forever(background=True)
    port = server.transport.sockets[0].getsockname()[1]
    asyncio.create_task(watch(host, port, unit))
    print(json.dumps({"ready": True, "port": port}), flush=True)
    await server.serving


asyncio.run(main())
