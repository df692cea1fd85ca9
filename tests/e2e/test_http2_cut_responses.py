"""HTTP/2 responses the upstream cuts short after their head: the client gets the head and every
body byte viscount forwarded, then RST_STREAM, exactly as the access log says (status, bytes_out).

Found by the soak test (tests/soak): RST_STREAM used to be submitted at once, and nghttp2 sent it
ahead of the stream's queued DATA and dropped them, often the HEADERS too, while the log reported
a 200 with the bytes.
"""

import json
import socket
import struct
import threading
import time
import unittest

import h2.errors

from h2_client import H2Client
from viscount_process import Viscount, basic_config, viscount_bin

PROMISED = 1000
SENT = 100


class CuttingUpstream:
    """HTTP/1.1 on 127.0.0.1:0: reads a request head, sends a head promising PROMISED bytes and
    SENT of them, then ends the connection the way the path says (/fin, /rst, /stall)."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def _accept(self):
        while not self.stopping:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock):
        with sock:
            head = b""
            while b"\r\n\r\n" not in head:
                data = sock.recv(65536)
                if not data:
                    return
                head += data
            path = head.split(b" ", 2)[1].decode()
            sock.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % PROMISED
                         + b"c" * SENT)
            if path.startswith("/rst"):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif path.startswith("/stall"):
                time.sleep(3)

    def stop(self):
        self.stopping = True
        self.listener.close()


class Http2CutResponseTest(unittest.TestCase):

    def setUp(self):
        viscount_bin()
        self.upstream = CuttingUpstream()
        self.addCleanup(self.upstream.stop)
        config = basic_config(self.upstream.url,
                              upstreams=[{"name": "app", "url": self.upstream.url,
                                          "timeouts": {"request": "1s"}}])
        self.proxy = Viscount.with_config(self, config)
        self.client = H2Client(self.proxy.listener_port)
        self.addCleanup(self.client.close)

    def check(self, path, error):
        r = self.client.wait(self.client.request("GET", path, [("x-request-id", path[1:])]))[0]
        self.assertEqual(r.status, 200, f"{path}: no response head before the reset")
        self.assertEqual(bytes(r.data), b"c" * SENT, f"{path}: not every forwarded byte arrived")
        self.assertFalse(r.ended, f"{path}: a cut response ended as if complete")
        self.assertEqual(r.reset, h2.errors.ErrorCodes.INTERNAL_ERROR)
        line = self.proxy.wait_access_log_id(path[1:])
        self.assertEqual((line["status"], line["bytes_out"], line["error"]), (200, SENT, error),
                         json.dumps(line))

    def test_upstream_fin_after_part_of_the_body(self):
        for i in range(10):  # head, bytes and FIN often come in one read: the racy case
            self.check(f"/fin-{i}", "upstream_reset")

    def test_upstream_reset_after_part_of_the_body(self):
        for i in range(10):
            self.check(f"/rst-{i}", "upstream_reset")

    def test_request_timeout_after_the_head(self):
        self.check("/stall", "upstream_timeout")

    def test_the_connection_serves_on_after_cut_streams(self):
        self.check("/fin-before", "upstream_reset")
        self.check("/rst-before", "upstream_reset")
        ok = self.client.wait(self.client.request("GET", "/fin-again"))[0]
        self.assertEqual(ok.status, 200)
        self.assertFalse(self.client.closed)


if __name__ == "__main__":
    unittest.main()
