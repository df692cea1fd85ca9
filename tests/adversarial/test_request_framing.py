"""Request framing: Content-Length and Transfer-Encoding in every shape that lets two HTTP
implementations disagree about where a request body ends (CL.TE, TE.CL, TE.TE), and broken
chunked bodies. Each hostile case must be answered 400 with the connection closed and nothing
forwarded; each case marked 200 is a legitimate spelling that must be forwarded as exactly one
request with the body framed as the client meant it.

The hidden request in every payload targets /smuggled: the upstream fails the case if it ever
sees that target.
"""

import unittest

from adversarial_support import Case, ProxyTestCase, add_cases

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
CHUNKED_SMUGGLE = b"%x\r\n%s\r\n0\r\n\r\n" % (len(SMUGGLED), SMUGGLED)
POST = b"POST /legit HTTP/1.1\r\nHost: a\r\n"
CHUNKED_POST = POST + b"Transfer-Encoding: chunked\r\n\r\n"


def cl_te(te_line, cl=b"4"):
    """A body that is a chunked smuggle when read as chunked, and 4 bytes when read by length."""
    return POST + b"Content-Length: " + cl + b"\r\n" + te_line + b"\r\n\r\n" + CHUNKED_SMUGGLE


def te_only(te_line, body=b"5\r\nhello\r\n0\r\n\r\n"):
    return POST + te_line + b"\r\n\r\n" + body


def body_is(expected):
    def check(test, result, requests):
        test.assertEqual(requests[0].body, expected)
        test.assertEqual(requests[0].target, "/legit")
    return check


