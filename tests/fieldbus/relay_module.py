"""A Modbus TCP relay module played by pymodbus: unit 1 (or argv[3]) with 16 coils.

usage: relay_module.py HOST PORT [UNIT]
Prints ``READY`` once the server listens. The test reads the coils back over Modbus.
"""
import asyncio
import sys
import warnings

warnings.filterwarnings("ignore", category=DeprecationWarning)
from pymodbus.datastore import (  # noqa: E402
    ModbusDeviceContext,
    ModbusSequentialDataBlock,
    ModbusServerContext,
)
from pymodbus.server import ModbusTcpServer  # noqa: E402


async def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    unit = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    device = ModbusDeviceContext(co=ModbusSequentialDataBlock(1, [False] * 32))
    context = ModbusServerContext(devices={unit: device}, single=False)
    server = ModbusTcpServer(context, address=(host, port))
    task = asyncio.create_task(server.serve_forever())
    # Wait until the socket accepts connections.
    for _ in range(200):
        try:
            _, w = await asyncio.open_connection(host, port)
            w.close()
            break
        except OSError:
            await asyncio.sleep(0.02)
    print("READY", flush=True)
    await task


asyncio.run(main())
