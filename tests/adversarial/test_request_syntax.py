"""Request syntax: line endings, obs-fold, control bytes, whitespace where none belongs, versions,
methods, Host and request-target forms. A byte the proxy and the upstream could read differently
must be refused (400, or the contract's 501/505) with the connection closed; what is valid but
unusual must reach the upstream rebuilt cleanly (the upstream's strict parser fails the case on
any byte it would not accept).
"""

import unittest

from adversarial_support import Case, ProxyTestCase, add_cases


def get(extra=b"", target=b"/", version=b"HTTP/1.1", method=b"GET", host=b"Host: a\r\n"):
    return method + b" " + target + b" " + version + b"\r\n" + host + extra + b"\r\n"


def upstream_saw(target=None, host=None, header=None):
    """Checks the one forwarded request: its target, its single Host, one header's values."""
    def check(test, result, requests):
        req = requests[0]
        if target is not None:
            test.assertEqual(req.target, target)
        if host is not None:
            test.assertEqual(req.values("host"), [host], req)
        if header is not None:
            name, values = header
            test.assertEqual(req.values(name), values, req)
    return check


CASES = [
    # --- line endings ----------------------------------------------------------------------
    Case("bare_lf_everywhere", b"GET / HTTP/1.1\nHost: a\n\n", 400),
    Case("bare_lf_after_request_line", b"GET / HTTP/1.1\nHost: a\r\n\r\n", 400),
    Case("bare_lf_after_header", b"GET / HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n", 400),
    Case("bare_lf_ends_head", b"GET / HTTP/1.1\r\nHost: a\r\n\n", 400),
    Case("bare_cr_after_request_line", b"GET / HTTP/1.1\rHost: a\r\n\r\n", 400),
    Case("bare_cr_in_value", get(b"X-A: b\rc\r\n"), 400),
    Case("bare_cr_hiding_a_header", get(b"X-A: b\rTransfer-Encoding: chunked\r\n"), 400),
    Case("bare_cr_ends_head", b"GET / HTTP/1.1\r\nHost: a\r\n\r\r\n", 400),
    # --- obs-fold --------------------------------------------------------------------------
    Case("obs_fold_space", get(b"X-A: b\r\n c\r\n"), 400),
    Case("obs_fold_tab", get(b"X-A: b\r\n\tc\r\n"), 400),
    Case("obs_fold_after_empty_value", get(b"X-A:\r\n c\r\n"), 400),
    Case("obs_fold_of_host", b"GET / HTTP/1.1\r\nHost: a\r\n .evil\r\n\r\n", 400),
    # --- control and high bytes ------------------------------------------------------------
    Case("nul_in_name", get(b"X\x00A: b\r\n"), 400),
    Case("nul_in_value", get(b"X-A: b\x00c\r\n"), 400),
    Case("nul_in_target", get(target=b"/a\x00b"), 400),
    Case("nul_in_host", get(host=b"Host: a\x00b\r\n"), 400),
    Case("soh_in_value", get(b"X-A: b\x01c\r\n"), 400),
    Case("escape_in_value", get(b"X-A: \x1b[31mred\r\n"), 400),
    Case("delete_in_value", get(b"X-A: b\x7fc\r\n"), 400),
    Case("vertical_tab_in_name", get(b"X-A\x0b: b\r\n"), 400),
    Case("control_in_target", get(target=b"/a\x01b"), 400),
    Case("tab_in_target", get(target=b"/a\tb"), 400),
    Case("high_byte_in_name", get(b"X-\xc3\xa9: b\r\n"), 400),
    Case("high_byte_in_target", get(target=b"/caf\xc3\xa9"), 400,
         doc="not valid in a request-target; nginx forwards it, llhttp's strict mode refuses"),
    Case("high_byte_in_value", get(b"X-A: caf\xc3\xa9\r\n"), 200,
         check=upstream_saw(header=("x-a", ["caf\xc3\xa9"])),
         doc="obs-text is allowed in field values and forwarded untouched"),
    # --- whitespace and colons ---------------------------------------------------------------
    Case("space_before_colon", get(b"X-A : b\r\n"), 400),
    Case("tab_before_colon", get(b"X-A\t: b\r\n"), 400),
    Case("space_before_first_header", b"GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400),
    Case("tab_before_first_header", b"GET / HTTP/1.1\r\n\tX-A: b\r\nHost: a\r\n\r\n", 400),
    Case("empty_header_name", get(b": b\r\n"), 400,
         doc="a line with no name must not become part of the header before it"),
    Case("empty_header_name_first", b"GET / HTTP/1.1\r\n: b\r\nHost: a\r\n\r\n", 400),
    Case("header_without_colon", get(b"X-A b\r\n"), 400),
    Case("space_after_version", b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400),
    Case("two_spaces_in_request_line", b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 200,
         check=upstream_saw(target="/"),
         doc="llhttp reads the extra space as a separator; the line is rebuilt upstream"),
    Case("empty_lines_before_request", b"\r\n\r\n" + get(), 200, check=upstream_saw(target="/"),
         doc="RFC 9112 section 2.2: a server should ignore empty lines before the request"),
    # --- versions --------------------------------------------------------------------------
    Case("http_1_2", get(version=b"HTTP/1.2"), 400),
    Case("http_2_0_as_text", get(version=b"HTTP/2.0"), 505),
    Case("http_3_0_as_text", get(version=b"HTTP/3.0"), {400, 505}),
    Case("http_01_1", get(version=b"HTTP/01.1"), 400),
    Case("http_1_01", get(version=b"HTTP/1.01"), 400),
    Case("http_lowercase", get(version=b"http/1.1"), 400),
    Case("http_0_9_request_line", b"GET /\r\n\r\n", 400),
    Case("http_0_9_version", b"GET / HTTP/0.9\r\n\r\n", 400),
    Case("h2_preface_near_miss", b"PRI * HTTP/2.0\r\n\r\nXM\r\n\r\n", {400, 505},
         doc="almost the HTTP/2 preface: HTTP/1 refuses it, never forwarded"),
    # --- methods ---------------------------------------------------------------------------
    Case("unknown_method", get(method=b"FROB"), 501),
    Case("lowercase_method", get(method=b"get"), 501),
    Case("garbage_method", get(method=b"G@T"), 400),
    Case("overlong_method", get(method=b"A" * 40), 400),
    Case("control_byte_method", get(method=b"\x01GET"), 400),
    Case("connect", b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 501),
    # --- Host ------------------------------------------------------------------------------
    Case("missing_host_http11", get(host=b""), 400),
    Case("two_hosts", get(host=b"Host: a\r\nHost: b\r\n"), 400),
    Case("two_identical_hosts", get(host=b"Host: a\r\nHost: a\r\n"), 400),
    Case("host_list", get(host=b"Host: a, b\r\n"), 400),
    Case("host_with_space", get(host=b"Host: a b\r\n"), 400),
    Case("host_with_slash", get(host=b"Host: a/b\r\n"), 400),
    Case("host_with_userinfo", get(host=b"Host: user@a\r\n"), 400),
    Case("host_with_bad_port", get(host=b"Host: a:8x\r\n"), 400),
    Case("host_with_quote", get(host=b"Host: a\"b\r\n"), 400),
    Case("host_ipv6_literal", get(host=b"Host: [::1]:8080\r\n"), 200,
         check=upstream_saw(host="[::1]:8080")),
    Case("host_name_and_port", get(host=b"Host: api.example-1.com:8443\r\n"), 200,
         check=upstream_saw(host="api.example-1.com:8443")),
    Case("host_empty", get(host=b"Host:\r\n"), 200, check=upstream_saw(target="/"),
         doc="valid when the target has no authority; the upstream still gets one Host"),
    Case("http10_without_host", b"GET /ten HTTP/1.0\r\n\r\n", 200, closed=True,
         check=upstream_saw(target="/ten"),
         doc="HTTP/1.0 may omit Host; the HTTP/1.1 request upstream may not"),
    # --- request-target forms --------------------------------------------------------------
    Case("absolute_form", get(target=b"http://other:81/x?q=1"), 200,
         check=upstream_saw(target="/x?q=1", host="other:81"),
         doc="its authority wins over Host (RFC 9112 section 3.2.2); origin-form upstream"),
    Case("absolute_form_without_path", get(target=b"http://other"), 200,
         check=upstream_saw(target="/", host="other")),
    Case("absolute_form_userinfo", get(target=b"http://evil@good/x"), 400,
         doc="userinfo in an http(s) URI is an error (RFC 9110 section 4.2.4)"),
    Case("absolute_form_empty_authority", get(target=b"http:///x"), 400),
    Case("absolute_form_other_scheme", get(target=b"ftp://other/x"), 400),
    Case("authority_form_for_get", get(target=b"other:80"), 400),
    Case("asterisk_form_for_get", get(target=b"*"), 400),
    Case("asterisk_form_for_options", get(target=b"*", method=b"OPTIONS"), 200,
         check=upstream_saw(target="*")),
    Case("relative_target", get(target=b"a/b"), 400),
    Case("space_in_target", get(target=b"/a b"), 400),
]


class RequestSyntaxTest(ProxyTestCase):
    pass


add_cases(RequestSyntaxTest, CASES)

if __name__ == "__main__":
    unittest.main()
