"""Context headers under attack: x-request-id, x-correlation-id, x-user-id, traceparent and the
forwarding headers with line breaks, NUL, 10 KiB values, repeats, lists and look-alike names.
Whatever the client sends, the upstream sees exactly one well-formed copy of each id header (or
none, for an untrusted user id), and the response echoes the ids that were sent upstream, never
the client's raw bytes.

The proxy trusts 127.0.0.1 only; clients connecting from 127.0.0.2 are untrusted.
"""

import re
import unittest

from adversarial_support import Case, ProxyTestCase, add_cases

UNTRUSTED = "127.0.0.2"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TRACEPARENT = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
VALID_TP = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TEN_KIB = b"a" * 10240


def get(extra=b""):
    return b"GET /ctx HTTP/1.1\r\nHost: a\r\n" + extra + b"\r\n"


def ids(request_id=None, correlation_id=None, user_id=(), trace=None, tracestate=(),
        absent=()):
    """Checks the forwarded request and the echo: exactly one request and correlation id (equal
    to the given value, or a fresh uuid when None), the user id values, a traceparent that
    continues `trace` (a trace id) or starts a new one, and headers that must not be there."""
    def check(test, result, requests):
        req = requests[0]
        resp = result.first
        for name, expected in (("x-request-id", request_id), ("x-correlation-id", correlation_id)):
            values = req.values(name)
            test.assertEqual(len(values), 1, f"{name}: {values}")
            if expected is None:
                test.assertRegex(values[0], UUID)
            else:
                test.assertEqual(values[0], expected)
            test.assertEqual(resp.header(name), values[0], "the echo differs from what was sent")
            test.assertEqual(resp.count(name), 1)
        test.assertEqual(req.values("x-user-id"), list(user_id))
        tp = req.values("traceparent")
        test.assertEqual(len(tp), 1, tp)
        test.assertRegex(tp[0], TRACEPARENT)
        if trace is None:
            test.assertNotIn(VALID_TP.decode().split("-")[1], tp[0], "continued a bad trace")
        else:
            test.assertEqual(tp[0].split("-")[1], trace)
        test.assertEqual(req.values("tracestate"), list(tracestate))
        for name in absent:
            test.assertEqual(req.values(name), [], f"{name} was forwarded")
        for name, value in req.headers:
            test.assertLessEqual(len(value), 1024, f"{name} forwarded with {len(value)} bytes")
    return check


TRACE_ID = VALID_TP.decode().split("-")[1]

