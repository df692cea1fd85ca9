"""Why a request took long or failed, from its access-log line, against the real binary: the
`timings` of each phase (queued for a slot, waiting for a pooled connection, a new connection's
connect, the upstream's time to its response head) and the `trail` a failed request carries."""

import os
import socket
import threading
import time
import unittest

from viscount_process import (RequestThread, Viscount, basic_config, http_get,
                              start_echo_upstream, viscount_bin)

# Timings are checked against what the test arranged with this much room either way: the
# arranged waits are hundreds of ms, the slack absorbs a loaded two-core machine.
SLACK_MS = 120 * (3 if os.environ.get("VISCOUNT_SANITIZED") == "1" else 1)


class TimingsTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        viscount_bin()

    def setUp(self):
        self.upstream = start_echo_upstream(self)

    def start(self, **upstream_settings):
        # One worker: pools and limits are per worker, and each test arranges one of them.
        config = basic_config(self.upstream.url, workers=1)
        config["upstreams"][0].update(upstream_settings)
        return Viscount.with_config(self, config)

    def line(self, proxy, request_id):
        return proxy.wait_access_log_id(request_id)

    def test_new_then_reused_connection(self):
        proxy = self.start()
        http_get(proxy.listener_port, "/one", {"x-request-id": "first"})
        first = self.line(proxy, "first")["timings"]
        http_get(proxy.listener_port, "/two", {"x-request-id": "second"})
        second = self.line(proxy, "second")["timings"]
        self.assertIsInstance(first["connect_ms"], float)
        self.assertGreaterEqual(first["connect_ms"], 0)
        self.assertIsNone(second["connect_ms"], "the second request reused the pooled connection")
        for t in (first, second):
            self.assertEqual(t["queue_ms"], 0.0)
            self.assertIsInstance(t["pool_wait_ms"], float)
            self.assertLess(t["pool_wait_ms"], SLACK_MS)
            self.assertLess(t["upstream_headers_ms"], SLACK_MS)
        self.assertGreaterEqual(first["pool_wait_ms"], first["connect_ms"])

    def test_the_upstreams_time_to_answer(self):
        proxy = self.start()
        http_get(proxy.listener_port, "/slow?ms=300", {"x-request-id": "slow"})
        t = self.line(proxy, "slow")["timings"]
        self.assertGreaterEqual(t["upstream_headers_ms"], 300)
        self.assertLess(t["upstream_headers_ms"], 300 + SLACK_MS)

    def wait_behind_a_holder(self, proxy, request_id):
        """A 400 ms request holds the one slot or connection while `request_id` is sent: its
        timings, and how long the client waited for it (ms)."""
        holder = RequestThread(proxy.listener_port, "/slow?ms=400", {"x-request-id": "holder"})
        holder.start()
        self.upstream.wait_request(lambda r: ["x-request-id", "holder"] in r["headers"])
        started = time.monotonic()
        http_get(proxy.listener_port, "/after", {"x-request-id": request_id})
        waited_ms = (time.monotonic() - started) * 1000
        holder.join()
        return self.line(proxy, request_id)["timings"], waited_ms

    def test_queued_behind_the_concurrency_limit(self):
        proxy = self.start(limits={"max_concurrent_requests": 1})
        t, waited_ms = self.wait_behind_a_holder(proxy, "queued")
        self.assertGreater(t["queue_ms"], 250)
        self.assertLess(t["queue_ms"], waited_ms + 1)
        self.assertLess(t["pool_wait_ms"], SLACK_MS, "the slot came with an idle connection")
        self.assertEqual(self.line(proxy, "holder")["timings"]["queue_ms"], 0.0)

    def test_waiting_for_the_pool(self):
        proxy = self.start(pool={"size": 1, "max_overflow": 0})
        t, waited_ms = self.wait_behind_a_holder(proxy, "pooled")
        self.assertEqual(t["queue_ms"], 0.0)
        self.assertGreater(t["pool_wait_ms"], 250)
        self.assertLess(t["pool_wait_ms"], waited_ms + 1)
        self.assertIsNone(t["connect_ms"], "it got the holder's connection when it came back")


class DyingUpstream:
    """Answers the first request on its first connection, then closes that connection when the
    next request arrives on it (the keep-alive race, on purpose); every later connection reads
    its request and never answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.connections = 0
        self.held = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @staticmethod
    def _read_head(conn):
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return False
            data += chunk
        return True

    def _accept(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn, self.connections), daemon=True).start()

    def _serve(self, conn, number):
        with conn:
            if not self._read_head(conn):
                return
            if number == 1:
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                self._read_head(conn)
                return  # closed with the second request unanswered
            self.held.append(conn)
            self.stop.wait(30)

    def close(self):
        self.stop.set()
        self.sock.close()


class TrailTest(unittest.TestCase):

    def test_a_504_after_a_retry_over_a_dead_pooled_connection(self):
        upstream = DyingUpstream()
        self.addCleanup(upstream.close)
        # One worker: pools are per worker, and the test needs the second request on the pool
        # the first one filled.
        config = basic_config(upstream.url, workers=1)
        config["upstreams"][0].update({"timeouts": {"request": "1s"}, "retries": {"attempts": 1}})
        proxy = Viscount.with_config(self, config)
        status, _, _ = http_get(proxy.listener_port, "/first", {"x-request-id": "warm"})
        self.assertEqual(status, 200)
        self.assertNotIn("trail", proxy.wait_access_log_id("warm"), "a success carries no trail")

        status, _, _ = http_get(proxy.listener_port, "/second", {"x-request-id": "doomed"})
        self.assertEqual(status, 504)
        line = proxy.wait_access_log_id("doomed")
        self.assertEqual(line["error"], "upstream_timeout")
        trail = line["trail"]
        events = [(e["event"], e.get("reused"), e.get("error")) for e in trail]
        self.assertEqual(events, [
            ("pool_wait", None, None),
            ("connection", True, None),
            ("attempt_failed", None, "upstream_reset"),
            ("retry", None, None),
            ("pool_wait", None, None),
            ("connection", False, None),
            ("timeout", None, "upstream_timeout"),
            ("local_reply", None, "upstream_timeout"),
        ], trail)
        times = [e["at_ms"] for e in trail]
        self.assertEqual(times, sorted(times), "at_ms must not go backwards")
        self.assertGreater(trail[1]["age_ms"], -1)
        self.assertEqual(trail[3]["attempt"], 2)
        self.assertIsInstance(trail[5]["connect_ms"], float)
        self.assertGreaterEqual(trail[6]["at_ms"] - trail[5]["at_ms"], 900,
                                "the timeout came a request budget after the start")
        self.assertEqual(trail[7]["status"], 504)
        self.assertIsNone(line["timings"]["upstream_headers_ms"])
        self.assertIsInstance(line["timings"]["connect_ms"], float)


if __name__ == "__main__":
    unittest.main()
