"""An HTTP/2 upstream (h2c://) whose TCP reset arrives with its last frames: the stream it cut
must end at once (upstream_reset), not wait for more DATA until the request timeout.

The same lost reset as a client's (tests/integration/peer_reset_test.cc, found by the soak test):
the frames and the RST came in one edge, the read stopped at the short read, and epoll does not
report the reset again.
"""

import array
import fcntl
import http.client
import socket
import struct
import threading
import time
import unittest

import h2.config
import h2.connection
import h2.events

from viscount_process import Viscount, basic_config, viscount_bin

PROMISED = 1000
SENT = 100
SIOCOUTQNSD = 0x894B  # linux/sockios.h: bytes in the send queue not yet handed to the network


def wait_until_sent(sock, limit=2.0):
    """An abortive close throws away what the kernel has not transmitted yet, and on loopback the
    transmission can lag the send call: without this wait the client may get the RST without the
    frames before it, and the 502 it then rightly gives is not the case under test."""
    unsent = array.array("i", [0])
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        fcntl.ioctl(sock.fileno(), SIOCOUTQNSD, unsent)
        if unsent[0] == 0:
            return
        time.sleep(0)
    raise AssertionError(f"{unsent[0]} bytes still unsent after {limit}s")


class ResettingH2Upstream:
    """h2c on 127.0.0.1:0: answers each request with a head promising PROMISED bytes and SENT of
    them, then resets the TCP connection (SO_LINGER 0) as soon as the kernel has sent them."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock):
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        while True:
            data = sock.recv(65536)
            if not data:
                sock.close()
                return
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.StreamEnded):
                    conn.send_headers(event.stream_id, [(":status", "200"),
                                                        ("content-length", str(PROMISED))])
                    conn.send_data(event.stream_id, b"u" * SENT)
                    sock.sendall(conn.data_to_send())
                    wait_until_sent(sock)
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    sock.close()
                    return
            sock.sendall(conn.data_to_send())

    def stop(self):
        self.listener.close()


class H2UpstreamResetTest(unittest.TestCase):

    def test_a_tcp_reset_with_the_last_frames_cuts_the_response_at_once(self):
        viscount_bin()
        upstream = ResettingH2Upstream()
        self.addCleanup(upstream.stop)
        url = f"h2c://127.0.0.1:{upstream.port}"
        proxy = Viscount.with_config(self, basic_config(
            url, upstreams=[{"name": "app", "url": url, "timeouts": {"request": "15s"}}]))
        for i in range(10):
            start = time.monotonic()
            conn = http.client.HTTPConnection("127.0.0.1", proxy.listener_port, timeout=20)
            conn.request("GET", f"/cut-{i}", headers={"x-request-id": f"h2-up-rst-{i}"})
            resp = conn.getresponse()
            self.assertEqual(resp.status, 200)
            with self.assertRaises(http.client.IncompleteRead):
                resp.read()
            conn.close()
            self.assertLess(time.monotonic() - start, 3, "the cut was noticed only by the timeout")
            line = proxy.wait_access_log_id(f"h2-up-rst-{i}")
            self.assertEqual((line["status"], line["error"], line["bytes_out"]),
                             (200, "upstream_reset", SENT), line)


if __name__ == "__main__":
    unittest.main()
