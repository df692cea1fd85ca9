"""HTTP/2 clients that cancel streams: a client cancelling downloads keeps its connection, while
rapid reset (open a stream, reset it, over and over) still closes it with ENHANCE_YOUR_CALM.

Found by the soak test (tests/soak): python-h2, and so httpx, answers every DATA frame that
arrives after it cancelled a stream with a RST_STREAM of its own, dozens per cancelled download.
nghttp2's reset limit counted those too, and a connection that cancelled eight large downloads
was closed with GOAWAY (INTERNAL_ERROR), failing every other stream on it.
"""

import unittest

import h2.errors
import h2.settings

from h2_client import H2Client
from viscount_process import Viscount, basic_config, start_echo_upstream, viscount_bin

RST_STREAM = 0x3


class CountingClient(H2Client):
    """Counts the RST_STREAM frames it sends (its own cancels and h2's automatic ones)."""

    rst_sent = 0

    def flush(self):
        data = self.conn.data_to_send()
        i = 0
        while i + 9 <= len(data):
            if data[i + 3] == RST_STREAM:
                self.rst_sent += 1
            i += 9 + int.from_bytes(data[i:i + 3], "big")
        if data:
            self.sock.sendall(data)


class Http2StreamCancelTest(unittest.TestCase):

    def setUp(self):
        viscount_bin()
        upstream = start_echo_upstream(self)
        self.proxy = Viscount.with_config(self, basic_config(upstream.url))

    def client(self):
        # 1 MiB stream windows: a cancelled download has up to 1 MiB of DATA on its way, which
        # h2 answers frame by frame.
        c = CountingClient(self.proxy.listener_port, settings={
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20,
            h2.settings.SettingCodes.ENABLE_PUSH: 0})
        self.addCleanup(c.close)
        return c

    def test_cancelled_downloads_keep_the_connection(self):
        c = self.client()
        cancels = 10
        sids = [c.request("GET", "/bytes?n=8000000", [("x-request-id", f"cancel-{i}")])
                for i in range(cancels)]
        cancelled = set()

        def all_cancelled():
            for sid in sids:
                r = c.responses[sid]
                if sid not in cancelled and len(r.data) >= 64 * 1024:
                    c.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
                    c.flush()
                    cancelled.add(sid)
            return len(cancelled) == cancels
        c.pump(all_cancelled, timeout=20)
        # Let the DATA already on its way arrive (each answered with a RST_STREAM by h2), then
        # use the same connection again.
        try:
            while c.read_once(0.3):
                pass
        except TimeoutError:
            pass  # nothing more on its way
        after = c.get("/after-cancels")
        self.assertEqual(after.status, 200, f"GOAWAY {c.goaway}")
        self.assertIsNone(c.goaway)
        self.assertGreater(c.rst_sent, 200, "too few RST_STREAM frames to test the limit")
        for i in range(cancels):
            line = self.proxy.wait_access_log_id(f"cancel-{i}")
            self.assertEqual((line["status"], line["error"]), (200, "client_disconnected"))

    def test_rapid_reset_still_closes_the_connection(self):
        c = self.client()
        for _ in range(1000):
            sid = c.conn.get_next_available_stream_id()
            c.conn.send_headers(sid, [(":method", "GET"), (":path", "/reset"),
                                      (":scheme", "http"), (":authority", "localhost")])
            c.conn.reset_stream(sid)
            try:
                c.flush()
            except (BrokenPipeError, ConnectionResetError):
                break
        goaway = c.wait_closed(timeout=20)
        self.assertIsNotNone(goaway, "no GOAWAY before the close")
        self.assertEqual(goaway[0], h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)
        metrics = self.proxy.admin_get("/metrics")[2].decode()
        self.assertIn('reason="h2_rapid_reset"', metrics)


if __name__ == "__main__":
    unittest.main()
