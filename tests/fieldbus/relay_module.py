"""A Modbus relay module played by pymodbus: unit 1 (or argv[3]) with 16 coils, on Modbus TCP, or
with ``--rtu TTY`` as an RTU slave on that serial line instead. Other unit ids get no answer, like
a real module on a shared RS485 line.

usage: relay_module.py HOST PORT [UNIT] [--rtu TTY]
Prints ``READY`` once it serves. The test reads the coils back over Modbus TCP; with ``--rtu``
(the fieldbus worker is then the only master of the line) it writes ``coils`` to stdin and gets
the first three coils as a JSON list on stdout.
"""
import json
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
    args = sys.argv[1:]
    rtu = None
    if "--rtu" in args:
        i = args.index("--rtu")
        rtu = args[i + 1]
        del args[i:i + 2]
    host, port = args[0], int(args[1])
    unit = int(args[2]) if len(args) > 2 else 1
    device = ModbusDeviceContext(co=ModbusSequentialDataBlock(1, [False] * 32))
    context = ModbusServerContext(devices={unit: device}, single=False)
    if rtu is not None:
        server = ModbusSerialServer(context, framer=FramerType.RTU, port=rtu, baudrate=38400,
                                    ignore_missing_devices=True)
        task = asyncio.create_task(server.serve_forever())
        await asyncio.sleep(0.3)
        print("READY", flush=True)
        loop = asyncio.get_running_loop()
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            if line.strip() == "coils":
                bits = await server.async_getValues(unit, 1, 0, 3)
                print(json.dumps([bool(b) for b in bits]), flush=True)
        task.cancel()
        return
    server = ModbusTcpServer(context, address=(host, port), ignore_missing_devices=True)
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
