"""HTTP/2 pieces of the adversarial suite: frames and HPACK blocks built by hand (so that what
Python's h2 library refuses to send can be sent), a client that decodes everything the proxy
sends back (responses, resets, GOAWAY, the close), and a case table runner.

A case (H2Case) is a byte sequence sent after a normal handshake (preface, SETTINGS, the ACK of
the proxy's SETTINGS) or instead of it, and the outcome it must have:

    Reset(sid, codes)    the stream is reset with one of `codes` and never answered; the
                         connection then still serves a request on a new stream
    Status(sid, codes)   the stream is answered with one of `codes` (a local error reply carries
                         viscount's JSON body and ids); the connection still serves a new stream
    GoAway(codes)        GOAWAY with one of `codes`, then the proxy closes the connection
    Silent(sid)          the stream gets no answer at all (the client cancelled it, or the
                         proxy ignores it); the connection still serves a new stream
    Http1(codes)         the bytes were not HTTP/2: an HTTP/1.1 error reply and a close
    Closed()             the proxy closes without a word

Reset and GoAway without codes accept any error code.

Every case then checks what reached the upstream (a number, or a set of acceptable numbers, of
well-formed HTTP/1.1 requests; never garbage, never a smuggled target) and that a fresh HTTP/2
connection is served afterwards.
"""

import json
import socket
import struct
import time

import hpack

from adversarial_support import (CASE_TIMEOUT, ERROR_CODES, SANITIZED, _parse_response, connect,
                                 vm_rss_kib)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types and flags (RFC 9113 section 6).
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)
END_STREAM = ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

# Error codes (RFC 9113 section 7).
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR, SETTINGS_TIMEOUT, STREAM_CLOSED, \
    FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR, CONNECT_ERROR, \
    ENHANCE_YOUR_CALM = range(12)
ERROR_NAMES = ["NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR",
               "SETTINGS_TIMEOUT", "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM",
               "CANCEL", "COMPRESSION_ERROR", "CONNECT_ERROR", "ENHANCE_YOUR_CALM"]

# SETTINGS identifiers.
HEADER_TABLE_SIZE, ENABLE_PUSH, MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE, \
    MAX_HEADER_LIST_SIZE = range(1, 7)

# The client's own receive window: responses are never held back by it unless a case says so.
CLIENT_WINDOW = 16 * 1024 * 1024


# --- frames ---------------------------------------------------------------------------------

def frame(kind, flags, stream_id, payload=b"", length=None):
    """One frame; `length` overrides the length field (a frame that lies about its size)."""
    n = len(payload) if length is None else length
    return struct.pack(">I", n)[1:] + bytes([kind, flags]) + struct.pack(">I", stream_id) + payload


def settings(*pairs, ack=False):
    return frame(SETTINGS, ACK if ack else 0, 0, b"".join(struct.pack(">HI", k, v)
                                                          for k, v in pairs))


def data(sid, payload=b"", end=False, pad=None):
    flags = END_STREAM if end else 0
    if pad is not None:
        flags |= PADDED
        payload = bytes([pad]) + payload + b"\0" * pad
    return frame(DATA, flags, sid, payload)


def window_update(sid, increment):
    return frame(WINDOW_UPDATE, 0, sid, struct.pack(">I", increment))


def rst_stream(sid, code=CANCEL):
    return frame(RST_STREAM, 0, sid, struct.pack(">I", code))


def ping(payload=b"12345678", ack=False):
    return frame(PING, ACK if ack else 0, 0, payload)


def priority(sid, depends_on, weight=16, exclusive=False):
    return frame(PRIORITY, 0, sid, struct.pack(">IB", depends_on | (exclusive << 31), weight - 1))


def continuation(sid, block, end=True):
    return frame(CONTINUATION, END_HEADERS if end else 0, sid, block)


# --- HPACK by hand (RFC 7541): literals that no encoder would produce -----------------------

def hpack_int(value, prefix, first=0):
    limit = (1 << prefix) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append(value & 127 | 128)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack_str(s):
    raw = s if isinstance(s, bytes) else s.encode("latin-1")
    return hpack_int(len(raw), 7) + raw


def literal(name, value):
    """Literal field without indexing, new name: the name and value go on the wire as given."""
    return b"\x00" + hpack_str(name) + hpack_str(value)


