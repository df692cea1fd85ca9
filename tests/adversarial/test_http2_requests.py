"""HTTP/2 requests that are well-framed but malformed or hostile (RFC 9113 section 8), against
the real binary over h2c with prior knowledge: pseudo-header fields missing, repeated, unknown,
misplaced; field names and values no HTTP/1 parser would accept; connection-specific fields;
:path and :authority forms; content-length against the DATA actually sent; limits, trailers,
Expect and Upgrade.

A malformed request is reset (PROTOCOL_ERROR) by nghttp2 or refused by viscount with a status
(400, 413, 417, 431, 501), and nothing of it may reach the upstream as a complete request: the
upstream, which parses strictly, sees nothing or exactly the well-formed HTTP/1.1 request the
case names. Each case then checks that the same connection and a fresh one are still served.
"""

import unittest

from adversarial_support import ProxyTestCase
from h2_support import (PROTOCOL_ERROR, H2Case, Reset, Status, add_h2_cases, data, headers,
                        request_fields)
from raw_upstream import echo_response

R = request_fields
BODY_LIMIT = 64 * 1024


def H(fields, end=True, **kw):
    return headers(1, fields, end=end, **kw)


def without(name):
    return [f for f in R() if f[0] != name]


def with_field(name, value):
    return H(R("/f", extra=[(name, value)]))


def post(lengths, *bodies, end=True, path="/up"):
    """POST with the given content-length fields and DATA frames (the last ends the stream)."""
    out = H(R(path, "POST", extra=[("content-length", v) for v in lengths]), end=False)
    for i, body in enumerate(bodies):
        out += data(1, body, end=end and i == len(bodies) - 1)
    return out


def with_trailers(trailers, end=True):
    return H(R("/t", "POST"), end=False) + data(1, b"hi") + headers(1, trailers, end=end)


def bad(name, payload, doc="", **kw):
    """A malformed request: the stream is reset with PROTOCOL_ERROR, nothing forwarded."""
    return H2Case(name, payload, Reset(1, PROTOCOL_ERROR), doc=doc, **kw)


def upstream_saw(target=None, host=None, absent=(), body=None, **fields):
    """The one request upstream: its target, Host, body, fields (name -> list of values)."""
    def check(test, conn, requests):
        req = requests[0]
        if target is not None:
            test.assertEqual(req.target, target)
        if host is not None:
            test.assertEqual(req.values("host"), [host])
        if body is not None:
            test.assertEqual(req.body, body)
        for name in absent:
            test.assertEqual(req.values(name), [], f"{name} reached the upstream: {req}")
        for name, values in fields.items():
            test.assertEqual(req.values(name.replace("_", "-")), values, req)
    return check


def trailers_upstream(expected):
    def check(test, conn, requests):
        test.assertEqual(requests[0].trailers, expected)
        test.assertEqual(requests[0].body, b"hi")
    return check


def informational(statuses):
    def check(test, conn, requests):
        test.assertEqual(conn.stream(1).informational, statuses, conn)
    return check


def both(*checks):
    def check(test, conn, requests):
        for c in checks:
            c(test, conn, requests)
    return check


OK = Status(1, 200)

