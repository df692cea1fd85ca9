"""Websockets through viscount (HTTP/1.1 Upgrade, RFC 9110 section 7.8): Python's `websockets`
client (Debian's 10.4) against the demo app under uvicorn, and raw sockets where the wire matters
(refused upgrades, h2c, an unsolicited 101, a client that never reads)."""

import asyncio
import json
import os
import signal
import socket
import struct
import threading
import time
import unittest

import h2.settings
import websockets

from h2_client import H2Client

from viscount_process import (SANITIZED, SLACK, Viscount, basic_config, header_values,
                              start_demo_app, start_echo_upstream, wait_until)

# What the tests' clients negotiate: no compression (frame sizes are then known) and no pings.
CLIENT = {"compression": None, "ping_interval": None, "max_size": None, "open_timeout": 10}


def client_frame_bytes(payload_len):
    """Bytes of one client frame on the wire: masked (4 bytes) as RFC 6455 requires."""
    return server_frame_bytes(payload_len) + 4


def server_frame_bytes(payload_len):
    if payload_len < 126:
        return 2 + payload_len
    if payload_len < 65536:
        return 4 + payload_len
    return 10 + payload_len


def masked_frame(opcode, payload):
    """One final client frame (RFC 6455 section 5.2), masked with a fixed key."""
    key = b"\x01\x02\x03\x04"
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


# Bytes read past the end of a response, per socket: two pipelined responses may arrive in one
# recv, and the second must not be lost with the first's tail.
_unread = {}


def read_head(sock):
    """Reads up to the end of a response head; returns (head text, bytes after it)."""
    data = _unread.pop(sock, b"")
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"closed before a response head: {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head.decode("latin-1"), rest


def read_response(sock):
    """One response with a content-length body: (status, head text, body)."""
    head, rest = read_head(sock)
    status = int(head.split(" ", 2)[1])
    length = 0
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    if len(rest) > length:
        _unread[sock] = rest[length:]
    return status, head, rest[:length]


UPGRADE_HEAD = ("GET {path} HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\n"
                "Upgrade: {upgrade}\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n")


class WebsocketTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.app = start_demo_app(cls, class_level=True)

    def start(self, **overrides):
        self.proxy = Viscount.with_config(self, basic_config(self.app.url, **overrides))
        self.ws_url = f"ws://127.0.0.1:{self.proxy.listener_port}/ws"
        return self.proxy

    def run_async(self, coro, timeout=60):
        return asyncio.run(asyncio.wait_for(coro, timeout * SLACK))

    def tunnel_line(self, request_id):
        return self.proxy.wait_access_log_id(request_id, timeout=10 * SLACK)

    # --- one websocket -----------------------------------------------------------------------

    def test_ids_echo_and_counts_client_close(self):
        self.start()
        messages = [os.urandom(i % 300 + 1) for i in range(1000)]

        async def run():
            async with websockets.connect(self.ws_url, **CLIENT) as ws:
                headers = ws.response_headers
                for m in messages:
                    await ws.send(m)
                    self.assertEqual(await ws.recv(), m)
                big = os.urandom(1 << 20)
                await ws.send(big)
                self.assertEqual(await ws.recv(), big)
                return headers.get_all("x-request-id")

        ids = self.run_async(run())
        self.assertEqual(len(ids), 1, "the 101 carries one x-request-id")
        request_id = ids[0]
        seen = self.app.wait_log(lambda o: o.get("websocket") and o["x_request_id"] == request_id)
        self.assertEqual(seen["x_request_id"], request_id)
        line = self.tunnel_line(request_id)
        self.assertEqual(line["status"], 101)
        self.assertEqual(line["upgrade"], "websocket")
        self.assertIsNone(line["error"])
        sizes = [len(m) for m in messages] + [1 << 20]
        # The client's close frame carries a 2-byte code; the service answers with one too.
        self.assertEqual(line["bytes_in"], sum(client_frame_bytes(n) for n in sizes) + 8)
        self.assertEqual(line["bytes_out"], sum(server_frame_bytes(n) for n in sizes) + 4)
        self.assertEqual(len([o for o in self.proxy.access_log()
                              if o["request_id"] == request_id]), 1)

    def test_close_from_the_service(self):
        self.start()

        async def run():
            async with websockets.connect(self.ws_url, **CLIENT) as ws:
                await ws.send("hello")
                self.assertEqual(await ws.recv(), "hello")
                await ws.send("close")
                await ws.wait_closed()
                self.assertEqual(ws.close_code, 1000)
                return ws.response_headers["x-request-id"]

        request_id = self.run_async(run())
        line = self.tunnel_line(request_id)
        self.assertIsNone(line["error"])
        self.assertEqual(line["bytes_in"], client_frame_bytes(5) + client_frame_bytes(5) + 8)
        self.assertEqual(line["bytes_out"], server_frame_bytes(5) + 4)
        time.sleep(0.3)
        self.assertEqual(len([o for o in self.proxy.access_log()
                              if o["request_id"] == request_id]), 1)

    # --- many at once ------------------------------------------------------------------------

    def test_200_concurrent_websockets_do_not_bleed(self):
        # A small request limit: established tunnels give their slot back, so 200 of them and
        # ordinary requests all get through.
        self.start(upstreams=[{"name": "app", "url": self.app.url,
                               "limits": {"max_concurrent_requests": 8}}])
        n = 200

        async def one(i, opened, go):
            tag = f"conn-{i}"
            async with websockets.connect(self.ws_url, extra_headers={"x-correlation-id": tag},
                                          **CLIENT) as ws:
                opened.append(i)
                await go.wait()
                for k in range(5):
                    msg = f"{tag}-{k}"
                    await ws.send(msg)
                    self.assertEqual(await ws.recv(), msg)
                return tag, ws.response_headers.get_all("x-request-id")

        async def run():
            opened, go = [], asyncio.Event()
            tasks = [asyncio.create_task(one(i, opened, go)) for i in range(n)]
            while len(opened) < n:
                await asyncio.sleep(0.05)
                if any(t.done() and t.exception() for t in tasks):
                    break
            # Every websocket open at once, and an ordinary request still served.
            status = await asyncio.get_running_loop().run_in_executor(
                None, lambda: self.plain_get("/"))
            go.set()
            return status, await asyncio.gather(*tasks)

        status, results = self.run_async(run(), timeout=90)
        self.assertEqual(status, 200)
        carried = {}
        for tag, ids in results:
            self.assertEqual(len(ids), 1)
            carried[tag] = ids[0]
        self.assertEqual(len(set(carried.values())), n, "every websocket has its own id")
        app_lines = {}
        for tag in carried:
            line = self.app.wait_log(lambda o, t=tag: o.get("websocket") and
                                     o.get("x_correlation_id") == t)
            app_lines[tag] = line["x_request_id"]
        logged = {}
        for tag, rid in carried.items():
            line = self.tunnel_line(rid)
            logged[tag] = (line["request_id"], line["correlation_id"])
        bleed = [t for t in carried if app_lines[t] != carried[t] or logged[t] != (carried[t], t)]
        self.assertEqual(bleed, [], "ids seen by the app, carried by the 101 and logged agree")
        print(f"\n200 websockets: {len(carried)} distinct ids, {len(bleed)} mismatches", flush=True)

    def plain_get(self, path):
        with socket.create_connection(("127.0.0.1", self.proxy.listener_port), timeout=10) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: app\r\n\r\n".encode())
            return read_response(s)[0]

    # --- limits and timeouts -----------------------------------------------------------------

    def test_a_client_that_never_reads_leaves_memory_flat(self):
        if SANITIZED:
            self.skipTest("RSS means nothing under ASan")
        proxy = self.start()
        with socket.create_connection(("127.0.0.1", proxy.listener_port), timeout=10) as s:
            s.sendall(UPGRADE_HEAD.format(path="/ws", upgrade="websocket").encode())
            head, _ = read_head(s)
            self.assertIn("101", head.split("\r\n")[0])
            # Warm up, then ask for 64 MiB and read none of it.
            time.sleep(0.3)
            before = rss_kib(proxy.proc.pid)
            s.sendall(masked_frame(0x1, b"flood 1024"))
            time.sleep(3 * SLACK)
            after = rss_kib(proxy.proc.pid)
            print(f"\nnever-reading client: RSS {before} KiB -> {after} KiB", flush=True)
            self.assertLess(after - before, 4096, "a client that never reads grew the proxy")
            # All of it was held back, not lost: it arrives once the client reads.
            expected = 1024 * server_frame_bytes(65536)
            got = 0
            while got < expected:
                chunk = s.recv(1 << 20)
                self.assertTrue(chunk, f"closed after {got} of {expected} bytes")
                got += len(chunk)
            self.assertEqual(got, expected)

    def test_idle_tunnel_is_closed(self):
        proxy = self.start(listeners=[{"name": "inbound", "address": "127.0.0.1:0",
                                       "upstream": "app", "timeouts": {"tunnel_idle": "1s"}}])

        async def run():
            async with websockets.connect(self.ws_url, **CLIENT) as ws:
                await ws.send("x")
                await ws.recv()
                start = time.monotonic()
                await asyncio.wait_for(ws.wait_closed(), 10 * SLACK)
                return ws.response_headers["x-request-id"], time.monotonic() - start

        request_id, waited = self.run_async(run())
        self.assertGreaterEqual(waited, 0.9)
        line = self.tunnel_line(request_id)
        self.assertEqual(line["error"], "tunnel_idle_timeout")
        self.assertEqual(line["status"], 101)
        self.assertIn('viscount_timeouts_total{kind="tunnel_idle"} 1',
                      proxy.admin_get("/metrics")[2].decode())

    def test_max_tunnels(self):
        proxy = self.start(listeners=[{"name": "inbound", "address": "127.0.0.1:0",
                                       "upstream": "app", "limits": {"max_tunnels": 2}}])

        async def run():
            a = await websockets.connect(self.ws_url, **CLIENT)
            b = await websockets.connect(self.ws_url, **CLIENT)
            with self.assertRaises(websockets.exceptions.InvalidStatusCode) as refused:
                await websockets.connect(self.ws_url, **CLIENT)
            metrics = proxy.admin_get("/metrics")[2].decode()
            await a.close()
            await asyncio.sleep(0.2)
            c = await websockets.connect(self.ws_url, **CLIENT)
            await c.send("again")
            self.assertEqual(await c.recv(), "again")
            await b.close()
            await c.close()
            return refused.exception.status_code, metrics

        status, metrics = self.run_async(run())
        self.assertEqual(status, 503)
        self.assertIn('viscount_tunnels_active{listener="inbound"} 2', metrics)
        self.assertEqual(self.plain_get("/"), 200)
        proxy.wait_access_log(lambda o: o["status"] == 503 and o["error"] == "overloaded")

    def test_drain_lets_tunnels_run_until_drain_timeout(self):
        proxy = self.start(drain_timeout="2s")

        async def run():
            async with websockets.connect(self.ws_url, **CLIENT) as ws:
                proxy.signal(signal.SIGTERM)
                await asyncio.sleep(0.5)
                await ws.send("still here")  # draining, the tunnel goes on
                self.assertEqual(await ws.recv(), "still here")
                start = time.monotonic()
                await asyncio.wait_for(ws.wait_closed(), 10 * SLACK)
                return ws.response_headers["x-request-id"], time.monotonic() - start

        request_id, waited = self.run_async(run())
        self.assertGreater(waited, 0.5)
        line = self.tunnel_line(request_id)
        self.assertEqual(line["error"], "draining")
        self.assertEqual(proxy.wait_exit(20 * SLACK), 0)


