"""A raw-socket HTTP/1.1 upstream for the adversarial suite: it counts every connection and every
request it parses, per connection, so a test can prove that nothing smuggled reached it and that
a connection it poisoned was never used again.

It parses what viscount sends strictly (CRLF lines, Content-Length or chunked bodies, nothing
else). Anything it cannot parse is recorded in `garbage` and fails the tests that look at it: a
request the proxy forwarded in a shape the upstream does not expect is itself a finding.

Responses come from `handlers`, keyed by path prefix; a handler gets the request and the
connection's socket and writes whatever it wants (a hostile upstream), returning False to close.
"""

import json
import socket
import threading
import time


class ReceivedRequest:
    def __init__(self, conn_id, index, method, target, version, headers, body):
        self.conn_id = conn_id    # which upstream connection (1, 2, ... in accept order)
        self.index = index        # 0 for the first request on its connection
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers    # [(lower-case name, value)] in order, every copy
        self.body = body
        self.trailers = []        # [(lower-case name, value)] after a chunked body

    def values(self, name):
        return [v for k, v in self.headers if k == name]

    def __repr__(self):
        return (f"<{self.method} {self.target} {self.version} conn={self.conn_id}#{self.index}"
                f" headers={self.headers} body={self.body[:60]!r}>")


class _ParseError(Exception):
    pass


class _Reader:
    """Buffered reads from one socket; raises EOFError when the peer closes."""

    def __init__(self, sock, owner):
        self.sock = sock
        self.owner = owner
        self.buf = b""

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        self.owner.touch()
        self.buf += data

    def line(self, limit=1 << 20):
        while b"\r\n" not in self.buf:
            if len(self.buf) > limit:
                raise _ParseError("line too long")
            self._fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        if b"\n" in line or b"\r" in line:
            raise _ParseError(f"bare CR or LF in {line[:80]!r}")
        return line

    def exactly(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data


def _is_token(s):
    return bool(s) and all(33 <= c < 127 and chr(c) not in '"(),/:;<=>?@[\\]{}' for c in s)


def _read_request(reader, conn_id, index):
    line = reader.line()
    parts = line.split(b" ")
    if len(parts) != 3 or not _is_token(parts[0]) or parts[2] not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise _ParseError(f"bad request line {line[:200]!r}")
    headers = []
    while True:
        h = reader.line()
        if not h:
            break
        name, colon, value = h.partition(b":")
        if not colon or not _is_token(name):
            raise _ParseError(f"bad header line {h[:200]!r}")
        if any(c < 32 and c != 9 or c == 127 for c in value):
            raise _ParseError(f"control byte in header value {h[:200]!r}")
        headers.append((name.decode("latin-1").lower(), value.strip(b" \t").decode("latin-1")))
    names = [k for k, _ in headers]
    if names.count("content-length") > 1 or names.count("transfer-encoding") > 1:
        raise _ParseError(f"repeated framing header in {headers}")
    if names.count("host") != 1:
        raise _ParseError(f"{names.count('host')} Host headers in an HTTP/1.1 request")
    te = [v for k, v in headers if k == "transfer-encoding"]
    cl = [v for k, v in headers if k == "content-length"]
    if te and cl:
        raise _ParseError("Content-Length and Transfer-Encoding together")
    body = b""
    trailers = []
    if te:
        if te != ["chunked"]:
            raise _ParseError(f"transfer-encoding {te}")
        while True:
            size_line = reader.line()
            size_text = size_line.split(b";", 1)[0]
            if not size_text or any(chr(c) not in "0123456789abcdefABCDEF" for c in size_text):
                raise _ParseError(f"bad chunk size {size_line[:80]!r}")
            size = int(size_text, 16)
            if size == 0:
                while True:
                    t = reader.line()
                    if not t:
                        break
                    name, _, value = t.partition(b":")
                    trailers.append((name.decode("latin-1").lower(),
                                     value.strip(b" \t").decode("latin-1")))
                break
            body += reader.exactly(size)
            if reader.exactly(2) != b"\r\n":
                raise _ParseError("chunk data not followed by CRLF")
    elif cl:
        if not cl[0].isdigit():
            raise _ParseError(f"content-length {cl}")
        body = reader.exactly(int(cl[0]))
    req = ReceivedRequest(conn_id, index, parts[0].decode(), parts[1].decode("latin-1"),
                          parts[2].decode(), headers, body)
    req.trailers = trailers
    return req


def echo_response(req, extra_headers=(), status=200):
    """The default answer: 200 with a small JSON description of the request."""
    payload = json.dumps({"method": req.method, "target": req.target, "conn": req.conn_id,
                          "index": req.index, "body_bytes": len(req.body)}).encode()
    head = [f"HTTP/1.1 {status} OK", "content-type: application/json",
            f"content-length: {len(payload)}", *extra_headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + payload


def _default_handler(req, sock):
    sock.sendall(echo_response(req))
    return True


class RawUpstream:
    """Listens on 127.0.0.1:0; one thread per connection."""

    def __init__(self, handlers=None, on_accept=None):
        self.handlers = dict(handlers or {})
        self.on_accept = on_accept    # on_accept(conn_id, sock) before the first read
        self.requests = []            # every request parsed, in arrival order
        self.garbage = []             # (conn_id, reason) for input that did not parse
        self.connections = 0
        self.last_activity = time.monotonic()
        self._lock = threading.Condition()
        self._socks = set()
        self._stopped = False
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.port = self.listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, name="raw-upstream",
                                        daemon=True)
        self._thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def touch(self):
        self.last_activity = time.monotonic()

    def _accept_loop(self):
        while not self._stopped:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self.connections += 1
                conn_id = self.connections
                self._socks.add(sock)
                self.touch()
            threading.Thread(target=self._serve, args=(sock, conn_id), daemon=True,
                             name=f"raw-upstream-{conn_id}").start()

    def _handler_for(self, target):
        best = None
        for prefix, handler in self.handlers.items():
            if target.startswith(prefix) and (best is None or len(prefix) > len(best[0])):
                best = (prefix, handler)
        return best[1] if best else _default_handler

    def _serve(self, sock, conn_id):
        reader = _Reader(sock, self)
        try:
            if self.on_accept and self.on_accept(conn_id, sock) is False:
                return
            index = 0
            while True:
                try:
                    req = _read_request(reader, conn_id, index)
                except _ParseError as e:
                    with self._lock:
                        self.garbage.append((conn_id, str(e)))
                    return
                with self._lock:
                    self.requests.append(req)
                    self.touch()
                    self._lock.notify_all()
                index += 1
                if not self._handler_for(req.target)(req, sock):
                    return
        except (EOFError, OSError):
            return
        finally:
            with self._lock:
                self._socks.discard(sock)
            try:
                sock.close()
            except OSError:
                pass

    # --- for tests ---------------------------------------------------------------------------

    def mark(self):
        """The position to pass to since(): what arrives after this call."""
        with self._lock:
            return (len(self.requests), len(self.garbage), self.connections)

    def since(self, mark):
        with self._lock:
            return self.requests[mark[0]:], self.garbage[mark[1]:], self.connections - mark[2]

    def settle(self, quiet=0.15, limit=3.0):
        """Waits until nothing has arrived for `quiet` seconds (bounded by `limit`)."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            idle = time.monotonic() - self.last_activity
            if idle >= quiet:
                return
            time.sleep(quiet - idle + 0.01)

    def wait_requests(self, mark, count, timeout=5.0):
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.requests) - mark[0] < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._lock.wait(remaining)
            return self.requests[mark[0]:]

    def stop(self):
        self._stopped = True
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        except OSError:
            pass
        self._thread.join(2)
        self.listener.close()
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