def literal_indexed(name, value):
    """Literal field with incremental indexing: it enters the dynamic table (index 62)."""
    return b"\x40" + hpack_str(name) + hpack_str(value)


def indexed(index):
    return hpack_int(index, 7, 0x80)


def table_size_update(size):
    return hpack_int(size, 5, 0x20)


def encode_fields(fields):
    """A header block: (name, value) pairs as plain literals; bytes are taken as they are."""
    return b"".join(f if isinstance(f, bytes) else literal(*f) for f in fields)


def request_fields(path="/", method="GET", authority="a", scheme="http", extra=()):
    return [(":method", method), (":scheme", scheme), (":path", path), (":authority", authority),
            *extra]


def headers(sid, fields=None, end=True, end_headers=True, pad=None, depends_on=None,
            block=None, **request):
    """A HEADERS frame; `fields` (or request_fields(**request)) or a ready `block`."""
    if block is None:
        block = encode_fields(fields if fields is not None else request_fields(**request))
    flags = (END_STREAM if end else 0) | (END_HEADERS if end_headers else 0)
    prefix = b""
    if depends_on is not None:
        flags |= PRIORITY_FLAG
        prefix = struct.pack(">IB", depends_on, 15)
    if pad is not None:
        flags |= PADDED
        return frame(HEADERS, flags, sid, bytes([pad]) + prefix + block + b"\0" * pad)
    return frame(HEADERS, flags, sid, prefix + block)


def get(sid, path="/", extra=(), end=True):
    return headers(sid, request_fields(path, extra=extra), end=end)


# --- the client -----------------------------------------------------------------------------

class StreamState:
    def __init__(self):
        self.informational = []  # statuses of 1xx answers
        self.headers = None      # the final response's fields, decoded
        self.trailers = None
        self.body = bytearray()
        self.ended = False
        self.reset = None        # RST_STREAM error code

    @property
    def status(self):
        for name, value in self.headers or ():
            if name == ":status":
                return int(value)
        return None

    def header(self, name):
        values = [v for k, v in self.headers or () if k == name]
        return values[0] if values else None

    @property
    def done(self):
        return self.ended or self.reset is not None

    def __repr__(self):
        reset = ERROR_NAMES[self.reset] if self.reset is not None and self.reset < 12 else \
            self.reset
        return (f"<status={self.status} 1xx={self.informational} reset={reset} "
                f"ended={self.ended} body={bytes(self.body[:120])!r}>")


