"""HTTP/2 towards the upstream, against the real binary and a real HTTP/2 server (h2_upstream.py):
h2c:// with prior knowledge and https:// with ALPN h2; HTTP/1 and HTTP/2 clients translated
byte for byte, trailers, many requests multiplexed on few connections with their own ids, the
peer's SETTINGS_MAX_CONCURRENT_STREAMS, GOAWAY under load, RST_STREAM and malformed responses,
https:// upstreams that speak only HTTP/1.1, certificate verification, and flow control towards
a client that reads slowly."""

import concurrent.futures
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import time
import unittest

import httpx

from h2_client import H2Client
from h2_upstream import H2Upstream, h2_tls_context, start_h2_upstream
from tls_certs import make_ca, make_leaf
from viscount_process import (Viscount, basic_config, http_get, pattern_bytes,
                              start_echo_upstream, viscount_bin, wait_until)

MiB = 1024 * 1024


def rss_kib(pid):
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


# An ASan build (CTest says so): its freed-memory quarantine makes RSS meaningless.
SANITIZED = os.environ.get("VISCOUNT_SANITIZED", "0") == "1"


def proxy_config(upstream_url, workers=1, **upstream):
    config = basic_config(upstream_url, workers=workers)
    config["listeners"][0]["limits"] = {"max_request_body_size": 0}
    config["upstreams"][0].update(upstream)
    return config


def header(headers, name):
    """The value of header `name` in an upstream record's [name, value] pairs."""
    values = [v for k, v in headers if k == name]
    return values[0] if len(values) == 1 else values


def parallel(n, fn):
    with concurrent.futures.ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(fn, range(n)))


