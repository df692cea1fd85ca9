"""A websocket message through viscount, for demo.sh: opens ws://HOST:PORT/ws with Python's
`websockets` client, prints the ids the 101 carried, sends one message and prints the echo.

Run:  /usr/bin/python3 deploy/local/ws_client.py 127.0.0.1:8080 [message]
"""

import asyncio
import sys

import websockets


async def main(address, message):
    async with websockets.connect(f"ws://{address}/ws", compression=None) as ws:
        for name in ("x-request-id", "x-correlation-id"):
            print(f"101 {name}: {ws.response_headers.get(name)}")
        await ws.send(message)
        print(f"sent: {message}")
        print(f"echo: {await ws.recv()}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "hello over a websocket"))
