"""A stand-in for viscount's HTTP/2 listener, to check the soak's own h2 client and checks.

    tests/soak/soak.py --h2-mock --minutes 1     # HTTP/2 traffic against this, not viscount

While viscount cannot speak HTTP/2 the soak's h2 code would go untested; this gives it something
to talk to. h2c prior knowledge in (python3-h2), HTTP/1.1 out to the soak's upstream (one
connection per request, through the soak's own HTTP/1 client), and viscount's behaviour in the
cases the soak produces: context ids (trusted from 127.0.0.1 only), the request timeout (504, or
RST_STREAM once the response has started), 502 for an upstream reset or garbage, one access-log
line per stream in viscount's JSON format, /metrics with the gauges the soak reads, startup
events on stderr and exit 0 on SIGTERM. It is a fixture for testing the soak, nothing more:
request bodies are buffered whole, and there is no pool and no retry.
"""

import argparse
import datetime
import http.server
import json
import os
import random
import re
import signal
import socket
import sys
import threading
import time
import uuid

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import soak_clients as clients  # noqa: E402

ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
USER_RE = re.compile(r"^[\x21-\x7E]{1,256}$")
TRACEPARENT_RE = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "transfer-encoding", "upgrade"}
ERRORS = {"upstream_reset": (502, "connection_terminated"),
          "upstream_protocol_error": (502, "http_protocol_error"),
          "upstream_timeout": (504, "http_response_timeout")}


class Gone(Exception):
    """The client reset the stream or closed the connection."""


class Mock:
    def __init__(self, upstream_port, access_log, request_timeout):
        self.upstream_port = upstream_port
        self.request_timeout = request_timeout
        self.log = open(access_log, "a", encoding="utf-8")
        self.lock = threading.Lock()
        self.in_flight = 0
        self.connections = 0
        self.requests = 0

    def count(self, name, delta):
        with self.lock:
            setattr(self, name, getattr(self, name) + delta)

    def write_line(self, fields):
        with self.lock:
            self.requests += 1
            self.log.write(json.dumps(fields, separators=(",", ":")) + "\n")
            self.log.flush()

    def metrics(self):
        with self.lock:
            return (f'viscount_upstream_requests_in_flight{{upstream="app"}} {self.in_flight}\n'
                    f"viscount_downstream_connections {self.connections}\n"
                    f'viscount_requests_total{{upstream="app"}} {self.requests}\n'
                    "viscount_access_log_dropped_total 0\n")


class Connection:
    """One client connection: a reader thread, and a thread per stream once its request is in."""

    def __init__(self, mock, sock, peer):
        self.mock = mock
        self.sock = sock
        self.peer = peer
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        self.cond = threading.Condition()  # guards conn and socket writes; window updates
        self.streams = {}
        self.closed = False

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            try:
                self.sock.sendall(data)
            except OSError:
                self.closed = True

    def run(self):
        self.mock.count("connections", 1)
        try:
            with self.cond:
                self.conn.initiate_connection()
                self.flush()
            while not self.closed:
                try:
                    data = self.sock.recv(65536)
                except OSError:
                    break
                if not data:
                    break
                with self.cond:
                    try:
                        events = self.conn.receive_data(data)
                    except h2.exceptions.ProtocolError:
                        break
                    for ev in events:
                        self.on_event(ev)
                    self.flush()
                    self.cond.notify_all()
        finally:
            with self.cond:
                self.closed = True
                for stream in self.streams.values():
                    stream.gone = True
                    stream.close_upstream()
                    if not stream.started:  # its upload was cut off by the close
                        stream.finish("client_disconnected")
                self.cond.notify_all()
            self.mock.count("connections", -1)
            self.sock.close()

    def on_event(self, ev):
        if isinstance(ev, h2.events.RequestReceived):
            stream = Stream(self, ev.stream_id, ev.headers)
            self.streams[ev.stream_id] = stream
            if ev.stream_ended:
                stream.start()
        elif isinstance(ev, h2.events.DataReceived):
            self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            stream = self.streams.get(ev.stream_id)
            if stream:
                stream.body += ev.data
                if ev.stream_ended:
                    stream.start()
        elif isinstance(ev, h2.events.StreamEnded):
            stream = self.streams.get(ev.stream_id)
            if stream and not stream.started:
                stream.start()
        elif isinstance(ev, h2.events.StreamReset):
            stream = self.streams.get(ev.stream_id)
            if stream:
                stream.gone = True
                stream.close_upstream()
                if not stream.started:  # reset during its upload: logged here
                    stream.finish("client_disconnected")
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.closed = True


