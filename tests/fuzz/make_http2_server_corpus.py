#!/usr/bin/python3
"""Writes the seeds of the http2_server fuzz target: h2c client conversations (the connection
preface, then frames), one file each, into corpus/http2_server/. Frames are built with Debian's
python3-hyperframe and python3-hpack (what python3-h2 uses), so invalid ones can be written too.

    tests/fuzz/make_http2_server_corpus.py       # rewrites every seed; the files are checked in

Each seed is a plain conversation; the fuzz target draws its other choices (listener, trust,
how the bytes are split, how the upstream answers) from a hash of the bytes.
"""

import pathlib
import sys

import hpack
from hyperframe.frame import (DataFrame, GoAwayFrame, HeadersFrame, PingFrame, PriorityFrame,
                              RstStreamFrame, SettingsFrame, WindowUpdateFrame)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
OUT = pathlib.Path(__file__).resolve().parent / "corpus" / "http2_server"


class Conversation:
    """One client connection's bytes: the preface and SETTINGS, then frames. Header blocks share
    one HPACK encoder, as on a real connection."""

    def __init__(self, settings=None):
        self.encoder = hpack.Encoder()
        self.out = bytearray(PREFACE)
        self.frame(SettingsFrame(0, settings=settings or {}))

    def frame(self, f):
        self.out += f.serialize()
        return self

    def block(self, fields):
        return self.encoder.encode(fields)

    def headers_frame(self, stream, fields, flags=("END_HEADERS",)):
        """A HEADERS frame for the caller to add padding or priority to, then frame()."""
        f = HeadersFrame(stream, self.block(fields))
        for flag in flags:
            f.flags.add(flag)
        return f

    def headers(self, stream, fields, end_stream=False):
        flags = ("END_HEADERS", "END_STREAM") if end_stream else ("END_HEADERS",)
        return self.frame(self.headers_frame(stream, fields, flags))

    def data(self, stream, payload, end_stream=False, pad=0):
        f = DataFrame(stream, payload)
        if end_stream:
            f.flags.add("END_STREAM")
        if pad:
            f.flags.add("PADDED")
            f.pad_length = pad
        return self.frame(f)

    def raw(self, length, type_, flags, stream, payload):
        """A frame written byte by byte, whatever it says."""
        self.out += length.to_bytes(3, "big") + bytes([type_, flags]) + stream.to_bytes(4, "big")
        self.out += payload
        return self


def request(method="GET", path="/", authority="app.example", extra=()):
    return [(":method", method), (":scheme", "http"), (":path", path),
            (":authority", authority)] + list(extra)


