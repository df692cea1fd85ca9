"""The soak's clients: HTTP/1.x on raw sockets and HTTP/2 (h2c, prior knowledge) with python3-h2.

Both run *plans* (dicts made by soak.py: method, path, headers, upload, abort, ...) and return
*results* (dicts): what came back, how the exchange ended, and enough of the response to check it
afterwards. Raw sockets rather than http.client, because the soak needs to stop at exact points
(half a request head, a third of an upload, the first bytes of a response) and to tell a response
cut short from one that completed.

Result `outcome`:
  response     a whole response (any status)
  cut          a response head, then the body ended early (connection closed, stream reset)
  no_response  the connection closed or was reset before any response head
  aborted      the client gave up on purpose (plan["abort"])
  timeout      nothing for CLIENT_TIMEOUT seconds
  error        anything else (detail says what)
  unsent       never reached viscount (its h2 connection ended first, or a GOAWAY refused it)
"""

import hashlib
import json
import select
import socket
import struct
import time

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

CLIENT_TIMEOUT = 20.0
UPLOAD_SLICE = 64 * 1024
# Response headers kept in a result (first value); the rest are only counted.
KEPT_HEADERS = ("x-request-id", "x-correlation-id", "content-type", "proxy-status", "retry-after",
                "connection", "content-length")


class Broken(Exception):
    """The connection closed or was reset."""


class ClientTimeout(Exception):
    pass


def new_result(plan):
    return {"outcome": None, "status": None, "hdr": {}, "rid_copies": 0, "body_len": 0,
            "body_sha": None, "local": None, "sent": 0, "upload_done": False, "detail": "",
            "t0": time.monotonic(), "t1": None, "wire": False}


def keep_headers(result, headers):
    """Keeps the interesting response headers of (name, value) pairs with lower-case names."""
    kept = result["hdr"]
    for name, value in headers:
        if name == "x-request-id":
            result["rid_copies"] += 1
        if (name in KEPT_HEADERS or name.startswith("x-soak-")) and name not in kept:
            kept[name] = value


def finish_body(result, digest, body, content_type):
    result["body_sha"] = digest.hexdigest()
    # viscount's own error replies are small JSON: keep them to check error code and request id.
    if content_type.startswith("application/json") and len(body) <= 4096:
        try:
            result["local"] = json.loads(body)
        except ValueError:
            result["local"] = {"unparsable": body[:200].decode("latin-1")}


