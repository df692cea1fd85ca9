"""Hostile upstreams: responses with ambiguous framing, broken chunking, oversized or malformed
heads, bytes after the declared body, no status line at all, and responses nobody asked for.

The client gets a 502 (upstream_protocol_error) when nothing of the response went out yet, or the
response cut short (its own framing incomplete, the connection closed) when its head already had.
Either way the upstream connection that misbehaved is never used again: no second request ever
arrives on it, and the next client request gets its own, genuine answer on another connection.
"""

import time
import unittest

from adversarial_support import ProxyTestCase, exchange

OK_BODY = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
UNASKED = b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nunasked"


def send(data, keep=True):
    """A handler that answers every request with `data`, then keeps the connection or closes."""
    def handler(req, sock):
        sock.sendall(data)
        return keep
    return handler


def send_then_later(data, later, delay=0.1):
    def handler(req, sock):
        sock.sendall(data)
        time.sleep(delay)
        sock.sendall(later)
        return True
    return handler


# path -> (what the upstream sends, what the client must see: 502, "cut" or a status)
HOSTILE = {
    "/cl-and-te": (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"5\r\nhello\r\n0\r\n\r\n", 502),
    "/te-and-cl": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
                   b"5\r\nhello\r\n0\r\n\r\n", 502),
    "/cl-differing": (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
                      502),
    "/cl-identical": (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
                      502),
    "/cl-list": (b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello", 502),
    "/cl-negative": (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nhello", 502),
    "/cl-overflow": (b"HTTP/1.1 200 OK\r\nContent-Length: 184467440737095516150\r\n\r\nx", 502),
    "/te-gzip": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nhello", 502),
    "/te-chunked-twice": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                          b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 502),
    "/chunk-size-junk": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n"
                         b"0\r\n\r\n", "cut"),
    "/chunk-overrun": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX\r\n"
                       b"0\r\n\r\n", "cut"),
    "/chunk-size-overflow": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                             b"10000000000000005\r\nhello\r\n0\r\n\r\n", "cut"),
    "/oversized-head": (b"HTTP/1.1 200 OK\r\nX-Big: " + b"b" * 100000 + b"\r\n"
                        b"Content-Length: 2\r\n\r\nok", 502),
    "/no-status-line": (b"<html>hello</html>\r\n\r\n", 502),
    "/http09": (b"hello", 502),
    "/status-101": (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n"
                    b"Connection: Upgrade\r\n\r\n", 502),
    "/status-999": (b"HTTP/1.1 999 Nope\r\nContent-Length: 2\r\n\r\nok", 502),
    "/status-four-digits": (b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok", 502),
    "/http2-status-line": (b"HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 502),
    "/bare-cr-in-header": (b"HTTP/1.1 200 OK\r\nX-A: b\rSet-Cookie: evil=1\r\n"
                           b"Content-Length: 2\r\n\r\nok", 502),
    "/bare-lf-lines": (b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok", 502),
    "/obs-fold": (b"HTTP/1.1 200 OK\r\nX-A: b\r\n Set-Cookie: evil=1\r\nContent-Length: 2\r\n\r\n"
                  b"ok", 502),
    "/nul-in-header": (b"HTTP/1.1 200 OK\r\nX-A: b\x00c\r\nContent-Length: 2\r\n\r\nok", 502),
    "/empty-header-name": (b"HTTP/1.1 200 OK\r\nX-A: b\r\n: evil\r\nContent-Length: 2\r\n\r\nok",
                           502),
    "/space-in-header-name": (b"HTTP/1.1 200 OK\r\nX A: b\r\nContent-Length: 2\r\n\r\nok", 502),
    "/trailers-unbounded": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n"
                            + b"X-T: " + b"t" * 70000 + b"\r\n\r\n", "cut"),
}


class HostileUpstreamTest(ProxyTestCase):
    handlers = {
        **{path: send(data) for path, (data, _) in HOSTILE.items()},
        "/extra-bytes": send(OK_BODY + UNASKED),
        "/extra-bytes-later": send_then_later(OK_BODY, UNASKED),
        "/head-with-body": send(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
        "/no-content-with-body": send(b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello"),
        "/not-modified-with-body": send(b"HTTP/1.1 304 Not Modified\r\n\r\nhello"),
        "/close-mid-body": send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nok", keep=False),
        "/close-mid-chunk": send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n",
                                 keep=False),
        "/close-before-answer": send(b"", keep=False),
        "/early-hints-flood": send(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" * 50
                                   + OK_BODY),
        "/refused-upgrade-then-bytes": send(OK_BODY + b"\x81\x05hello"),
        "/ten-continues": send(b"HTTP/1.1 100 Continue\r\n\r\n" * 10 + OK_BODY),
        "/eleven-continues": send(b"HTTP/1.1 100 Continue\r\n\r\n" * 11 + OK_BODY),
        "/100-fields": send(b"HTTP/1.1 200 OK\r\n" + b"".join(
            b"X-F%d: v\r\n" % i for i in range(99)) + b"Content-Length: 2\r\n\r\nok"),
        "/101-fields": send(b"HTTP/1.1 200 OK\r\n" + b"".join(
            b"X-F%d: v\r\n" % i for i in range(100)) + b"Content-Length: 2\r\n\r\nok"),
        "/101-fields-in-a-1xx": send(b"HTTP/1.1 103 Early Hints\r\n" + b"".join(
            b"Link: </a%d>\r\n" % i for i in range(101)) + b"\r\n" + OK_BODY),
        "/id-lookalikes": send(b"HTTP/1.1 200 OK\r\nx_request_id: upstream-chosen\r\n"
                               b"X_Correlation_Id: upstream-chosen\r\n"
                               b"X-Request_Id: upstream-chosen\r\nContent-Length: 2\r\n\r\nok"),
        "/names-our-ids": send(b"HTTP/1.1 200 OK\r\nConnection: x-request-id\r\n"
                               b"X-Request-Id: upstream-chosen\r\nContent-Length: 2\r\n\r\nok"),
    }

    def get(self, path, method=b"GET"):
        return exchange(self.port, method + b" " + path.encode() + b" HTTP/1.1\r\nHost: a\r\n\r\n",
                        until_close=False, head_request=method == b"HEAD", linger=0.1)

    def assert_connection_retired(self, path, wait=0.2):
        """`path` was served once, on a connection that served nothing after it; a new request
        gets its own answer from another connection."""
        time.sleep(wait)  # anything the upstream sends late arrives while the connection idles
        reqs = [r for r in self.upstream_since_mark() if r.target == path]
        self.assertEqual(len(reqs), 1, f"{path} reached the upstream {len(reqs)} times")
        bad = reqs[0]
        follow = self.get("/after" + path)
        self.assertEqual([r.status for r in follow.responses], [200], follow)
        echo = follow.first.json()
        self.assertEqual(echo["target"], "/after" + path, "the next client got a stale answer")
        self.assertNotEqual(echo["conn"], bad.conn_id, "the misbehaving connection was reused")
        self.upstream.settle()
        reused = [r for r in self.upstream.requests
                  if r.conn_id == bad.conn_id and r.index > bad.index]
        self.assertEqual(reused, [], "a request went out on the misbehaving connection")

    def check_hostile(self, path, expected):
        result = self.get(path)
        if expected == "cut":
            # The head had gone out: the client sees a response that its framing says is not
            # complete, then the close.
            self.assertEqual(result.responses, [], result)
            self.assertTrue(result.leftover.startswith(b"HTTP/1.1 200"), result)
            self.assertTrue(result.closed, result)
        else:
            statuses = expected if isinstance(expected, set) else {expected}
            self.assertEqual(len(result.responses), 1, result)
            self.assertIn(result.first.status, statuses, result)
            if result.first.status == 502:
                body = self.assert_error_reply(result.first, 502)
                self.assertEqual(body["error"], "upstream_protocol_error")
        self.assert_connection_retired(path)
        return result

    # --- responses that are fine, followed by what is not ------------------------------------

    def test_bytes_after_the_body_in_the_same_packet(self):
        result = self.get("/extra-bytes")
        self.assertEqual([(r.status, r.body) for r in result.responses], [(200, b"ok")], result)
        self.assert_connection_retired("/extra-bytes")

    def test_bytes_after_the_body_a_moment_later(self):
        result = self.get("/extra-bytes-later")
        self.assertEqual([(r.status, r.body) for r in result.responses], [(200, b"ok")], result)
        self.assert_connection_retired("/extra-bytes-later")

    def test_bytes_after_a_refused_upgrade(self):
        # A refused upgrade is an ordinary response: what the upstream sends after it (frames
        # of the protocol it did not switch to) is extra bytes, never the start of a tunnel.
        result = exchange(self.port, b"GET /refused-upgrade-then-bytes HTTP/1.1\r\nHost: a\r\n"
                          b"Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
                          until_close=False, linger=0.1)
        self.assertEqual([(r.status, r.body) for r in result.responses], [(200, b"ok")], result)
        self.assertEqual(result.leftover, b"", "bytes after the response reached the client")
        self.assert_connection_retired("/refused-upgrade-then-bytes")

    def test_body_after_a_response_to_head(self):
        result = self.get("/head-with-body", method=b"HEAD")
        self.assertEqual([r.status for r in result.responses], [200], result)
        self.assertEqual(result.first.header("content-length"), "5")
        self.assertEqual(result.leftover, b"", "a body was sent for HEAD")
        self.assert_connection_retired("/head-with-body")

    def test_body_after_no_content(self):
        result = self.get("/no-content-with-body")
        self.assertEqual([(r.status, r.body) for r in result.responses], [(204, b"")], result)
        self.assertEqual(result.leftover, b"", "a body was sent with 204")
        self.assert_connection_retired("/no-content-with-body")

    def test_body_after_not_modified(self):
        result = self.get("/not-modified-with-body")
        self.assertEqual([(r.status, r.body) for r in result.responses], [(304, b"")], result)
        self.assertEqual(result.leftover, b"", "a body was sent with 304")
        self.assert_connection_retired("/not-modified-with-body")

    # --- the upstream going away -----------------------------------------------------------------

    def test_close_in_the_middle_of_a_body(self):
        for path in ("/close-mid-body", "/close-mid-chunk"):
            with self.subTest(path):
                self.mark = self.upstream.mark()
                self.check_hostile(path, "cut")
                log = self.proxy.wait_access_log(lambda o, p=path: o.get("path") == p)
                self.assertEqual(log["error"], "upstream_reset")

    def test_close_before_answering(self):
        result = self.get("/close-before-answer")
        self.assertEqual([r.status for r in result.responses], [502], result)
        self.assertEqual(self.assert_error_reply(result.first, 502)["error"], "upstream_reset")
        self.assert_connection_retired("/close-before-answer")

    # --- odd but valid --------------------------------------------------------------------------

    # --- bounds on what one response may carry ----------------------------------------------

    def test_flood_of_early_hints(self):
        """An endless run of 1xx heads would hold the request: past
        limits.max_informational_responses (10) it is a protocol error."""
        self.check_hostile("/early-hints-flood", 502)

    def test_ten_informational_responses_are_allowed(self):
        result = self.get("/ten-continues")
        self.assertLessEqual(len(result.informational), 10, result)
        self.assertEqual([(r.status, r.body) for r in result.responses], [(200, b"ok")], result)

    def test_eleven_informational_responses_are_refused(self):
        result = self.check_hostile("/eleven-continues", 502)
        self.assertLessEqual(len(result.informational), 10, result)
        log = self.proxy.wait_access_log(lambda o: o.get("path") == "/eleven-continues")
        self.assertEqual(log["error"], "upstream_protocol_error")

    def test_hundred_header_fields_are_allowed(self):
        result = self.get("/100-fields")
        self.assertEqual([(r.status, r.body) for r in result.responses], [(200, b"ok")], result)
        self.assertEqual(result.first.header("x-f98"), "v")

    def test_hundred_and_one_header_fields_are_refused(self):
        for path in ("/101-fields", "/101-fields-in-a-1xx"):
            with self.subTest(path):
                self.mark = self.upstream.mark()
                self.check_hostile(path, 502)

    def test_lookalikes_of_the_id_headers_never_reach_the_client(self):
        result = self.get("/id-lookalikes")
        self.assertEqual([r.status for r in result.responses], [200], result)
        names = [k for k, _ in result.first.headers]
        for lookalike in ("x_request_id", "x_correlation_id", "x-request_id"):
            self.assertNotIn(lookalike, names, result.first)
        self.assertEqual(result.first.count("x-request-id"), 1)
        self.assertEqual(result.first.count("x-correlation-id"), 1)
        self.assertNotIn("upstream-chosen", [v for _, v in result.first.headers])

    def test_upstream_cannot_choose_the_request_id(self):
        result = self.get("/names-our-ids")
        self.assertEqual([r.status for r in result.responses], [200], result)
        self.assertEqual(result.first.count("x-request-id"), 1)
        self.assertNotEqual(result.first.header("x-request-id"), "upstream-chosen")
        sent = self.upstream_since_mark()[0].values("x-request-id")
        self.assertEqual([result.first.header("x-request-id")], sent)


def unasked_on_accept(conn_id, sock):
    """Answers before any request has been read."""
    sock.sendall(UNASKED)


class UnsolicitedResponseTest(ProxyTestCase):
    """An upstream that writes a response the moment a connection opens, then answers the real
    request too. A new connection per request (pool size 0) so that every one does it."""

    on_accept = staticmethod(unasked_on_accept)
    config_overrides = {"upstream": {"pool": {"size": 0, "max_overflow": 20}}}

    def test_unasked_response_never_answers_a_second_request(self):
        statuses = []
        for i in range(5):
            self.mark = self.upstream.mark()
            path = f"/asked-{i}"
            result = exchange(self.port, b"GET " + path.encode() + b" HTTP/1.1\r\nHost: a\r\n\r\n",
                              until_close=False)
            self.assertEqual(len(result.responses), 1, result)
            resp = result.first
            statuses.append(resp.status)
            # Which of the two it got depends on timing the proxy cannot see: the unasked
            # response is indistinguishable from a fast answer once the request went out. So
            # the answer is either exactly the unasked response, or viscount's own 502 for an
            # upstream that broke the exchange -- never the upstream's genuine answer (its echo).
            if resp.status == 200:
                self.assertEqual(resp.body, b"unasked", result)
            else:
                body = self.assert_error_reply(resp, 502)
                self.assertIn(body["error"], {"upstream_protocol_error", "upstream_reset"}, body)
            log = self.proxy.wait_access_log(
                lambda o, rid=resp.header("x-request-id"): o.get("request_id") == rid)
            self.assertEqual(log["status"], resp.status, log)
            reqs = self.upstream_since_mark()
            self.assertLessEqual(len(reqs), 1)
            for req in reqs:
                later = [r for r in self.upstream.requests
                         if r.conn_id == req.conn_id and r.index > req.index]
                self.assertEqual(later, [])
        # The case is only tested when an unasked response did answer a request: had every one
        # been a 502, no unasked response had a chance to answer a second request.
        self.assertIn(200, statuses, f"no request was answered by the unasked response: "
                                     f"{statuses}")
        self.assertTrue(self.proxy.running())


def add_hostile_cases(cls):
    """One test per malformed response in HOSTILE."""
    for path, (_, expected) in HOSTILE.items():
        def method(self, path=path, expected=expected):
            self.check_hostile(path, expected)
        setattr(cls, "test_" + path.strip("/").replace("-", "_"), method)


add_hostile_cases(HostileUpstreamTest)

if __name__ == "__main__":
    unittest.main()