class UpgradeWireTest(unittest.TestCase):
    """Upgrades the upstream refuses, h2c, and 101s nobody asked for."""

    def connect(self, proxy):
        s = socket.create_connection(("127.0.0.1", proxy.listener_port), timeout=10)
        self.addCleanup(s.close)
        return s

    def test_refused_upgrade_keeps_the_connection(self):
        upstream = start_echo_upstream(self)
        proxy = Viscount.with_config(self, basic_config(upstream.url))
        s = self.connect(proxy)
        s.sendall(UPGRADE_HEAD.format(path="/refuse?status=404", upgrade="websocket").encode())
        status, _, _ = read_response(s)
        self.assertEqual(status, 404)
        rec = upstream.wait_request(lambda r: r["path"] == "/refuse")
        self.assertEqual(header_values(rec, "upgrade"), ["websocket"])
        self.assertEqual(header_values(rec, "connection"), ["upgrade"])
        s.sendall(b"GET /next HTTP/1.1\r\nHost: app\r\n\r\n")
        status, _, body = read_response(s)
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body)["path"], "/next")

    def test_pipelined_bytes_after_a_refused_upgrade_are_a_request_of_their_own(self):
        # Bytes after an upgrade's head wait for the answer: refused, they are parsed (and
        # filtered) as the next request, never handed to the upstream as raw bytes.
        upstream = start_echo_upstream(self)
        proxy = Viscount.with_config(self, basic_config(upstream.url))
        s = self.connect(proxy)
        smuggled = b"GET /hidden HTTP/1.1\r\nHost: app\r\nx-request-id: smuggled-id\r\n\r\n"
        s.sendall(UPGRADE_HEAD.format(path="/refuse?status=400", upgrade="websocket").encode() +
                  smuggled)
        self.assertEqual(read_response(s)[0], 400)
        status, _, body = read_response(s)
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body)["path"], "/hidden")
        self.assertEqual(len(upstream.requests), 2)
        proxy.wait_access_log(lambda o: o["path"] == "/hidden")

    def test_h2c_is_never_forwarded(self):
        upstream = start_echo_upstream(self)
        proxy = Viscount.with_config(self, basic_config(upstream.url))
        s = self.connect(proxy)
        s.sendall(b"GET /h2c HTTP/1.1\r\nHost: app\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                  b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n")
        self.assertEqual(read_response(s)[0], 200)
        rec = upstream.wait_request(lambda r: r["path"] == "/h2c")
        self.assertEqual(header_values(rec, "upgrade"), [])
        self.assertEqual(header_values(rec, "http2-settings"), [])
        self.assertEqual(header_values(rec, "connection"), [])

    def test_a_token_not_allowed_is_no_upgrade(self):
        upstream = start_echo_upstream(self)
        proxy = Viscount.with_config(self, basic_config(upstream.url))
        s = self.connect(proxy)
        s.sendall(UPGRADE_HEAD.format(path="/irc", upgrade="IRC/6.9").encode())
        self.assertEqual(read_response(s)[0], 200)
        rec = upstream.wait_request(lambda r: r["path"] == "/irc")
        self.assertEqual(header_values(rec, "upgrade"), [])

    def test_an_upgrade_with_a_body_is_no_upgrade(self):
        upstream = start_echo_upstream(self)
        proxy = Viscount.with_config(self, basic_config(upstream.url))
        s = self.connect(proxy)
        s.sendall(b"POST /body HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\n"
                  b"Upgrade: websocket\r\nContent-Length: 5\r\n\r\nhello")
        self.assertEqual(read_response(s)[0], 200)
        rec = upstream.wait_request(lambda r: r["path"] == "/body")
        self.assertEqual(header_values(rec, "upgrade"), [])
        self.assertEqual(rec["body_bytes"], 5)

    def test_unsolicited_101_is_a_502(self):
        raw = RawUpstream(self, b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n"
                                b"Upgrade: websocket\r\n\r\nTUNNEL-BYTES")
        proxy = Viscount.with_config(self, basic_config(raw.url))
        s = self.connect(proxy)
        s.sendall(b"GET /plain HTTP/1.1\r\nHost: app\r\n\r\n")
        status, _, body = read_response(s)
        self.assertEqual(status, 502)
        self.assertEqual(json.loads(body)["error"], "upstream_protocol_error")
        self.assertNotIn(b"TUNNEL-BYTES", body)

    def test_101_to_another_protocol_is_a_502(self):
        raw = RawUpstream(self, b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n"
                                b"Upgrade: h2c\r\n\r\n")
        proxy = Viscount.with_config(self, basic_config(raw.url))
        s = self.connect(proxy)
        s.sendall(UPGRADE_HEAD.format(path="/ws", upgrade="websocket").encode())
        self.assertEqual(read_response(s)[0], 502)

    def test_bytes_before_the_101_are_forwarded(self):
        raw = RawUpstream(self, b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n"
                                b"Upgrade: websocket\r\n\r\nfrom-upstream", delay=0.3)
        proxy = Viscount.with_config(self, basic_config(raw.url))
        s = self.connect(proxy)
        s.sendall(UPGRADE_HEAD.format(path="/ws", upgrade="websocket").encode() + b"early-bytes")
        head, rest = read_head(s)
        self.assertTrue(head.startswith("HTTP/1.1 101"))
        self.assertIn("upgrade: websocket", head.lower())
        while len(rest) < len(b"from-upstream"):
            rest += s.recv(100)
        self.assertEqual(rest, b"from-upstream")
        wait_until(lambda: raw.received.endswith(b"early-bytes"), what="the early bytes upstream")


