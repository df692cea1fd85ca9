"""HTTP/2 framing against the real binary over h2c with prior knowledge: the connection preface,
SETTINGS, PING, stream identifiers and states, flow control, frame sizes and padding, unknown and
misplaced frames, PRIORITY, HPACK errors and bombs, frame floods and the concurrent-stream limit.

Frames are made by hand (h2_support.py), so that what a well-behaved library refuses to send can
be sent. Each case states the outcome RFC 9113 asks for (a stream reset, a GOAWAY and a close, a
status, or a safe 200), what reached the upstream (nothing, or well-formed HTTP/1.1 requests),
and ends by checking that the same connection (after a stream error) and a fresh one are served.

Where nghttp2, which viscount uses for the framing layer, answers a stream error with a
connection error, the case accepts both: RFC 9113 section 5.4 lets an endpoint treat any stream
error as a connection error.
"""

import time
import unittest

from adversarial_support import ProxyTestCase
from h2_support import (ACK, CANCEL, COMPRESSION_ERROR, DATA, ENABLE_PUSH, ENHANCE_YOUR_CALM,
                        FLOW_CONTROL_ERROR, FRAME_SIZE_ERROR, HEADER_TABLE_SIZE, HEADERS,
                        INITIAL_WINDOW_SIZE, INTERNAL_ERROR, MAX_CONCURRENT_STREAMS,
                        MAX_FRAME_SIZE, PADDED, PING, PREFACE, PRIORITY, PROTOCOL_ERROR,
                        PUSH_PROMISE, REFUSED_STREAM, RST_STREAM, SETTINGS, STREAM_CLOSED,
                        WINDOW_UPDATE, Closed, GoAway, H2Case, H2Conn, Http1, Reset, Silent,
                        Status, add_h2_cases, assert_serves_fresh_connection, continuation, data,
                        encode_fields, frame, get, headers, indexed, literal, literal_indexed,
                        ping, priority, request_fields, rst_stream, settings, table_size_update,
                        window_update)
from raw_upstream import echo_response

END_STREAM_HEADERS = 0x5  # END_STREAM | END_HEADERS
MAX_STREAMS = 100         # viscount's SETTINGS_MAX_CONCURRENT_STREAMS


def targets(*expected):
    def check(test, conn, requests):
        test.assertEqual(sorted(r.target for r in requests), sorted(expected))
    return check


def answered(sid, status=200):
    def check(test, conn, requests):
        test.assertEqual(conn.stream(sid).status, status, conn)
    return check


def both(*checks):
    def check(test, conn, requests):
        for c in checks:
            c(test, conn, requests)
    return check


def upstream_body(body):
    def check(test, conn, requests):
        test.assertEqual([r.body for r in requests], [body])
    return check


def bomb_block(references):
    """A 4000-byte value entered in the dynamic table once, then referenced one byte at a time:
    a few KiB on the wire that decode into `references` x 4 KB."""
    return (encode_fields(request_fields("/bomb")) + literal_indexed("x-bomb", "v" * 4000)
            + indexed(62) * references)


def split_block(block, *cuts):
    """HEADERS (END_STREAM) + CONTINUATION frames for `block`, cut at the given offsets."""
    pieces = [block[a:b] for a, b in zip((0, *cuts), (*cuts, len(block)))]
    out = frame(HEADERS, 0x1, 1, pieces[0])
    for i, piece in enumerate(pieces[1:], 1):
        out += continuation(1, piece, end=i == len(pieces) - 1)
    return out


HTTP1_GET = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"