class H2Conn:
    """One client connection, sending raw bytes and decoding the proxy's frames."""

    def __init__(self, port, handshake=True, ack=True):
        self.sock = connect(port)
        self.decoder = hpack.Decoder()
        self.decoder.max_header_list_size = 1 << 20
        self.buf = b""
        self.raw = b""           # everything received, for answers that are not HTTP/2
        self.http1 = False
        self.streams = {}
        self.goaway = None       # (error code, last stream id, debug data)
        self.closed = False
        self.server_settings = None
        self.settings_acks = 0
        self.ping_acks = []
        self.frame_log = []      # (type, flags, stream id) of every frame received
        self.send_error = None
        self.decode_error = None
        self._block = None       # (stream id, flags, bytes) of a header block in progress
        if handshake:
            self.send(PREFACE + settings((INITIAL_WINDOW_SIZE, CLIENT_WINDOW), (ENABLE_PUSH, 0))
                      + window_update(0, CLIENT_WINDOW))
            if not self.read_until(lambda: self.server_settings is not None):
                raise AssertionError(f"no SETTINGS from the proxy: {self.frame_log}")
            if ack:  # without it the proxy's SETTINGS are not in force yet (RFC 9113 6.5.3)
                self.send(settings(ack=True))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def stream(self, sid):
        return self.streams.setdefault(sid, StreamState())

    def send(self, payload):
        try:
            self.sock.sendall(payload)
        except (BrokenPipeError, ConnectionResetError) as e:
            self.send_error = e  # the proxy answered and closed before reading it all
        return self.send_error is None

    def read_until(self, predicate, timeout=CASE_TIMEOUT):
        """Reads until predicate() holds (True) or the time is up or the proxy closed (False)."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if self.closed or time.monotonic() >= deadline:
                return predicate()
            self._read(deadline - time.monotonic())
        return True

    def linger(self, seconds):
        """Keeps reading for `seconds`: whatever else the proxy sends is recorded."""
        deadline = time.monotonic() + seconds
        while not self.closed and time.monotonic() < deadline:
            self._read(deadline - time.monotonic())

    def wait_closed(self, timeout=CASE_TIMEOUT):
        return self.read_until(lambda: self.closed, timeout)

    def _read(self, timeout):
        self.sock.settimeout(max(0.01, timeout))
        try:
            chunk = self.sock.recv(1 << 16)
        except socket.timeout:
            return
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.closed = True
            return
        self.raw += chunk
        if self.http1 or (not self.buf and self.raw.startswith(b"HTTP/1.")):
            self.http1 = True
            return
        self.buf += chunk
        while len(self.buf) >= 9:
            length = int.from_bytes(self.buf[:3], "big")
            if len(self.buf) < 9 + length:
                break
            kind, flags = self.buf[3], self.buf[4]
            sid = int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
            payload, self.buf = self.buf[9:9 + length], self.buf[9 + length:]
            self.frame_log.append((kind, flags, sid))
            self._on_frame(kind, flags, sid, payload)

    def _on_frame(self, kind, flags, sid, payload):
        if kind == SETTINGS:
            if flags & ACK:
                self.settings_acks += 1
            else:
                self.server_settings = {k: v for k, v in (struct.unpack(">HI", payload[i:i + 6])
                                                          for i in range(0, len(payload), 6))}
        elif kind == PING and flags & ACK:
            self.ping_acks.append(payload)
        elif kind == GOAWAY:
            last, code = struct.unpack(">II", payload[:8])
            self.goaway = (code, last & 0x7FFFFFFF, payload[8:])
        elif kind == RST_STREAM:
            self.stream(sid).reset = struct.unpack(">I", payload)[0]
        elif kind == DATA:
            if flags & PADDED:
                payload = payload[1:len(payload) - payload[0]]
            self.stream(sid).body += payload
            if flags & END_STREAM:
                self.stream(sid).ended = True
            if payload:  # give the window back, so every case reads whole responses
                self.send(window_update(0, len(payload)) + window_update(sid, len(payload)))
        elif kind in (HEADERS, CONTINUATION):
            if kind == HEADERS:
                if flags & PADDED:
                    payload = payload[1:len(payload) - payload[0]]
                if flags & PRIORITY_FLAG:
                    payload = payload[5:]
                self._block = (sid, flags, b"")
            block_sid, first_flags, block = self._block
            self._block = (block_sid, first_flags, block + payload)
            if flags & END_HEADERS:
                self._header_block_done(*self._block)
                self._block = None

    def _header_block_done(self, sid, flags, block):
        try:
            fields = [(n, v) for n, v in self.decoder.decode(block, raw=False)]
        except Exception as e:  # noqa: BLE001 - any decoding failure is a finding
            self.decode_error = e
            return
        st = self.stream(sid)
        status = next((int(v) for n, v in fields if n == ":status"), None)
        if st.headers is None and status is not None and status < 200:
            st.informational.append(status)
        elif st.headers is None:
            st.headers = fields
        else:
            st.trailers = fields
        if flags & END_STREAM:
            st.ended = True

    def request(self, sid, path="/", extra=(), timeout=CASE_TIMEOUT):
        """A plain GET on stream `sid`, waited for."""
        self.send(get(sid, path, extra))
        self.read_until(lambda: self.stream(sid).done, timeout)
        return self.stream(sid)

    def __repr__(self):
        goaway = None
        if self.goaway:
            code = self.goaway[0]
            goaway = (ERROR_NAMES[code] if code < 12 else code, self.goaway[1], self.goaway[2])
        return (f"<streams={self.streams} goaway={goaway} closed={self.closed} "
                f"frames={self.frame_log[:40]}>")


# --- expected outcomes ----------------------------------------------------------------------

def _names(codes):
    return {ERROR_NAMES[c] if c < 12 else c for c in codes}


class Reset:
    """The stream is reset with one of `codes`, unanswered; the connection stays usable."""
    closes = False

    def __init__(self, sid, *codes):
        self.sid, self.codes = sid, set(codes)

    def done(self, conn):
        return conn.stream(self.sid).done or conn.goaway is not None

    def check(self, test, conn):
        st = conn.stream(self.sid)
        test.assertIsNone(conn.goaway, f"expected a stream reset, got GOAWAY: {conn}")
        test.assertIsNotNone(st.reset, f"stream {self.sid}: expected RST_STREAM: {conn}")
        if self.codes:
            test.assertIn(st.reset, self.codes, f"stream {self.sid}: expected RST_STREAM "
                                                f"{_names(self.codes)}: {conn}")
        test.assertIsNone(st.status, f"stream {self.sid} was answered before its reset: {conn}")


class Status:
    """The stream is answered with one of `codes`; the connection stays usable."""
    closes = False

    def __init__(self, sid, *codes):
        self.sid, self.codes = sid, set(codes)

    def done(self, conn):
        return conn.stream(self.sid).done or conn.goaway is not None

    def check(self, test, conn):
        st = conn.stream(self.sid)
        test.assertIsNone(conn.goaway, f"unexpected GOAWAY: {conn}")
        test.assertIn(st.status, self.codes, f"stream {self.sid}: {conn}")
        test.assertTrue(st.ended, f"stream {self.sid} did not end: {conn}")
        if st.status >= 400:
            assert_error_reply(test, st)


class Silent:
    """No answer on the stream, no GOAWAY; the connection stays usable."""
    closes = False

    def __init__(self, sid):
        self.sid = sid

    def done(self, conn):
        return True  # nothing to wait for: the linger that follows shows what else came

    def check(self, test, conn):
        st = conn.stream(self.sid)
        test.assertIsNone(conn.goaway, f"unexpected GOAWAY: {conn}")
        test.assertIsNone(st.status, f"stream {self.sid} was answered: {conn}")
        test.assertIsNone(st.reset, f"stream {self.sid} was reset: {conn}")


class GoAway:
    """A connection error: GOAWAY with one of `codes`, then the proxy closes."""
    closes = True

    def __init__(self, *codes):
        self.codes = set(codes)

    def done(self, conn):
        return conn.closed

    def check(self, test, conn):
        test.assertIsNotNone(conn.goaway, f"expected GOAWAY {_names(self.codes)}: {conn}")
        if self.codes:
            test.assertIn(conn.goaway[0], self.codes,
                          f"expected GOAWAY {_names(self.codes)}: {conn}")
        test.assertTrue(conn.closed, f"the proxy kept the connection open after GOAWAY: {conn}")


class Http1:
    """Not HTTP/2 at all: one HTTP/1.1 error reply, then the close."""
    closes = True

    def __init__(self, *codes):
        self.codes = set(codes)

    def done(self, conn):
        return conn.closed

    def check(self, test, conn):
        test.assertTrue(conn.http1, f"expected an HTTP/1.1 answer: {conn}")
        parsed = _parse_response(conn.raw, True)
        test.assertIsNotNone(parsed, conn)
        resp, rest = parsed
        test.assertIn(resp.status, self.codes, resp)
        test.assertEqual(rest, b"", "bytes after the error reply")
        test.assertTrue(conn.closed)


class Closed:
    """The proxy closes without answering (HTTP/1 or HTTP/2)."""
    closes = True

    def done(self, conn):
        return conn.closed

    def check(self, test, conn):
        test.assertTrue(conn.closed, f"the connection stayed open: {conn}")
        test.assertEqual([s for s in conn.streams.values() if s.status], [], conn)
        test.assertFalse(conn.http1 and b"HTTP/1.1 2" in conn.raw, conn)


def assert_error_reply(test, st):
    """A local reply of viscount's over HTTP/2: JSON body, proxy-status, one request id."""
    test.assertEqual(st.header("content-type"), "application/json", st)
    test.assertIsNotNone(st.header("proxy-status"), st)
    body = json.loads(bytes(st.body))
    test.assertEqual(body["status"], st.status)
    if st.status in ERROR_CODES and st.status != 502:
        test.assertEqual(body["error"], ERROR_CODES[st.status])
    test.assertEqual(body["request_id"], st.header("x-request-id"))
    return body