CASES = [
    # --- CL.TE and TE.CL -------------------------------------------------------------------
    Case("cl_te", POST + b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n%s"
         % (5 + len(SMUGGLED), SMUGGLED), 400,
         doc="CL.TE: a length-reading hop sees one body, a chunk-reading one a second request"),
    Case("te_cl", POST + b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
         + CHUNKED_SMUGGLE, 400),
    Case("cl_te_zero_length", cl_te(b"Transfer-Encoding: chunked", cl=b"0"), 400),
    Case("cl_te_http10", POST.replace(b"1.1", b"1.0") + b"Content-Length: 4\r\n"
         b"Transfer-Encoding: chunked\r\n\r\n" + CHUNKED_SMUGGLE, 400),
    Case("te_te_second_unknown", cl_te(b"Transfer-Encoding: chunked\r\nTransfer-Encoding: cow"),
         400),
    # --- Transfer-Encoding obfuscations ----------------------------------------------------
    Case("te_space_before_colon", cl_te(b"Transfer-Encoding : chunked"), 400),
    Case("te_tab_before_colon", cl_te(b"Transfer-Encoding\t: chunked"), 400),
    Case("te_folded_name", POST + b"Content-Length: 4\r\n Transfer-Encoding: chunked\r\n\r\n"
         + CHUNKED_SMUGGLE, 400, doc="a header line that starts with a space is obs-fold"),
    Case("te_folded_value", cl_te(b"Transfer-Encoding:\r\n chunked"), 400),
    Case("te_quoted", te_only(b'Transfer-Encoding: "chunked"'), 400),
    Case("te_gzip_chunked", te_only(b"Transfer-Encoding: gzip, chunked"), 400),
    Case("te_chunked_gzip", te_only(b"Transfer-Encoding: chunked, gzip"), 400),
    Case("te_chunked_chunked_list", te_only(b"Transfer-Encoding: chunked, chunked"), 400),
    Case("te_chunked_twice", te_only(b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked"),
         400, doc="two chunked codings: the body would have to be de-chunked twice"),
    Case("te_identity", te_only(b"Transfer-Encoding: identity", body=b""), 400),
    Case("te_unknown_coding", te_only(b"Transfer-Encoding: xchunked"), 400),
    Case("te_empty", cl_te(b"Transfer-Encoding: "), 400),
    Case("te_trailing_comma", te_only(b"Transfer-Encoding: chunked,"), 400),
    Case("te_vertical_tab_after", cl_te(b"Transfer-Encoding: chunked\x0b"), 400),
    Case("te_vertical_tab_before", cl_te(b"Transfer-Encoding:\x0bchunked"), 400),
    Case("te_form_feed", cl_te(b"Transfer-Encoding: chunked\x0c"), 400),
    Case("te_high_byte", cl_te(b"Transfer-Encoding: chunked\xff"), 400),
    Case("te_nbsp_utf8", cl_te(b"Transfer-Encoding: \xc2\xa0chunked"), 400),
    Case("te_nul", cl_te(b"Transfer-Encoding: chunked\x00"), 400),
    Case("te_in_http10", te_only(b"Transfer-Encoding: chunked").replace(b"1.1", b"1.0", 1), 400,
         doc="HTTP/1.0 has no chunked coding (RFC 9112 section 6.1)"),
    # Legitimate spellings: optional whitespace and case do not change the coding.
    Case("te_uppercase_value", te_only(b"Transfer-Encoding: CHUNKED"), 200,
         check=body_is(b"hello")),
    Case("te_uppercase_name", te_only(b"TRANSFER-ENCODING: chunked"), 200,
         check=body_is(b"hello")),
    Case("te_tab_as_whitespace", te_only(b"Transfer-Encoding:\tchunked"), 200,
         check=body_is(b"hello")),
    Case("te_trailing_tab", te_only(b"Transfer-Encoding: chunked\t"), 400,
         doc="valid optional whitespace, but llhttp 8.1 then reads the coding as not chunked: "
             "refused, never misread"),
    Case("te_underscore_name_is_another_header",
         POST + b"Content-Length: 5\r\nTransfer_Encoding: chunked\r\n\r\nhello", 200,
         check=body_is(b"hello"),
         doc="not Transfer-Encoding: the body is the 5 bytes Content-Length says"),
    # --- Content-Length --------------------------------------------------------------------
    Case("cl_two_differing", POST + b"Content-Length: 0\r\nContent-Length: %d\r\n\r\n%s"
         % (len(SMUGGLED), SMUGGLED), 400),
    Case("cl_two_identical", POST + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400),
    Case("cl_list", POST + b"Content-Length: 5, 5\r\n\r\nhello", 400),
    Case("cl_list_differing", POST + b"Content-Length: 0, 37\r\n\r\n" + SMUGGLED, 400),
    Case("cl_plus_sign", POST + b"Content-Length: +5\r\n\r\nhello", 400),
    Case("cl_negative", POST + b"Content-Length: -1\r\n\r\nhello", 400),
    Case("cl_hex", POST + b"Content-Length: 0x5\r\n\r\nhello", 400),
    Case("cl_overflow", POST + b"Content-Length: 18446744073709551621\r\n\r\nhello", 400),
    Case("cl_empty", POST + b"Content-Length: \r\n\r\n", 400),
    Case("cl_space_inside", POST + b"Content-Length: 1 0\r\n\r\nhellohello", 400),
    Case("cl_decimal_point", POST + b"Content-Length: 5.0\r\n\r\nhello", 400),
    Case("cl_vertical_tab", POST + b"Content-Length: 5\x0b\r\n\r\nhello", 400),
    Case("cl_leading_zeros", POST + b"Content-Length: 0005\r\n\r\nhello", 200,
         check=body_is(b"hello"), doc="1*DIGIT: leading zeros are still the length 5"),
    # --- chunked bodies --------------------------------------------------------------------
    Case("chunk_size_overflow", CHUNKED_POST + b"10000000000000005\r\nhello\r\n0\r\n\r\n", 400),
    Case("chunk_size_junk", CHUNKED_POST + b"5x\r\nhello\r\n0\r\n\r\n", 400),
    Case("chunk_size_hex_prefix", CHUNKED_POST + b"0x5\r\nhello\r\n0\r\n\r\n", 400),
    Case("chunk_size_negative", CHUNKED_POST + b"-5\r\nhello\r\n0\r\n\r\n", 400),
    Case("chunk_size_empty", CHUNKED_POST + b"\r\nhello\r\n0\r\n\r\n", 400),
    Case("chunk_size_leading_space", CHUNKED_POST + b" 5\r\nhello\r\n0\r\n\r\n", 400),
    Case("chunk_extension_bare_cr", CHUNKED_POST + b"5;a=b\rc\r\nhello\r\n0\r\n\r\n", 400),
    Case("chunk_extension_bare_lf", CHUNKED_POST + b"5;a=b\nhello\r\n0\r\n\r\n", 400),
    Case("chunk_size_line_bare_lf", CHUNKED_POST + b"5\nhello\r\n0\r\n\r\n", 400),
    Case("chunk_data_missing_crlf", CHUNKED_POST + b"5\r\nhello0\r\n\r\n", 400),
    Case("chunk_data_longer_than_size", CHUNKED_POST + b"5\r\nhello world\r\n0\r\n\r\n", 400),
    Case("chunk_data_bare_lf", CHUNKED_POST + b"5\r\nhello\n0\r\n\r\n", 400),
    Case("chunk_last_without_crlf_then_request", CHUNKED_POST + b"0\r\n" + SMUGGLED, 400,
         doc="the hidden request line would be a trailer line: it is not a valid field"),
    Case("chunk_trailer_content_length_dropped",
         CHUNKED_POST + b"5\r\nhello\r\n0\r\nContent-Length: 37\r\nX-Trailer: ok\r\n\r\n", 200,
         check=lambda t, r, reqs: (body_is(b"hello")(t, r, reqs),
                                   t.assertEqual(reqs[0].trailers, [("x-trailer", "ok")])),
         doc="a trailer cannot change the framing: Content-Length there is dropped"),
    Case("chunk_trailer_transfer_encoding",
         CHUNKED_POST + b"5\r\nhello\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    Case("chunk_data_holding_a_request", CHUNKED_POST + CHUNKED_SMUGGLE, 200,
         check=body_is(SMUGGLED), doc="request bytes inside a chunk are body, nothing more"),
    Case("chunk_extensions_legit",
         CHUNKED_POST + b"5;name=value\r\nhello\r\n6;q=\"a b\"\r\n world\r\n0\r\n\r\n", 200,
         check=body_is(b"hello world")),
    Case("chunk_extensions_two_unquoted_values",
         CHUNKED_POST + b"5;a=b;c=d\r\nhello\r\n0\r\n\r\n", 400,
         doc="valid, but llhttp 8.1 refuses a second extension after an unquoted value: "
             "refused, never misread"),
]

class RequestFramingTest(ProxyTestCase):
    pass


add_cases(RequestFramingTest, CASES)

if __name__ == "__main__":
    unittest.main()
