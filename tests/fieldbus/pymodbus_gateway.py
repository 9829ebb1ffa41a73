"""The reference peer for the benchmark: a pymodbus server with the Neasmart register layout
(units 240 and 241, holding registers 0..6199; pymodbus 3.16 refuses one block for two unit ids,
so each unit has its own, which costs the same per request).

usage: pymodbus_gateway.py tcp HOST PORT | rtu TTY
Prints ``READY`` once it serves, over TCP followed by the port it listens on (PORT 0 picks one).
"""
import asyncio
import logging
import sys
import warnings

warnings.filterwarnings("ignore", category=DeprecationWarning)
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
from pymodbus.datastore import (  # noqa: E402
    ModbusDeviceContext,
    ModbusSequentialDataBlock,
    ModbusServerContext,
)
from pymodbus.framer import FramerType  # noqa: E402
from pymodbus.server import ModbusSerialServer, ModbusTcpServer  # noqa: E402


async def main() -> None:
    devices = {u: ModbusDeviceContext(hr=ModbusSequentialDataBlock(1, [0] * 6200)) for u in (240, 241)}
    context = ModbusServerContext(devices=devices, single=False)
    if sys.argv[1] == "tcp":
        host, port = sys.argv[2], int(sys.argv[3])
        server = ModbusTcpServer(context, address=(host, port))
        # Returns once the socket listens; the server then serves until `serving` is done.
        await server.serve_forever(background=True)
        print(f"READY {server.transport.sockets[0].getsockname()[1]}", flush=True)
        await server.serving
    else:
        server = ModbusSerialServer(context, framer=FramerType.RTU, port=sys.argv[2], baudrate=38400)
        task = asyncio.create_task(server.serve_forever())
        await asyncio.sleep(0.5)
        print("READY", flush=True)
        await task


asyncio.run(main())
