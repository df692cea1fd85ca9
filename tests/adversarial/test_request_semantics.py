"""Requests that are well-formed but hostile: pipelining past the end of a connection, every size
limit (414, 431 by size and by count, 413), Expect variants, and Upgrade attempts: h2c never
reaches the upstream; a websocket upgrade does, and when refused nothing after it passes unparsed.
"""

import time
import unittest

from adversarial_support import (Case, ProxyTestCase, Result, add_cases, connect, exchange,
                                 read_responses)

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
# A request pipelined behind one whose framing is not in doubt: it must arrive as its own.
PIPELINED = b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n"
HEADER_LIMIT = 16 * 1024
BODY_LIMIT = 64 * 1024
HEADER_COUNT_LIMIT = 100


def get(extra=b"", target=b"/", method=b"GET", version=b"HTTP/1.1"):
    return method + b" " + target + b" " + version + b"\r\nHost: a\r\n" + extra + b"\r\n"


def post(body, extra=b"", target=b"/up"):
    return get(b"Content-Length: %d\r\n" % len(body) + extra, target, b"POST") + body


def chunked(body, piece=4096):
    out = b""
    for i in range(0, len(body), piece):
        out += b"%x\r\n%s\r\n" % (len(body[i:i + piece]), body[i:i + piece])
    return out + b"0\r\n\r\n"


def headers(count, size=1):
    return b"".join(b"X-H%d: %s\r\n" % (i, b"v" * size) for i in range(count))


def upstream_headers_absent(*names):
    def check(test, result, requests):
        for req in requests:
            for name in names:
                test.assertEqual(req.values(name), [], f"{name} reached the upstream: {req}")
        for resp in result.responses:
            test.assertNotEqual(resp.status, 101)
    return check


def upgrade_forwarded(test, result, requests):
    for req in requests:
        test.assertEqual(req.values("upgrade"), ["websocket"], req)
        test.assertEqual(req.values("connection"), ["upgrade"], req)
    for resp in result.responses:
        test.assertNotEqual(resp.status, 101)