def hard_close(sock):
    """close() with RST rather than FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    except OSError:
        pass


def connect(port, source_ip=None, timeout=CLIENT_TIMEOUT):
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                    source_address=(source_ip, 0) if source_ip else None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


# --- HTTP/1.x -------------------------------------------------------------------------------------

class H1Connection:
    """One client connection; `reusable` turns False when it may not carry another request."""

    def __init__(self, port, source_ip=None):
        self.sock = connect(port, source_ip)
        self.buf = bytearray()
        self.reusable = True
        self.requests = 0

    def close(self, reset=False):
        self.reusable = False
        if reset:
            hard_close(self.sock)
        else:
            try:
                self.sock.close()
            except OSError:
                pass

    def send(self, data):
        try:
            self.sock.sendall(data)
        except socket.timeout:
            raise ClientTimeout("send") from None
        except OSError as e:
            raise Broken(f"send: {e.strerror or e}") from None

    def _fill(self):
        try:
            data = self.sock.recv(256 * 1024)
        except socket.timeout:
            raise ClientTimeout("recv") from None
        except OSError as e:
            raise Broken(f"recv: {e.strerror or e}") from None
        if not data:
            raise Broken("closed")
        self.buf += data

    def _line(self):
        while True:
            end = self.buf.find(b"\r\n")
            if end >= 0:
                line = bytes(self.buf[:end])
                del self.buf[:end + 2]
                return line
            self._fill()

    def read_head(self):
        """(status, [(name, value)]) of the next response head, 1xx included."""
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            self._fill()
        lines = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
        del self.buf[:end + 4]
        version, status = lines[0].split(" ", 2)[:2]
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name.strip().lower(), value.strip()))
        if version != "HTTP/1.1" or any(
                n == "connection" and "close" in v.lower() for n, v in headers):
            self.reusable = False
        return int(status), headers

    def read_body(self, method, status, headers, sink, stop_after=None):
        """Feeds the body to `sink`; True when complete, False when stopped at `stop_after`."""
        values = dict(headers)
        if method == "HEAD" or status in (204, 304) or status < 200:
            return True
        received = 0
        if "chunked" in values.get("transfer-encoding", "").lower():
            while True:
                size = int(self._line().split(b";")[0].strip(), 16)
                if size == 0:
                    while self._line():
                        pass
                    return True
                left = size
                while left:
                    if not self.buf:
                        self._fill()
                    take = min(left, len(self.buf))
                    sink(self.buf[:take])
                    del self.buf[:take]
                    left -= take
                    received += take
                    if stop_after is not None and received >= stop_after:
                        return False
                if self._line() != b"":
                    raise Broken("bad chunk framing")
        if "content-length" in values:
            left = int(values["content-length"])
            close_delimited = False
        else:
            left = None  # until the connection closes
            close_delimited = True
            self.reusable = False
        while left is None or left > 0:
            if not self.buf:
                try:
                    self._fill()
                except Broken:
                    if close_delimited:
                        return True
                    raise
            take = len(self.buf) if left is None else min(left, len(self.buf))
            sink(self.buf[:take])
            del self.buf[:take]
            received += take
            if left is not None:
                left -= take
            if stop_after is not None and received >= stop_after:
                return False
        return True


def h1_request_bytes(plan, port):
    """The request head and the body as it goes on the wire (framed), for an HTTP/1.x plan."""
    version = plan["proto"]
    lines = [f"{plan['method']} {plan['path']} {version}", f"host: 127.0.0.1:{port}",
             "user-agent: viscount-soak"]
    lines += [f"{k}: {v}" for k, v in plan["headers"]]
    upload = plan["upload"]
    if plan.get("oversize"):
        lines.append(f"content-length: {plan['oversize']}")
    elif upload is not None:
        if plan["framing"] == "chunked":
            lines.append("transfer-encoding: chunked")
        else:
            lines.append(f"content-length: {len(upload)}")
        if plan["framing"] == "expect":
            lines.append("expect: 100-continue")
    if plan.get("close"):
        lines.append("connection: close")
    elif version == "HTTP/1.0" and plan.get("keep_alive_10"):
        lines.append("connection: keep-alive")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def h1_upload_pieces(plan):
    """The body on the wire, slice by slice: (wire bytes, body bytes they carry)."""
    upload = plan["upload"]
    chunked = plan["framing"] == "chunked"
    for pos in range(0, len(upload), UPLOAD_SLICE):
        piece = upload[pos:pos + UPLOAD_SLICE]
        if chunked:
            yield b"%x\r\n" % len(piece) + bytes(piece) + b"\r\n", len(piece)
        else:
            yield piece, len(piece)
    if chunked:
        yield b"0\r\n\r\n", 0


def h1_exchange(conn, plan, port):
    """Runs one plan on `conn` (a fresh or kept-alive connection); returns its result."""
    result = new_result(plan)
    abort = plan.get("abort")
    head_seen = False
    try:
        head = h1_request_bytes(plan, port)
        if abort == "head":
            conn.send(head[:max(1, len(head) // 2)])  # half a head, then gone
            result["wire"] = True
            conn.close(reset=plan.get("abort_rst", False))
            result["outcome"] = "aborted"
            return result
        conn.send(head)
        result["wire"] = True
        if plan["upload"] is not None and not plan.get("oversize"):
            if plan["framing"] == "expect":
                # Wait briefly for 100 Continue; a final status instead ends the request.
                conn.sock.settimeout(2.0)
                try:
                    status, headers = conn.read_head()
                except ClientTimeout:
                    status, headers = 100, []
                finally:
                    conn.sock.settimeout(CLIENT_TIMEOUT)
                if status != 100:
                    return h1_finish(conn, plan, result, status, headers)
            abort_at = plan.get("abort_at", -1) if abort == "body" else -1
            for wire, n in h1_upload_pieces(plan):
                if 0 <= abort_at < result["sent"] + n:  # this piece would pass the abort point
                    conn.close(reset=plan.get("abort_rst", False))
                    result["outcome"] = "aborted"
                    return result
                try:
                    conn.send(wire)
                except Broken as e:
                    # viscount answered early and closed: its answer may still be readable.
                    result["detail"] = str(e)
                    break
                result["sent"] += n
            else:
                result["upload_done"] = True
        if abort == "wait":
            time.sleep(plan.get("abort_delay", 0.2))
            conn.close(reset=plan.get("abort_rst", False))
            result["outcome"] = "aborted"
            return result
        while True:
            status, headers = conn.read_head()
            if status >= 200 or status == 101:
                break
        head_seen = True
        return h1_finish(conn, plan, result, status, headers)
    except ClientTimeout as e:
        conn.close()
        result["outcome"] = "timeout"
        result["detail"] = str(e)
    except Broken as e:
        conn.close()
        result["outcome"] = "cut" if head_seen or result["status"] is not None else "no_response"
        result["detail"] = (result["detail"] + "; " if result["detail"] else "") + str(e)
    except (OSError, ValueError) as e:
        conn.close()
        result["outcome"] = "error"
        result["detail"] = repr(e)
    finally:
        result["t1"] = time.monotonic()
        conn.requests += 1
    return result


def h1_finish(conn, plan, result, status, headers):
    result["status"] = status
    keep_headers(result, headers)
    digest = hashlib.sha256()
    body = bytearray()
    small = [True]

    def sink(chunk):
        digest.update(chunk)
        result["body_len"] += len(chunk)
        if small[0]:
            body.extend(chunk)
            if len(body) > 4096:
                small[0] = False
    stop_after = plan.get("abort_at") if plan.get("abort") == "response" else None
    complete = conn.read_body(plan["method"], status, headers, sink, stop_after)
    if not complete:
        conn.close(reset=plan.get("abort_rst", False))
        result["outcome"] = "aborted"
        return result
    finish_body(result, digest, bytes(body) if small[0] else b"",
                result["hdr"].get("content-type", ""))
    result["outcome"] = "response"
    if plan.get("oversize") or plan.get("close") or (plan["upload"] is not None
                                                      and not result["upload_done"]):
        conn.close()
    return result


# --- HTTP/2 ---------------------------------------------------------------------------------------

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def probe_h2c(port, timeout=3.0):
    """(True, detail) when the listener answers an h2c prior-knowledge preface with SETTINGS."""
    try:
        sock = connect(port, timeout=timeout)
    except OSError as e:
        return False, f"connect failed: {e}"
    try:
        # The preface, then an empty SETTINGS frame (length 0, type 4, flags 0, stream 0).
        sock.sendall(H2_PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        data = b""
        deadline = time.monotonic() + timeout
        while len(data) < 9 and time.monotonic() < deadline:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        if len(data) >= 9 and data[3] == 0x04 and data[5:9] == b"\x00\x00\x00\x00":
            # A polite goodbye, so the probe connection is not an abort in viscount's eyes.
            sock.sendall(b"\x00\x00\x08\x07\x00\x00\x00\x00\x00" + b"\x00" * 8)
            return True, "SETTINGS received"
        return False, "answered " + repr(data[:60])
    except OSError as e:
        return False, f"{e}"
    finally:
        sock.close()


class H2Stream:
    def __init__(self, plan):
        self.plan = plan
        self.result = new_result(plan)
        self.sid = None
        self.upload = plan["upload"]
        self.pos = 0
        self.ended_upload = False
        self.digest = hashlib.sha256()
        self.small = bytearray()
        self.head = None
        self.started = time.monotonic()


class H2Connection:
    """One h2c connection running plans `concurrency` streams at a time.

    `run(plans, done)` sends them all (or until the connection dies), calling done(plan, result)
    as each ends, and returns the plans it could not start. A plan's abort resets its stream at
    the point named, or with `abort_conn` closes the whole connection there: every stream still
    open then ends as aborted too.
    """

    def __init__(self, port, source_ip=None, concurrency=4):
        self.port = port
        self.concurrency = concurrency
        self.sock = connect(port, source_ip)
        self.sock.setblocking(False)
        config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        self.conn = h2.connection.H2Connection(config=config)
        self.conn.local_settings = h2.settings.Settings(
            client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20,
                                         h2.settings.SettingCodes.ENABLE_PUSH: 0})
        self.conn.initiate_connection()
        self.conn.increment_flow_control_window(1 << 24)
        self.streams = {}
        self.dead = None  # why the connection can no longer be used
        self.goaway_last = None
        self._out = bytearray()
        self._in = bytearray()  # received bytes short of a whole frame
        self._flush()

    # --- socket ---

    def _flush(self):
        self._out += self.conn.data_to_send()
        while self._out and self.dead is None:
            try:
                sent = self.sock.send(self._out)
            except BlockingIOError:
                return  # the rest goes when the socket is writable
            except OSError as e:
                self._die(f"send: {e.strerror or e}")
                return
            del self._out[:sent]

    def _die(self, why, reset=False):
        if self.dead is None:
            self.dead = why
        if reset:
            hard_close(self.sock)
            return
        try:
            self.sock.close()
        except OSError:
            pass

    # --- streams ---

    def _start(self, plan):
        s = H2Stream(plan)
        s.sid = self.conn.get_next_available_stream_id()
        headers = [(":method", plan["method"]), (":scheme", "http"),
                   (":authority", f"127.0.0.1:{self.port}"), (":path", plan["path"]),
                   ("user-agent", "viscount-soak")]
        headers += [(k.lower(), v) for k, v in plan["headers"]]
        if s.upload is not None:
            headers.append(("content-length", str(len(s.upload))))
        self.conn.send_headers(s.sid, headers, end_stream=s.upload is None)
        s.result["wire"] = True
        s.ended_upload = s.upload is None
        if s.upload is not None:
            s.result["sent"] = 0
        self.streams[s.sid] = s

    def _pump_uploads(self):
        """Sends upload bytes as far as flow control and our own output buffer allow."""
        for s in list(self.streams.values()):
            if s.ended_upload:
                continue
            abort_at = s.plan.get("abort_at", -1) if s.plan.get("abort") == "body" else -1
            while s.pos < len(s.upload) and len(self._out) <= 4 * UPLOAD_SLICE:
                if 0 <= abort_at <= s.pos:
                    break
                window = min(self.conn.local_flow_control_window(s.sid),
                             self.conn.max_outbound_frame_size, UPLOAD_SLICE)
                if window <= 0:
                    break
                piece = s.upload[s.pos:s.pos + window]
                if abort_at > s.pos:
                    piece = piece[:abort_at - s.pos]
                self.conn.send_data(s.sid, bytes(piece))
                self._out += self.conn.data_to_send()
                s.pos += len(piece)
                s.result["sent"] = s.pos
            if 0 <= abort_at <= s.pos:
                self._abort(s)
            elif s.pos >= len(s.upload):
                self.conn.end_stream(s.sid)
                s.ended_upload = True
                s.result["upload_done"] = True
            if self.dead:
                return

    def _abort(self, s):
        """The plan's abort: reset this stream, or (abort_conn) drop the whole connection."""
        if s.plan.get("abort_conn"):
            self._die("aborted by the client", reset=s.plan.get("abort_rst", False))
            return
        try:
            self.conn.reset_stream(s.sid, h2.errors.ErrorCodes.CANCEL)
        except h2.exceptions.StreamClosedError:
            pass
        self._end(s, "aborted")

    def _end(self, s, outcome, detail=""):
        s.result["outcome"] = outcome
        s.result["t1"] = time.monotonic()
        if detail:
            s.result["detail"] = detail
        if outcome == "response":
            finish_body(s.result, s.digest, bytes(s.small) if len(s.small) <= 4096 else b"",
                        s.result["hdr"].get("content-type", ""))
        self.streams.pop(s.sid, None)
        self._done(s.plan, s.result)

    def _timed_aborts(self):
        now = time.monotonic()
        for s in list(self.streams.values()):
            abort = s.plan.get("abort")
            if abort == "wait" and s.head is None and s.ended_upload and \
                    now - s.started >= s.plan.get("abort_delay", 0.2):
                self._abort(s)
            elif now - s.started > CLIENT_TIMEOUT:
                try:
                    self.conn.reset_stream(s.sid, h2.errors.ErrorCodes.CANCEL)
                except h2.exceptions.StreamClosedError:
                    pass
                self._end(s, "timeout")
            if self.dead:
                return

    # --- events ---

    def _on_event(self, ev):
        s = self.streams.get(getattr(ev, "stream_id", None) or 0)
        if s:
            s.result["acked"] = True  # viscount has certainly seen this stream
        if isinstance(ev, h2.events.ResponseReceived) and s:
            s.head = ev.headers
            hdrs = [(k, v) for k, v in ev.headers if not k.startswith(":")]
            s.result["status"] = int(dict(ev.headers)[":status"])
            keep_headers(s.result, hdrs)
            if ev.stream_ended:
                self._end(s, "response")
        elif isinstance(ev, h2.events.DataReceived):
            self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            if not s:
                return
            s.digest.update(ev.data)
            s.result["body_len"] += len(ev.data)
            if len(s.small) <= 4096:
                s.small += ev.data
            if s.plan.get("abort") == "response" and \
                    s.result["body_len"] >= s.plan.get("abort_at", 0):
                self._abort(s)
            elif ev.stream_ended:
                self._end(s, "response")
        elif isinstance(ev, (h2.events.StreamEnded, h2.events.TrailersReceived)) and s:
            if isinstance(ev, h2.events.TrailersReceived) and not ev.stream_ended:
                return
            self._end(s, "response" if s.head is not None else "no_response",
                      "" if s.head is not None else "stream ended without a head")
        elif isinstance(ev, h2.events.StreamReset) and s:
            code = getattr(ev.error_code, "name", ev.error_code)
            self._end(s, "cut" if s.head is not None else "no_response", f"RST_STREAM {code}")
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.goaway_last = ev.last_stream_id
            code = getattr(ev.error_code, "name", ev.error_code)
            for sid, st in list(self.streams.items()):
                if ev.last_stream_id is not None and sid > ev.last_stream_id:
                    # Never processed (RFC 9113 section 6.8): as if never sent.
                    st.result["wire"] = False
                    self._end(st, "unsent", f"GOAWAY {code} above its last stream")
            if code != "NO_ERROR":
                self.dead = f"GOAWAY {code}"
            else:
                # python3-h2 4.1 treats any GOAWAY as the end of the connection and raises on
                # every later frame, but RFC 9113 section 6.8 lets streams up to last_stream_id
                # finish. Reopen its state machine so they can; no new stream is started.
                self.conn.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN

    def _receive(self, data):
        """Feeds whole frames to h2 one at a time, each one's events handled before the next.

        Fed in one piece, a GOAWAY followed by more frames makes python3-h2 raise on the first
        of them, and the GOAWAY's own event (its error code, its last stream id) is lost.
        """
        self._in += data
        while len(self._in) >= 9 and not self.dead:
            end = 9 + int.from_bytes(self._in[:3], "big")
            if len(self._in) < end:
                return
            frame = bytes(self._in[:end])
            del self._in[:end]
            try:
                events = self.conn.receive_data(frame)
            except h2.exceptions.ProtocolError as e:
                self._die(f"protocol error: {e!r}")
                return
            for ev in events:
                self._on_event(ev)
                if self.dead:
                    return

    # --- driver ---

    def run(self, plans, done):
        self._done = done
        queue = list(plans)
        queue.reverse()
        while (queue or self.streams) and not self.dead:
            while queue and len(self.streams) < self.concurrency and self.goaway_last is None:
                try:
                    self._start(queue.pop())
                except h2.exceptions.ProtocolError as e:
                    self.dead = f"cannot open a stream: {e}"
                    break
            self._pump_uploads()
            self._timed_aborts()
            self._flush()
            if self.dead:
                break
            if not self.streams and (not queue or self.goaway_last is not None):
                break
            try:
                want_write = [self.sock] if self._out else []
                readable, _, _ = select.select([self.sock], want_write, [], 0.05)
            except (OSError, ValueError):
                self._die("select failed")
                break
            if not readable:
                continue
            try:
                data = self.sock.recv(256 * 1024)
            except BlockingIOError:
                continue
            except OSError as e:
                self._die(f"recv: {e.strerror or e}")
                break
            if not data:
                self._die("closed by viscount")
                break
            self._receive(data)
        # Whatever is still open ends with the connection.
        aborted = self.dead == "aborted by the client"
        for s in list(self.streams.values()):
            if aborted:
                self._end(s, "aborted", "connection closed by the client")
            else:
                self._end(s, "cut" if s.head is not None else "no_response",
                          self.dead or "connection ended")
        unsent = list(reversed(queue))
        return unsent

    def close(self):
        if self.dead is None:
            try:
                self.conn.close_connection()
                self._flush()
            except h2.exceptions.ProtocolError:
                pass
        self._die("closed")
