"""gRPC through viscount, with Debian's python3-grpcio on both sides (grpc_service.py, a generic
handler): the ids reach the service and come back as metadata; every status the service raises
is logged (`grpc_status`, `grpc_message`) and counted (viscount_grpc_requests_total); viscount's
own failures reach a gRPC client as trailers-only answers with the mapped status and no parse
error in the client; a client's grpc-timeout lowers the budget and reaches the service no
larger; streams flow message by message; HTTP/1.1 clients keep their JSON errors."""

import concurrent.futures
import json
import os
import random
import re
import socket
import subprocess
import threading
import time
import unittest
import urllib.parse

import grpc
import httpx

from grpc_service import start_grpc_service
from h2_client import H2Client
from h2_upstream import start_h2_upstream
from viscount_process import SLACK, Viscount, basic_config, free_port, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = "/usr/bin/python3"
SANITIZED = os.environ.get("VISCOUNT_SANITIZED", "0") == "1"

# What a gRPC client prints when an answer is not gRPC (the JSON 502 did this).
CLIENT_NOISE = re.compile(r"Error parsing metadata|invalid value|Received http2 header",
                          re.IGNORECASE)


def rss_kib(pid):
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def metric(text, name, **labels):
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


class GrpcTest(unittest.TestCase):
    def start_service(self, **kwargs):
        server, port, record = start_grpc_service(**kwargs)
        self.addCleanup(server.stop, 0)
        return server, port, record

    def start_proxy(self, upstream_port, workers=2, **upstream):
        config = basic_config(f"h2c://127.0.0.1:{upstream_port}", workers=workers)
        config["listeners"][0]["limits"] = {"max_request_body_size": 0}
        config["upstreams"][0].update(upstream)
        return Viscount.with_config(self, config)

    def channel(self, proxy):
        channel = grpc.insecure_channel(f"127.0.0.1:{proxy.listener_port}")
        self.addCleanup(channel.close)
        return channel

    def call_process(self, proxy, method, payload, timeout=None):
        """One call from a client process: (outcome dict, the client's stderr)."""
        args = [PYTHON, os.path.join(HERE, "grpc_call.py"), f"127.0.0.1:{proxy.listener_port}",
                method, payload]
        if timeout is not None:
            args.append(str(timeout))
        done = subprocess.run(args, capture_output=True, text=True, timeout=30 * SLACK)
        self.assertEqual(done.returncode, 0, done.stderr)
        return json.loads(done.stdout), done.stderr

    def assert_viscount_status(self, proxy, outcome, stderr, code, error):
        """A trailers-only answer from viscount: the mapped status, a message naming the error
        and the request id, the ids as metadata, nothing the client could not parse."""
        self.assertEqual(outcome["code"], code, outcome)
        self.assertNotRegex(stderr, CLIENT_NOISE)
        trailing = dict(outcome["trailing_metadata"])
        self.assertNotIn("content-length", trailing)  # one HEADERS frame, no framing fields
        request_id = trailing.get("x-request-id")
        self.assertTrue(request_id, outcome)
        self.assertIn("x-correlation-id", trailing)
        self.assertEqual(outcome["details"], f"viscount: {error} (request_id {request_id})")
        line = proxy.wait_access_log_id(request_id)
        self.assertEqual(line["error"], error)
        self.assertEqual(line["status"], 200)
        self.assertEqual(line["grpc_status"], grpc.StatusCode[code].value[0])
        self.assertEqual(line["grpc_message"], outcome["details"])
        return trailing, line

    # --- calls that reach the service ----------------------------------------------------------

    def test_unary_ok_carries_the_ids_both_ways(self):
        _, port, record = self.start_service()
        proxy = self.start_proxy(port)
        call = self.channel(proxy).unary_unary("/test.Svc/Echo")
        reply, info = call.with_call(b"\x00\x01hello", metadata=(("x-correlation-id", "corr-1"),))
        self.assertEqual(reply, b"\x00\x01hello")
        self.assertEqual(info.code(), grpc.StatusCode.OK)
        initial = dict(info.initial_metadata())
        _, seen, _ = record.last("Echo")
        self.assertEqual(initial["x-request-id"], seen["x-request-id"])
        self.assertEqual(initial["x-correlation-id"], "corr-1")
        self.assertEqual(seen["x-correlation-id"], "corr-1")
        self.assertIn("traceparent", seen)
        line = proxy.wait_access_log_id(initial["x-request-id"])
        self.assertEqual(line["grpc_status"], 0)
        self.assertIsNone(line["grpc_message"])
        self.assertIsNone(line["error"])
        self.assertEqual(line["protocol"], "HTTP/2")

    def test_every_status_the_service_raises_is_logged_and_counted(self):
        _, port, _ = self.start_service()
        proxy = self.start_proxy(port)
        call = self.channel(proxy).unary_unary("/test.Svc/Fail")
        codes = [c for c in grpc.StatusCode if c != grpc.StatusCode.OK]
        for code in codes:
            with self.assertRaises(grpc.RpcError) as caught:
                call(code.name.encode())
            self.assertEqual(caught.exception.code(), code)
            trailing = dict(caught.exception.trailing_metadata())
            self.assertNotIn("content-length", trailing)  # the service's trailers-only answer
            request_id = trailing["x-request-id"]
            line = proxy.wait_access_log_id(request_id)
            self.assertEqual(line["grpc_status"], code.value[0], line)
            self.assertEqual(line["grpc_message"], f"failed with {code.name} on purpose: ünïcode")
            self.assertEqual(line["status"], 200)
            self.assertIsNone(line["error"])
        text = proxy.admin_get("/metrics")[2].decode()
        for code in codes:
            self.assertEqual(metric(text, "viscount_grpc_requests_total", upstream="app",
                                    grpc_code=code.name), 1.0, code.name)
        self.assertEqual(metric(text, "viscount_grpc_requests_total", upstream="app",
                                grpc_code="OK"), 0.0)

    # --- viscount's own answers ------------------------------------------------------------------

    def test_upstream_down_is_unavailable(self):
        proxy = self.start_proxy(free_port())
        outcome, stderr = self.call_process(proxy, "Echo", "x")
        self.assert_viscount_status(proxy, outcome, stderr, "UNAVAILABLE", "upstream_connect_failed")
        text = proxy.admin_get("/metrics")[2].decode()
        self.assertEqual(metric(text, "viscount_grpc_requests_total", upstream="app",
                                grpc_code="UNAVAILABLE"), 1.0)

    def test_upstream_hanging_past_the_timeout_is_deadline_exceeded(self):
        # grpcio's server ends a call at the grpc-timeout viscount sends it, racing viscount's
        # own timer; an HTTP/2 server that ignores deadlines (h2_upstream, ?delay) hangs for real.
        upstream = start_h2_upstream(self)
        proxy = self.start_proxy(upstream.port, timeouts={"request": "500ms"})
        outcome, stderr = self.call_process(proxy, "Echo?delay=5000", "x")
        self.assert_viscount_status(proxy, outcome, stderr, "DEADLINE_EXCEEDED", "upstream_timeout")
        self.assertLess(outcome["elapsed"], 0.5 + 1.0 * SLACK)

    def test_concurrency_limit_is_unavailable_with_pushback(self):
        _, port, record = self.start_service()
        proxy = self.start_proxy(port, limits={"max_concurrent_requests": 1,
                                               "max_queued_requests": 0})
        holder = threading.Thread(target=self.call_process, args=(proxy, "Sleep", "3"))
        holder.start()
        self.addCleanup(holder.join)
        wait_until(lambda: record.sleeping == 1, what="the first call at the service")
        outcome, stderr = self.call_process(proxy, "Echo", "x")
        trailing, _ = self.assert_viscount_status(proxy, outcome, stderr, "UNAVAILABLE",
                                                  "overloaded")
        self.assertEqual(trailing.get("grpc-retry-pushback-ms"), "1000")

    def test_draining_is_unavailable(self):
        _, port, record = self.start_service()
        config = basic_config(f"h2c://127.0.0.1:{port}", drain_timeout="500ms")
        proxy = Viscount.with_config(self, config)
        result = {}

        def call():
            result["outcome"], result["stderr"] = self.call_process(proxy, "Sleep", "5")

        caller = threading.Thread(target=call)
        caller.start()
        wait_until(lambda: record.sleeping == 1, what="the call at the service")
        httpx.post(f"http://127.0.0.1:{proxy.admin_port}/drain", timeout=5)
        caller.join(30 * SLACK)
        self.assertEqual(proxy.wait_exit(20 * SLACK), 0)
        self.assertEqual(result["outcome"]["code"], "UNAVAILABLE", result)
        self.assertNotRegex(result["stderr"], CLIENT_NOISE)
        self.assertIn("viscount: draining", result["outcome"]["details"])
        line = [l for l in proxy.access_log() if l["path"] == "/test.Svc/Sleep"][0]
        self.assertEqual(line["error"], "draining")
        self.assertEqual(line["grpc_status"], 14)
        self.assertEqual(line["status"], 200)

    def test_a_drain_ends_a_started_stream_with_a_status_not_a_reset(self):
        _, port, _ = self.start_service()
        config = basic_config(f"h2c://127.0.0.1:{port}", drain_timeout="500ms")
        proxy = Viscount.with_config(self, config)
        stream = self.channel(proxy).unary_stream("/test.Svc/Stream")
        received = []
        with self.assertRaises(grpc.RpcError) as caught:
            for message in stream(b"100,10,0.1", timeout=30):
                received.append(message)
                if len(received) == 2:
                    httpx.post(f"http://127.0.0.1:{proxy.admin_port}/drain", timeout=5)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.UNAVAILABLE)
        self.assertIn("viscount: draining", caught.exception.details())
        self.assertGreaterEqual(len(received), 2)
        self.assertLess(len(received), 100)
        self.assertEqual(proxy.wait_exit(20 * SLACK), 0)
        line = [l for l in proxy.access_log() if l["path"] == "/test.Svc/Stream"][0]
        self.assertEqual(line["error"], "draining")
        self.assertEqual(line["grpc_status"], 14)

    def test_a_cut_response_that_declared_its_length_is_reset_not_ended(self):
        # An HTTP/1.1 upstream answers a gRPC call with a content-length, sends one byte of
        # eleven and closes. Ending the stream with status trailers would hand the client a
        # response shorter than its content-length (malformed, RFC 9113 8.1.1): it is reset.
        listener = socket.create_server(("127.0.0.1", 0))
        self.addCleanup(listener.close)

        def serve():
            sock, _ = listener.accept()
            with sock:
                request = b""
                while b"\r\n0\r\n\r\n" not in request and b"\r\n\r\n" not in request:
                    request += sock.recv(65536)
                sock.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/grpc\r\n"
                             b"content-length: 11\r\n\r\nx")
                time.sleep(0.05)
        threading.Thread(target=serve, daemon=True).start()
        proxy = Viscount.with_config(
            self, basic_config(f"http://127.0.0.1:{listener.getsockname()[1]}", workers=1))
        client = H2Client(proxy.listener_port)
        self.addCleanup(client.close)
        stream = client.request("POST", "/test.Svc/Echo",
                                headers=[("content-type", "application/grpc"), ("te", "trailers")],
                                body=b"\x00\x00\x00\x00\x01x")
        response = client.wait(stream)[0]
        self.assertIsNone(client.protocol_error)
        self.assertEqual(response.status, 200)
        self.assertEqual(response.header("content-length"), "11")
        self.assertEqual(bytes(response.data), b"x")
        self.assertEqual(response.reset, 2)  # INTERNAL_ERROR, after the byte it was given
        self.assertEqual(response.trailers, [])
        line = proxy.wait_access_log_id(response.header("x-request-id"))
        self.assertEqual(line["error"], "upstream_reset")

    def test_malformed_grpc_timeout_is_internal(self):
        _, port, _ = self.start_service()
        proxy = self.start_proxy(port)
        # grpcio always writes a valid grpc-timeout; an HTTP/2 client on httpx sends a bad one.
        with httpx.Client(http1=False, http2=True) as client:
            response = client.post(
                f"http://127.0.0.1:{proxy.listener_port}/test.Svc/Echo",
                content=b"\x00\x00\x00\x00\x01x",
                headers={"content-type": "application/grpc", "te": "trailers",
                         "grpc-timeout": "1x"})
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.headers["content-type"], "application/grpc")
        self.assertEqual(response.headers["grpc-status"], "13")
        self.assertEqual(response.content, b"")
        message = urllib.parse.unquote(response.headers["grpc-message"])
        self.assertRegex(message, r"^viscount: bad_request \(request_id .+\)$")
        line = proxy.wait_access_log_id(response.headers["x-request-id"])
        self.assertEqual(line["error"], "bad_request")
        self.assertEqual(line["grpc_status"], 13)

    # --- deadlines -----------------------------------------------------------------------------

    def test_client_deadline_ends_the_call_and_reaches_the_service(self):
        _, port, record = self.start_service()
        proxy = self.start_proxy(port)  # timeouts.request 15s: the client's 1s is lower
        outcome, stderr = self.call_process(proxy, "Sleep", "3", timeout=1)
        self.assertEqual(outcome["code"], "DEADLINE_EXCEEDED", outcome)
        self.assertNotRegex(stderr, CLIENT_NOISE)
        self.assertLess(outcome["elapsed"], 1.1 * SLACK)
        _, seen, remaining = record.last("Sleep")
        # The service's deadline comes from the grpc-timeout it received: no larger than 1s.
        self.assertIsNotNone(remaining)
        self.assertLessEqual(remaining, 1.0)
        self.assertGreater(remaining, 0.5)
        self.assertIn("x-request-timeout-ms", seen)
        self.assertLessEqual(int(seen["x-request-timeout-ms"]), 1000)
        line = proxy.wait_access_log(lambda o: o["path"] == "/test.Svc/Sleep")
        self.assertEqual(line["grpc_status"], 4, line)
        self.assertNotEqual(line["error"], "client_disconnected")

    def test_request_timeout_stays_the_ceiling(self):
        _, port, record = self.start_service()
        proxy = self.start_proxy(port, timeouts={"request": "2s"})
        call = self.channel(proxy).unary_unary("/test.Svc/Echo")
        call(b"x", timeout=60)
        _, seen, remaining = record.last("Echo")
        self.assertLessEqual(remaining, 2.0)
        self.assertLessEqual(int(seen["x-request-timeout-ms"]), 2000)

    def test_unbounded_call_without_deadline_outlives_the_request_timeout(self):
        _, port, record = self.start_service()
        proxy = self.start_proxy(port, timeouts={"request": "500ms",
                                                 "grpc_no_deadline": "unbounded"})
        call = self.channel(proxy).unary_unary("/test.Svc/Sleep")
        self.assertEqual(call(b"1.2"), b"slept")
        _, seen, remaining = record.last("Sleep")
        # No grpc-timeout reached the service: grpcio then reports a practically endless deadline.
        self.assertTrue(remaining is None or remaining > 1e6, remaining)
        self.assertNotIn("x-request-timeout-ms", seen)
        # A client deadline still applies, capped by the request timeout.
        with self.assertRaises(grpc.RpcError) as caught:
            call(b"3", timeout=10)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)

    # --- streams ---------------------------------------------------------------------------------

    def test_server_streaming_to_a_slow_reader_keeps_rss_flat(self):
        _, port, _ = self.start_service()
        proxy = self.start_proxy(port, workers=1, timeouts={"request": "120s"})
        stream = self.channel(proxy).unary_stream("/test.Svc/Stream")
        count, size = 10_000, 8192
        baseline = rss_kib(proxy.proc.pid)
        peak = baseline
        received = 0
        for i, message in enumerate(stream(f"{count},{size}".encode(), timeout=120)):
            self.assertEqual(message, (i % 256).to_bytes(1, "big") * size)
            received += 1
            if i % 500 == 0:
                time.sleep(0.05)  # a slow reader: the stream must wait, not pile up in viscount
                peak = max(peak, rss_kib(proxy.proc.pid))
        self.assertEqual(received, count)
        line = proxy.wait_access_log(lambda o: o["path"] == "/test.Svc/Stream")
        self.assertEqual(line["grpc_status"], 0)
        self.assertGreater(line["bytes_out"], count * size)
        if not SANITIZED:
            # 80 MB went through; a few windows' worth may be held, never the stream.
            self.assertLess(peak - baseline, 16 * 1024, (baseline, peak))

    def test_bidi_streaming_echoes_byte_exact(self):
        _, port, _ = self.start_service()
        proxy = self.start_proxy(port)
        bidi = self.channel(proxy).stream_stream("/test.Svc/Bidi")
        rng = random.Random(19)
        messages = [rng.randbytes(rng.choice((0, 1, 7, 1000, 70_000, 200_000)))
                    for _ in range(60)]
        replies = list(bidi(iter(messages), timeout=60))
        self.assertEqual(len(replies), len(messages))
        for sent, got in zip(messages, replies):
            self.assertEqual(got, sent)
        line = proxy.wait_access_log(lambda o: o["path"] == "/test.Svc/Bidi")
        self.assertEqual(line["grpc_status"], 0)

    def test_200_concurrent_calls_on_one_channel_keep_their_ids(self):
        _, port, _ = self.start_service(max_workers=100)
        proxy = self.start_proxy(port, limits={"max_concurrent_requests": 300})
        call = self.channel(proxy).unary_unary("/test.Svc/Id")
        futures = [call.future(b"", metadata=(("x-request-id", f"call-{i:03d}"),), timeout=60)
                   for i in range(200)]
        for i, future in enumerate(futures):
            self.assertEqual(future.result(), f"call-{i:03d}".encode())
            self.assertEqual(dict(future.initial_metadata())["x-request-id"], f"call-{i:03d}")
        wait_until(lambda: len([l for l in proxy.access_log() if l["path"] == "/test.Svc/Id"])
                   == 200, what="200 access-log lines")
        ids = {l["request_id"] for l in proxy.access_log() if l["path"] == "/test.Svc/Id"}
        self.assertEqual(ids, {f"call-{i:03d}" for i in range(200)})

    # --- HTTP/1.1 clients --------------------------------------------------------------------------

    def test_http1_clients_keep_json_errors(self):
        proxy = self.start_proxy(free_port())
        for content_type in ("application/json", "application/grpc"):
            response = httpx.post(f"http://127.0.0.1:{proxy.listener_port}/test.Svc/Echo",
                                  content=b"x", headers={"content-type": content_type})
            self.assertEqual(response.status_code, 502)
            self.assertEqual(response.headers["content-type"], "application/json")
            self.assertEqual(response.json()["error"], "upstream_connect_failed")
            self.assertNotIn("grpc-status", response.headers)
            line = proxy.wait_access_log_id(response.headers["x-request-id"])
            self.assertIsNone(line["grpc_status"])

    def test_http1_client_of_a_grpc_service_gets_the_status_and_it_is_logged(self):
        _, port, _ = self.start_service()
        proxy = self.start_proxy(port)

        def raw_call(method, payload, request_id):
            frame = b"\x00" + len(payload).to_bytes(4, "big") + payload
            with socket.create_connection(("127.0.0.1", proxy.listener_port), timeout=10) as s:
                s.sendall(b"POST /test.Svc/%s HTTP/1.1\r\nHost: x\r\nconnection: close\r\n"
                          b"content-type: application/grpc\r\nte: trailers\r\n"
                          b"x-request-id: %s\r\ncontent-length: %d\r\n\r\n"
                          % (method, request_id, len(frame)) + frame)
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
            return data.decode("latin-1").lower()

        # A trailers-only answer: the status is in the head.
        data = raw_call(b"Fail", b"PERMISSION_DENIED", b"h1-fail")
        self.assertIn("grpc-status: 7", data)
        line = proxy.wait_access_log_id("h1-fail")
        self.assertEqual(line["protocol"], "HTTP/1.1")
        self.assertEqual(line["grpc_status"], 7)
        # A message and then trailers: chunked, the status in the trailer section, and the line
        # is written after it.
        data = raw_call(b"Echo", b"hello", b"h1-echo")
        head, _, body = data.partition("\r\n\r\n")
        self.assertIn("transfer-encoding: chunked", head)
        self.assertIn("hello", body)
        self.assertIn("\r\ngrpc-status: 0\r\n", body)
        line = proxy.wait_access_log_id("h1-echo")
        self.assertEqual(line["grpc_status"], 0)


if __name__ == "__main__":
    unittest.main()