class H2cUpstreamTest(unittest.TestCase):

    def setUp(self):
        viscount_bin()

    def start(self, upstream, workers=1, **upstream_settings):
        url = upstream if isinstance(upstream, str) else upstream.url
        self.proxy = Viscount.with_config(self, proxy_config(url, workers, **upstream_settings))
        self.base = f"http://127.0.0.1:{self.proxy.listener_port}"
        return self.proxy

    def test_http1_client_bodies_both_ways_are_byte_exact(self):
        upstream = start_h2_upstream(self)
        proxy = self.start(upstream)
        size = 5 * MiB + 7
        upload = os.urandom(size)
        with httpx.Client(timeout=30, base_url=self.base) as c:
            r = c.get(f"/bytes?n={size}", headers={"x-request-id": "get-cl"})
            self.assertEqual(r.status_code, 200)
            self.assertEqual(r.headers["content-length"], str(size))
            self.assertTrue(r.content == pattern_bytes(size), "GET body differs")
            # No content-length from the upstream: chunked to the HTTP/1.1 client.
            r = c.get(f"/bytes?n={size}&cl=0")
            self.assertEqual(r.headers.get("transfer-encoding"), "chunked")
            self.assertTrue(r.content == pattern_bytes(size), "chunked GET body differs")
            r = c.post("/echo", content=upload, headers={"x-request-id": "post-cl"})
            self.assertEqual(r.status_code, 200)
            echo = json.loads(r.content)
            self.assertEqual(echo["body_bytes"], size)
            self.assertEqual(echo["body_sha256"], hashlib.sha256(upload).hexdigest())
            self.assertEqual(header(echo["headers"], "content-length"), str(size))
            self.assertEqual((echo["method"], echo["scheme"], echo["path"]), ("POST", "http", "/echo"))
            # A chunked request becomes DATA frames without a content-length.
            chunks = (upload[i:i + 65536] for i in range(0, size, 65536))
            r = c.post("/echo", content=chunks)
            echo = json.loads(r.content)
            self.assertEqual(echo["body_sha256"], hashlib.sha256(upload).hexdigest())
            self.assertEqual(header(echo["headers"], "content-length"), [])
            self.assertEqual(header(echo["headers"], "transfer-encoding"), [])
            r = c.post("/echo-body", content=upload)
            self.assertEqual(len(r.content), size)
            self.assertTrue(r.content == upload, "echoed body differs")
        line = proxy.wait_access_log_id("post-cl")
        self.assertEqual((line["status"], line["error"], line["attempts"]), (200, None, 1))
        self.assertEqual(line["upstream_address"], f"127.0.0.1:{upstream.port}")
        self.assertEqual(line["bytes_in"], size)
        self.assertIsNotNone(line["upstream_ms"])
        self.assertEqual(proxy.wait_access_log_id("get-cl")["bytes_out"], size)
        self.assertEqual(len(upstream.connection_stats()), 1, "one connection served them all")

    def test_request_head_is_translated_without_hop_by_hop_headers(self):
        upstream = start_h2_upstream(self)
        self.start(upstream)
        status, headers, body = http_get(
            self.proxy.listener_port, "/echo?q=1", method="GET",
            headers={"Connection": "keep-alive, X-Hop", "X-Hop": "1", "Keep-Alive": "5",
                     "TE": "trailers", "Upgrade": "websocket", "X-Mixed-Case": "Value",
                     "Host": "api.example:8443", "x-request-id": "translated"})
        self.assertEqual(status, 200)
        echo = json.loads(body)
        names = [k for k, _ in echo["headers"]]
        for name in ("connection", "keep-alive", "upgrade", "x-hop", "host",
                     "transfer-encoding", "proxy-connection"):
            self.assertNotIn(name, names)
        # TE: trailers is the one connection-specific field HTTP/2 keeps (gRPC servers on gRPC's
        # C core refuse requests without it); other codings never pass.
        self.assertEqual(header(echo["headers"], "te"), "trailers")
        status, _, body = http_get(self.proxy.listener_port, "/echo?q=2",
                                   headers={"TE": "gzip, trailers"})
        self.assertEqual((status, header(json.loads(body)["headers"], "te")), (200, "trailers"))
        status, _, body = http_get(self.proxy.listener_port, "/echo?q=3", headers={"TE": "gzip"})
        self.assertEqual((status, header(json.loads(body)["headers"], "te")), (200, []))
        self.assertEqual(header(echo["headers"], "x-mixed-case"), "Value")
        self.assertTrue(all(k == k.lower() for k in names), names)
        self.assertEqual(echo["authority"], "api.example:8443")
        self.assertEqual(echo["path"], "/echo?q=1")
        self.assertEqual(header(echo["headers"], "x-request-id"), "translated")
        self.assertEqual(headers["x-seen-request-id"], "translated")
        # HEAD and a bodiless 204 keep their framing for the HTTP/1 client.
        status, headers, body = http_get(self.proxy.listener_port, "/bytes?n=1000", method="HEAD")
        self.assertEqual((status, headers["content-length"], body), (200, "1000", b""))
        status, headers, body = http_get(self.proxy.listener_port, "/head-only")
        self.assertEqual((status, body), (204, b""))
        # An HTTP/1.0 client gets a body of unknown length delimited by the close.
        s = socket.create_connection(("127.0.0.1", self.proxy.listener_port), timeout=10)
        self.addCleanup(s.close)
        s.sendall(b"GET /bytes?n=100000&cl=0 HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        self.assertNotIn(b"transfer-encoding", head.lower())
        self.assertNotIn(b"content-length", head.lower())
        self.assertTrue(body == pattern_bytes(100000), "HTTP/1.0 body differs")

    def test_trailers_cross_both_ways(self):
        upstream = start_h2_upstream(self)
        self.start(upstream)
        s = socket.create_connection(("127.0.0.1", self.proxy.listener_port), timeout=10)
        self.addCleanup(s.close)
        s.sendall(b"POST /trailers HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                  b"Trailer: x-checksum\r\nx-request-id: trailers-1\r\n\r\n"
                  b"5\r\nhello\r\n0\r\nx-checksum: abc123\r\n\r\n")
        data = b""
        while not (data.endswith(b"\r\n\r\n") and b"\r\n0\r\n" in data):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        self.assertIn(b"transfer-encoding: chunked", head.lower())
        self.assertIn(b"x-digest: sha-256=", rest)
        self.assertIn(b"x-status-detail: fine", rest)
        rec = upstream.wait_requests(lambda r: r["path"] == "/trailers")[0]
        self.assertEqual(rec["trailers"], [["x-checksum", "abc123"]])
        self.assertEqual(rec["body_sha256"], hashlib.sha256(b"hello").hexdigest())

    def test_hundred_concurrent_requests_share_few_connections_with_their_own_ids(self):
        upstream = start_h2_upstream(self)
        proxy = self.start(upstream, workers=2, pool={"size": 4, "max_overflow": 0})

        def one(i):
            rid = f"mux-{i:03d}"
            status, headers, body = http_get(proxy.listener_port, f"/echo?delay=300&i={i}",
                                             headers={"x-request-id": rid}, timeout=30)
            echo = json.loads(body)
            return status, rid, headers.get("x-seen-request-id"), header(echo["headers"],
                                                                         "x-request-id")

        results = parallel(100, one)
        mismatches = [r for r in results if r[0] != 200 or not (r[1] == r[2] == r[3])]
        self.assertEqual(mismatches, [])
        connections = upstream.connection_stats()
        self.assertLessEqual(len(connections), 4, connections)
        self.assertGreater(max(c["max_open"] for c in connections), 1, "nothing multiplexed")
        requests = upstream.snapshot()
        self.assertEqual(len({(r["connection"], r["stream"]) for r in requests}), 100)
        # The gauges count connections, not streams; all idle now.
        metrics = proxy.admin_get("/metrics")[2].decode()
        active = [l for l in metrics.splitlines()
                  if l.startswith('viscount_upstream_connections{upstream="app",state="active"}')]
        self.assertEqual(active, ['viscount_upstream_connections{upstream="app",state="active"} 0'])
        idle = [l for l in metrics.splitlines()
                if l.startswith('viscount_upstream_connections{upstream="app",state="idle"}')]
        still_open = [c for c in upstream.connection_stats() if not c["closed"]]
        self.assertEqual(idle, ['viscount_upstream_connections{upstream="app",state="idle"} '
                                f'{len(still_open)}'])

    def test_the_peers_max_concurrent_streams_is_respected(self):
        upstream = start_h2_upstream(self, max_concurrent_streams=5)
        proxy = self.start(upstream, pool={"size": 10, "max_overflow": 0})

        def one(i):
            return http_get(proxy.listener_port, f"/echo?delay=300&i={i}",
                            headers={"x-request-id": f"mcs-{i}"}, timeout=30)[0]

        self.assertEqual(parallel(20, one), [200] * 20)
        connections = upstream.connection_stats()
        self.assertTrue(all(c["max_open"] <= 5 for c in connections), connections)
        self.assertGreaterEqual(len(connections), 4, "20 concurrent streams, 5 per connection")
        self.assertEqual(max(c["max_open"] for c in connections), 5)

    def test_goaway_under_load_retries_what_the_upstream_never_processed(self):
        upstream = start_h2_upstream(self, goaway_after=10, goaway_late=5)
        proxy = self.start(upstream, pool={"size": 10, "max_overflow": 0})

        def one(i):
            rid = f"goaway-{i:02d}"
            status, headers, _ = http_get(proxy.listener_port, f"/echo?delay=200&i={i}",
                                          headers={"x-request-id": rid}, timeout=30)
            return status, rid

        results = parallel(40, one)
        self.assertEqual([s for s, _ in results], [200] * 40)
        requests = upstream.snapshot()
        ignored = [r for r in requests if r.get("ignored")]
        self.assertGreaterEqual(len(ignored), 5, "requests above the GOAWAY's last_stream_id")
        first = upstream.connection_stats()[0]
        wait_until(lambda: upstream.connection_stats()[0]["closed"], what="GOAWAY'd close")
        self.assertTrue(first["requests"] >= 10)
        # Each refused request was sent again, on another connection, and answered there.
        for rec in ignored:
            rid = header(rec["headers"], "x-request-id")
            again = [r for r in requests if header(r["headers"], "x-request-id") == rid
                     and not r.get("ignored")]
            self.assertEqual(len(again), 1, rid)
            self.assertNotEqual(again[0]["connection"], rec["connection"])
            self.assertEqual(proxy.wait_access_log_id(rid)["attempts"], 2)

    def test_a_reset_stream_is_a_502_and_the_connection_stays(self):
        upstream = start_h2_upstream(self)
        proxy = self.start(upstream)
        self.assertEqual(http_get(proxy.listener_port, "/warm")[0], 200)
        for method in ("GET", "POST"):
            status, headers, body = http_get(proxy.listener_port, "/rst", method=method,
                                             body=b"x" * 100 if method == "POST" else None)
            self.assertEqual(status, 502, body)
            self.assertEqual(json.loads(body)["error"], "upstream_reset")
            line = proxy.wait_access_log_id(headers["x-request-id"])
            self.assertEqual((line["error"], line["attempts"]), ("upstream_reset", 1))
        # REFUSED_STREAM means "not processed": an idempotent request is tried once more.
        status, headers, _ = http_get(proxy.listener_port, "/refuse")
        self.assertEqual(status, 502)
        self.assertEqual(proxy.wait_access_log_id(headers["x-request-id"])["attempts"], 2)
        # A reset after the head went out can only cut the client's response short.
        with self.assertRaises(Exception):
            http_get(proxy.listener_port, "/rst-midway")
        self.assertEqual(http_get(proxy.listener_port, "/after")[0], 200)
        self.assertEqual(len(upstream.connection_stats()), 1, "resets cost no connection")

    def test_a_client_that_leaves_cancels_only_its_stream(self):
        upstream = start_h2_upstream(self)
        proxy = self.start(upstream)
        s = socket.create_connection(("127.0.0.1", proxy.listener_port), timeout=10)
        s.sendall(f"GET /bytes?n={64 * MiB} HTTP/1.1\r\nHost: a\r\nx-request-id: leaver\r\n\r\n"
                  .encode())
        self.assertTrue(s.recv(65536).startswith(b"HTTP/1.1 200"))
        s.close()
        rec = upstream.wait_requests(lambda r: r["path"].startswith("/bytes"))[0]
        wait_until(lambda: rec.get("reset_by_client") is not None, what="RST_STREAM upstream")
        self.assertEqual(rec["reset_by_client"], 8)  # CANCEL
        self.assertLess(rec["sent"], 64 * MiB)
        self.assertEqual(proxy.wait_access_log_id("leaver")["error"], "client_disconnected")
        self.assertEqual(http_get(proxy.listener_port, "/after")[0], 200)
        self.assertEqual(len(upstream.connection_stats()), 1, "the connection outlived the stream")

    def test_a_response_that_breaks_the_rules_is_a_502_protocol_error(self):
        upstream = start_h2_upstream(self)
        proxy = self.start(upstream)
        status, headers, body = http_get(proxy.listener_port, "/malformed")
        self.assertEqual(status, 502)
        self.assertEqual(json.loads(body)["error"], "upstream_protocol_error")
        self.assertEqual(proxy.wait_access_log_id(headers["x-request-id"])["error"],
                         "upstream_protocol_error")
        event = proxy.wait_event("upstream_error", request_id=headers["x-request-id"])
        self.assertEqual(event["upstream_address"], f"127.0.0.1:{upstream.port}")

    def test_response_heads_are_bounded(self):
        """limits.max_informational_responses (10) and max_response_headers_count (100) hold on
        an HTTP/2 upstream too; beyond them the stream is a 502 protocol error."""
        upstream = start_h2_upstream(self)
        proxy = self.start(upstream)
        def final_status(path):
            # http.client would stop at the first 1xx: read the raw answer to the close.
            with socket.create_connection(("127.0.0.1", proxy.listener_port), timeout=5) as s:
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
                          .encode())
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
            statuses = [int(m) for m in re.findall(rb"^HTTP/1\.1 (\d{3})", data, re.M)]
            return [st for st in statuses if st >= 200], data

        for path, expected in (("/informational?n=10", 200), ("/informational?n=11", 502),
                               ("/fields?n=100", 200), ("/fields?n=101", 502)):
            with self.subTest(path):
                finals, data = final_status(path)
                self.assertEqual(finals, [expected], data[-300:])
                if expected == 502:
                    self.assertIn(b'"upstream_protocol_error"', data)
        self.assertEqual(http_get(proxy.listener_port, "/after")[0], 200)

    def test_an_http1_server_behind_an_h2c_url_is_a_502(self):
        upstream = start_echo_upstream(self)
        proxy = self.start(f"h2c://127.0.0.1:{upstream.port}")
        status, headers, body = http_get(proxy.listener_port, "/not-h2")
        self.assertEqual(status, 502, body)
        self.assertEqual(json.loads(body)["error"], "upstream_protocol_error")
        self.assertFalse([r for r in upstream.requests if r["path"] == "/not-h2"])
        event = proxy.wait_event("upstream_error", request_id=headers["x-request-id"])
        self.assertIn("HTTP/2", event["detail"])

    def test_a_slow_client_gets_flow_control_not_buffering(self):
        upstream = start_h2_upstream(self)
        proxy = self.start(upstream, timeouts={"request": "60s"})
        pid = proxy.proc.pid
        self.assertEqual(http_get(proxy.listener_port, "/warm")[0], 200)
        before = rss_kib(pid)
        size = 64 * MiB
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s.connect(("127.0.0.1", proxy.listener_port))
        self.addCleanup(s.close)
        s.sendall(f"GET /bytes?n={size} HTTP/1.1\r\nHost: a\r\nx-request-id: slow-reader\r\n\r\n"
                  .encode())
        rec = upstream.wait_requests(lambda r: r["path"].startswith("/bytes?n="))[0]
        # The client reads nothing: the upstream soon stops, held back by the stream's window.
        last, stable_since = -1, time.monotonic()
        deadline = time.monotonic() + 20
        while time.monotonic() - stable_since < 1.0 and time.monotonic() < deadline:
            sent = rec["sent"]
            if sent != last:
                last, stable_since = sent, time.monotonic()
            time.sleep(0.05)
        stalled_at = last
        grown = rss_kib(pid) - before
        # Kernel socket buffers (a few MiB on loopback) plus viscount's watermark and one
        # stream window; without flow control the upstream would have sent all 64 MiB.
        self.assertGreater(stalled_at, 0)
        self.assertLess(stalled_at, 12 * MiB, f"the upstream sent {stalled_at} bytes")
        if not SANITIZED:
            self.assertLess(grown, 8 * 1024, f"RSS grew by {grown} KiB")
        # Now read it all: every byte arrives, in order.
        expected = pattern_bytes(size)
        data = bytearray()
        s.settimeout(30)
        while b"\r\n\r\n" not in data:
            data += s.recv(1 << 20)
        head, _, body = bytes(data).partition(b"\r\n\r\n")
        self.assertIn(f"content-length: {size}".encode(), head.lower())
        got = bytearray(body)
        while len(got) < size:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            got += chunk
        self.assertEqual(len(got), size)
        self.assertTrue(bytes(got) == expected, "body differs")
        self.assertEqual(rec["sent"], size)
        self.assertEqual(proxy.wait_access_log_id("slow-reader")["bytes_out"], size)

    def test_http2_client_to_h2c_upstream_is_byte_exact(self):
        upstream = start_h2_upstream(self)
        proxy = self.start(upstream)
        c = H2Client(proxy.listener_port, timeout=30)
        self.addCleanup(c.close)
        size = 3 * MiB + 5
        upload = os.urandom(size)
        post = c.request("POST", "/echo-body", [("x-request-id", "h2-h2-post")], body=upload)
        get = c.request("GET", f"/bytes?n={size}", [("x-request-id", "h2-h2-get")])
        trailers = c.request("GET", "/trailers", [("x-request-id", "h2-h2-trailers"),
                                                  ("te", "trailers")])
        rp, rg, rt = c.wait(post, get, trailers, timeout=60)
        self.assertEqual((rp.status, rg.status, rt.status), (200, 200, 200))
        self.assertTrue(bytes(rp.data) == upload, "echoed body differs")
        self.assertTrue(bytes(rg.data) == pattern_bytes(size), "downloaded body differs")
        self.assertIn("x-digest", dict(rt.trailers))
        rec = upstream.wait_requests(lambda r: r["path"] == "/trailers")[0]
        self.assertEqual(header(rec["headers"], "te"), "trailers", "a gRPC client's TE passes")
        for rid in ("h2-h2-post", "h2-h2-get"):
            line = proxy.wait_access_log_id(rid)
            self.assertEqual((line["protocol"], line["status"], line["attempts"]),
                             ("HTTP/2", 200, 1))