CASES = [
    # --- the connection preface (RFC 9113 section 3.4) --------------------------------------
    H2Case("preface_wrong_magic", PREFACE[:18] + b"XX\r\n\r\n" + settings(), Http1(400, 505),
           handshake=False,
           doc="not the preface, so an HTTP/1 request line 'PRI * HTTP/2.0': refused as HTTP/1"),
    H2Case("preface_lowercase", PREFACE.lower() + settings(), Http1(400, 501, 505),
           handshake=False),
    H2Case("preface_cut_then_eof", PREFACE[:16], Closed(), handshake=False, half_close=True),
    H2Case("preface_cut_then_stall", PREFACE[:20], Http1(408), handshake=False, timeout=10,
           doc="a preface that stops half-way is a request head in the making: the header "
               "deadline (3s here) bounds it like any slowloris, not the idle timeout"),
    H2Case("preface_then_eof", PREFACE, Closed(), handshake=False, half_close=True),
    H2Case("headers_before_settings", PREFACE + get(1), GoAway(PROTOCOL_ERROR), handshake=False,
           doc="the client's preface must continue with SETTINGS (RFC 9113 section 3.4)"),
    H2Case("ping_before_settings", PREFACE + ping(), GoAway(PROTOCOL_ERROR), handshake=False),
    H2Case("settings_ack_before_settings", PREFACE + settings(ack=True), GoAway(PROTOCOL_ERROR),
           handshake=False),
    H2Case("window_update_before_settings", PREFACE + window_update(0, 100),
           GoAway(PROTOCOL_ERROR), handshake=False),
    H2Case("http1_request_after_preface", PREFACE + HTTP1_GET, GoAway(PROTOCOL_ERROR),
           handshake=False),
    # --- SETTINGS (RFC 9113 section 6.5) ----------------------------------------------------
    H2Case("settings_initial_window_size_over_max", settings((INITIAL_WINDOW_SIZE, 1 << 31)),
           GoAway(FLOW_CONTROL_ERROR)),
    H2Case("settings_max_frame_size_below_min", settings((MAX_FRAME_SIZE, 16383)),
           GoAway(PROTOCOL_ERROR)),
    H2Case("settings_max_frame_size_above_max", settings((MAX_FRAME_SIZE, 1 << 24)),
           GoAway(PROTOCOL_ERROR)),
    H2Case("settings_enable_push_2", settings((ENABLE_PUSH, 2)), GoAway(PROTOCOL_ERROR)),
    H2Case("settings_length_not_a_multiple_of_6", frame(SETTINGS, 0, 0, b"\0\x03\0\0\0"),
           GoAway(FRAME_SIZE_ERROR)),
    H2Case("settings_ack_with_payload", frame(SETTINGS, ACK, 0, b"\0\x03\0\0\0\x64"),
           GoAway(FRAME_SIZE_ERROR)),
    H2Case("settings_on_a_stream", frame(SETTINGS, 0, 1), GoAway(PROTOCOL_ERROR)),
    H2Case("settings_unknown_identifier_ignored", settings((0x99, 7)) + get(1, "/after"),
           Status(1, 200), upstream=1, check=targets("/after"),
           doc="unknown settings must be ignored (RFC 9113 section 6.5.2)"),
    H2Case("settings_max_frame_size_largest", settings((MAX_FRAME_SIZE, (1 << 24) - 1))
           + get(1, "/after"), Status(1, 200), upstream=1),
    H2Case("settings_header_table_size_huge", settings((HEADER_TABLE_SIZE, 0xFFFFFFFF))
           + get(1, "/after"), Status(1, 200), upstream=1,
           doc="the proxy's HPACK encoder keeps its own 4 KiB bound whatever the client allows"),
    H2Case("settings_initial_window_zero_then_opened",
           settings((INITIAL_WINDOW_SIZE, 0)) + get(1, "/windowed") + window_update(1, 1 << 20),
           Status(1, 200), upstream=1, check=targets("/windowed"),
           doc="the response waits for the client's stream window, then flows"),
    # --- PING (RFC 9113 section 6.7) --------------------------------------------------------
    H2Case("ping_wrong_length", frame(PING, 0, 0, b"1234567"), GoAway(FRAME_SIZE_ERROR)),
    H2Case("ping_on_a_stream", frame(PING, 0, 1, b"12345678"), GoAway(PROTOCOL_ERROR)),
    H2Case("ping_is_answered", ping(b"abcdefgh") + get(1), Status(1, 200), upstream=1,
           check=lambda t, c, r: t.assertEqual(c.ping_acks, [b"abcdefgh"])),
    H2Case("ping_ack_from_client_ignored", ping(b"abcdefgh", ack=True) + get(1), Status(1, 200),
           upstream=1, check=lambda t, c, r: t.assertEqual(c.ping_acks, [])),
    # --- stream identifiers and states (RFC 9113 section 5.1) -------------------------------
    H2Case("headers_on_even_stream", get(2), GoAway(PROTOCOL_ERROR)),
    H2Case("headers_on_stream_zero", get(0), GoAway(PROTOCOL_ERROR)),
    H2Case("stream_id_decreasing", get(5, "/five") + get(3, "/three"),
           (Status(5, 200),), upstream=1,
           check=both(targets("/five"), lambda t, c, r: t.assertFalse(c.stream(3).done, c)),
           doc="section 5.1.1 asks for a connection error; nghttp2 cannot tell a lower id from "
               "one it reset itself whose frames are still in flight (which section 5.4.2 says "
               "to ignore), so it ignores the block: stream 3 is never forwarded nor answered"),
    H2Case("stream_id_reused", [(get(1, "/first"), 0), (get(1, "/again"), 0.5)],
           GoAway(STREAM_CLOSED, PROTOCOL_ERROR), upstream=1,
           check=both(targets("/first"), answered(1))),
    H2Case("data_on_stream_zero", data(0, b"x"), GoAway(PROTOCOL_ERROR)),
    H2Case("data_on_idle_stream", data(3, b"x"), GoAway(PROTOCOL_ERROR)),
    H2Case("data_on_closed_stream", [(get(1, "/first"), 0), (data(1, b"x"), 0.5)],
           (GoAway(STREAM_CLOSED), Reset(1, STREAM_CLOSED)), upstream=1,
           check=targets("/first")),
    H2Case("data_after_end_stream", get(1, "/ended") + data(1, b"x", end=True),
           (GoAway(STREAM_CLOSED), Reset(1, STREAM_CLOSED)), upstream={0, 1},
           doc="the request itself was complete and valid, so it may have been forwarded "
               "(without the extra byte) before the connection error"),
    H2Case("headers_after_end_stream", get(1, "/ended") + get(1, "/again", end=False),
           (GoAway(STREAM_CLOSED), Reset(1, STREAM_CLOSED)), upstream={0, 1}),
    H2Case("rst_stream_on_idle_stream", rst_stream(3), GoAway(PROTOCOL_ERROR)),
    H2Case("rst_stream_wrong_length", get(1, end=False) + frame(RST_STREAM, 0, 1, b"\0\0\x08"),
           GoAway(FRAME_SIZE_ERROR)),
    H2Case("window_update_on_a_closed_stream",
           [(get(1, "/first"), 0), (window_update(1, 100), 0.5)], Status(1, 200), upstream=1,
           doc="WINDOW_UPDATE, PRIORITY and RST_STREAM may still arrive for a stream just closed "
               "(section 5.1): ignored"),
    H2Case("priority_on_a_closed_stream", [(get(1, "/first"), 0), (priority(1, 0), 0.5)],
           Status(1, 200), upstream=1),
    H2Case("rst_stream_on_a_closed_stream", [(get(1, "/first"), 0), (rst_stream(1), 0.5)],
           Status(1, 200), upstream=1),
    H2Case("data_after_the_proxy_reset_the_stream",
           [(headers(1, request_fields("/up", "POST", extra=[("content-length", "100000")]),
                     end=False), 0), (data(1, b"x" * 16384) * 2, 0.5)], Status(1, 413),
           doc="the 413 ends the stream with RST_STREAM(NO_ERROR); DATA the client had in flight "
               "must be ignored (section 5.4.2), not taken for a connection error"),
    H2Case("trailers_after_the_proxy_reset_the_stream",
           [(headers(1, request_fields("/up", "POST", extra=[("content-length", "100000")]),
                     end=False), 0), (headers(1, [("x-t", "1")]), 0.5)], Status(1, 413)),
    H2Case("rst_stream_cancels_the_request",
           get(1, "/cancelled", end=False) + data(1, b"abc") + rst_stream(1, CANCEL),
           Silent(1), doc="the upstream may have seen the start of it, never a whole request"),
    # --- flow control (RFC 9113 sections 5.2 and 6.9) ---------------------------------------
    H2Case("window_update_zero_on_connection", window_update(0, 0), GoAway(PROTOCOL_ERROR)),
    H2Case("window_update_zero_on_stream", get(1, end=False) + window_update(1, 0),
           (Reset(1, PROTOCOL_ERROR), GoAway(PROTOCOL_ERROR))),
    H2Case("window_update_overflows_connection", window_update(0, 0x7FFFFFFF),
           GoAway(FLOW_CONTROL_ERROR)),
    H2Case("window_update_overflows_stream", get(1, end=False) + window_update(1, 0x7FFFFFFF),
           (Reset(1, FLOW_CONTROL_ERROR), GoAway(FLOW_CONTROL_ERROR))),
    H2Case("window_update_wrong_length", frame(WINDOW_UPDATE, 0, 0, b"\0\0\x01"),
           GoAway(FRAME_SIZE_ERROR)),
    # --- frame sizes and padding (RFC 9113 sections 4.2 and 6.1) ----------------------------
    H2Case("data_over_max_frame_size", get(1, end=False) + data(1, b"x" * 16385, end=True),
           GoAway(FRAME_SIZE_ERROR)),
    H2Case("headers_over_max_frame_size",
           headers(1, request_fields(extra=[("x-a", "v" * 16400)])), GoAway(FRAME_SIZE_ERROR)),
    H2Case("data_padding_longer_than_frame",
           get(1, end=False) + frame(DATA, PADDED | 0x1, 1, b"\x10abc"), GoAway(PROTOCOL_ERROR)),
    H2Case("headers_padding_longer_than_frame",
           frame(HEADERS, PADDED | END_STREAM_HEADERS, 1,
                 b"\xf0" + encode_fields(request_fields())), GoAway(PROTOCOL_ERROR)),
    H2Case("padding_removed_before_forwarding",
           headers(1, request_fields("/up", "POST", extra=[("content-length", "5")]), end=False,
                   pad=20) + data(1, b"hello", end=True, pad=30),
           Status(1, 200), upstream=1, check=upstream_body(b"hello")),
    # --- unknown and misplaced frames (RFC 9113 sections 4.1, 5.5, 6.10) --------------------
    H2Case("unknown_frame_types_ignored",
           frame(0xFA, 0xFF, 0, b"hello") + frame(0x20, 0, 1, b"x") + frame(0xBB, 0, 7)
           + get(1, "/after"), Status(1, 200), upstream=1, check=targets("/after")),
    H2Case("unknown_frame_inside_header_block",
           headers(1, end_headers=False) + frame(0xFA, 0, 1, b"x")
           + continuation(1, literal("x-a", "b")), GoAway(PROTOCOL_ERROR),
           doc="a header block is contiguous: only CONTINUATION may follow (section 4.3)"),
    H2Case("continuation_without_headers", continuation(1, encode_fields(request_fields())),
           GoAway(PROTOCOL_ERROR)),
    H2Case("continuation_on_another_stream",
           headers(1, end_headers=False) + continuation(3, literal("x-a", "b")),
           GoAway(PROTOCOL_ERROR)),
    H2Case("continuation_after_end_headers",
           get(1, end=False) + continuation(1, literal("x-a", "b")), GoAway(PROTOCOL_ERROR)),
    H2Case("header_block_over_continuations",
           split_block(encode_fields(request_fields("/split")), 5, 12, 20), Status(1, 200),
           upstream=1, check=targets("/split")),
    H2Case("header_block_never_finished", headers(1, end_headers=False), Closed(), timeout=10,
           doc="HEADERS without END_HEADERS holds the connection's decoder: the header deadline "
               "(3s here) closes it"),
    H2Case("push_promise_from_client",
           frame(PUSH_PROMISE, 0x4, 1, b"\0\0\0\x02" + encode_fields(request_fields())),
           GoAway(PROTOCOL_ERROR)),
    # --- PRIORITY (RFC 9113 section 5.3.1, 6.3) ---------------------------------------------
    H2Case("priority_self_dependency", get(1, end=False) + priority(1, 1),
           (Reset(1, PROTOCOL_ERROR), GoAway(PROTOCOL_ERROR))),
    H2Case("priority_self_dependency_idle_stream", priority(3, 3),
           (Reset(3, PROTOCOL_ERROR), GoAway(PROTOCOL_ERROR))),
    H2Case("headers_priority_self_dependency", headers(1, depends_on=1),
           (Reset(1, PROTOCOL_ERROR), GoAway(PROTOCOL_ERROR))),
    H2Case("priority_wrong_length", frame(PRIORITY, 0, 1, b"\0\0\0\0"),
           (Reset(1, FRAME_SIZE_ERROR), GoAway(FRAME_SIZE_ERROR))),
    H2Case("priority_on_stream_zero", priority(0, 1), GoAway(PROTOCOL_ERROR)),
    # --- HPACK (RFC 7541; RFC 9113 section 4.3) ---------------------------------------------
    H2Case("hpack_index_out_of_range",
           headers(1, block=encode_fields(request_fields()) + indexed(70)),
           GoAway(COMPRESSION_ERROR)),
    H2Case("hpack_index_zero", headers(1, block=indexed(0) + encode_fields(request_fields())),
           GoAway(COMPRESSION_ERROR)),
    H2Case("hpack_table_size_update_over_limit",
           headers(1, block=table_size_update(4097) + encode_fields(request_fields())),
           GoAway(COMPRESSION_ERROR),
           doc="the proxy never allowed more than the default 4096 (RFC 7541 section 6.3)"),
    H2Case("hpack_table_size_update_after_a_field",
           headers(1, block=encode_fields(request_fields()) + table_size_update(0)),
           GoAway(COMPRESSION_ERROR)),
    H2Case("hpack_string_longer_than_block",
           headers(1, block=encode_fields(request_fields()) + b"\x00\x7f\x80\x01ab"),
           GoAway(COMPRESSION_ERROR)),
    H2Case("hpack_integer_overflow",
           headers(1, block=encode_fields(request_fields()) + b"\xff" + b"\xff" * 10 + b"\x01"),
           GoAway(COMPRESSION_ERROR)),
    H2Case("hpack_bad_huffman_padding",
           headers(1, block=encode_fields(request_fields()) + b"\x00\x83\x00\x00\x00\x01a"),
           GoAway(COMPRESSION_ERROR), doc="padding that is not the EOS prefix (section 5.2)"),
    H2Case("hpack_dynamic_table_across_requests",
           headers(1, request_fields("/one") + [literal_indexed("x-kept", "1")])
           + headers(3, request_fields("/two") + [indexed(62)]),
           (Status(3, 200),), upstream=2,
           check=lambda t, c, reqs: t.assertEqual([r.values("x-kept") for r in reqs],
                                                  [["1"], ["1"]])),
    H2Case("hpack_bomb", headers(1, block=bomb_block(12000)), (Status(1, 431), Reset(1)),
           flat_memory=True,
           doc="12 KB that decode into 48 MB of fields: 431 once the decoded list passes the "
               "header limit, never forwarded, nothing kept"),
    H2Case("hpack_bomb_over_continuations",
           frame(HEADERS, 0x1, 1, bomb_block(12000))
           + continuation(1, indexed(62) * 16000, end=False) * 6
           + continuation(1, indexed(62) * 100), (Status(1, 431), Reset(1), GoAway()),
           flat_memory=True, doc="about 400 MB decoded from 110 KB on the wire"),
    # --- floods -----------------------------------------------------------------------------
    H2Case("empty_data_frame_flood",
           get(1, "/flood", end=False) + data(1) * 100000 + data(1, end=True),
           (Status(1, 200), GoAway(ENHANCE_YOUR_CALM)), upstream={0, 1}, flat_memory=True,
           doc="a way to make the proxy work for nothing (CVE-2019-9518): absorbed at the cost "
               "of parsing, or refused; memory stays flat either way"),
    H2Case("window_update_flood", window_update(0, 1) * 100000 + get(1, "/after"),
           (Status(1, 200), GoAway(ENHANCE_YOUR_CALM)), upstream={0, 1}, flat_memory=True),
    H2Case("priority_flood_on_idle_streams",
           b"".join(priority(2 * i + 1, 0) for i in range(50000)) + get(100001, "/after"),
           (Status(100001, 200), GoAway(ENHANCE_YOUR_CALM)), upstream={0, 1}, flat_memory=True,
           doc="every PRIORITY frame on a new id may create an idle stream; nghttp2 keeps only "
               "a bounded number of them"),
    H2Case("settings_flood", settings((MAX_CONCURRENT_STREAMS, 10)) * 3000,
           (GoAway(ENHANCE_YOUR_CALM), Closed()), flat_memory=True,
           doc="each SETTINGS must be acknowledged; past 1000 queued ACKs the connection closes"),
    H2Case("ping_flood", ping() * 3000, (GoAway(ENHANCE_YOUR_CALM), Closed()), flat_memory=True),
    H2Case("rapid_reset",
           b"".join(get(2 * i + 1, "/reset") + rst_stream(2 * i + 1) for i in range(300)),
           GoAway(INTERNAL_ERROR, ENHANCE_YOUR_CALM), upstream=set(range(301)),
           flat_memory=True,
           doc="CVE-2023-44487: past 200 client resets the connection gets GOAWAY (nghttp2 "
               "says INTERNAL_ERROR); requests that reached the upstream are well-formed"),
]