CASES = [
    # --- pseudo-header fields (RFC 9113 section 8.3) ----------------------------------------
    bad("pseudo_method_missing", H(without(":method"))),
    bad("pseudo_path_missing", H(without(":path"))),
    bad("pseudo_scheme_missing", H(without(":scheme"))),
    bad("pseudo_authority_and_host_missing", H(without(":authority")),
        doc="no authority at all: nghttp2 insists on :authority or Host"),
    bad("pseudo_method_empty", H(R(method=""))),
    bad("pseudo_method_duplicated", H(R() + [(":method", "POST")])),
    bad("pseudo_path_duplicated", H(R("/a") + [(":path", "/b")])),
    bad("pseudo_authority_duplicated", H(R() + [(":authority", "b")])),
    bad("pseudo_unknown", H(R() + [(":foo", "bar")])),
    bad("pseudo_status_in_request", H(R() + [(":status", "200")])),
    bad("pseudo_protocol_without_extended_connect", H(R() + [(":protocol", "websocket")])),
    bad("pseudo_after_regular_field",
        H([(":method", "GET"), (":scheme", "http"), ("x-a", "b"), (":path", "/"),
           (":authority", "a")])),
    bad("pseudo_in_trailers", with_trailers([(":path", "/x")]),
        doc="the head went upstream with a chunked body that never ends"),
    # --- field names (RFC 9113 section 8.2.1) -----------------------------------------------
    bad("name_uppercase", with_field("X-Upper", "1")),
    bad("name_uppercase_pseudo",
        H([(":Method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "a")])),
    bad("name_with_space", with_field("x a", "1")),
    bad("name_with_colon", with_field("x:a", "1")),
    bad("name_with_nul", with_field("x\0a", "1")),
    bad("name_empty", with_field("", "1")),
    # --- connection-specific fields (RFC 9113 section 8.2.2) --------------------------------
    bad("connection_field", with_field("connection", "close")),
    bad("keep_alive_field", with_field("keep-alive", "timeout=5")),
    bad("proxy_connection_field", with_field("proxy-connection", "keep-alive")),
    bad("transfer_encoding_chunked", with_field("transfer-encoding", "chunked")),
    bad("upgrade_websocket", with_field("upgrade", "websocket")),
    bad("te_gzip", with_field("te", "gzip")),
    bad("te_trailers_and_gzip", with_field("te", "trailers, gzip")),
    H2Case("te_trailers", with_field("te", "trailers"), OK, upstream=1,
           check=upstream_saw("/f", absent=["te"]),
           doc="the one te value HTTP/2 allows; hop-by-hop, so not forwarded"),
    bad("h2c_upgrade_inside_h2",
        H(R("/f", extra=[("upgrade", "h2c"), ("http2-settings", "AAMAAABk")])),
        doc="an Upgrade inside an HTTP/2 request is a connection-specific field"),
    H2Case("http2_settings_alone", with_field("http2-settings", "AAMAAABk"), OK, upstream=1,
           check=upstream_saw("/f", absent=["http2-settings"]),
           doc="meaningless without Upgrade; hop-by-hop, so not forwarded"),
    # --- field values (RFC 9113 section 8.2.1) ----------------------------------------------
    bad("value_with_cr", with_field("x-v", "a\rb")),
    bad("value_with_lf", with_field("x-v", "a\nb")),
    bad("value_header_injection", with_field("x-v", "a\r\nx-evil: 1"),
        doc="would be a second field on HTTP/1.1"),
    bad("value_with_nul", with_field("x-v", "a\0b")),
    bad("value_with_del", with_field("x-v", "a\x7fb")),
    bad("value_leading_space", with_field("x-v", " a")),
    bad("value_trailing_space", with_field("x-v", "a ")),
    bad("value_leading_tab", with_field("x-v", "\ta")),
    bad("value_trailing_tab", with_field("x-v", "a\t")),
    H2Case("value_inner_whitespace", with_field("x-v", "a \tb"), OK, upstream=1,
           check=upstream_saw("/f", x_v=["a \tb"])),
    H2Case("value_high_bytes", with_field("x-v", "caf\xe9"), OK, upstream=1,
           check=upstream_saw("/f", x_v=["caf\xe9"]), doc="obs-text is allowed, passed as is"),
    H2Case("value_empty", with_field("x-v", ""), OK, upstream=1,
           check=upstream_saw("/f", x_v=[""])),
    # --- :path (RFC 9113 section 8.3.1) -----------------------------------------------------
    bad("path_empty", H(R(""))),
    bad("path_relative", H(R("foo"))),
    bad("path_absolute_form", H(R("http://evil.example/x")),
        doc="HTTP/2 carries the authority in :authority; :path is origin-form or '*'"),
    bad("path_asterisk_for_get", H(R("*"))),
    H2Case("path_asterisk_for_options", H(R("*", "OPTIONS")), OK, upstream=1,
           check=upstream_saw("*")),
    bad("path_with_space", H(R("/a b"))),
    bad("path_with_del", H(R("/a\x7f"))),
    H2Case("path_with_obs_text", H(R("/caf\xe9")), Status(1, 400),
           doc="nghttp2 lets bytes over 0x7f through; a request line cannot carry them"),
    H2Case("query_with_obs_text", H(R("/f?q=\xff")), Status(1, 400)),
    H2Case("path_double_slash", H(R("//x?q=1")), OK, upstream=1, check=upstream_saw("//x?q=1"),
           doc="valid origin-form; forwarded as sent, never read as an authority"),
    # --- :authority and Host (RFC 9113 section 8.3.1) ---------------------------------------
    H2Case("authority_with_userinfo", H(R(authority="user@a")), Status(1, 400),
           doc="userinfo is not allowed in :authority"),
    H2Case("authority_with_user_and_password", H(R(authority="user:pw@a")), Status(1, 400)),
    bad("authority_with_space", H(R(authority="a b"))),
    bad("authority_with_slash", H(R(authority="a/b"))),
    bad("authority_empty", H(R(authority=""))),
    H2Case("authority_unclosed_ipv6", H(R(authority="[::1")), Status(1, 400)),
    H2Case("authority_port_too_long", H(R(authority="a:123456")), Status(1, 400)),
    H2Case("authority_and_host_disagree", H(R(authority="a") + [("host", "b")]), OK,
           upstream=1, check=upstream_saw("/", host="a"),
           doc="section 8.3.1 says a server SHOULD treat this as malformed; viscount lets "
               ":authority win and drops the client's Host, so the upstream sees one Host "
               "that agrees with what the proxy logged (nghttpx and Envoy do the same)"),
    H2Case("host_without_authority", H(without(":authority") + [("host", "h.example")]), OK,
           upstream=1, check=upstream_saw("/", host="h.example")),
    H2Case("host_without_authority_userinfo", H(without(":authority") + [("host", "u@b")]),
           Status(1, 400)),
    # --- content-length against DATA (RFC 9113 section 8.1.1) -------------------------------
    bad("content_length_shorter_than_data", post(["3"], b"hello")),
    bad("content_length_shorter_than_later_data", post(["5"], b"hello", b"world"),
        doc="the first DATA frame matches the length exactly; the second overruns it. The "
            "upstream may see the head and the body but never the whole body: the last byte "
            "of a declared length waits for END_STREAM, where nghttp2 checks the total"),
    bad("content_length_longer_than_data", post(["10"], b"hello")),
    bad("content_length_longer_then_ended_later",
        [(post(["10"], b"hello", end=False), 0), (data(1, end=True), 0.5)],
        doc="the upstream had the head and half the body; the rest never comes"),
    bad("content_length_zero_with_data", post(["0"], b"hello")),
    bad("content_length_twice_same", post(["5", "5"], b"hello")),
    bad("content_length_twice_different", post(["5", "6"], b"hello")),
    bad("content_length_list", post(["5, 5"], b"hello")),
    bad("content_length_negative", post(["-1"], b"hello")),
    bad("content_length_overflowing", post(["99999999999999999999999"], b"hello")),
    bad("content_length_plus_sign", post(["+5"], b"hello")),
    bad("content_length_empty", post([""], b"hello")),
    H2Case("content_length_matches", post(["5"], b"hel", b"lo"), OK, upstream=1,
           check=upstream_saw("/up", body=b"hello", content_length=["5"])),
    H2Case("content_length_zero_ended_by_empty_data", post(["0"], b""), OK, upstream=1,
           check=upstream_saw("/up", body=b"")),
    H2Case("get_with_body", H(R("/g", extra=[("content-length", "5")]), end=False)
           + data(1, b"hello", end=True), OK, upstream=1,
           check=upstream_saw("/g", body=b"hello", content_length=["5"])),
    # --- limits -----------------------------------------------------------------------------
    H2Case("body_over_limit_by_length", post([str(BODY_LIMIT + 1)], b"hello", end=False),
           Status(1, 413)),
    H2Case("body_over_limit_streamed",
           H(R("/up", "POST"), end=False) + b"".join(data(1, b"x" * 16384) for _ in range(5))
           + data(1, end=True), Status(1, 413),
           doc="no length: found while the body streams, the upstream never gets its end"),
    H2Case("body_at_limit", post([str(BODY_LIMIT)], *[b"x" * 16384] * 4), OK, upstream=1,
           check=lambda t, c, reqs: t.assertEqual(len(reqs[0].body), BODY_LIMIT)),
    H2Case("headers_over_size_limit", with_field("x-big", "v" * 9000), Status(1, 431)),
    H2Case("headers_over_count_limit", H(R(extra=[(f"x-h{i}", "1") for i in range(101)])),
           Status(1, 431)),
    H2Case("headers_at_count_limit", H(R("/f", extra=[(f"x-h{i}", "1") for i in range(99)])),
           OK, upstream=1, check=upstream_saw("/f", x_h98=["1"])),
    H2Case("cookie_crumbs_joined", H(R("/f", extra=[("cookie", "a=1"), ("cookie", "b=2")])), OK,
           upstream=1, check=upstream_saw("/f", cookie=["a=1; b=2"]),
           doc="an HTTP/1.1 upstream wants one Cookie field (section 8.2.3)"),
    H2Case("request_id_twice", H(R("/f", extra=[("x-request-id", "a1"), ("x-request-id", "b2")])),
           OK, upstream=1,
           check=lambda t, c, reqs: t.assertEqual(len(reqs[0].values("x-request-id")), 1)),
    # --- trailers (RFC 9113 section 8.1) ----------------------------------------------------
    H2Case("trailers_forwarded", with_trailers([("x-t", "1")]), OK, upstream=1,
           check=trailers_upstream([("x-t", "1")])),
    H2Case("trailers_framing_fields_dropped",
           with_trailers([("content-length", "2"), ("host", "evil"), ("x-t", "1")]), OK,
           upstream=1, check=trailers_upstream([("x-t", "1")])),
    bad("trailers_without_end_stream", with_trailers([("x-t", "1")], end=False)),
    bad("trailers_with_connection_field", with_trailers([("connection", "close")])),
    # --- Expect, CONNECT, methods, schemes --------------------------------------------------
    H2Case("expect_100_continue",
           [(H(R("/up", "POST", extra=[("expect", "100-continue"), ("content-length", "5")]),
               end=False), 0), (data(1, b"hello", end=True), 0.5)], OK, upstream=1,
           check=both(informational([100]), upstream_saw("/up", body=b"hello", absent=["expect"])),
           doc="the 100 comes before the body is sent; the upstream never sees Expect"),
    H2Case("expect_100_continue_without_body", with_field("expect", "100-continue"), OK,
           upstream=1, check=both(informational([]), upstream_saw("/f", absent=["expect"]))),
    H2Case("expect_100_continue_body_over_limit",
           H(R("/up", "POST", extra=[("expect", "100-continue"),
                                     ("content-length", str(BODY_LIMIT + 1))]), end=False),
           Status(1, 413), check=informational([])),
    H2Case("expect_unknown",
           H(R("/up", "POST", extra=[("expect", "99-stop"), ("content-length", "5")]),
             end=False) + data(1, b"hello", end=True), Status(1, 417)),
    H2Case("connect", H([(":method", "CONNECT"), (":authority", "a:443")]), Status(1, 501),
           doc="tunnels are not proxied"),
    bad("connect_with_path_and_scheme",
        H([(":method", "CONNECT"), (":authority", "a:443"), (":path", "/"), (":scheme", "http")])),
    H2Case("extended_connect_other_protocol",
           H([(":method", "CONNECT"), (":protocol", "chat"), (":scheme", "http"),
              (":path", "/ws"), (":authority", "a")], end=False), Status(1, 501),
           doc="RFC 8441 extended CONNECT is bridged for websockets only"),
    H2Case("extended_connect_refused_upstream",
           H([(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"),
              (":path", "/ws"), (":authority", "a"), ("sec-websocket-version", "13")],
             end=False) + data(1, b"early", end=False), OK, upstream=1,
           check=upstream_saw("/ws", body=b"", upgrade=["websocket"], connection=["upgrade"]),
           doc="a websocket the upstream refuses (no 101) is an ordinary response, and the DATA"
               " sent before it never reach the upstream"),
    bad("method_with_space", H(R(method="G T"))),
    H2Case("method_lowercase", H(R("/f", "get")), OK, upstream=1,
           check=lambda t, c, reqs: t.assertEqual(reqs[0].method, "get"),
           doc="methods are case-sensitive tokens: 'get' is not GET, passed as it came"),
    H2Case("scheme_other", H(R("/f", scheme="ftp")), OK, upstream=1,
           check=upstream_saw("/f", x_forwarded_proto=["http"]),
           doc="the client's :scheme is its claim; x-forwarded-proto says how it reached us"),
]


def close_after(req, sock):
    sock.sendall(echo_response(req, ["connection: close"]))
    return False


class Http2RequestsTest(ProxyTestCase):
    """The upstream keeps its connections: a request usually finds one idle in the pool and
    goes out while its frames are still being read."""


class Http2RequestsNewUpstreamTest(ProxyTestCase):
    """The upstream closes every connection: each request waits for a new one, so its body and
    trailers are held by the proxy meanwhile (the other path through the exchange)."""
    handlers = {"/": close_after}


# The cases whose body or trailers arrive after the head, for the second path.
HELD_BY_THE_PROXY = ("content_length", "trailers", "pseudo_in_trailers", "expect", "body_",
                     "get_with_body")

add_h2_cases(Http2RequestsTest, CASES)
add_h2_cases(Http2RequestsNewUpstreamTest,
             [c for c in CASES if c.name.startswith(HELD_BY_THE_PROXY)])

if __name__ == "__main__":
    unittest.main()
