"""Slow attacks: headers trickled byte by byte (slowloris), bodies trickled or stalled, many such
connections at once, and a client that never reads a large response. Each is bounded by the
listener's header deadline or the upstream's request budget, memory stays flat while a response
waits for a reader, and other clients are served meanwhile.

Timeouts here are short: request_headers 1s, idle 2s, the upstream request budget 2s.
"""

import os
import select
import socket
import threading
import time
import unittest

from adversarial_support import (CASE_TIMEOUT, SANITIZED, ProxyTestCase, Result, connect,
                                 exchange, read_responses, vm_rss_kib)

HEAD = b"POST /slow HTTP/1.1\r\nHost: a\r\n"
# The sanitizer build runs everything several times slower: scale the bounds on elapsed time.
SLACK = 3.0 if SANITIZED else 1.0


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Trickler(threading.Thread):
    """Sends `head` and then `drip` one byte every `interval`, until the proxy answers; records
    the answer and when the proxy closed."""

    def __init__(self, port, head, drip, interval=0.1):
        super().__init__(daemon=True)
        self.sock = connect(port)
        self.head, self.drip, self.interval = head, drip, interval
        self.result = Result()
        self.closed_at = None
        self.start_time = time.monotonic()

    def run(self):
        try:
            self.sock.sendall(self.head)
            for byte in self.drip:
                readable, _, _ = select.select([self.sock], [], [], self.interval)
                if readable:
                    break  # the proxy answered: stop dripping, read it
                self.sock.sendall(bytes([byte]))
        except OSError:
            pass  # the proxy answered and closed
        read_responses(self.sock, self.result, want=1, until_close=True, timeout=6 * SLACK)
        self.closed_at = time.monotonic() - self.start_time
        self.sock.close()


class SlowClientsTest(ProxyTestCase):
    config_overrides = {
        "listener": {"timeouts": {"request_headers": "1s", "idle": "2s"}},
        "upstream": {"timeouts": {"connect": "1s", "request": "2s"}},
    }

    def served_meanwhile(self, path="/meanwhile"):
        """Another client's request, answered; returns when its answer was in.

        How fast does not matter (a loaded or sanitizer build is slow); that it was answered
        while the slow clients still held their connections does: see assert_served_first."""
        result = exchange(self.port, b"GET " + path.encode() + b" HTTP/1.1\r\nHost: a\r\n\r\n",
                          until_close=False, linger=0, timeout=CASE_TIMEOUT * SLACK)
        self.assertEqual([r.status for r in result.responses], [200], result)
        return time.monotonic()

    def assert_served_first(self, served_at, trickler):
        """The other client had its answer before the slow one's deadline ended the slow
        connection: it did not wait behind the slow client."""
        self.assertIsNotNone(trickler.closed_at, "the slow connection was never closed")
        self.assertLess(served_at, trickler.start_time + trickler.closed_at,
                        "another client was only answered once the slow one had timed out")

    def assert_timed_out(self, trickler, status, error, low, high):
        trickler.join(10 * SLACK)
        self.assertFalse(trickler.is_alive())
        result = trickler.result
        self.assertEqual(len(result.responses), 1, result)
        body = self.assert_error_reply(result.first, status)
        self.assertEqual(body["error"], error)
        self.assertTrue(result.closed, result)
        self.assertGreaterEqual(trickler.closed_at, low)
        self.assertLess(trickler.closed_at, high * SLACK)

    def test_slowloris_headers_get_408_at_the_deadline(self):
        """A byte every 100 ms keeps the connection busy but does not move the deadline."""
        t = Trickler(self.port, b"GET / HTTP/1.1\r\nHost: a\r\n", b"X-Slow: " + b"s" * 100)
        t.start()
        time.sleep(0.3)
        served_at = self.served_meanwhile()
        self.assert_timed_out(t, 408, "request_header_timeout", 0.9, 2.0)
        self.assert_served_first(served_at, t)
        self.assert_upstream_count(1)  # only the other client's request
        log = self.proxy.wait_access_log(lambda o: o.get("error") == "request_header_timeout")
        self.assertEqual(log["status"], 408)

    def test_slowloris_request_line(self):
        t = Trickler(self.port, b"G", b"ET /" + b"a" * 100)
        t.start()
        self.assert_timed_out(t, 408, "request_header_timeout", 0.9, 2.0)
        self.assert_upstream_count(0)

    def test_many_slowloris_connections_and_others_are_served(self):
        tricklers = [Trickler(self.port, b"GET / HTTP/1.1\r\n", b"X-A: " + b"a" * 100, 0.2)
                     for _ in range(40)]
        for t in tricklers:
            t.start()
        time.sleep(0.3)
        served_at = [self.served_meanwhile(f"/meanwhile-{i}") for i in range(5)]
        for t in tricklers:
            self.assert_timed_out(t, 408, "request_header_timeout", 0.9, 2.5)
            self.assert_served_first(max(served_at), t)
        self.assert_upstream_count(5)

    def test_silent_connection_is_closed_when_idle(self):
        """No byte at all: the idle timeout closes it, without an answer (nothing was asked)."""
        start = time.monotonic()
        result = Result()
        with connect(self.port) as sock:
            read_responses(sock, result, want=1, until_close=True, timeout=6 * SLACK)
        self.assertTrue(result.closed)
        self.assertEqual(result.responses, [])
        self.assertGreaterEqual(time.monotonic() - start, 1.9)

    def test_slow_body_is_bounded_by_the_request_budget(self):
        """Content-Length promised, a byte every 100 ms: the request budget (2s) ends it."""
        t = Trickler(self.port, HEAD + b"Content-Length: 1000\r\n\r\n", b"b" * 1000)
        t.start()
        time.sleep(0.3)
        served_at = self.served_meanwhile()
        self.assert_timed_out(t, 504, "upstream_timeout", 1.9, 3.5)
        self.assert_served_first(served_at, t)
        requests = self.assert_upstream_count(1)
        self.assertEqual(requests[0].target, "/meanwhile", "a partial body became a request")

    def test_slow_chunked_body_is_bounded_by_the_request_budget(self):
        t = Trickler(self.port, HEAD + b"Transfer-Encoding: chunked\r\n\r\n",
                     b"1\r\nb\r\n" * 200)
        t.start()
        self.assert_timed_out(t, 504, "upstream_timeout", 1.9, 3.5)
        self.assert_upstream_count(0)

    def test_stalled_body(self):
        """Half the body, then nothing."""
        t = Trickler(self.port, HEAD + b"Content-Length: 10\r\n\r\nhello", b"")
        t.start()
        self.assert_timed_out(t, 504, "upstream_timeout", 1.9, 3.5)
        self.assert_upstream_count(0)

    def test_trickled_trailers_are_bounded(self):
        t = Trickler(self.port, HEAD + b"Transfer-Encoding: chunked\r\n\r\n0\r\n",
                     b"X-T: " + b"t" * 1000)
        t.start()
        self.assert_timed_out(t, 504, "upstream_timeout", 1.9, 3.5)
        self.assert_upstream_count(0)


