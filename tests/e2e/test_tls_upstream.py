"""TLS towards an https:// upstream, against the real binary: verification on by default (a CA
file, the name checked, SNI), a failed verification answered 502, keep-alive reuse of the TLS
connection, mTLS to the upstream, and byte-exact bodies through TLS on both sides."""

import hashlib
import os
import shutil
import ssl
import tempfile
import unittest

import httpx

from tls_certs import make_ca, make_leaf
from viscount_process import (Viscount, basic_config, header_values, http_get, pattern_bytes,
                              start_echo_upstream, viscount_bin)


class TlsUpstreamTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        viscount_bin()
        cls.dir = tempfile.mkdtemp(prefix="viscount-tls-up-")
        make_ca(cls.dir, "ca")
        make_leaf(cls.dir, "ca", "server", "localhost", server=True)
        make_ca(cls.dir, "client-ca")
        make_leaf(cls.dir, "client-ca", "proxy", "viscount", server=False)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def https_upstream(self, require_client_ca=None):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.path("server.crt"), self.path("server.key"))
        if require_client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(self.path(require_client_ca))
        return start_echo_upstream(self, ctx)

    def start(self, upstream, **tls):
        config = basic_config(upstream.url, workers=1)  # one pool: reuse is countable
        if tls:
            config["upstreams"][0]["tls"] = tls
        return Viscount.with_config(self, config)

    def test_verified_upstream_with_keep_alive_and_large_bodies(self):
        upstream = self.https_upstream()
        proxy = self.start(upstream, ca_file=self.path("ca.crt"), server_name="localhost")
        for i in range(5):
            status, headers, _ = http_get(proxy.listener_port, f"/small/{i}")
            self.assertEqual(status, 200)
            self.assertIn("x-request-id", headers)
        # One TLS connection served them all (the pool kept it).
        ports = {r["client_port"] for r in upstream.requests if r["path"].startswith("/small/")}
        self.assertEqual(len(ports), 1, ports)

        size = 4 * 1024 * 1024 + 7
        upload = os.urandom(size)
        with httpx.Client(timeout=30, base_url=f"http://127.0.0.1:{proxy.listener_port}") as c:
            r = c.post("/upload", content=upload)
            self.assertEqual(r.status_code, 200)
            self.assertEqual(r.json()["body_bytes"], size)
            self.assertEqual(r.json()["body_sha256"], hashlib.sha256(upload).hexdigest())
            r = c.get(f"/bytes?n={size}")
            self.assertEqual(len(r.content), size)
            self.assertTrue(r.content == pattern_bytes(size), "downloaded body differs")

    def test_the_url_host_is_the_name_checked_by_default(self):
        # The certificate names 127.0.0.1 too, so the URL's IP literal verifies.
        upstream = self.https_upstream()
        proxy = self.start(upstream, ca_file=self.path("ca.crt"))
        self.assertEqual(http_get(proxy.listener_port, "/by-ip")[0], 200)

    def test_an_untrusted_certificate_is_a_502_with_the_reason_logged(self):
        upstream = self.https_upstream()
        proxy = self.start(upstream)  # verification on, the system store: the test CA is unknown
        status, headers, body = http_get(proxy.listener_port, "/untrusted")
        self.assertEqual(status, 502, body)
        self.assertIn(b"upstream_connect_failed", body)
        line = proxy.wait_access_log_id(headers["x-request-id"])
        self.assertEqual(line["error"], "upstream_connect_failed")
        self.assertFalse([r for r in upstream.requests if r["path"] == "/untrusted"])
        event = proxy.wait_event("upstream_error", request_id=headers["x-request-id"])
        self.assertEqual(event["error"], "upstream_connect_failed")
        self.assertIn("certificate verify failed", event["detail"])

    def test_a_name_the_certificate_does_not_carry_is_a_502(self):
        upstream = self.https_upstream()
        proxy = self.start(upstream, ca_file=self.path("ca.crt"), server_name="api.example.com")
        self.assertEqual(http_get(proxy.listener_port, "/wrong-name")[0], 502)
        self.assertFalse([r for r in upstream.requests if r["path"] == "/wrong-name"])

    def test_verify_false_accepts_any_certificate(self):
        upstream = self.https_upstream()
        proxy = self.start(upstream, verify=False)
        self.assertEqual(http_get(proxy.listener_port, "/unverified")[0], 200)

    def test_client_certificate_for_an_upstream_that_requires_one(self):
        upstream = self.https_upstream(require_client_ca="client-ca.crt")
        without = self.start(upstream, ca_file=self.path("ca.crt"))
        self.assertEqual(http_get(without.listener_port, "/no-cert")[0], 502)
        proxy = self.start(upstream, ca_file=self.path("ca.crt"),
                           certificate=self.path("proxy.crt"), private_key=self.path("proxy.key"))
        status, _, _ = http_get(proxy.listener_port, "/with-cert", headers={"x-request-id": "m1"})
        self.assertEqual(status, 200)
        rec = upstream.wait_request(lambda r: r["path"] == "/with-cert")
        self.assertEqual(header_values(rec, "x-request-id"), ["m1"])


if __name__ == "__main__":
    unittest.main()