class Rfc8441Test(unittest.TestCase):
    """WebSocket over HTTP/2 (extended CONNECT) from Python's h2, bridged to the demo app's
    HTTP/1.1 websocket endpoint."""

    @classmethod
    def setUpClass(cls):
        cls.app = start_demo_app(cls, class_level=True)

    def open(self, client):
        client.pump(lambda: client.conn.remote_settings.get(
            h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL) == 1)
        sid = client.request("CONNECT", "/ws", end=False, headers=[
            (":protocol", "websocket"), ("sec-websocket-version", "13")])
        client.pump(lambda: client.responses[sid].headers or client.responses[sid].done)
        return sid

    def echo(self, client, sid, payload):
        response = client.responses[sid]
        start = len(response.data)
        client.send_body(sid, masked_frame(0x2, payload), end=False)
        want = server_frame_bytes(len(payload))
        client.pump(lambda: len(response.data) - start >= want)
        frame = bytes(response.data[start:start + want])
        self.assertEqual(frame[want - len(payload):], payload)

    def test_extended_connect_echoes_and_siblings_go_on(self):
        proxy = Viscount.with_config(self, basic_config(self.app.url))
        client = H2Client(proxy.listener_port)
        self.addCleanup(client.close)
        sid = self.open(client)
        response = client.responses[sid]
        self.assertEqual(response.status, 200, response.headers)
        self.assertIsNone(response.header("sec-websocket-accept"))
        request_id = response.header("x-request-id")
        self.assertTrue(request_id)
        seen = self.app.wait_log(lambda o: o.get("websocket") and o["x_request_id"] == request_id)
        self.assertEqual(seen["x_request_id"], request_id)
        sizes = [1, 125, 126, 1000, 70000]
        for n in sizes:
            self.echo(client, sid, os.urandom(n))
        # A sibling stream on the same connection is served meanwhile.
        self.assertEqual(client.get("/").status, 200)
        self.echo(client, sid, b"after the sibling")
        # The client closes the websocket; the service answers and ends the tunnel.
        client.send_body(sid, masked_frame(0x8, b"\x03\xe8"), end=False)
        client.pump(lambda: response.done)
        self.assertTrue(response.data.endswith(b"\x88\x02\x03\xe8"))
        line = proxy.wait_access_log_id(request_id)
        self.assertEqual(line["protocol"], "HTTP/2")
        self.assertEqual(line["upgrade"], "websocket")
        self.assertIsNone(line["error"])
        sizes.append(len(b"after the sibling"))
        self.assertEqual(line["bytes_in"], sum(client_frame_bytes(n) for n in sizes) + 8)
        self.assertEqual(line["bytes_out"], sum(server_frame_bytes(n) for n in sizes) + 4)

    def test_not_advertised_without_websocket(self):
        proxy = Viscount.with_config(self, basic_config(self.app.url, listeners=[
            {"name": "inbound", "address": "127.0.0.1:0", "upstream": "app", "upgrades": []}]))
        client = H2Client(proxy.listener_port)
        self.addCleanup(client.close)
        self.assertEqual(client.get("/").status, 200)
        self.assertNotEqual(client.conn.remote_settings.get(
            h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL), 1)


class RawUpstream:
    """Accepts connections and answers the first request head on each with `answer` verbatim,
    after `delay` seconds; keeps what it received."""

    def __init__(self, test, answer, delay=0.0):
        self.answer, self.delay, self.received = answer, delay, b""
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self.serve, daemon=True).start()
        test.addCleanup(self.sock.close)

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn):
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            time.sleep(self.delay)
            conn.sendall(self.answer)
            self.received = data
            conn.settimeout(5)
            try:
                while chunk := conn.recv(65536):
                    self.received += chunk
            except OSError:
                pass


if __name__ == "__main__":
    unittest.main()