BIG = 256 * 1024 * 1024
MIB = b"x" * (1024 * 1024)


class Pusher:
    """An upstream handler sending a BIG body as fast as the proxy takes it."""

    def __init__(self):
        self.sent = 0

    def __call__(self, req, sock):
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % BIG)
        for _ in range(BIG // len(MIB)):
            sock.sendall(MIB)  # blocks while the proxy applies backpressure
            self.sent += len(MIB)
        return True


class UnreadResponseTest(ProxyTestCase):
    """A client that asks for a large response and never reads it."""

    pusher = Pusher()
    handlers = {"/big": pusher}
    config_overrides = {"upstream": {"timeouts": {"connect": "1s", "request": "60s"}}}

    def test_memory_stays_flat_and_others_are_served(self):
        pid = self.proxy.proc.pid
        exchange(self.port, b"GET /warm HTTP/1.1\r\nHost: a\r\n\r\n", until_close=False, linger=0)
        rss_before = vm_rss_kib(pid)
        sock = connect(self.port)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        try:
            sock.sendall(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
            # Let the pipe fill: the upstream pushes until every buffer on the way is full.
            deadline = time.monotonic() + 5 * SLACK
            last = -1
            while time.monotonic() < deadline:
                time.sleep(0.5)
                if self.pusher.sent == last and last > 0:
                    break
                last = self.pusher.sent
            cpu_before = cpu_seconds(pid)
            time.sleep(1.0)
            cpu_idle = cpu_seconds(pid) - cpu_before
            rss_stalled = vm_rss_kib(pid)
            # Others are answered while the unread response still holds its connection (the
            # socket closes only below); how fast is not the point.
            for i in range(3):
                result = exchange(self.port, b"GET /other-%d HTTP/1.1\r\nHost: a\r\n\r\n" % i,
                                  until_close=False, linger=0, timeout=CASE_TIMEOUT * SLACK)
                self.assertEqual([r.status for r in result.responses], [200], result)
        finally:
            sock.close()
        self.assertLess(self.pusher.sent, 64 * 1024 * 1024,
                        "the upstream kept sending: nothing held it back")
        self.assertLess(cpu_idle, 0.3, "the proxy spins while the client does not read")
        growth = rss_stalled - rss_before
        if SANITIZED:
            self.skipTest(f"RSS means nothing under ASan (grew {growth} KiB)")
        self.assertLess(growth, 8 * 1024, f"RSS grew by {growth} KiB while the client "
                                          f"did not read ({self.pusher.sent >> 20} MiB pushed)")


if __name__ == "__main__":
    unittest.main()
