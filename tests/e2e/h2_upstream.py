"""An HTTP/2 upstream for the end-to-end tests, on Debian's python3-h2 and asyncio in a thread of
its own: h2c with prior knowledge, or TLS with ALPN h2, on 127.0.0.1:0 (or h2c on a Unix socket).

It records every request (connection, stream, headers, body sha256, trailers, how many streams
were open on its connection when it arrived) and answers by path:

    /echo          200, JSON of what it saw (the request id it saw is echoed in x-seen-request-id)
    /echo-body     200, the request body back (as flow control allows)
    /bytes?n=N     200, N pattern bytes (viscount_process.pattern_bytes); &cl=0: no content-length
    /trailers      200, a body and then trailers
    /head-only     204 (no body)
    /rst           RST_STREAM(INTERNAL_ERROR) instead of a response
    /refuse        RST_STREAM(REFUSED_STREAM): the request was not processed
    /rst-midway    a response head and some body, then RST_STREAM(INTERNAL_ERROR)
    /malformed     a response with a connection-specific header, which HTTP/2 forbids
    ?delay=MS      waits that long before answering (any path)

`max_concurrent_streams` is advertised in SETTINGS (python-h2 refuses a stream beyond it with a
connection error, so a client that ignores it fails loudly). `goaway_after=N, goaway_late=K`:
when its (N+K)-th request arrives, the first connection says GOAWAY with last_stream_id = the
N-th request's stream, so the K requests after it were sent and are never processed; it answers
the streams up to the N-th, ignores the others and closes once it is done.
"""

import asyncio
import hashlib
import json
import ssl
import threading
import time
import urllib.parse

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import hyperframe.frame

from viscount_process import DEFAULT_TIMEOUT, pattern_bytes


class H2Upstream:
    def __init__(self, tls_context=None, max_concurrent_streams=100, goaway_after=None,
                 goaway_late=0, window=1 << 20, unix_path=None):
        self.unix_path = unix_path  # listen on this Unix socket instead of 127.0.0.1:0
        self.max_concurrent_streams = max_concurrent_streams
        self.goaway_after = goaway_after
        self.goaway_late = goaway_late
        self.window = window
        self.requests = []        # every request, in arrival order (dicts, updated live)
        self.connections = []     # per connection: {"id", "max_open", "requests", "alpn", "closed"}
        self._cond = threading.Condition()
        self._goaway_done = False
        self.scheme = "https" if tls_context is not None else "h2c"
        self._tls = tls_context
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="h2-upstream", daemon=True)
        self._thread.start()
        if not self._ready.wait(DEFAULT_TIMEOUT):
            raise RuntimeError("h2 upstream did not start")

    @property
    def url(self):
        if self.unix_path:
            return f"{self.scheme}+unix:{self.unix_path}"
        return f"{self.scheme}://127.0.0.1:{self.port}"

    # --- control, from the test thread ----------------------------------------------------------

    def stop(self):
        if self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def snapshot(self):
        with self._cond:
            return [dict(r) for r in self.requests]

    def connection_stats(self):
        with self._cond:
            return [dict(c) for c in self.connections]

    def wait_requests(self, predicate, count=1, timeout=DEFAULT_TIMEOUT):
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [r for r in self.requests if predicate(r)]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"upstream saw {len(found)} of {count} requests")
                self._cond.wait(remaining)

    # --- the server -----------------------------------------------------------------------------

    def _run(self):
        asyncio.set_event_loop(self._loop)
        if self.unix_path:
            server = self._loop.run_until_complete(
                asyncio.start_unix_server(self._serve, self.unix_path, ssl=self._tls))
            self.port = None
        else:
            server = self._loop.run_until_complete(
                asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self._tls))
            self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            for task in asyncio.all_tasks(self._loop):
                task.cancel()
            self._loop.run_until_complete(asyncio.sleep(0))
            self._loop.close()

    async def _serve(self, reader, writer):
        with self._cond:
            info = {"id": len(self.connections) + 1, "max_open": 0, "requests": 0,
                    "alpn": None, "closed": False}
            self.connections.append(info)
        ssl_object = writer.get_extra_info("ssl_object")
        if ssl_object is not None:
            info["alpn"] = ssl_object.selected_alpn_protocol()
        try:
            await _Connection(self, info, reader, writer).run()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            with self._cond:
                info["closed"] = True
                self._cond.notify_all()
            writer.close()

    def _record(self, rec):
        with self._cond:
            self.requests.append(rec)
            self._cond.notify_all()

    def _updated(self):
        with self._cond:
            self._cond.notify_all()