def slow(req, sock):
    time.sleep(0.3)
    sock.sendall(echo_response(req))
    return True


class Http2FramesTest(ProxyTestCase):
    handlers = {"/slow": slow}

    def open_streams(self, conn, count, first=1):
        sids = [first + 2 * i for i in range(count)]
        conn.send(b"".join(get(sid, f"/slow/{sid}") for sid in sids))
        return sids

    def test_concurrent_streams_over_the_limit_before_the_ack(self):
        """101 streams at once from a client that has not yet acknowledged the proxy's SETTINGS:
        the 101st is refused alone (REFUSED_STREAM, safe to retry), the other 100 are served."""
        conn = H2Conn(self.port, ack=False)
        self.addCleanup(conn.close)
        self.assertEqual(conn.server_settings.get(MAX_CONCURRENT_STREAMS), MAX_STREAMS)
        sids = self.open_streams(conn, MAX_STREAMS + 1)
        self.assertTrue(conn.read_until(lambda: all(conn.stream(s).done for s in sids), 20), conn)
        self.assertEqual(conn.stream(sids[-1]).reset, REFUSED_STREAM, conn)
        self.assertEqual([conn.stream(s).status for s in sids[:-1]], [200] * MAX_STREAMS)
        requests = self.assert_upstream_count(MAX_STREAMS)
        self.assertNotIn(f"/slow/{sids[-1]}", [r.target for r in requests])
        conn.send(settings(ack=True))
        self.assertEqual(conn.request(sids[-1] + 2, "/after").status, 200)
        assert_serves_fresh_connection(self)

    def test_concurrent_streams_over_the_acknowledged_limit(self):
        """Once the client acknowledged the limit, exceeding it is a protocol error: nghttp2 makes
        it a connection error (section 5.1.2 says stream error; section 5.4 allows either). The
        101st request is never forwarded; what reached the upstream is well-formed."""
        conn = H2Conn(self.port)
        self.addCleanup(conn.close)
        conn.send(ping())  # its ACK comes after the SETTINGS ACK was processed
        self.assertTrue(conn.read_until(lambda: conn.ping_acks), conn)
        sids = self.open_streams(conn, MAX_STREAMS + 1)
        conn.read_until(lambda: conn.stream(sids[-1]).done or conn.closed, 20)
        if conn.goaway is not None:
            self.assertEqual(conn.goaway[0], PROTOCOL_ERROR, conn)
            self.assertTrue(conn.wait_closed(), conn)
        else:
            self.assertIn(conn.stream(sids[-1]).reset, {PROTOCOL_ERROR, REFUSED_STREAM}, conn)
        requests = self.upstream_since_mark()
        self.assertLessEqual(len(requests), MAX_STREAMS)
        self.assertNotIn(f"/slow/{sids[-1]}", [r.target for r in requests])
        assert_serves_fresh_connection(self)

    def test_streams_reused_after_completion_stay_within_the_limit(self):
        """Streams that completed free their slot: 3 x 100 sequential waves are all served."""
        conn = H2Conn(self.port)
        self.addCleanup(conn.close)
        first = 1
        for _ in range(3):
            sids = [first + 2 * i for i in range(MAX_STREAMS)]
            conn.send(b"".join(get(sid, f"/wave/{sid}") for sid in sids))
            self.assertTrue(conn.read_until(lambda: all(conn.stream(s).done for s in sids), 20))
            self.assertEqual({conn.stream(s).status for s in sids}, {200}, conn)
            first = sids[-1] + 2
        self.assert_upstream_count(3 * MAX_STREAMS)


add_h2_cases(Http2FramesTest, CASES)

if __name__ == "__main__":
    unittest.main()
