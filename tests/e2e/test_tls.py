"""TLS termination on a listener, against the real binary: curl and Python's ssl/httpx as clients,
certificates made at test time with the openssl command. HTTP/1.1 over TLS 1.2 and 1.3 with ALPN,
byte-exact large bodies both ways, mTLS accepted and refused, certificates renewed by a reload
without dropping open connections, and unusable certificate files refused with a clear reason."""

import hashlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

import httpx

from tls_certs import make_ca, make_leaf
from viscount_process import (Viscount, basic_config, header_values, parse_curl_i, pattern_bytes,
                              start_echo_upstream, viscount_bin)


def peer_common_name(port, ca_file):
    """The CN of the certificate the listener presents to a new connection."""
    ctx = ssl.create_default_context(cafile=ca_file)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            subject = dict(item[0] for item in tls.getpeercert()["subject"])
            return subject["commonName"]


class TlsTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        viscount_bin()
        cls.dir = tempfile.mkdtemp(prefix="viscount-tls-")
        make_ca(cls.dir, "ca")
        make_leaf(cls.dir, "ca", "server", "localhost", server=True)
        make_leaf(cls.dir, "ca", "server2", "localhost-renewed", server=True)
        make_ca(cls.dir, "client-ca")
        make_leaf(cls.dir, "client-ca", "alice", "alice", server=False)
        make_ca(cls.dir, "other-ca")
        make_leaf(cls.dir, "other-ca", "mallory", "mallory", server=False)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def setUp(self):
        self.upstream = start_echo_upstream(self)

    def start(self, client_ca=None, certificate="server", **overrides):
        tls = {"certificate": self.path(f"{certificate}.crt"),
               "private_key": self.path(f"{certificate}.key")}
        if client_ca:
            tls["client_ca"] = self.path(client_ca)
        config = basic_config(self.upstream.url, **overrides)
        config["listeners"][0]["tls"] = tls
        return Viscount.with_config(self, config)

    def curl(self, port, *args, path="/"):
        r = subprocess.run(["curl", "-sS", "-i", "--max-time", "10", "--cacert",
                            self.path("ca.crt"), *args, f"https://localhost:{port}{path}",
                            "--resolve", f"localhost:{port}:127.0.0.1"],
                           capture_output=True, text=True, timeout=15)
        return r

    def test_curl_over_tls_gets_ids_and_the_upstream_sees_https(self):
        proxy = self.start()
        r = self.curl(proxy.listener_port, "-H", "x-request-id: tls-curl-1")
        self.assertEqual(r.returncode, 0, r.stderr)
        status, headers, _ = parse_curl_i(r.stdout)
        self.assertEqual(status, 200, r.stdout)
        self.assertEqual(headers.get("x-request-id"), "tls-curl-1")
        rec = self.upstream.wait_request(lambda q: "tls-curl-1" in header_values(q, "x-request-id"))
        self.assertEqual(header_values(rec, "x-forwarded-proto"), ["https"])
        line = proxy.wait_access_log_id("tls-curl-1")
        self.assertEqual(line["status"], 200)
        self.assertEqual(line["protocol"], "HTTP/2")  # curl offers h2 first over TLS
        self.assertEqual(line["tls_version"], "TLSv1.3")
        self.assertIs(line["client_cert_verified"], False)

    def test_alpn_and_protocol_versions(self):
        proxy = self.start()
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            ctx = ssl.create_default_context(cafile=self.path("ca.crt"))
            ctx.minimum_version = ctx.maximum_version = version
            ctx.set_alpn_protocols(["http/1.1"])
            with socket.create_connection(("127.0.0.1", proxy.listener_port), timeout=5) as raw:
                with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                    self.assertEqual(tls.version(), version.name.replace("_", "."))
                    # (h2 is picked when offered: test_http2.)
                    self.assertEqual(tls.selected_alpn_protocol(), "http/1.1")
                    tls.sendall(b"GET /v HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
                    reply = b""
                    while chunk := tls.recv(65536):
                        reply += chunk
                    self.assertTrue(reply.startswith(b"HTTP/1.1 200 "), reply[:200])

    def test_keep_alive_and_byte_exact_large_bodies(self):
        proxy = self.start()
        base = f"https://localhost:{proxy.listener_port}"
        size = 8 * 1024 * 1024 + 123
        upload = os.urandom(size)
        transport = httpx.HTTPTransport(verify=self.path("ca.crt"))
        with httpx.Client(transport=transport, timeout=30, base_url=base) as client:
            # httpx resolves localhost itself; the certificate names localhost and 127.0.0.1.
            for i in range(30):
                self.assertEqual(client.get(f"/ka?{i}").status_code, 200)
            r = client.post("/upload", content=upload)
            self.assertEqual(r.status_code, 200)
            self.assertEqual(r.json()["body_bytes"], size)
            self.assertEqual(r.json()["body_sha256"], hashlib.sha256(upload).hexdigest())
            r = client.get(f"/bytes?n={size}")
            self.assertEqual(r.status_code, 200)
            self.assertEqual(len(r.content), size)
            self.assertTrue(r.content == pattern_bytes(size), "downloaded body differs")
        ports = {line["client_address"] for line in proxy.access_log()}
        self.assertEqual(len(ports), 1, f"keep-alive over TLS used {len(ports)} connections")

    def test_mtls_accepts_a_verified_client_and_refuses_others(self):
        proxy = self.start(client_ca="client-ca.crt")
        ok = self.curl(proxy.listener_port, "--cert", self.path("alice.crt"), "--key",
                       self.path("alice.key"), "-H", "x-request-id: mtls-alice")
        self.assertEqual(ok.returncode, 0, ok.stderr)
        self.assertEqual(parse_curl_i(ok.stdout)[0], 200)
        self.upstream.wait_request(lambda q: "mtls-alice" in header_values(q, "x-request-id"))
        self.assertIs(proxy.wait_access_log_id("mtls-alice")["client_cert_verified"], True)

        no_cert = self.curl(proxy.listener_port, "-H", "x-request-id: mtls-none")
        self.assertNotEqual(no_cert.returncode, 0, no_cert.stdout)
        wrong_ca = self.curl(proxy.listener_port, "--cert", self.path("mallory.crt"), "--key",
                             self.path("mallory.key"), "-H", "x-request-id: mtls-mallory")
        self.assertNotEqual(wrong_ca.returncode, 0, wrong_ca.stdout)
        seen = [header_values(q, "x-request-id") for q in self.upstream.requests]
        self.assertNotIn(["mtls-none"], seen)
        self.assertNotIn(["mtls-mallory"], seen)
        self.assertTrue(proxy.running())

    def test_user_id_from_the_client_certificate(self):
        config = basic_config(self.upstream.url)
        config["listeners"][0]["tls"] = {
            "certificate": self.path("server.crt"), "private_key": self.path("server.key"),
            "client_ca": self.path("client-ca.crt"), "user_id_from_certificate": True}
        proxy = Viscount.with_config(self, config)
        # curl connects from 127.0.0.1, a trusted source: its header would otherwise be kept.
        r = self.curl(proxy.listener_port, "--cert", self.path("alice.crt"), "--key",
                      self.path("alice.key"), "-H", "x-request-id: cert-user",
                      "-H", "x-user-id: admin")
        self.assertEqual(r.returncode, 0, r.stderr)
        rec = self.upstream.wait_request(lambda q: "cert-user" in header_values(q, "x-request-id"))
        self.assertEqual(header_values(rec, "x-user-id"), ["alice"])
        self.assertEqual(proxy.wait_access_log_id("cert-user")["user_id"], "alice")

    def test_reload_serves_a_renewed_certificate_and_keeps_open_connections(self):
        live = os.path.join(tempfile.mkdtemp(dir=self.dir), "live")
        os.mkdir(live)
        shutil.copy(self.path("server.crt"), os.path.join(live, "server.crt"))
        shutil.copy(self.path("server.key"), os.path.join(live, "server.key"))
        config = basic_config(self.upstream.url)
        config["listeners"][0]["tls"] = {"certificate": os.path.join(live, "server.crt"),
                                         "private_key": os.path.join(live, "server.key")}
        proxy = Viscount.with_config(self, config)
        port = proxy.listener_port
        self.assertEqual(peer_common_name(port, self.path("ca.crt")), "localhost")

        transport = httpx.HTTPTransport(verify=self.path("ca.crt"))
        with httpx.Client(transport=transport, timeout=10,
                          base_url=f"https://localhost:{port}") as client:
            self.assertEqual(client.get("/before").status_code, 200)
            shutil.copy(self.path("server2.crt"), os.path.join(live, "server.crt"))
            shutil.copy(self.path("server2.key"), os.path.join(live, "server.key"))
            proxy.signal(signal.SIGHUP)
            proxy.wait_event("config_reloaded")
            # The open connection goes on with the session it negotiated.
            self.assertEqual(client.get("/after").status_code, 200)
        proxy.wait_access_log(lambda o: o["path"] == "/after")  # lines are written async
        addresses = {line["client_address"] for line in proxy.access_log()
                     if line["path"] in ("/before", "/after")}
        self.assertEqual(len(addresses), 1, "the reload dropped the keep-alive connection")
        self.assertEqual(peer_common_name(port, self.path("ca.crt")), "localhost-renewed")

        # A broken renewal is rejected with the file named, and the last good one stays.
        with open(os.path.join(live, "server.crt"), "w", encoding="utf-8") as f:
            f.write("not a certificate\n")
        proxy.signal(signal.SIGHUP)
        rejected = proxy.wait_event("reload_rejected")
        self.assertIn(os.path.join(live, "server.crt"), rejected["error"])
        self.assertEqual(peer_common_name(port, self.path("ca.crt")), "localhost-renewed")

    def test_a_key_that_does_not_match_is_refused_at_start(self):
        config = basic_config(self.upstream.url)
        config["listeners"][0]["tls"] = {"certificate": self.path("server.crt"),
                                         "private_key": self.path("server2.key")}
        proxy = Viscount.with_config(self, config, wait_ready=False)
        self.assertEqual(proxy.wait_exit(), 2)
        failed = proxy.wait_event("startup_failed")
        self.assertIn("does not match", failed["reason"])
        self.assertIn(self.path("server2.key"), failed["reason"])

    def test_a_stalled_handshake_is_closed_at_the_header_deadline(self):
        proxy = self.start(listeners=[{"name": "inbound", "address": "127.0.0.1:0",
                                       "upstream": "app", "timeouts": {"request_headers": "1s"}}])
        with socket.create_connection(("127.0.0.1", proxy.listener_port), timeout=5) as s:
            s.sendall(b"\x16\x03\x01\x02\x00\x01")  # the start of a ClientHello, then nothing
            started = time.monotonic()
            s.settimeout(5)
            try:
                data = s.recv(4096)
            except ConnectionResetError:
                data = b""
            self.assertEqual(data, b"")
            elapsed = time.monotonic() - started
        self.assertGreater(elapsed, 0.8)
        self.assertLess(elapsed, 3, "the handshake was not bounded by request_headers")

    def test_cleartext_request_on_a_tls_port_reaches_nothing(self):
        proxy = self.start()
        with socket.create_connection(("127.0.0.1", proxy.listener_port), timeout=5) as s:
            s.sendall(b"GET /plain HTTP/1.1\r\nhost: x\r\n\r\n")
            s.settimeout(5)
            try:
                data = s.recv(4096)
            except ConnectionResetError:
                data = b""
        self.assertFalse(data.startswith(b"HTTP/1.1 200"), data)
        self.assertFalse([q for q in self.upstream.requests if q["path"] == "/plain"])
        self.assertTrue(proxy.running())


if __name__ == "__main__":
    unittest.main()