class Stream:
    def __init__(self, connection, sid, headers):
        self.c = connection
        self.sid = sid
        self.headers = headers
        self.body = bytearray()
        self.started = False
        self.gone = False
        self.upstream = None
        self.t0 = time.monotonic()
        self.ts = datetime.datetime.now(datetime.timezone.utc)
        self.status = 0
        self.bytes_out = 0
        self.attempts = 0
        self.t_upstream = None
        self.finished = False
        pseudo = dict(h for h in headers if h[0].startswith(":"))
        self.method, self.path = pseudo.get(":method", ""), pseudo.get(":path", "")
        self.choose_ids()

    def values(self, name):
        return [v for k, v in self.headers if k == name]

    def choose_ids(self):
        trusted = self.c.peer[0] == "127.0.0.1"

        def kept(values, pattern):
            return values[0] if trusted and values and len(set(values)) == 1 and \
                pattern.match(values[0]) else None
        self.rid = kept(self.values("x-request-id"), ID_RE) or str(uuid.uuid4())
        self.cid = kept(self.values("x-correlation-id"), ID_RE) or str(uuid.uuid4())
        self.uid = kept(self.values("x-user-id"), USER_RE)
        tp = self.values("traceparent")
        match = TRACEPARENT_RE.match(tp[0]) if len(tp) == 1 else None
        self.trace = match.group(1) if match else f"{random.getrandbits(128):032x}"
        self.span = f"{random.getrandbits(64) | 1:016x}"

    def start(self):
        self.started = True
        threading.Thread(target=self.run, daemon=True).start()

    def close_upstream(self):
        """Wakes the stream's thread if it waits on the upstream (close alone would not)."""
        if self.upstream is not None:
            try:
                self.upstream.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # --- the exchange --------------------------------------------------------------------------

    def run(self):
        self.c.mock.count("in_flight", 1)
        try:
            self.exchange()
        finally:
            self.c.mock.count("in_flight", -1)

    def exchange(self):
        deadline = self.t0 + self.c.mock.request_timeout
        head = [f"{self.method} {self.path} HTTP/1.1",
                f"host: 127.0.0.1:{self.c.mock.upstream_port}",
                f"x-request-id: {self.rid}", f"x-correlation-id: {self.cid}",
                f"traceparent: 00-{self.trace}-{self.span}-01",
                f"x-forwarded-for: {self.c.peer[0]}", "x-forwarded-proto: http"]
        if self.uid:
            head.append(f"x-user-id: {self.uid}")
        skip = {"x-request-id", "x-correlation-id", "x-user-id", "traceparent", "tracestate",
                "content-length"} | HOP_BY_HOP
        head += [f"{k}: {v}" for k, v in self.headers if not k.startswith(":") and k not in skip]
        if self.body or self.method in ("POST", "PUT"):
            head.append(f"content-length: {len(self.body)}")
        try:
            self.upstream = clients.H1Connection(self.c.mock.upstream_port)
            self.attempts = 1
            self.t_upstream = time.monotonic()
            if self.gone:
                raise Gone()
            self.upstream.sock.settimeout(max(0.01, deadline - time.monotonic()))
            self.upstream.send(("\r\n".join(head) + "\r\n\r\n").encode() + bytes(self.body))
            status, headers = self.upstream.read_head()
            while status < 200:
                status, headers = self.upstream.read_head()
        except Gone:
            return self.finish("client_disconnected")
        except clients.ClientTimeout:
            return self.local_error("upstream_timeout")
        except (clients.Broken, OSError):
            return self.finish("client_disconnected") if self.gone else \
                self.local_error("upstream_reset")
        except ValueError:
            return self.local_error("upstream_protocol_error")

        out = [(":status", str(status))]
        out += [(k, v) for k, v in headers if k not in HOP_BY_HOP and
                k not in ("x-request-id", "x-correlation-id")]
        out += [("x-request-id", self.rid), ("x-correlation-id", self.cid)]
        try:
            self.send_head(out, status)

            def sink(chunk):
                self.upstream.sock.settimeout(max(0.01, deadline - time.monotonic()))
                self.send_data(bytes(chunk))
            self.upstream.read_body(self.method, status, headers, sink)
            self.end()
            self.finish(None)
        except Gone:
            self.finish("client_disconnected")
        except clients.ClientTimeout:
            self.reset("upstream_timeout")
        except (clients.Broken, OSError, ValueError):
            self.reset("client_disconnected" if self.gone else "upstream_reset")
        finally:
            self.upstream.close()

    def local_error(self, code):
        status, proxy_status = ERRORS[code]
        body = json.dumps({"error": code, "status": status, "request_id": self.rid},
                          separators=(",", ":")).encode() + b"\n"
        try:
            self.send_head([(":status", str(status)), ("content-type", "application/json"),
                            ("proxy-status", f'viscount; error={proxy_status}; details="{code}"'),
                            ("content-length", str(len(body))), ("x-request-id", self.rid),
                            ("x-correlation-id", self.cid)], status)
            self.send_data(body)
            self.end()
        except Gone:
            return self.finish("client_disconnected")
        self.finish(code)

    def send_head(self, headers, status):
        with self.c.cond:
            if self.gone or self.c.closed:
                raise Gone()
            self.c.conn.send_headers(self.sid, headers)
            self.c.flush()
            self.status = status

    def send_data(self, data):
        view = memoryview(data)
        with self.c.cond:
            while view:
                if self.gone or self.c.closed:
                    raise Gone()
                window = min(self.c.conn.local_flow_control_window(self.sid),
                             self.c.conn.max_outbound_frame_size)
                if window <= 0:
                    self.c.cond.wait(0.5)
                    continue
                self.c.conn.send_data(self.sid, bytes(view[:window]))
                self.c.flush()
                self.bytes_out += min(window, len(view))
                view = view[window:]

    def end(self):
        with self.c.cond:
            if self.gone or self.c.closed:
                raise Gone()
            self.c.conn.end_stream(self.sid)
            self.c.flush()

    def reset(self, error):
        with self.c.cond:
            if not self.c.closed and not self.gone:
                try:
                    self.c.conn.reset_stream(self.sid, h2.errors.ErrorCodes.INTERNAL_ERROR)
                    self.c.flush()
                except h2.exceptions.StreamClosedError:
                    pass
        self.finish(error)

    def finish(self, error):
        if self.finished:
            return
        self.finished = True
        now = time.monotonic()
        self.c.mock.write_line({
            "ts": self.ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{self.ts.microsecond // 1000:03d}Z",
            "request_id": self.rid, "correlation_id": self.cid, "user_id": self.uid,
            "trace_id": self.trace, "span_id": self.span, "method": self.method,
            "path": self.path, "protocol": "HTTP/2", "status": self.status,
            "duration_ms": round((now - self.t0) * 1000, 3),
            "upstream_ms": round((now - self.t_upstream) * 1000, 3) if self.t_upstream else None,
            "bytes_in": len(self.body), "bytes_out": self.bytes_out,
            "client_address": f"{self.c.peer[0]}:{self.c.peer[1]}", "upstream": "app",
            "upstream_address": f"127.0.0.1:{self.c.mock.upstream_port}" if self.attempts else "",
            "error": error, "attempts": self.attempts})


def event(name, **fields):
    sys.stderr.write(json.dumps({"level": "info", "event": name, **fields}) + "\n")
    sys.stderr.flush()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream-port", type=int, required=True)
    parser.add_argument("--access-log", required=True)
    parser.add_argument("--request-timeout", type=float, default=3.0)
    args = parser.parse_args()
    mock = Mock(args.upstream_port, args.access_log, args.request_timeout)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(512)

    class Admin(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = mock.metrics().encode()
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_):
            pass
    admin = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Admin)
    threading.Thread(target=admin.serve_forever, daemon=True).start()
    event("listener_bound", port=listener.getsockname()[1])
    event("admin_bound", port=admin.server_address[1])
    event("started", mock=True)
    while True:
        sock, peer = listener.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=Connection(mock, sock, peer).run, daemon=True).start()


if __name__ == "__main__":
    main()
