"""A small FastAPI dev service to put viscount in front of.

It does nothing about request context itself -- that is the point: viscount adds the ids on the
wire. It only logs, as one JSON line per request, the ids it received, so you can see the same
ids in viscount's access log and in the service's own log.

Run:  /usr/bin/python3 -m uvicorn demo_app:app --app-dir deploy/local --port 8000
"""

import asyncio
import json
import logging
import sys
import time

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect

CONTEXT_HEADERS = ("x-request-id", "x-correlation-id", "x-user-id", "traceparent")

log = logging.getLogger("demo_app")
handler = logging.StreamHandler(sys.stdout)
handler.setFormatter(logging.Formatter("%(message)s"))
log.addHandler(handler)
log.setLevel(logging.INFO)

app = FastAPI(title="viscount demo service")


def context_of(request) -> dict:
    return {name.replace("-", "_"): request.headers.get(name) for name in CONTEXT_HEADERS}


@app.middleware("http")
async def log_request(request: Request, call_next):
    start = time.monotonic()
    response = await call_next(request)
    line = {
        "logger": "demo_app",
        "method": request.method,
        "path": request.url.path,
        "status": response.status_code,
        "duration_ms": round((time.monotonic() - start) * 1000, 3),
        **context_of(request),
    }
    log.info(json.dumps(line))
    return response


@app.get("/")
async def root(request: Request):
    return {"service": "demo", "context_seen": context_of(request)}


@app.get("/slow")
async def slow(request: Request, ms: int = 500):
    await asyncio.sleep(ms / 1000)
    return {"slept_ms": ms, "context_seen": context_of(request)}


@app.post("/echo")
async def echo(request: Request):
    body = await request.body()
    return {"bytes": len(body), "context_seen": context_of(request)}


@app.websocket("/ws")
async def ws_echo(ws: WebSocket):
    """Echoes every message back as it came (text or binary) until the client closes. The text
    message "close" makes the service close instead; "flood N" sends N binary messages of 64 KiB
    as fast as the connection takes them (a client that never reads must not grow the proxy)."""
    await ws.accept()
    # The HTTP middleware above sees no websocket: the handshake's ids are logged here.
    log.info(json.dumps({"logger": "demo_app", "method": "GET", "path": ws.url.path,
                         "status": 101, "websocket": True, **context_of(ws)}))
    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                break
            text = message.get("text")
            if text == "close":
                await ws.close()
                break
            if text is not None and text.startswith("flood "):
                chunk = b"f" * 65536
                for _ in range(int(text.split()[1])):
                    await ws.send_bytes(chunk)
                continue
            if message.get("bytes") is not None:
                await ws.send_bytes(message["bytes"])
            else:
                await ws.send_text(text)
    except WebSocketDisconnect:
        pass