class TlsH2UpstreamTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        viscount_bin()
        cls.dir = tempfile.mkdtemp(prefix="viscount-h2-up-")
        make_ca(cls.dir, "ca")
        make_leaf(cls.dir, "ca", "server", "localhost", server=True)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def start(self, url, **tls):
        config = proxy_config(url)
        config["upstreams"][0]["tls"] = tls or {"ca_file": self.path("ca.crt")}
        self.proxy = Viscount.with_config(self, config)
        return self.proxy

    def test_alpn_h2_upstream(self):
        upstream = start_h2_upstream(self, tls_context=h2_tls_context(
            self.path("server.crt"), self.path("server.key"), alpn=("h2", "http/1.1")))
        proxy = self.start(upstream.url)
        size = 2 * MiB + 3
        upload = os.urandom(size)
        with httpx.Client(timeout=30, base_url=f"http://127.0.0.1:{proxy.listener_port}") as c:
            r = c.post("/echo", content=upload, headers={"x-request-id": "tls-h2"})
            self.assertEqual(r.status_code, 200)
            echo = json.loads(r.content)
            self.assertEqual(echo["body_sha256"], hashlib.sha256(upload).hexdigest())
            self.assertEqual(echo["scheme"], "https")
            r = c.get(f"/bytes?n={size}")
            self.assertTrue(r.content == pattern_bytes(size), "downloaded body differs")
            statuses = parallel(20, lambda i: c.get(f"/echo?delay=100&i={i}").status_code)
            self.assertEqual(statuses, [200] * 20)
        stats = upstream.connection_stats()
        self.assertEqual({c["alpn"] for c in stats}, {"h2"})
        self.assertEqual(len(stats), 1, "the TLS connection carried them all")
        line = proxy.wait_access_log_id("tls-h2")
        self.assertEqual((line["status"], line["upstream_address"]),
                         (200, f"127.0.0.1:{upstream.port}"))

    def test_an_upstream_that_speaks_only_http11_still_works(self):
        for alpn in (["http/1.1"], None):
            ctx = h2_tls_context(self.path("server.crt"), self.path("server.key"),
                                 alpn=alpn or ())
            upstream = start_echo_upstream(self, ctx)
            proxy = self.start(upstream.url)
            for i in range(3):
                status, _, body = http_get(proxy.listener_port, f"/h1-only/{i}")
                self.assertEqual(status, 200, body)
            ports = {r["client_port"] for r in upstream.requests if r["path"].startswith("/h1")}
            self.assertEqual(len(ports), 1, "the HTTP/1.1 connection was kept")

    def test_certificate_verification_failure_is_a_502(self):
        upstream = start_h2_upstream(self, tls_context=h2_tls_context(
            self.path("server.crt"), self.path("server.key")))
        proxy = self.start(upstream.url, server_name="api.example.com",
                           ca_file=self.path("ca.crt"))
        status, headers, body = http_get(proxy.listener_port, "/untrusted")
        self.assertEqual(status, 502, body)
        self.assertEqual(json.loads(body)["error"], "upstream_connect_failed")
        event = proxy.wait_event("upstream_error", request_id=headers["x-request-id"])
        self.assertIn("certificate verify failed", event["detail"])
        self.assertEqual(upstream.snapshot(), [])


if __name__ == "__main__":
    unittest.main()
