"""HTTP/2 from clients, against the real binary: h2c with prior knowledge and h2 over TLS (ALPN),
with curl, nghttp and Python's h2. Streams are independent requests (own ids, access-log line,
timeouts); bodies cross h2 -> HTTP/1.1 byte for byte; malformed requests reset only their stream;
floods (rapid reset, CONTINUATION, PING, SETTINGS) and a client that never reads close the
connection while the proxy keeps serving others with flat memory."""

import hashlib
import os
import select
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time
import unittest

from h2_client import H2Client
from tls_certs import make_ca, make_leaf
from viscount_process import (SLACK, Viscount, basic_config, header_values, pattern_bytes,
                              start_echo_upstream, viscount_bin)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# Under ASan (CTest sets this) RSS means nothing: freed memory sits in quarantine.
SANITIZED = os.environ.get("VISCOUNT_SANITIZED", "0") == "1"


def frame(kind, flags, stream_id, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + \
        struct.pack(">I", stream_id) + payload


def frame_types(data):
    """The types of the complete frames in `data` (server output after its preface)."""
    types, i = [], 0
    while i + 9 <= len(data):
        length = int.from_bytes(data[i:i + 3], "big")
        types.append(data[i + 3])
        i += 9 + length
    return types


def assert_rss_growth_below(test, grown_kib, limit_kib, what):
    if not SANITIZED:
        test.assertLess(grown_kib, limit_kib, f"RSS grew by {grown_kib} KiB {what}")


def rss_kib(pid):
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def curl(*args):
    return subprocess.run(["curl", "-sS", "--max-time", "20", *args], capture_output=True,
                          timeout=30)


class Http2Test(unittest.TestCase):

    def setUp(self):
        viscount_bin()
        self.upstream = start_echo_upstream(self)

    def start(self, **overrides):
        self.proxy = Viscount.with_config(self, basic_config(self.upstream.url, **overrides))
        return self.proxy

    def client(self, **kwargs):
        c = H2Client(self.proxy.listener_port, **kwargs)
        self.addCleanup(c.close)
        return c

    def assert_still_serving(self):
        c = self.client()
        self.assertEqual(c.get("/still-serving").status, 200)
        r = curl("-o", "/dev/null", "-w", "%{http_code}",
                 f"http://127.0.0.1:{self.proxy.listener_port}/h1-still-serving")
        self.assertEqual(r.stdout, b"200")

    def test_h2c_prior_knowledge_and_http1_share_the_port(self):
        self.start()
        base = f"http://127.0.0.1:{self.proxy.listener_port}"
        r = curl("--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_code} %{http_version}",
                 "-H", "x-request-id: h2c-curl", f"{base}/a")
        self.assertEqual(r.stdout, b"200 2", r.stderr)
        r = curl("-o", "/dev/null", "-w", "%{http_code} %{http_version}", "-H",
                 "x-request-id: h1-curl", f"{base}/b")
        self.assertEqual(r.stdout, b"200 1.1", r.stderr)
        self.assertEqual(self.proxy.wait_access_log_id("h2c-curl")["protocol"], "HTTP/2")
        self.assertEqual(self.proxy.wait_access_log_id("h1-curl")["protocol"], "HTTP/1.1")
        # nghttp, another client implementation, and the upstream hears HTTP/1.1 with a Host.
        out = subprocess.run(["nghttp", "-n", "-s", "-H", "x-request-id: nghttp-1", f"{base}/c"],
                             capture_output=True, timeout=20)
        self.assertEqual(out.returncode, 0, out.stderr)
        rec = self.upstream.wait_request(lambda q: "nghttp-1" in header_values(q, "x-request-id"))
        self.assertEqual(rec["version"], "HTTP/1.1")
        self.assertEqual(header_values(rec, "host"), [f"127.0.0.1:{self.proxy.listener_port}"])

    def test_hundred_multiplexed_streams_each_get_their_own_ids(self):
        self.start()
        c = self.client()
        sids = [c.request("GET", f"/stream/{i}") for i in range(100)]
        responses = c.wait(*sids, timeout=30)
        ids = set()
        mismatches = 0
        for sid, r in zip(sids, responses):
            self.assertEqual(r.status, 200)
            echoed = r.header("x-request-id")
            import json
            seen = [v for k, v in json.loads(r.data)["headers"] if k == "x-request-id"]
            mismatches += seen != [echoed]
            ids.add(echoed)
        self.assertEqual(mismatches, 0)
        self.assertEqual(len(ids), 100, "request ids were shared between streams")
        lines = [self.proxy.wait_access_log_id(i) for i in ids]
        self.assertTrue(all(line["protocol"] == "HTTP/2" for line in lines))
        self.assertEqual(len({line["client_address"] for line in lines}), 1)
        self.assertEqual({line["path"] for line in lines}, {f"/stream/{i}" for i in range(100)})

    def test_large_bodies_cross_to_http1_byte_for_byte(self):
        self.start()
        c = self.client()
        size = 6 * 1024 * 1024 + 7
        upload = os.urandom(size)
        sid = c.request("POST", "/upload", [("content-type", "application/octet-stream")],
                        body=upload)
        r = c.wait(sid, timeout=60)[0]
        self.assertEqual(r.status, 200, bytes(r.data[:200]))
        import json
        echo = json.loads(r.data)
        self.assertEqual(echo["body_bytes"], size)
        self.assertEqual(echo["body_sha256"], hashlib.sha256(upload).hexdigest())
        r = c.get(f"/bytes?n={size}", timeout=60)
        self.assertEqual(r.status, 200)
        self.assertEqual(int(r.header("content-length")), size)
        self.assertTrue(bytes(r.data) == pattern_bytes(size), "downloaded body differs")
        line = self.proxy.wait_access_log(lambda o: o["path"] == "/upload")
        self.assertEqual(line["bytes_in"], size)

    def test_head_and_bodiless_statuses(self):
        self.start()
        c = self.client()
        head = c.wait(c.request("HEAD", "/bytes?n=1000"))[0]
        self.assertEqual((head.status, head.header("content-length"), bytes(head.data)),
                         (200, "1000", b""))
        no_content = c.get("/x?status=204")
        self.assertEqual((no_content.status, no_content.header("content-length")), (204, None))
        self.assertEqual(bytes(no_content.data), b"")
        self.assertEqual(c.get("/x?status=404").status, 404)

    def test_a_slow_stream_times_out_alone(self):
        self.start(upstreams=[{"name": "app", "url": self.upstream.url,
                               "timeouts": {"request": "1s"}}])
        c = self.client()
        slow = c.request("GET", "/hang", [("x-request-id", "h2-hang")])
        fast = [c.request("GET", f"/fast/{i}") for i in range(5)]
        for r in c.wait(*fast):
            self.assertEqual(r.status, 200)
        self.assertFalse(c.responses[slow].done)
        r = c.wait(slow, timeout=10)[0]
        self.assertEqual(r.status, 504)
        self.assertEqual(self.proxy.wait_access_log_id("h2-hang")["error"], "upstream_timeout")

    def test_malformed_requests_reset_only_their_stream(self):
        self.start()
        c = self.client(validate=False)
        # A connection-specific field is malformed in HTTP/2 (RFC 9113 section 8.2.2).
        bad = c.request("GET", "/bad", [("connection", "keep-alive"),
                                        ("x-request-id", "h2-bad-1")])
        r = c.wait(bad)[0]
        self.assertEqual(r.reset, 1)  # PROTOCOL_ERROR
        # A value with a line break would be a header injection on HTTP/1.
        bad2 = c.request("GET", "/bad2", [("x-injected", "a\r\nx-evil: 1")])
        self.assertEqual(c.wait(bad2)[0].reset, 1)
        # CONNECT is not proxied.
        sid = c.conn.get_next_available_stream_id()
        c.responses[sid] = type(c.responses[bad])()
        c.conn.send_headers(sid, [(":method", "CONNECT"), (":authority", "example.com:443")])
        c.flush()
        self.assertEqual(c.wait(sid)[0].status, 501)
        self.assertEqual(c.get("/fine").status, 200)  # the connection is still good
        self.assertFalse(any(q["path"].startswith("/bad") for q in self.upstream.requests))
        line = self.proxy.wait_access_log(lambda o: o["path"] == "/bad" or o["path"] == "")
        self.assertEqual(line["protocol"], "HTTP/2")

    def test_header_limits_answer_431(self):
        self.start()
        c = self.client()
        big = c.request("GET", "/big-header", [("x-big", "v" * 70000)])
        self.assertEqual(c.wait(big)[0].status, 431)
        many = c.request("GET", "/many-headers", [(f"x-h{i}", "1") for i in range(150)])
        self.assertEqual(c.wait(many)[0].status, 431)
        self.assertEqual(c.get("/after").status, 200)
        self.assertEqual(len([q for q in self.upstream.requests if q["path"] != "/after"]), 0)

    def test_large_response_heads_pass_whatever_the_request_limits(self):
        # The listener's limits bound what clients send; an upstream's response head may be as
        # large as viscount accepts from upstreams (64 KiB), also on a listener with small limits.
        self.start(listeners=[{"name": "inbound", "address": "127.0.0.1:0", "upstream": "app",
                               "limits": {"max_request_headers_size": "8KiB"}}])
        c = self.client()
        r = c.get("/x?header_bytes=40000")
        self.assertEqual(r.status, 200)
        self.assertEqual(len([h for h in r.headers if h[0].startswith("x-large-")]), 40)
        self.assertEqual(c.get("/after").status, 200)

    def test_request_body_limit_answers_413(self):
        self.start(listeners=[{"name": "inbound", "address": "127.0.0.1:0", "upstream": "app",
                               "limits": {"max_request_body_size": 1000}}])
        c = self.client()
        sid = c.request("POST", "/too-big", body=b"x" * 5000)
        self.assertEqual(c.wait(sid)[0].status, 413)
        # Without a content-length the limit is found while the body streams.
        sid = c.request("POST", "/slow?ms=2000", end=False)
        c.send_body(sid, b"y" * 5000, end=True)
        self.assertEqual(c.wait(sid)[0].status, 413)
        self.assertEqual(c.get("/after").status, 200)

    def test_rapid_reset_closes_the_connection_and_memory_stays_flat(self):
        self.start()
        pid = self.proxy.proc.pid
        self.assertEqual(self.client().get("/warm").status, 200)
        before = rss_kib(pid)
        for _ in range(3):
            c = self.client()
            for _ in range(5000):
                sid = c.conn.get_next_available_stream_id()
                c.conn.send_headers(sid, [(":method", "GET"), (":path", "/reset"),
                                          (":scheme", "http"), (":authority", "localhost")])
                c.conn.reset_stream(sid)
                try:
                    c.flush()
                except (BrokenPipeError, ConnectionResetError):
                    break
            goaway = c.wait_closed(timeout=20)
            self.assertIsNotNone(goaway, "no GOAWAY before the close")
        self.assert_still_serving()
        assert_rss_growth_below(self, rss_kib(pid) - before, 16 * 1024, "under rapid reset")

    def continuation_flood(self, flood=2000):
        """Sends a HEADERS frame without END_HEADERS, then CONTINUATION frames that never end it,
        until the proxy closes; (frame types it sent back, frames sent, closed)."""
        self.start()
        s = socket.create_connection(("127.0.0.1", self.proxy.listener_port), timeout=10)
        self.addCleanup(s.close)
        block = bytes([0x82, 0x84, 0x86]) + b"\x41\x09localhost"  # GET / http, :authority
        s.sendall(PREFACE + frame(4, 0, 0) + frame(1, 0x01, 1, block))
        # One frame at a time, reading whatever comes back in between: sent all at once, the
        # flood would still sit unread in the proxy's socket when it closes, the close would be
        # a reset, and the reset would throw away what the proxy said -- nothing to check.
        data, closed, sent = b"", False, 0
        deadline = time.monotonic() + 10 * SLACK
        while not closed and time.monotonic() < deadline:
            if sent < flood:
                try:
                    s.sendall(frame(9, 0, 1, b"\x40\x01a\x01b"))
                    sent += 1
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
                    break
            readable, _, _ = select.select([s], [], [], 0.005 if sent < flood else 0.1)
            if readable:
                try:
                    chunk = s.recv(65536)
                except ConnectionResetError:
                    closed = True
                    break
                closed = not chunk
                data += chunk
        return frame_types(data), sent, closed

    def test_continuation_flood_closes_the_connection(self):
        frames, sent, closed = self.continuation_flood(flood=2000)
        self.assertTrue(closed, f"the connection stayed open after {sent} CONTINUATION frames")
        self.assertLess(sent, 2000, "the proxy took the whole flood before closing")
        self.assertFalse(any(q["path"] == "/" for q in self.upstream.requests))
        self.assert_still_serving()

    def test_a_header_block_of_eight_continuations_is_served(self):
        # The most nghttp2 accepts: the flood defence must refuse only what comes after.
        self.start()
        s = socket.create_connection(("127.0.0.1", self.proxy.listener_port), timeout=10)
        self.addCleanup(s.close)
        block = bytes([0x82, 0x84, 0x86]) + b"\x41\x09localhost"  # GET / http, :authority
        out = PREFACE + frame(4, 0, 0) + frame(1, 0x01, 1, block)
        out += frame(9, 0, 1, b"\x40\x01a\x01b") * 7 + frame(9, 0x04, 1, b"\x40\x01c\x01d")
        s.sendall(out)
        data = b""
        deadline = time.monotonic() + 10 * SLACK
        while 1 not in frame_types(data) and time.monotonic() < deadline:
            readable, _, _ = select.select([s], [], [], 0.1)
            if readable:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        self.assertIn(1, frame_types(data), "no response HEADERS for the 8-CONTINUATION block")
        self.assertNotIn(7, frame_types(data), "a GOAWAY for a header block nghttp2 accepts")
        self.assertTrue(any(q["path"] == "/" for q in self.upstream.requests))

    def test_continuation_flood_gets_a_goaway_before_the_close(self):
        # RFC 9113 section 5.4.1: a connection error SHOULD be announced with GOAWAY, so the
        # client can tell a refused flood from a network failure.
        frames, sent, closed = self.continuation_flood(flood=2000)
        self.assertTrue(closed, f"the connection stayed open after {sent} CONTINUATION frames")
        self.assertIn(7, frames, f"no GOAWAY before the close after {sent} CONTINUATION "
                                 f"frames; frame types received: {frames}")

    def test_ping_and_settings_floods_close_the_connection(self):
        self.start()
        pid = self.proxy.proc.pid
        self.assertEqual(self.client().get("/warm").status, 200)
        before = rss_kib(pid)
        for flood in (frame(6, 0, 0, b"12345678"), frame(4, 0, 0, b"\x00\x03\x00\x00\x00\x64")):
            s = socket.create_connection(("127.0.0.1", self.proxy.listener_port), timeout=10)
            self.addCleanup(s.close)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # we never read
            start = time.monotonic()
            closed = False
            try:
                s.sendall(PREFACE + frame(4, 0, 0))
                while time.monotonic() - start < 20:
                    s.sendall(flood * 1000)
            except (BrokenPipeError, ConnectionResetError):
                closed = True
            self.assertTrue(closed, "the flood was accepted for 20 s")
        self.assert_still_serving()
        assert_rss_growth_below(self, rss_kib(pid) - before, 16 * 1024, "under the floods")

    def test_a_client_that_never_reads_is_closed_and_memory_stays_flat(self):
        self.start(listeners=[{"name": "inbound", "address": "127.0.0.1:0", "upstream": "app",
                               "timeouts": {"idle": "2s"}}])
        pid = self.proxy.proc.pid
        self.assertEqual(self.client().get("/warm").status, 200)
        before = rss_kib(pid)
        c = self.client()
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        for i in range(20):
            c.request("GET", f"/bytes?n={8 * 1024 * 1024}", [("x-request-id", f"no-read-{i}")])
        time.sleep(1.0)
        peak = rss_kib(pid) - before
        # 20 streams of 8 MiB would be 160 MiB if buffered; watermarks keep it to a few MiB.
        assert_rss_growth_below(self, peak, 16 * 1024, "for a client that never reads")
        line = self.proxy.wait_access_log_id("no-read-0", timeout=15)
        self.assertEqual(line["error"], "client_timeout")
        self.assertLess(line["bytes_out"], 8 * 1024 * 1024)
        self.assert_still_serving()

    def test_drain_sends_goaway_and_finishes_the_stream_in_flight(self):
        self.start(drain_timeout="10s")
        # nghttp, because Python's h2 treats the first (graceful) GOAWAY as the end.
        client = subprocess.Popen(
            ["nghttp", "-nv", "-H", "x-request-id: h2-drain",
             f"http://127.0.0.1:{self.proxy.listener_port}/slow?ms=1000"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.addCleanup(client.kill)
        self.upstream.wait_request(lambda q: q["path"] == "/slow")
        self.proxy.signal(signal.SIGTERM)
        out, _ = client.communicate(timeout=15)
        self.assertEqual(client.returncode, 0, out.decode(errors="replace"))
        text = out.decode(errors="replace")
        self.assertIn(":status: 200", text)
        self.assertIn("recv GOAWAY frame", text)
        self.assertEqual(self.proxy.wait_access_log_id("h2-drain")["status"], 200)
        self.assertEqual(self.proxy.wait_exit(timeout=15), 0)


class Http2TlsTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        viscount_bin()
        cls.dir = tempfile.mkdtemp(prefix="viscount-h2tls-")
        make_ca(cls.dir, "ca")
        make_leaf(cls.dir, "ca", "server", "localhost", server=True)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def start(self, http2=True):
        self.upstream = start_echo_upstream(self)
        config = basic_config(self.upstream.url)
        config["listeners"][0]["http2"] = http2
        config["listeners"][0]["tls"] = {"certificate": os.path.join(self.dir, "server.crt"),
                                         "private_key": os.path.join(self.dir, "server.key")}
        return Viscount.with_config(self, config)

    def context(self):
        return ssl.create_default_context(cafile=os.path.join(self.dir, "ca.crt"))

    def test_h2_over_tls_with_alpn(self):
        proxy = self.start()
        c = H2Client(proxy.listener_port, ssl_context=self.context())
        self.addCleanup(c.close)
        sids = [c.request("GET", f"/tls/{i}", [("x-request-id", f"h2-tls-{i}")])
                for i in range(10)]
        for r in c.wait(*sids):
            self.assertEqual(r.status, 200)
        line = proxy.wait_access_log_id("h2-tls-3")
        self.assertEqual(line["protocol"], "HTTP/2")
        self.assertEqual(line["tls_version"], "TLSv1.3")
        rec = self.upstream.wait_request(lambda q: "h2-tls-3" in header_values(q, "x-request-id"))
        self.assertEqual(header_values(rec, "x-forwarded-proto"), ["https"])
        r = curl("--http2", "--cacert", os.path.join(self.dir, "ca.crt"), "-o", "/dev/null", "-w",
                 "%{http_code} %{http_version}", "--resolve",
                 f"localhost:{proxy.listener_port}:127.0.0.1",
                 f"https://localhost:{proxy.listener_port}/curl")
        self.assertEqual(r.stdout, b"200 2", r.stderr)
        # A plaintext client on the TLS port fails its handshake: counted, never a request.
        with socket.create_connection(("127.0.0.1", proxy.listener_port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            try:
                while s.recv(4096):
                    pass
            except ConnectionResetError:
                pass
        metrics = proxy.admin_get("/metrics")[2].decode()
        self.assertIn('viscount_requests_by_protocol_total{protocol="HTTP/2"} 11', metrics)
        self.assertIn('viscount_tls_requests_total{tls_version="TLSv1.3",'
                      'client_cert_verified="false"} 11', metrics)
        self.assertIn('viscount_rejected_total{reason="tls_handshake"} 1', metrics)

    def test_http2_off_offers_only_http11(self):
        proxy = self.start(http2=False)
        ctx = self.context()
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        with socket.create_connection(("127.0.0.1", proxy.listener_port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                self.assertEqual(tls.selected_alpn_protocol(), "http/1.1")
        r = curl("--http2", "--cacert", os.path.join(self.dir, "ca.crt"), "-o", "/dev/null", "-w",
                 "%{http_code} %{http_version}", "--resolve",
                 f"localhost:{proxy.listener_port}:127.0.0.1",
                 f"https://localhost:{proxy.listener_port}/curl")
        self.assertEqual(r.stdout, b"200 1.1", r.stderr)


class Http2OffTest(unittest.TestCase):

    def test_cleartext_preface_is_refused_when_http2_is_off(self):
        viscount_bin()
        upstream = start_echo_upstream(self)
        config = basic_config(upstream.url)
        config["listeners"][0]["http2"] = False
        proxy = Viscount.with_config(self, config)
        r = curl("--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_code}",
                 f"http://127.0.0.1:{proxy.listener_port}/")
        self.assertNotEqual(r.stdout, b"200")
        self.assertEqual(upstream.requests, [])


if __name__ == "__main__":
    unittest.main()
