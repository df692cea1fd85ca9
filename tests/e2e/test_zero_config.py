"""Zero-config mode (`viscount --upstream URL --listen ADDR`) in front of the real FastAPI demo
app under uvicorn: ids on responses, the same ids in both processes' JSON logs, trusted client ids
preserved, user id forwarded.

Zero-config mode binds the admin server on its default 127.0.0.1:15000, so this module must not
run at the same time as another zero-config instance (CTest RESOURCE_LOCK viscount_admin_15000).
"""

import json
import os
import pty
import re
import select
import signal
import subprocess
import tempfile
import time
import unittest
import uuid

import httpx

from viscount_process import (STOP_TIMEOUT, Viscount, free_port, parse_curl_i, start_demo_app,
                              viscount_bin)

ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class ZeroConfigTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        viscount_bin()
        cls.app = start_demo_app(cls, class_level=True)

    def setUp(self):
        self.port = free_port()
        self.proxy = Viscount.zero_config(self, self.app.url, listen=f"127.0.0.1:{self.port}")
        self.base = f"http://127.0.0.1:{self.port}"

    def check_logs_agree(self, request_id):
        """The app's log line and viscount's access-log line for one request; both returned."""
        access = self.proxy.wait_access_log_id(request_id)
        app = self.app.wait_log(lambda o: o.get("x_request_id") == request_id,
                                what=f"x_request_id={request_id}")
        self.assertEqual(app["x_correlation_id"], access["correlation_id"])
        self.assertEqual(app["path"], access["path"].split("?")[0])
        self.assertEqual(app["status"], access["status"])
        # trace_context is on by default (docs/reference.md): every request carries a trace, and
        # the traceparent the app got names viscount's trace and its span as the parent.
        self.assertRegex(access["trace_id"] or "", r"^[0-9a-f]{32}$", access)
        self.assertRegex(access["span_id"] or "", r"^[0-9a-f]{16}$", access)
        self.assertRegex(app["traceparent"] or "",
                         rf"^00-{access['trace_id']}-{access['span_id']}-[0-9a-f]{{2}}$", app)
        return access, app

    def test_listens_where_told_with_default_admin(self):
        self.assertEqual(self.proxy.listener_port, self.port)
        self.assertEqual(self.proxy.admin_port, 15000)  # docs/reference.md default admin address
        self.assertEqual(self.proxy.admin_get("/ready")[0], 200)

    def test_curl_get(self):
        r = subprocess.run(["curl", "-sS", "-i", "--max-time", "10", self.base + "/"],
                           capture_output=True, text=True, timeout=15)
        self.assertEqual(r.returncode, 0, r.stderr)
        status, headers, body = parse_curl_i(r.stdout)
        self.assertEqual(status, 200, r.stdout)
        request_id = headers.get("x-request-id")
        self.assertTrue(request_id and ID_PATTERN.match(request_id), headers)
        self.assertTrue(headers.get("x-correlation-id"), headers)
        seen = json.loads(body)["context_seen"]
        self.assertEqual(seen["x_request_id"], request_id)
        self.assertEqual(seen["x_correlation_id"], headers["x-correlation-id"])
        access, _ = self.check_logs_agree(request_id)
        self.assertEqual(access["status"], 200)
        self.assertEqual(access["method"], "GET")
        self.assertEqual(access["protocol"], "HTTP/1.1")
        self.assertEqual(access["upstream"], "app")
        self.assertEqual(access["upstream_address"], f"127.0.0.1:{self.app.port}")
        self.assertIsNone(access["error"])

    def test_httpx_get_and_both_logs_share_the_request_id(self):
        with httpx.Client(timeout=10) as client:
            r = client.get(self.base + "/")
        self.assertEqual(r.status_code, 200)
        request_id = r.headers["x-request-id"]
        correlation_id = r.headers["x-correlation-id"]
        self.assertEqual(r.json()["context_seen"]["x_request_id"], request_id)
        access, app = self.check_logs_agree(request_id)
        self.assertEqual(access["correlation_id"], correlation_id)
        self.assertEqual(app["x_correlation_id"], correlation_id)
        # A new trace is started and sent upstream.
        self.assertRegex(app["traceparent"] or "", r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")

    def test_trusted_client_ids_are_preserved(self):
        request_id = f"client-{uuid.uuid4()}"
        correlation_id = f"corr-{uuid.uuid4().hex[:12]}"
        with httpx.Client(timeout=10) as client:
            r = client.get(self.base + "/", headers={"x-request-id": request_id,
                                                     "x-correlation-id": correlation_id})
        self.assertEqual(r.status_code, 200)
        self.assertEqual(r.headers["x-request-id"], request_id)
        self.assertEqual(r.headers["x-correlation-id"], correlation_id)
        seen = r.json()["context_seen"]
        self.assertEqual(seen["x_request_id"], request_id)
        self.assertEqual(seen["x_correlation_id"], correlation_id)
        access, _ = self.check_logs_agree(request_id)
        self.assertEqual(access["correlation_id"], correlation_id)

    def test_trace_context_is_continued(self):
        trace_id = uuid.uuid4().hex
        traceparent = f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"
        with httpx.Client(timeout=10) as client:
            r = client.get(self.base + "/", headers={"traceparent": traceparent})
        self.assertEqual(r.status_code, 200)
        seen = r.json()["context_seen"]
        self.assertIn(trace_id, seen["traceparent"])
        access = self.proxy.wait_access_log_id(r.headers["x-request-id"])
        self.assertEqual(access["trace_id"], trace_id)

    def test_user_id_is_forwarded_from_loopback(self):
        with httpx.Client(timeout=10) as client:
            r = client.post(self.base + "/echo", content=b"hello",
                            headers={"x-user-id": "alice", "x-request-id": "my-own-id-123"})
        self.assertEqual(r.status_code, 200)
        body = r.json()
        self.assertEqual(body["bytes"], 5)
        self.assertEqual(body["context_seen"]["x_user_id"], "alice")
        self.assertEqual(body["context_seen"]["x_request_id"], "my-own-id-123")
        access, app = self.check_logs_agree("my-own-id-123")
        self.assertEqual(access["user_id"], "alice")
        self.assertEqual(app["x_user_id"], "alice")
        self.assertEqual(access["method"], "POST")
        self.assertEqual(access["bytes_in"], 5)

    def test_malformed_client_id_is_replaced(self):
        with httpx.Client(timeout=10) as client:
            r = client.get(self.base + "/", headers={"x-request-id": "not valid <id>"})
        self.assertEqual(r.status_code, 200)
        request_id = r.headers["x-request-id"]
        self.assertNotEqual(request_id, "not valid <id>")
        self.assertRegex(request_id, ID_PATTERN)
        self.assertEqual(r.json()["context_seen"]["x_request_id"], request_id)
        self.check_logs_agree(request_id)

    def test_slow_endpoint_and_missing_route(self):
        with httpx.Client(timeout=10) as client:
            slow = client.get(self.base + "/slow", params={"ms": 200})
            missing = client.get(self.base + "/no-such-route")
        self.assertEqual(slow.status_code, 200)
        self.assertEqual(slow.json()["slept_ms"], 200)
        self.assertEqual(missing.status_code, 404)
        self.assertIn("x-request-id", missing.headers)
        access = self.proxy.wait_access_log_id(slow.headers["x-request-id"])
        self.assertGreaterEqual(access["duration_ms"], 200)
        self.assertGreaterEqual(access["upstream_ms"], 200)
        self.assertEqual(self.proxy.wait_access_log_id(missing.headers["x-request-id"])["status"],
                         404)

    def test_sighup_without_a_config_file_is_ignored(self):
        self.proxy.signal(signal.SIGHUP)
        self.proxy.wait_event("reload_ignored")
        self.assertTrue(self.proxy.running())
        with httpx.Client(timeout=10) as client:
            self.assertEqual(client.get(self.base + "/").status_code, 200)

    def test_sigterm_exits_0(self):
        self.proxy.signal(signal.SIGTERM)
        self.assertEqual(self.proxy.wait_exit(timeout=5), 0, self.proxy.diagnostics())

    def test_logs_are_pretty_on_a_terminal(self):
        # The proxy from setUp writes to a pipe and logs JSON (the other tests parse it); this
        # one's stdout is a terminal, where a developer wants readable, coloured lines.
        port = free_port()
        controller, terminal = pty.openpty()
        self.addCleanup(os.close, controller)
        # stderr goes to a file, for the sanitizer report if the exit below is not clean.
        stderr = tempfile.TemporaryFile()
        self.addCleanup(stderr.close)
        proc = subprocess.Popen([viscount_bin(), "--upstream", self.app.url,
                                 "--listen", f"127.0.0.1:{port}", "--admin", "off"],
                                stdout=terminal, stderr=stderr)
        os.close(terminal)
        self.addCleanup(proc.kill)
        request_id = "tty-" + uuid.uuid4().hex[:12]
        deadline = time.monotonic() + 10
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/", headers={"x-request-id": request_id},
                              timeout=5)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.assertEqual(r.status_code, 200)
        output = b""
        while request_id.encode() not in output and time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.2)
            if ready:
                output += os.read(controller, 65536)
        text = output.decode("utf-8", "replace")
        line = next((l for l in text.splitlines() if request_id in l), None)
        self.assertIsNotNone(line, f"no access-log line for {request_id} on the terminal: {text!r}")
        self.assertIn("\x1b[", line, "no colour on a terminal")
        plain = re.sub("\x1b\\[[0-9;]*m", "", line)
        self.assertFalse(plain.lstrip().startswith("{"), f"JSON on a terminal: {plain!r}")
        self.assertIn("GET", plain)
        self.assertIn("200", plain)
        self.assertIsNone(proc.poll(), "viscount died during the test")
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=STOP_TIMEOUT)
        stderr.seek(0)
        self.assertEqual(code, 0, "viscount did not exit cleanly on SIGTERM; stderr tail:\n"
                         + stderr.read().decode("utf-8", "replace")[-8000:])


if __name__ == "__main__":
    unittest.main()