# --- the case table -------------------------------------------------------------------------

class H2Case:
    """One hostile sequence of frames and what must come of it.

    payload:   bytes sent after the handshake (or instead of it when handshake=False); a list
               of (bytes, pause-seconds-before) pieces sends them apart
    expect:    Reset / Status / GoAway / Http1 / Closed, or a tuple of acceptable ones
    upstream:  how many requests the upstream may receive (an int or a set)
    check:     optional check(test, conn, upstream_requests)
    handshake: False sends the payload on a bare connection (it brings its own preface)
    half_close: shut down the client's sending side after the payload
    flat_memory: the proxy's RSS may not grow by more than RSS_SLACK_KIB (not under ASan)
    """

    def __init__(self, name, payload, expect, upstream=0, check=None, doc="", handshake=True,
                 half_close=False, flat_memory=False, timeout=CASE_TIMEOUT):
        self.name = name
        self.payload = payload
        self.expect = expect if isinstance(expect, tuple) else (expect,)
        self.upstream = upstream
        self.check = check
        self.doc = doc
        self.handshake = handshake
        self.half_close = half_close
        self.flat_memory = flat_memory
        self.timeout = timeout


def _pieces(payload):
    return [(payload, 0)] if isinstance(payload, bytes) else payload


def _highest_stream(payload):
    """The highest client stream id the payload opens (-1 for none: the next one is then 1)."""
    highest = -1
    for piece, _ in _pieces(payload):
        i = 0
        if piece.startswith(PREFACE):
            i = len(PREFACE)
        while i + 9 <= len(piece):
            length = int.from_bytes(piece[i:i + 3], "big")
            sid = int.from_bytes(piece[i + 5:i + 9], "big") & 0x7FFFFFFF
            if piece[i + 3] in (HEADERS, PRIORITY) and sid % 2 == 1:
                highest = max(highest, sid)
            i += 9 + length
    return highest


