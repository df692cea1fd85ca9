"""Real clients through the real binary: curl (HTTP/1.1, HTTP/1.0, Expect: 100-continue with a
1 MiB upload, HEAD) and httpx (sync keep-alive, async concurrency with distinct ids)."""

import asyncio
import http.client
import json
import os
import subprocess
import unittest
import uuid

import httpx

from viscount_process import (Viscount, basic_config, free_port, header_values, parse_curl_i,
                              start_echo_upstream, temp_dir, viscount_bin)


def curl(*args, timeout=20):
    return subprocess.run(["curl", "-sS", "--max-time", "15", *args], capture_output=True,
                          timeout=timeout)


class ClientsTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        viscount_bin()

    def setUp(self):
        self.upstream = start_echo_upstream(self)
        self.proxy = Viscount.with_config(self, basic_config(self.upstream.url))
        self.base = f"http://127.0.0.1:{self.proxy.listener_port}"

    # --- curl -------------------------------------------------------------------------------

    def test_curl_http11(self):
        r = curl("-i", "-H", "x-request-id: curl-11", self.base + "/hello?x=1")
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout.decode()
        self.assertRegex(out, r"^HTTP/1\.1 200")
        status, headers, body = parse_curl_i(out)
        self.assertEqual(headers["x-request-id"], "curl-11")
        echo = json.loads(body)
        self.assertEqual(echo["path"], "/hello")
        self.assertEqual(echo["query"], "x=1")
        self.assertEqual(header_values(echo, "x-request-id"), ["curl-11"])
        self.assertEqual(header_values(echo, "x-forwarded-for"), ["127.0.0.1"])
        self.assertEqual(header_values(echo, "x-forwarded-proto"), ["http"])
        access = self.proxy.wait_access_log_id("curl-11")
        self.assertEqual(access["protocol"], "HTTP/1.1")
        self.assertEqual(access["path"], "/hello?x=1")  # the request target, query included
        self.assertEqual(access["bytes_out"], len(body.encode()))

    def test_curl_http10(self):
        r = curl("-i", "--http1.0", "-H", "x-request-id: curl-10", self.base + "/ten")
        self.assertEqual(r.returncode, 0, r.stderr)
        status, headers, body = parse_curl_i(r.stdout.decode())
        self.assertEqual(status, 200)
        self.assertEqual(headers["x-request-id"], "curl-10")
        self.assertEqual(json.loads(body)["path"], "/ten")
        access = self.proxy.wait_access_log_id("curl-10")
        self.assertEqual(access["protocol"], "HTTP/1.0")
        self.assertEqual(access["status"], 200)

    def test_curl_expect_100_continue_with_1mib_upload(self):
        data = os.urandom(1024 * 1024)
        path = os.path.join(temp_dir(self), "upload.bin")
        with open(path, "wb") as f:
            f.write(data)
        # A long expect timeout: without a 100 Continue curl would stall instead of sending.
        r = curl("-i", "-H", "Expect: 100-continue", "--expect100-timeout", "10",
                 "-H", "x-request-id: upload-1", "-H", "content-type: application/octet-stream",
                 "--data-binary", "@" + path, self.base + "/upload")
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout.decode()
        self.assertRegex(out, r"^HTTP/1\.1 100 Continue", out[:300])
        status, headers, body = parse_curl_i(out)
        self.assertEqual(status, 200, out[:500])
        echo = json.loads(body)
        self.assertEqual(echo["method"], "POST")
        self.assertEqual(echo["body_bytes"], len(data))
        access = self.proxy.wait_access_log_id("upload-1")
        self.assertEqual(access["bytes_in"], len(data))
        self.assertEqual(access["status"], 200)

    def test_curl_head(self):
        r = curl("-I", "-H", "x-request-id: head-1", self.base + "/head")
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout.decode()
        status, headers, body = parse_curl_i(out)
        self.assertEqual(status, 200)
        self.assertEqual(headers["x-request-id"], "head-1")
        self.assertGreater(int(headers["content-length"]), 0)  # the GET length, no body
        self.assertEqual(body, "")
        access = self.proxy.wait_access_log_id("head-1")
        self.assertEqual(access["method"], "HEAD")
        self.assertEqual(access["bytes_out"], 0)
        # The connection stays usable after a HEAD: a keep-alive pair in one curl run.
        r = curl("-I", self.base + "/head", "-o", "/dev/null", self.base + "/after-head",
                 "-w", "%{http_code} %{num_connects}\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"200 0", r.stdout)  # second transfer reused the connection

    def test_curl_keep_alive_reuses_one_client_connection(self):
        args = []
        for i in range(5):
            args += ["-o", "/dev/null", f"{self.base}/ka/{i}"]
        r = curl("-w", "%{http_code} %{num_connects}\n", *args)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.decode().splitlines(), ["200 1"] + ["200 0"] * 4)
        self.proxy.wait_access_log(lambda o: o["path"] == "/ka/4")
        clients = {a["client_address"] for a in self.proxy.access_log()
                   if a["path"].startswith("/ka/")}
        self.assertEqual(len(clients), 1, clients)

    def test_proxy_error_page_when_upstream_is_down(self):
        dead = f"http://127.0.0.1:{free_port()}"
        proxy = Viscount.with_config(self, basic_config(dead))
        r = curl("-i", "-H", "x-request-id: down-1", f"http://127.0.0.1:{proxy.listener_port}/")
        self.assertEqual(r.returncode, 0, r.stderr)
        status, headers, body = parse_curl_i(r.stdout.decode())
        self.assertEqual(status, 502)
        self.assertEqual(headers["x-request-id"], "down-1")
        self.assertIn("x-correlation-id", headers)
        self.assertTrue(headers["content-type"].startswith("application/json"))
        self.assertIn("proxy-status", headers)
        err = json.loads(body)
        self.assertEqual(err, {"error": "upstream_connect_failed", "status": 502,
                               "request_id": "down-1"})
        access = proxy.wait_access_log_id("down-1")
        self.assertEqual(access["status"], 502)
        self.assertEqual(access["error"], "upstream_connect_failed")

    # --- headers ----------------------------------------------------------------------------

    def test_upstream_sees_exactly_one_copy_of_context_headers(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.proxy.listener_port, timeout=5)
        self.addCleanup(conn.close)
        conn.putrequest("GET", "/dups", skip_accept_encoding=True)
        conn.putheader("x-request-id", "first-id")
        conn.putheader("x-request-id", "second-id")
        conn.putheader("x-user-id", "alice")
        conn.putheader("x-user-id", "mallory")
        conn.putheader("connection", "x-hop")
        conn.putheader("x-hop", "drop-me")
        conn.putheader("keep-alive", "timeout=5")
        conn.endheaders()
        resp = conn.getresponse()
        echo = json.loads(resp.read())
        self.assertEqual(resp.status, 200)
        self.assertEqual(len(header_values(echo, "x-request-id")), 1, echo["headers"])
        self.assertEqual(len(header_values(echo, "x-correlation-id")), 1, echo["headers"])
        # Copies that differ make a context id ambiguous, and an ambiguous id is never believed
        # (docs/reference.md, filters/context_filter.cc): no user id goes upstream at all, and
        # the request id is a new one rather than either copy.
        self.assertEqual(header_values(echo, "x-user-id"), [], echo["headers"])
        self.assertNotIn(header_values(echo, "x-request-id")[0], {"first-id", "second-id"})
        self.assertEqual(len(header_values(echo, "traceparent")), 1, echo["headers"])
        self.assertEqual(header_values(echo, "x-hop"), [])
        self.assertEqual(header_values(echo, "keep-alive"), [])
        self.assertEqual(resp.getheader("x-request-id"), header_values(echo, "x-request-id")[0])
        access = self.proxy.wait_access_log_id(resp.getheader("x-request-id"))
        self.assertIsNone(access["user_id"], access)

    # --- httpx ------------------------------------------------------------------------------

    def test_httpx_sync_keep_alive_200_requests(self):
        ids = [f"sync-{i}-{uuid.uuid4().hex[:8]}" for i in range(200)]
        statuses = []
        with httpx.Client(timeout=10) as client:
            for request_id in ids:
                r = client.get(self.base + "/sync", headers={"x-request-id": request_id})
                statuses.append(r.status_code)
                self.assertEqual(r.headers["x-request-id"], request_id)
        self.assertEqual(statuses, [200] * 200)
        self.proxy.wait_access_log_id(ids[-1])
        lines = [a for a in self.proxy.access_log() if a["request_id"] in set(ids)]
        self.assertEqual(len(lines), 200)
        # One client connection carried them all.
        self.assertEqual(len({a["client_address"] for a in lines}), 1)
        # And the proxy pooled its upstream connections instead of one per request.
        ports = {r["client_port"] for r in self.upstream.requests if r["path"] == "/sync"}
        self.assertLess(len(ports), 20, f"{len(ports)} upstream connections for 200 requests")

    def test_httpx_async_100_concurrent_requests_keep_their_ids(self):
        ids = [f"async-{i}-{uuid.uuid4().hex[:8]}" for i in range(100)]

        async def main():
            limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
            async with httpx.AsyncClient(timeout=20, limits=limits) as client:
                async def one(request_id):
                    r = await client.get(self.base + "/slow", params={"ms": 100},
                                         headers={"x-request-id": request_id})
                    return request_id, r
                return await asyncio.gather(*(one(i) for i in ids))

        results = asyncio.run(main())
        for request_id, r in results:
            with self.subTest(request_id=request_id):
                self.assertEqual(r.status_code, 200)
                self.assertEqual(r.headers["x-request-id"], request_id)
                echo = r.json()
                self.assertEqual(header_values(echo, "x-request-id"), [request_id])
        for request_id in ids:
            line = self.proxy.wait_access_log_id(request_id)
            self.assertEqual(line["status"], 200)
        # They really overlapped upstream (more than one upstream connection was used).
        ports = {r["client_port"] for r in self.upstream.requests if r["path"] == "/slow"}
        self.assertGreater(len(ports), 1)


if __name__ == "__main__":
    unittest.main()