class _Connection:
    def __init__(self, server, info, reader, writer):
        self.server = server
        self.info = info
        self.reader = reader
        self.writer = writer
        config = h2.config.H2Configuration(client_side=False, header_encoding="utf-8",
                                           validate_outbound_headers=False,
                                           normalize_outbound_headers=False)
        self.conn = h2.connection.H2Connection(config=config)
        self.conn.local_settings = h2.settings.Settings(client=False, initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: server.max_concurrent_streams,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: server.window,
        })
        self.streams = {}  # stream id -> request record
        self.order = []    # stream ids in arrival order
        self.bodies = {}   # stream id -> bytearray
        self.done = {}     # stream id -> asyncio.Event (request ended)
        self.window_changed = asyncio.Condition()
        self.goaway_last = None
        self.tasks = set()

    async def run(self):
        self.conn.initiate_connection()
        self.conn.increment_flow_control_window(16 * 1024 * 1024)
        self.flush()
        while True:
            data = await self.reader.read(65536)
            if not data:
                return
            try:
                events = self.conn.receive_data(data)
            except h2.exceptions.ProtocolError:
                self.flush()
                return
            for event in events:
                self.handle(event)
            self.flush()
            await self.writer.drain()
            if self.goaway_last is not None and not self.pending_below_goaway():
                return  # every stream it promised to answer is done: close

    def ignore(self, rec):
        # Above last_stream_id: never processed, never answered.
        rec["ignored"] = True
        rec["answered"] = True
        self.server._updated()

    def pending_below_goaway(self):
        return any(sid <= self.goaway_last and not rec.get("answered")
                   for sid, rec in self.streams.items())

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.writer.write(data)

    def handle(self, event):
        if isinstance(event, h2.events.RequestReceived):
            self.on_request(event)
        elif isinstance(event, h2.events.DataReceived):
            self.bodies[event.stream_id].extend(event.data)
            self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.TrailersReceived):
            self.streams[event.stream_id]["trailers"] = [[k, v] for k, v in event.headers]
        elif isinstance(event, h2.events.StreamEnded):
            self.done[event.stream_id].set()
        elif isinstance(event, h2.events.StreamReset):
            rec = self.streams.get(event.stream_id)
            if rec is not None:
                rec["reset_by_client"] = event.error_code
                rec["answered"] = True
                self.done[event.stream_id].set()
                self.server._updated()
        elif isinstance(event, h2.events.WindowUpdated):
            asyncio.ensure_future(self.notify_window())

    async def notify_window(self):
        async with self.window_changed:
            self.window_changed.notify_all()

    def on_request(self, event):
        sid = event.stream_id
        headers = [[k, v] for k, v in event.headers]
        pseudo = {k: v for k, v in headers if k.startswith(":")}
        rec = {"connection": self.info["id"], "stream": sid, "method": pseudo.get(":method"),
               "path": pseudo.get(":path"), "scheme": pseudo.get(":scheme"),
               "authority": pseudo.get(":authority"),
               "headers": [[k, v] for k, v in headers if not k.startswith(":")],
               "open_streams": self.conn.open_inbound_streams, "sent": 0}
        self.streams[sid] = rec
        self.order.append(sid)
        self.bodies[sid] = bytearray()
        self.done[sid] = asyncio.Event()
        self.info["requests"] += 1
        self.info["max_open"] = max(self.info["max_open"], self.conn.open_inbound_streams)
        if event.stream_ended is not None:
            self.done[sid].set()
        server = self.server
        if (server.goaway_after is not None and not server._goaway_done
                and self.info["requests"] == server.goaway_after + server.goaway_late):
            # A graceful GOAWAY python-h2 cannot send itself (it would stop answering the streams
            # it still owes): the frame goes straight onto the wire, its state untouched.
            server._goaway_done = True
            self.goaway_last = self.order[server.goaway_after - 1]
            self.flush()
            self.writer.write(hyperframe.frame.GoAwayFrame(
                stream_id=0, last_stream_id=self.goaway_last, error_code=0).serialize())
            for other in self.streams.values():
                if other["stream"] > self.goaway_last:
                    self.ignore(other)
        if self.goaway_last is not None and sid > self.goaway_last:
            self.ignore(rec)
        server._record(rec)
        if not rec.get("ignored"):
            task = asyncio.ensure_future(self.respond(sid))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def respond(self, sid):
        rec = self.streams[sid]
        url = urllib.parse.urlsplit(rec["path"])
        query = urllib.parse.parse_qs(url.query)
        delay = int(query.get("delay", ["0"])[0])
        await self.done[sid].wait()
        if rec.get("reset_by_client") is not None:
            return
        body = bytes(self.bodies.pop(sid))
        rec["body_bytes"] = len(body)
        rec["body_sha256"] = hashlib.sha256(body).hexdigest()
        self.server._updated()
        if delay:
            await asyncio.sleep(delay / 1000)
        if rec.get("ignored"):
            return
        try:
            await self.answer(sid, rec, url.path, query, body)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            pass
        rec["answered"] = True
        self.server._updated()
        self.flush()
        if self.goaway_last is not None and not self.pending_below_goaway():
            self.writer.close()

    async def answer(self, sid, rec, path, query, body):
        conn = self.conn
        seen_id = next((v for k, v in rec["headers"] if k == "x-request-id"), "")
        if path == "/rst":
            conn.reset_stream(sid, h2.errors.ErrorCodes.INTERNAL_ERROR)
            return
        if path == "/refuse":
            conn.reset_stream(sid, h2.errors.ErrorCodes.REFUSED_STREAM)
            return
        if path == "/malformed":
            conn.send_headers(sid, [(":status", "200"), ("connection", "keep-alive")],
                              end_stream=True)
            return
        if path == "/informational":
            # ?n=N 103 heads before a 200
            for _ in range(int(query.get("n", ["1"])[0])):
                conn.send_headers(sid, [(":status", "103"), ("link", "</a>")])
            conn.send_headers(sid, [(":status", "200"), ("content-length", "0")], end_stream=True)
            return
        if path == "/fields":
            # ?n=N fields in the final head (content-length is one of them)
            extra = [(f"x-f{i}", "v") for i in range(int(query.get("n", ["1"])[0]) - 1)]
            conn.send_headers(sid, [(":status", "200"), *extra, ("content-length", "0")],
                              end_stream=True)
            return
        if path == "/head-only":
            conn.send_headers(sid, [(":status", "204"), ("x-seen-request-id", seen_id)],
                              end_stream=True)
            return
        if path == "/rst-midway":
            conn.send_headers(sid, [(":status", "200"), ("content-length", "100000")])
            conn.send_data(sid, b"x" * 1000)
            self.flush()
            await self.writer.drain()
            await asyncio.sleep(0.05)
            conn.reset_stream(sid, h2.errors.ErrorCodes.INTERNAL_ERROR)
            return
        trailers = None
        if path == "/bytes":
            payload = pattern_bytes(int(query.get("n", ["0"])[0]))
            content_length = query.get("cl", ["1"])[0] != "0"
        elif path == "/echo-body":
            payload, content_length = body, True
        else:
            echo = dict(rec)
            payload = json.dumps(echo).encode()
            content_length = True
            if path == "/trailers":
                trailers = [("x-digest", "sha-256=" + hashlib.sha256(payload).hexdigest()),
                            ("x-status-detail", "fine")]
                content_length = False
        headers = [(":status", "200"), ("content-type", "application/octet-stream"),
                   ("x-seen-request-id", seen_id), ("x-upstream-connection", str(rec["connection"]))]
        if content_length:
            headers.append(("content-length", str(len(payload))))
        if rec["method"] == "HEAD":
            conn.send_headers(sid, headers, end_stream=True)
            return
        conn.send_headers(sid, headers, end_stream=not payload and trailers is None)
        await self.send_body(sid, rec, payload, end_stream=trailers is None)
        if trailers is not None:
            conn.send_headers(sid, trailers, end_stream=True)

    async def send_body(self, sid, rec, payload, end_stream):
        conn = self.conn
        view = memoryview(payload)
        offset = 0
        while offset < len(view):
            window = conn.local_flow_control_window(sid)
            if window <= 0:
                self.flush()
                async with self.window_changed:
                    await self.window_changed.wait()
                continue
            size = min(window, conn.max_outbound_frame_size, len(view) - offset)
            last = end_stream and offset + size == len(view)
            conn.send_data(sid, bytes(view[offset:offset + size]), end_stream=last)
            offset += size
            rec["sent"] = offset
            self.flush()
            await self.writer.drain()
        if end_stream and not payload:
            conn.end_stream(sid)


def start_h2_upstream(test, **kwargs):
    upstream = H2Upstream(**kwargs)
    test.addCleanup(upstream.stop)
    return upstream


def h2_tls_context(cert, key, alpn=("h2",)):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx
