"""Shared pieces of the adversarial suite: a raw-socket client that reads every response the proxy
sends (so a second, smuggled answer is seen), a test base that runs one viscount and one counting
upstream per module, and the table-driven case runner.

The viscount process helpers come from the end-to-end suite (tests/e2e/viscount_process.py).

    VISCOUNT_BIN        the binary under test (CTest sets it)
    VISCOUNT_SANITIZED  1 when the binary is built with ASan/UBSan (CTest sets it): memory
                        figures mean nothing then, and everything is slower
"""

import json
import os
import signal
import socket
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))

from viscount_process import Viscount, basic_config, to_yaml, viscount_bin  # noqa: E402

from raw_upstream import RawUpstream  # noqa: E402

SANITIZED = os.environ.get("VISCOUNT_SANITIZED", "0") == "1"
# Every socket operation of a case is bounded: a proxy that hangs fails the case, never the run.
CASE_TIMEOUT = 6.0
# After the expected answers, how long to keep listening for one more (a smuggled request's).
LINGER = 0.3

ERROR_CODES = {
    400: "bad_request", 408: "request_header_timeout", 413: "body_too_large",
    414: "uri_too_long", 417: "expectation_failed", 431: "headers_too_large",
    501: "not_implemented", 502: "upstream_protocol_error", 505: "version_not_supported",
}


# --- the client side ------------------------------------------------------------------------

class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # [(lower-case name, value)]
        self.body = body

    def header(self, name):
        values = [v for k, v in self.headers if k == name]
        return values[0] if values else None

    def count(self, name):
        return sum(1 for k, _ in self.headers if k == name)

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<{self.status} {self.headers} {self.body[:200]!r}>"


def _parse_response(buf, eof, head_request=False):
    """(Response, rest) for the first complete response in `buf`, or None."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = buf[:end].split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise AssertionError(f"not an HTTP/1.x response: {buf[:200]!r}")
    status = int(parts[1])
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers.append((name.decode("latin-1").lower(), value.strip().decode("latin-1")))
    rest = buf[end + 4:]
    resp = Response(status, headers, b"")
    if status < 200 or status in (204, 304) or head_request:
        return resp, rest
    te = resp.header("transfer-encoding")
    cl = resp.header("content-length")
    if te is not None:
        assert te == "chunked", f"response transfer-encoding {te!r}"
        body = b""
        pos = 0
        while True:
            nl = rest.find(b"\r\n", pos)
            if nl < 0:
                return None
            size = int(rest[pos:nl].split(b";")[0], 16)
            if size == 0:
                trailer_end = rest.find(b"\r\n\r\n", nl)
                if rest[nl + 2:nl + 4] == b"\r\n":
                    resp.body = body
                    return resp, rest[nl + 4:]
                if trailer_end < 0:
                    return None
                resp.body = body
                return resp, rest[trailer_end + 4:]
            if len(rest) < nl + 2 + size + 2:
                return None
            body += rest[nl + 2:nl + 2 + size]
            pos = nl + 2 + size + 2
    if cl is not None:
        n = int(cl)
        if len(rest) < n:
            return None
        resp.body = rest[:n]
        return resp, rest[n:]
    if not eof:
        return None  # delimited by the close
    resp.body = rest
    return resp, b""


class Result:
    def __init__(self):
        self.responses = []      # final responses, in order
        self.informational = []  # 1xx
        self.closed = False      # the proxy closed (EOF or reset)
        self.reset = False
        self.send_error = None
        self.leftover = b""      # bytes that were not (yet) a complete response
        self.elapsed = 0.0

    @property
    def first(self):
        return self.responses[0] if self.responses else None

    def __repr__(self):
        return (f"<responses={self.responses} 1xx={[r.status for r in self.informational]} "
                f"closed={self.closed} reset={self.reset} leftover={self.leftover[:200]!r}>")


def connect(port, timeout=CASE_TIMEOUT, source=None):
    """`source`: a loopback address to connect from (127.0.0.2 is outside a 127.0.0.1/32
    trusted_sources, so it is an untrusted client)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                    source_address=(source, 0) if source else None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_responses(sock, result, want, until_close, timeout=CASE_TIMEOUT, linger=LINGER,
                   head_request=False):
    """Reads into `result` until `want` final responses arrived and then, when `until_close`,
    until the proxy closes; otherwise for `linger` more seconds, in case another one follows."""
    start = time.monotonic()
    deadline = start + timeout
    buf = result.leftover
    eof = False
    while True:
        while True:
            parsed = _parse_response(buf, eof, head_request)
            if not parsed:
                break
            resp, buf = parsed
            (result.informational if resp.status < 200 else result.responses).append(resp)
        if eof:
            break
        now = time.monotonic()
        if len(result.responses) >= want and not until_close:
            deadline = min(deadline, now + linger)
            want = float("inf")  # from here on, anything more is extra
        if now >= deadline:
            break
        sock.settimeout(max(0.01, deadline - now))
        try:
            data = sock.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            result.reset = True
            data = b""
        if not data:
            eof = True
            result.closed = True
        buf += data
    result.leftover = buf
    result.elapsed = time.monotonic() - start
    return result


def exchange(port, payload, want=1, until_close=True, timeout=CASE_TIMEOUT, linger=LINGER,
             head_request=False, source=None):
    """Sends `payload` (bytes, or a list of (bytes, pause-seconds-before)) on a new connection
    and reads the answers."""
    result = Result()
    with connect(port, timeout, source) as sock:
        pieces = [(payload, 0)] if isinstance(payload, bytes) else payload
        for data, pause in pieces:
            if pause:
                time.sleep(pause)
            try:
                sock.sendall(data)
            except (BrokenPipeError, ConnectionResetError) as e:
                result.send_error = e  # the proxy answered and closed before reading it all
                break
        read_responses(sock, result, want, until_close, timeout, linger, head_request)
    return result


# --- one viscount and one counting upstream per module --------------------------------------

def adversarial_config(upstream_url, **overrides):
    """One worker (so a case's effects are over when its answer is), short timeouts, small
    limits, so that every limit is reached with a few KiB and no case waits long."""
    config = basic_config(upstream_url, workers=1, drain_timeout="2s")
    config["listeners"][0].update({
        "timeouts": {"request_headers": "3s", "idle": "30s"},
        "limits": {"max_request_headers_size": "8KiB", "max_request_body_size": "64KiB"},
    })
    config["upstreams"][0].update({
        "timeouts": {"connect": "1s", "request": "4s"},
        "retries": {"attempts": 0},
    })
    for key, value in overrides.items():
        if key in ("listener", "upstream"):
            section = config["listeners" if key == "listener" else "upstreams"][0]
            for k, v in value.items():
                section[k] = {**section.get(k, {}), **v} if isinstance(v, dict) else v
        else:
            config[key] = value
    return config


class ProxyTestCase(unittest.TestCase):
    """A module's viscount (VISCOUNT_BIN) in front of its RawUpstream.

    Subclasses set `handlers` (path prefix -> upstream handler) and `config_overrides`
    (see adversarial_config). Each test gets `self.mark`, the upstream's position before it.
    """

    handlers = {}
    on_accept = None
    config_overrides = {}

    @classmethod
    def setUpClass(cls):
        viscount_bin()
        cls.upstream = RawUpstream(cls.handlers, cls.on_accept)
        cls.addClassCleanup(cls.upstream.stop)
        cls._dir = tempfile.TemporaryDirectory(prefix="viscount-adversarial-")
        cls.addClassCleanup(cls._dir.cleanup)
        path = os.path.join(cls._dir.name, "viscount.yaml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(to_yaml(adversarial_config(cls.upstream.url, **cls.config_overrides)) + "\n")
        cls.proxy = Viscount(["--config", path])
        cls.addClassCleanup(cls.proxy.kill)
        cls.proxy.wait_started(timeout=20)
        cls.port = cls.proxy.listener_port

    @classmethod
    def tearDownClass(cls):
        # A clean exit after everything the module threw at it: no crash, no leak report (the
        # sanitizer build exits non-zero on a leak), the drain finished.
        if cls.proxy.running():
            cls.proxy.signal(signal.SIGTERM)
            code = cls.proxy.wait_exit(timeout=20)
            if code != 0:
                raise AssertionError(f"viscount exited with {code}\n{cls.proxy.diagnostics()}")
        else:
            raise AssertionError(f"viscount died during the module (exit={cls.proxy.proc.poll()})"
                                 f"\n{cls.proxy.diagnostics()}")

    def setUp(self):
        if not self.proxy.running():
            self.fail(f"viscount is not running\n{self.proxy.diagnostics()}")
        self.mark = self.upstream.mark()

    def tearDown(self):
        if not self.proxy.running():
            self.fail(f"viscount died in this test\n{self.proxy.diagnostics()}")

    # --- what the upstream saw --------------------------------------------------------------

    def upstream_since_mark(self, settle=True):
        if settle:
            self.upstream.settle()
        requests, garbage, _ = self.upstream.since(self.mark)
        self.assertEqual(garbage, [], "the upstream received bytes that are not a clean request")
        for req in requests:
            self.assertNotIn("smuggled", req.target, f"a smuggled request reached the upstream: "
                                                     f"{req}")
        return requests

    def assert_upstream_count(self, expected):
        requests = self.upstream_since_mark()
        self.assertEqual(len(requests), expected, f"upstream received {requests}")
        return requests

    # --- what the client saw ----------------------------------------------------------------

    def assert_error_reply(self, resp, status):
        """A local reply of viscount's: the status, the JSON body and the headers it promises."""
        self.assertIsNotNone(resp, "no response")
        statuses = status if isinstance(status, (set, frozenset, tuple)) else {status}
        self.assertIn(resp.status, statuses, f"unexpected answer {resp}")
        self.assertEqual(resp.header("content-type"), "application/json", resp)
        self.assertIsNotNone(resp.header("proxy-status"), resp)
        self.assertEqual(resp.count("x-request-id"), 1, resp)
        body = resp.json()
        self.assertEqual(body["status"], resp.status)
        if resp.status in ERROR_CODES and resp.status != 502:
            self.assertEqual(body["error"], ERROR_CODES[resp.status])
        self.assertEqual(body["request_id"], resp.header("x-request-id"))
        return body

    def assert_rejected(self, result, status, upstream=0):
        """One error reply, the connection closed after it, nothing (more) upstream."""
        self.assertEqual(len(result.responses), 1, f"expected exactly one answer: {result}")
        self.assert_error_reply(result.first, status)
        self.assertEqual(result.first.header("connection"), "close", result.first)
        self.assertTrue(result.closed, f"the proxy kept the connection open: {result}")
        self.assertEqual(result.leftover, b"", "bytes after the error reply")
        return self.assert_upstream_count(upstream)


class Case:
    """One hostile request and what must come of it.

    status:   the expected status (or set of acceptable ones) of the one answer
    upstream: how many requests the upstream may receive (0 for a rejection)
    closed:   the proxy must close the connection after its answer
    want:     how many final answers the client must get (1; a pipelined case may expect more)
    check:    optional check(test, result, upstream_requests) for what is specific to the case
    source:   the client's address (see connect)
    """

    def __init__(self, name, payload, status=400, upstream=None, closed=None, want=1,
                 check=None, doc="", source=None):
        self.name = name
        self.source = source
        self.payload = payload
        self.status = status
        ok = status == 200 if isinstance(status, int) else False
        self.upstream = upstream if upstream is not None else (1 if ok else 0)
        self.closed = closed if closed is not None else not ok
        self.want = want
        self.check = check
        self.doc = doc


def run_case(test, case):
    result = exchange(test.port, case.payload, want=case.want, until_close=case.closed,
                      source=case.source)
    if case.closed and case.status != 200 and case.want == 1:
        requests = test.assert_rejected(result, case.status, case.upstream)
    else:
        test.assertEqual(len(result.responses), case.want, f"answers: {result}")
        statuses = case.status if isinstance(case.status, (set, tuple)) else {case.status}
        test.assertIn(result.responses[-1].status, statuses, result)
        if case.closed:
            test.assertTrue(result.closed, f"the proxy kept the connection open: {result}")
        requests = test.assert_upstream_count(case.upstream)
    if case.check:
        case.check(test, result, requests)
    return result, requests


def add_cases(cls, cases):
    """One test method per case, so each is counted, named and run on its own."""
    for case in cases:
        name = "test_" + case.name
        if hasattr(cls, name):
            raise ValueError(f"duplicate case {case.name}")

        def method(self, case=case):
            run_case(self, case)
        method.__doc__ = case.doc or None
        setattr(cls, name, method)
    return cls


def vm_rss_kib(pid):
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS line")