CASES = [
    # --- controls: what a well-behaved caller gets -----------------------------------------
    Case("trusted_ids_kept", get(b"X-Request-Id: req-1\r\nX-Correlation-Id: corr-1\r\n"
                                 b"X-User-Id: alice\r\n"), 200,
         check=ids("req-1", "corr-1", ["alice"])),
    Case("untrusted_ids_replaced", get(b"X-Request-Id: req-1\r\nX-Correlation-Id: corr-1\r\n"
                                       b"X-User-Id: alice\r\n"), 200, source=UNTRUSTED,
         check=ids()),
    # --- line breaks and control bytes: the request is refused, nothing forwarded ----------
    Case("request_id_with_crlf_and_space", get(b"X-Request-Id: a\r\n b\r\n"), 400,
         doc="a CRLF inside the value can only be an obs-fold"),
    Case("request_id_with_bare_cr", get(b"X-Request-Id: a\rX-User-Id: admin\r\n"), 400),
    Case("request_id_with_bare_lf", get(b"X-Request-Id: a\nX-User-Id: admin\r\n"), 400),
    Case("request_id_with_nul", get(b"X-Request-Id: a\x00b\r\n"), 400),
    Case("correlation_id_with_escape", get(b"X-Correlation-Id: a\x1b[2Jb\r\n"), 400),
    Case("traceparent_with_nul", get(b"traceparent: " + VALID_TP + b"\x00\r\n"), 400),
    Case("user_id_with_bare_cr", get(b"X-User-Id: alice\rX-Admin: 1\r\n"), 400),
    # --- oversized values: replaced, never forwarded raw -----------------------------------
    Case("request_id_10kib", get(b"X-Request-Id: " + TEN_KIB + b"\r\n"), 200, check=ids()),
    Case("correlation_id_10kib", get(b"X-Correlation-Id: " + TEN_KIB + b"\r\n"), 200,
         check=ids()),
    Case("user_id_10kib", get(b"X-User-Id: " + TEN_KIB + b"\r\n"), 200, check=ids()),
    Case("traceparent_10kib", get(b"traceparent: " + VALID_TP + TEN_KIB + b"\r\n"), 200,
         check=ids()),
    Case("tracestate_10kib", get(b"traceparent: " + VALID_TP + b"\r\ntracestate: " + TEN_KIB
                                 + b"\r\n"), 200, check=ids(trace=TRACE_ID),
         doc="an oversized tracestate is dropped, the trace still continues"),
    # --- repeats and lists -----------------------------------------------------------------
    Case("request_id_repeated_identical", get(b"X-Request-Id: same\r\nx-request-id: same\r\n"),
         200, check=ids("same")),
    Case("request_id_repeated_differing", get(b"X-Request-Id: one\r\nX-Request-Id: two\r\n"),
         200, check=ids()),
    Case("request_id_as_list", get(b"X-Request-Id: one, two\r\n"), 200, check=ids()),
    Case("request_id_empty", get(b"X-Request-Id:\r\n"), 200, check=ids()),
    Case("request_id_high_bytes", get(b"X-Request-Id: caf\xc3\xa9\r\n"), 200, check=ids()),
    Case("request_id_many_copies", get(b"X-Request-Id: a\r\n" * 50), 200, check=ids("a")),
    Case("user_id_repeated_differing", get(b"X-User-Id: alice\r\nX-User-Id: bob\r\n"), 200,
         check=ids()),
    Case("traceparent_repeated_differing",
         get(b"traceparent: " + VALID_TP + b"\r\ntraceparent: "
             + VALID_TP.replace(b"-01", b"-00") + b"\r\ntracestate: a=b\r\n"), 200,
         check=ids(), doc="an ambiguous parent starts a new trace and drops tracestate"),
    Case("traceparent_invalid", get(b"traceparent: 00-zz-b7ad6b7169203331-01\r\n"
                                    b"tracestate: a=b\r\n"), 200, check=ids()),
    Case("traceparent_continued", get(b"traceparent: " + VALID_TP + b"\r\ntracestate: a=b\r\n"),
         200, check=ids(trace=TRACE_ID, tracestate=["a=b"])),
    # --- names that are not quite the header -------------------------------------------------
    Case("user_id_underscore_untrusted", get(b"X_User_Id: admin\r\n"), 200, source=UNTRUSTED,
         check=ids(absent=["x_user_id"]),
         doc="CGI/WSGI servers read X_User_Id and X-User-Id as the same variable"),
    Case("user_id_underscore_trusted", get(b"X-User-Id: alice\r\nX_User_Id: admin\r\n"), 200,
         check=ids(user_id=["alice"], absent=["x_user_id"])),
    Case("request_id_underscore", get(b"X_Request_Id: evil\r\n"), 200, source=UNTRUSTED,
         check=ids(absent=["x_request_id"])),
    Case("forwarded_for_underscore", get(b"X_Forwarded_For: 10.0.0.1\r\n"), 200,
         source=UNTRUSTED,
         check=lambda t, r, reqs: (ids(absent=["x_forwarded_for"])(t, r, reqs),
                                   t.assertEqual(reqs[0].values("x-forwarded-for"),
                                                 [UNTRUSTED]))),
    Case("deadline_underscore", get(b"X_Request_Timeout_Ms: 1\r\n"), 200, source=UNTRUSTED,
         check=ids(absent=["x_request_timeout_ms"])),
    Case("connection_names_the_ids",
         get(b"X-Request-Id: req-1\r\nConnection: x-request-id, x-correlation-id, traceparent"
             b"\r\n"), 200, check=ids("req-1"),
         doc="hop-by-hop removal cannot delete the ids the proxy sets"),
    # --- forwarding headers from an untrusted caller ----------------------------------------
    Case("forwarded_for_untrusted", get(b"X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: https"
                                        b"\r\nX-Request-Timeout-Ms: 1\r\n"), 200,
         source=UNTRUSTED,
         check=lambda t, r, reqs: (t.assertEqual(reqs[0].values("x-forwarded-for"), [UNTRUSTED]),
                                   t.assertEqual(reqs[0].values("x-forwarded-proto"), ["http"]),
                                   t.assertNotEqual(reqs[0].values("x-request-timeout-ms"),
                                                    ["1"]))),
]


class ContextHeadersTest(ProxyTestCase):
    config_overrides = {
        "listener": {"limits": {"max_request_headers_size": "32KiB"}},
        "context": {"trusted_sources": ["127.0.0.1/32"]},
    }


add_cases(ContextHeadersTest, CASES)

if __name__ == "__main__":
    unittest.main()