WEBSOCKET = (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
             b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


def targets(*expected):
    def check(test, result, requests):
        test.assertEqual([r.target for r in requests], list(expected))
    return check


CASES = [
    # --- pipelining ------------------------------------------------------------------------
    Case("pipelined_after_connection_close", get(b"Connection: close\r\n", b"/a") + SMUGGLED,
         200, closed=True, check=targets("/a"),
         doc="nothing after a request that closes the connection is a request"),
    Case("pipelined_after_http10", get(target=b"/a", version=b"HTTP/1.0") + SMUGGLED, 200,
         closed=True, check=targets("/a")),
    Case("pipelined_after_http10_keep_alive",
         get(b"Connection: keep-alive\r\n", b"/a", version=b"HTTP/1.0") + get(target=b"/b"), 200,
         want=2, upstream=2, closed=False, check=targets("/a", "/b")),
    Case("pipelined_after_bad_request",
         get(b"Content-Length: 5x\r\n", method=b"POST") + SMUGGLED, 400),
    Case("pipelined_good_then_bad", get(target=b"/a") + get(b"X-A : b\r\n", b"/b") + SMUGGLED,
         400, want=2, upstream=1, closed=True, check=targets("/a")),
    Case("pipelined_after_body_too_large",
         get(b"Content-Length: %d\r\n" % (BODY_LIMIT + 1), method=b"POST") + SMUGGLED, 413),
    Case("pipelined_after_expectation_failed",
         get(b"Expect: 99-stop\r\nContent-Length: %d\r\n" % len(SMUGGLED), method=b"POST")
         + SMUGGLED, 417),
    Case("pipelined_burst_of_ten", b"".join(get(target=b"/p%d" % i) for i in range(10)), 200,
         want=10, upstream=10, closed=False,
         check=targets(*[f"/p{i}" for i in range(10)])),
    # --- sizes -----------------------------------------------------------------------------
    Case("request_line_over_limit", get(target=b"/" + b"a" * HEADER_LIMIT), 414),
    Case("request_line_over_limit_no_end", b"GET /" + b"a" * (HEADER_LIMIT + 4096), 414,
         doc="the line has not even ended when the limit is passed"),
    Case("request_line_just_under_limit", get(target=b"/" + b"a" * (HEADER_LIMIT - 200)), 200),
    Case("header_value_over_limit", get(b"X-Big: " + b"v" * HEADER_LIMIT + b"\r\n"), 431),
    Case("headers_over_limit_in_total", get(headers(80, 250)), 431),
    Case("header_count_over_limit", get(headers(HEADER_COUNT_LIMIT + 1)), 431,
         doc="many tiny headers cost memory and time per header, not per byte"),
    Case("header_count_at_limit", get(headers(HEADER_COUNT_LIMIT - 1)), 200,
         check=lambda t, r, reqs: t.assertEqual(reqs[0].values("x-h98"), ["v"])),
    Case("empty_headers_over_count", get(b"X-E:\r\n" * (HEADER_COUNT_LIMIT + 1)), 431),
    Case("body_over_limit_by_length", post(b"x" * (BODY_LIMIT + 1)), 413),
    Case("body_over_limit_chunked", get(b"Transfer-Encoding: chunked\r\n", method=b"POST")
         + chunked(b"x" * (BODY_LIMIT + 1)), 413,
         doc="the upstream may have seen the start of it, never a complete request"),
    Case("trailers_over_size_limit",
         get(b"Transfer-Encoding: chunked\r\n", method=b"POST") + b"5\r\nhello\r\n0\r\n"
         + b"X-T: " + b"t" * HEADER_LIMIT + b"\r\n\r\n", 431,
         doc="trailers come after the head's checks; they must not grow without bound"),
    Case("trailers_over_count_limit",
         get(b"Transfer-Encoding: chunked\r\n", method=b"POST") + b"5\r\nhello\r\n0\r\n"
         + headers(HEADER_COUNT_LIMIT + 1) + b"\r\n", 431),
    Case("body_at_limit", post(b"x" * BODY_LIMIT), 200,
         check=lambda t, r, reqs: t.assertEqual(len(reqs[0].body), BODY_LIMIT)),
    Case("connection_lists_many_tokens",
         get(b"Connection: " + b",".join(b"t%d" % i for i in range(2000)) + b"\r\n"
             + headers(60)), 200,
         check=lambda t, r, reqs: t.assertEqual(reqs[0].values("connection"), [])),
    # --- Expect ----------------------------------------------------------------------------
    Case("expect_unknown", get(b"Expect: 99-stop\r\n"), 417),
    Case("expect_continue_in_a_list", post(b"hello", b"Expect: 100-continue, foo\r\n"), 417),
    Case("expect_continue_with_parameter", post(b"hello", b"Expect: 100-continue;a=b\r\n"), 417),
    Case("expect_empty", get(b"Expect:\r\n"), 417),
    Case("expect_continue_without_body", get(b"Expect: 100-continue\r\n"), 200,
         check=lambda t, r, reqs: (t.assertEqual(r.informational, []),
                                   t.assertEqual(reqs[0].values("expect"), []))),
    Case("expect_continue_body_over_limit",
         get(b"Expect: 100-continue\r\nContent-Length: %d\r\n" % (BODY_LIMIT + 1),
             method=b"POST"), 413,
         check=lambda t, r, reqs: t.assertEqual(r.informational, []),
         doc="refused before the client sends the body: no 100 Continue first"),
    Case("expect_continue_from_http10",
         post(b"hello", b"Expect: 100-continue\r\n").replace(b"HTTP/1.1", b"HTTP/1.0", 1), 200,
         closed=True,
         check=lambda t, r, reqs: (t.assertEqual(r.informational, []),
                                   t.assertEqual(reqs[0].body, b"hello"))),
    # --- Upgrade ---------------------------------------------------------------------------
    Case("h2c_upgrade", get(b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                            b"HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n"), 200,
         check=upstream_headers_absent("upgrade", "http2-settings", "connection")),
    Case("h2c_upgrade_with_body", post(b"hello", b"Connection: Upgrade, HTTP2-Settings\r\n"
                                                 b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABk\r\n"),
         200, check=lambda t, r, reqs: (upstream_headers_absent("upgrade", "http2-settings")(
             t, r, reqs), t.assertEqual(reqs[0].body, b"hello"))),
    Case("h2c_upgrade_then_preface",
         get(b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMA\r\n")
         + b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", {400, 505}, want=2, upstream=1, closed=True,
         check=upstream_headers_absent("upgrade", "http2-settings"),
         doc="the upgrade was not granted, so the preface is a (bad) HTTP/1 request"),
    Case("upgrade_without_connection", get(b"Upgrade: h2c\r\n"), 200,
         check=upstream_headers_absent("upgrade")),
    Case("websocket_upgrade_refused", WEBSOCKET, 200,
         check=upgrade_forwarded,
         doc="forwarded as an upgrade; the upstream's 200 is an ordinary response"),
    Case("refused_upgrade_then_pipelined", WEBSOCKET + PIPELINED, 200, want=2, upstream=2,
         check=lambda t, r, reqs: (upgrade_forwarded(t, r, reqs[:1]), targets("/", "/next")(
             t, r, reqs), t.assertEqual(reqs[1].values("upgrade"), [])),
         doc="bytes after a refused upgrade are parsed as a request of their own, never passed"
             " on raw"),
    Case("upgrade_with_body", post(b"hello", b"Connection: Upgrade\r\nUpgrade: websocket\r\n"),
         200, check=lambda t, r, reqs: (upstream_headers_absent("upgrade", "connection")(
             t, r, reqs), t.assertEqual(reqs[0].body, b"hello")),
         doc="a request with a body is no upgrade: its body would precede the tunnel"),
    Case("upgrade_with_chunked_body",
         get(b"Connection: Upgrade\r\nUpgrade: websocket\r\nTransfer-Encoding: chunked\r\n",
             method=b"POST") + chunked(b"hello") + PIPELINED, 200, want=2, upstream=2,
         check=lambda t, r, reqs: (upstream_headers_absent("upgrade")(t, r, reqs),
                                   targets("/", "/next")(t, r, reqs))),
    Case("upgrade_from_http10",
         get(b"Connection: Upgrade\r\nUpgrade: websocket\r\n", version=b"HTTP/1.0"), 200,
         closed=True, check=upstream_headers_absent("upgrade")),
    Case("upgrade_token_not_allowed", get(b"Connection: Upgrade\r\nUpgrade: IRC/6.9\r\n"),
         200, check=upstream_headers_absent("upgrade", "connection")),
    Case("upgrade_list_keeps_only_allowed",
         get(b"Connection: Upgrade\r\nUpgrade: h2c, foo/1, WebSocket\r\n"), 200,
         check=lambda t, r, reqs: t.assertEqual(reqs[0].values("upgrade"), ["WebSocket"])),
    Case("connection_names_a_header", get(b"Connection: x-secret\r\nX-Secret: a\r\n"), 200,
         check=upstream_headers_absent("x-secret", "connection")),
    Case("connection_names_host", get(b"Connection: host\r\n"), 200,
         check=lambda t, r, reqs: t.assertEqual(reqs[0].values("host"), ["a"])),
]


class RequestSemanticsTest(ProxyTestCase):
    config_overrides = {"listener": {"limits": {"max_request_headers_size": "16KiB",
                                                "max_request_body_size": "64KiB"}}}

    def test_expect_continue_waits_for_the_go_ahead(self):
        """100 Continue comes before the body is sent; the body then reaches the upstream,
        without the Expect header."""
        result = Result()
        with connect(self.port) as sock:
            sock.sendall(get(b"Expect: 100-Continue\r\nContent-Length: 5\r\n", method=b"POST"))
            read_responses(sock, result, want=0, until_close=False, linger=1.0)
            self.assertEqual([r.status for r in result.informational], [100], result)
            self.assertEqual(result.responses, [])
            sock.sendall(b"hello")
            read_responses(sock, result, want=1, until_close=False)
        self.assertEqual([r.status for r in result.responses], [200], result)
        reqs = self.assert_upstream_count(1)
        self.assertEqual(reqs[0].body, b"hello")
        self.assertEqual(reqs[0].values("expect"), [])

    def test_request_line_over_limit_in_pieces(self):
        """414 also when the line trickles in below the limit each time."""
        pieces = [(b"GET /", 0)] + [(b"a" * 2048, 0.02)] * (HEADER_LIMIT // 2048 + 2)
        result = exchange(self.port, pieces)
        self.assert_rejected(result, 414)

    def test_header_count_checked_before_the_size(self):
        """An unfinished head with too many headers is refused without waiting for its end."""
        result = exchange(self.port, get(headers(HEADER_COUNT_LIMIT + 5))[:-2])
        self.assert_rejected(result, 431)
        self.assertLess(result.elapsed, 2.5, "waited for the head deadline")

    def test_empty_lines_before_a_request_do_not_count_towards_its_head(self):
        """The head limit counts the request line to the empty line, every byte, whether the
        empty lines allowed before it come in the same packet or apart."""
        filler = get(b"X-Fill: \r\n")
        fits = get(b"X-Fill: " + b"f" * (HEADER_LIMIT - len(filler)) + b"\r\n")
        self.assertEqual(len(fits), HEADER_LIMIT)
        over = fits.replace(b"X-Fill: ", b"X-Fill: f", 1)
        for head, status in ((fits, 200), (over, 431)):
            for pieces in ([(b"\r\n\r\n" + head, 0)], [(b"\r\n\r\n", 0), (head, 0.05)]):
                self.mark = self.upstream.mark()
                result = exchange(self.port, pieces, until_close=status != 200)
                if status == 200:
                    self.assertEqual([r.status for r in result.responses], [200], result)
                    self.assert_upstream_count(1)
                else:
                    self.assert_rejected(result, 431)


add_cases(RequestSemanticsTest, CASES)

if __name__ == "__main__":
    unittest.main()