FOLLOW_UP = "/follow-up"
FRESH = "/fresh"
# What a flood or a bomb may add to the proxy's resident memory.
RSS_SLACK_KIB = 8 * 1024


def run_h2_case(test, case):
    pid = test.proxy.proc.pid
    rss_before = vm_rss_kib(pid) if case.flat_memory and not SANITIZED else None
    conn = H2Conn(test.port, handshake=case.handshake)
    try:
        for piece, pause in _pieces(case.payload):
            if pause:
                conn.linger(pause)
            if not conn.send(piece):
                break
        if case.half_close:
            try:
                conn.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        conn.read_until(lambda: any(e.done(conn) for e in case.expect), case.timeout)
        test.assertTrue(any(e.done(conn) for e in case.expect),
                        f"no outcome within {case.timeout}s: {conn}")
        if conn.goaway is None and not conn.closed:
            conn.linger(0.2)  # an extra answer or a GOAWAY that follows
        if conn.goaway is not None:
            conn.wait_closed(case.timeout)
        test.assertIsNone(conn.decode_error, f"undecodable header block: {conn}")
        failures = []
        for matched in case.expect:
            try:
                matched.check(test, conn)
                break
            except AssertionError as e:
                failures.append(str(e))
        else:
            test.fail("\n".join(failures))
        if not matched.closes:
            # The connection is still good: a new stream on it is served.
            sid = _highest_stream(case.payload) + 2
            st = conn.request(sid, FOLLOW_UP)
            test.assertEqual(st.status, 200, f"the connection does not serve stream {sid}: {conn}")
    finally:
        conn.close()
    requests = [r for r in test.upstream_since_mark() if r.target not in (FOLLOW_UP, FRESH)]
    allowed = case.upstream if isinstance(case.upstream, (set, frozenset)) else {case.upstream}
    test.assertIn(len(requests), allowed, f"the upstream received {requests}")
    if case.check:
        case.check(test, conn, requests)
    if rss_before is not None:
        grown = vm_rss_kib(pid) - rss_before
        test.assertLess(grown, RSS_SLACK_KIB, f"the proxy's RSS grew by {grown} KiB")
    assert_serves_fresh_connection(test)
    return conn, requests


def assert_serves_fresh_connection(test):
    conn = H2Conn(test.port)
    try:
        st = conn.request(1, FRESH)
        test.assertEqual(st.status, 200, f"a fresh connection is not served: {conn}")
        test.assertEqual(json.loads(bytes(st.body))["target"], FRESH)
    finally:
        conn.close()


def add_h2_cases(cls, cases):
    """One test method per case, so each is counted, named and run on its own."""
    for case in cases:
        name = "test_" + case.name
        if hasattr(cls, name):
            raise ValueError(f"duplicate case {case.name}")

        def method(self, case=case):
            run_h2_case(self, case)
        method.__doc__ = case.doc or None
        setattr(cls, name, method)
    return cls
