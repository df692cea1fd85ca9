"""A small blocking HTTP/2 client over Python's h2 (Debian's python3-h2) for the e2e tests.

It speaks h2c with prior knowledge, or h2 over TLS when given an ssl context (ALPN "h2"), keeps
every stream's response (headers, body, trailers, reset code) and what the server did to the
connection (GOAWAY, close). `raw()` gives the socket for tests that write hand-made frames.
"""

import socket
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings


class Response:
    def __init__(self):
        self.headers = []
        self.data = bytearray()
        self.trailers = []
        self.ended = False
        self.reset = None  # the RST_STREAM error code, when the server reset the stream

    @property
    def status(self):
        for name, value in self.headers:
            if name == ":status":
                return int(value)
        return None

    def header(self, name):
        for n, v in self.headers:
            if n == name:
                return v
        return None

    @property
    def done(self):
        return self.ended or self.reset is not None


class H2Client:
    def __init__(self, port, ssl_context=None, server_hostname="localhost", timeout=10.0,
                 settings=None, validate=True):
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if ssl_context is not None:
            ssl_context.set_alpn_protocols(["h2"])
            raw = ssl_context.wrap_socket(raw, server_hostname=server_hostname)
            assert raw.selected_alpn_protocol() == "h2", raw.selected_alpn_protocol()
        self.sock = raw
        self.timeout = timeout
        config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8",
                                           validate_outbound_headers=validate,
                                           normalize_outbound_headers=validate)
        self.conn = h2.connection.H2Connection(config=config)
        self.conn.local_settings = h2.settings.Settings(
            client=True, initial_values=settings or {
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 16 * 1024 * 1024,
                h2.settings.SettingCodes.ENABLE_PUSH: 0})
        self.conn.initiate_connection()
        # A large connection window: the tests control reading, not flow control.
        self.conn.increment_flow_control_window(64 * 1024 * 1024)
        self.responses = {}
        self.goaway = None  # (error_code, last_stream_id)
        self.closed = False
        self.protocol_error = None
        self.flush()

    # --- sending ---------------------------------------------------------------------------
    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, method, path, headers=(), body=None, authority="localhost", end=True,
                trailers=None):
        stream_id = self.conn.get_next_available_stream_id()
        hdrs = [(":method", method), (":path", path), (":scheme", "http"),
                (":authority", authority), *headers]
        if body and end and not trailers:
            hdrs.append(("content-length", str(len(body))))
        self.responses[stream_id] = Response()
        ends_now = end and not body and not trailers
        self.conn.send_headers(stream_id, hdrs, end_stream=ends_now)
        self.flush()
        if body:
            self.send_body(stream_id, body, end=end and not trailers)
        if trailers:
            self.conn.send_headers(stream_id, trailers, end_stream=True)
            self.flush()
        return stream_id

    def send_body(self, stream_id, body, end=True):
        view = memoryview(body)
        while view:
            window = min(self.conn.local_flow_control_window(stream_id),
                         self.conn.max_outbound_frame_size)
            if window <= 0:
                self.pump(lambda: self.conn.local_flow_control_window(stream_id) > 0 or
                          self.responses[stream_id].done)
                if self.responses[stream_id].done:
                    return
                continue
            chunk, view = view[:window], view[window:]
            self.conn.send_data(stream_id, bytes(chunk), end_stream=end and not view)
            self.flush()
        if end and not body:
            self.conn.end_stream(stream_id)
            self.flush()

    # --- receiving -------------------------------------------------------------------------
    def read_once(self, timeout=None):
        self.sock.settimeout(timeout if timeout is not None else self.timeout)
        try:
            data = self.sock.recv(1 << 20)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self.closed = True
            return False
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as e:
            self.protocol_error = e
            self.closed = True
            return False
        for event in events:
            self._handle(event)
        try:
            self.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.closed = True
        return True

    def _handle(self, event):
        r = self.responses.get(getattr(event, "stream_id", None))
        if isinstance(event, h2.events.ResponseReceived):
            r.headers = list(event.headers)
        elif isinstance(event, h2.events.InformationalResponseReceived):
            pass
        elif isinstance(event, h2.events.TrailersReceived):
            r.trailers = list(event.headers)
        elif isinstance(event, h2.events.DataReceived):
            r.data += event.data
            self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            r.ended = True
        elif isinstance(event, h2.events.StreamReset):
            if r is not None:
                r.reset = event.error_code
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = (event.error_code, event.last_stream_id)

    def pump(self, predicate, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("timed out waiting on the HTTP/2 connection")
            if not self.read_once(remaining):
                if predicate():
                    return
                raise AssertionError("the server closed the connection"
                                     f" (client protocol error: {self.protocol_error!r})")

    def wait(self, *stream_ids, timeout=None):
        self.pump(lambda: all(self.responses[s].done for s in stream_ids), timeout)
        return [self.responses[s] for s in stream_ids]

    def get(self, path, headers=(), timeout=None):
        sid = self.request("GET", path, headers)
        return self.wait(sid, timeout=timeout)[0]

    def wait_closed(self, timeout=None):
        """Reads until the server closes the socket; returns the GOAWAY seen, if any."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while not self.closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("the server kept the connection open")
            self.read_once(remaining)
        return self.goaway

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