def seeds():
    s = {}

    s["get_minimal"] = Conversation().headers(1, request(), end_stream=True)

    s["get_context_headers"] = Conversation().headers(1, request(extra=[
        ("x-request-id", "req-123"), ("x-correlation-id", "corr-9"), ("x-user-id", "alice"),
        ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        ("tracestate", "vendor=opaque"), ("x-forwarded-for", "198.51.100.1"),
        ("x-forwarded-proto", "https"), ("x-request-timeout-ms", "2500"),
        ("user-agent", "seed/1")]), end_stream=True)

    s["post_content_length"] = (Conversation()
                                .headers(1, request("POST", "/upload", extra=[
                                    ("content-length", "11"), ("content-type", "text/plain")]))
                                .data(1, b"hello ").data(1, b"world", end_stream=True))

    s["post_without_length"] = (Conversation()
                                .headers(1, request("PUT", "/items/7"))
                                .data(1, b"x" * 300).data(1, b"y" * 200).data(1, b"",
                                                                             end_stream=True))

    s["post_trailers"] = (Conversation()
                          .headers(1, request("POST", "/grpc", extra=[
                              ("te", "trailers"), ("content-type", "application/grpc")]))
                          .data(1, b"\x00\x00\x00\x00\x02hi")
                          .headers(1, [("grpc-status", "0"), ("x-checksum", "abc")],
                                   end_stream=True))

    # gRPC: a deadline (rewritten for the upstream), a malformed one (INTERNAL, trailers-only),
    # and a call whose client deadline is far beyond the upstream's budget.
    for name, timeout in (("grpc_timeout", "1S"), ("grpc_timeout_malformed", "1x"),
                          ("grpc_timeout_huge", "99999999H")):
        s[name] = (Conversation()
                   .headers(1, request("POST", "/pkg.Svc/Call", extra=[
                       ("te", "trailers"), ("content-type", "application/grpc+proto"),
                       ("grpc-timeout", timeout)]))
                   .data(1, b"\x00\x00\x00\x00\x02hi")
                   .headers(1, [("x-checksum", "abc")], end_stream=True))

    # A header block in a HEADERS frame and three CONTINUATION frames.
    c = Conversation()
    block = c.block(request(extra=[("x-long-%d" % i, "v" * 40) for i in range(6)]))
    parts = [block[i:i + 64] for i in range(0, len(block), 64)][:4]
    parts[-1] += block[64 * 4:]
    c.raw(len(parts[0]), 0x1, 0x1, 1, parts[0])  # END_STREAM, no END_HEADERS
    for i, part in enumerate(parts[1:]):
        c.raw(len(part), 0x9, 0x4 if i == len(parts) - 2 else 0x0, 1, part)
    s["continuation"] = c

    s["rst_stream"] = (Conversation()
                       .headers(1, request("POST", "/slow"))
                       .data(1, b"partial")
                       .frame(RstStreamFrame(1, error_code=8))
                       .headers(3, request(), end_stream=True))

    s["ping"] = (Conversation()
                 .frame(PingFrame(0, b"12345678"))
                 .headers(1, request(), end_stream=True)
                 .frame(PingFrame(0, b"abcdefgh")))

    s["window_update"] = (Conversation(settings={SettingsFrame.INITIAL_WINDOW_SIZE: 1024})
                          .headers(1, request(path="/large"), end_stream=True)
                          .frame(WindowUpdateFrame(0, window_increment=1 << 20))
                          .frame(WindowUpdateFrame(1, window_increment=200000)))

    c = Conversation().frame(PriorityFrame(3, depends_on=0, stream_weight=200))
    f = c.headers_frame(1, request(), ("END_HEADERS", "END_STREAM", "PRIORITY"))
    f.depends_on, f.stream_weight, f.exclusive = 3, 16, True
    s["priority"] = c.frame(f)

    s["goaway"] = (Conversation()
                   .headers(1, request(), end_stream=True)
                   .frame(GoAwayFrame(0, last_stream_id=0, error_code=0)))

    s["settings"] = (Conversation(settings={
        SettingsFrame.HEADER_TABLE_SIZE: 0, SettingsFrame.MAX_FRAME_SIZE: 1 << 20,
        SettingsFrame.MAX_CONCURRENT_STREAMS: 3, SettingsFrame.ENABLE_PUSH: 0,
        SettingsFrame.MAX_HEADER_LIST_SIZE: 8192})
        .frame(SettingsFrame(0, flags=["ACK"]))
        .headers(1, request(), end_stream=True))

    c = Conversation()
    for i in range(12):
        c.headers(1 + 2 * i, request(path="/item/%d" % i), end_stream=i % 3 != 0)
    for i in range(0, 12, 3):
        c.data(1 + 2 * i, b"body", end_stream=True)
    s["many_streams"] = c

    s["head_options_expect"] = (Conversation()
                                .headers(1, request("HEAD", "/"), end_stream=True)
                                .headers(3, request("OPTIONS", "*"), end_stream=True)
                                .headers(5, request("POST", "/e", extra=[
                                    ("expect", "100-continue"), ("content-length", "2")]))
                                .data(5, b"ok", end_stream=True))

    s["cookies_split"] = Conversation().headers(1, request(extra=[
        ("cookie", "a=1"), ("cookie", "b=2"), ("cookie", "c=3")]), end_stream=True)

    c = Conversation()
    f = c.headers_frame(1, request("POST", "/p"), ("END_HEADERS", "PADDED"))
    f.pad_length = 5
    s["padded"] = c.frame(f).data(1, b"padded body", end_stream=True, pad=7)

    s["reject_connection_header"] = Conversation().headers(1, request(extra=[
        ("connection", "keep-alive"), ("transfer-encoding", "chunked")]), end_stream=True)

    s["reject_missing_path"] = Conversation().headers(1, [
        (":method", "GET"), (":scheme", "http"), (":authority", "a")], end_stream=True)

    s["reject_length_mismatch"] = (Conversation()
                                   .headers(1, request("POST", "/", extra=[
                                       ("content-length", "10")]))
                                   .data(1, b"short", end_stream=True)
                                   .headers(3, request("POST", "/", extra=[
                                       ("content-length", "2")]))
                                   .data(3, b"too long", end_stream=True))

    s["reject_bad_authority"] = Conversation().headers(1, request(
        authority="user@host:80"), end_stream=True).headers(3, request("CONNECT"),
                                                            end_stream=True)

    s["large_header_list"] = Conversation().headers(1, request(extra=[
        ("x-h%d" % i, "z" * 100) for i in range(40)]), end_stream=True)

    # Open-and-reset pairs past the rapid-reset burst; later blocks are small (HPACK indexing).
    c = Conversation()
    for i in range(230):
        c.headers(1 + 2 * i, request())
        c.frame(RstStreamFrame(1 + 2 * i, error_code=8))
    s["rapid_reset"] = c

    s["bad_preface"] = _Bytes(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n")
    s["http1_request"] = _Bytes(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    return s


class _Bytes:
    def __init__(self, data):
        self.out = data


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.iterdir():
        if not old.name.startswith("found_"):  # reproducers of fixed findings stay
            old.unlink()
    for name, conversation in sorted(seeds().items()):
        data = bytes(conversation.out)
        if len(data) > 8192:
            sys.exit("%s: %d bytes, more than run.sh's -max_len" % (name, len(data)))
        (OUT / name).write_bytes(data)
        print("%-28s %5d bytes" % (name, len(data)))


if __name__ == "__main__":
    main()
