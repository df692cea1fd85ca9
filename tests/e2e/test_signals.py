"""Signals against the real binary: SIGTERM/SIGINT drain (in-flight requests finish, /ready turns
503, exit 0), a second SIGTERM forces the exit, drain_timeout bounds the drain, SIGHUP (or a change
to the file) reloads a valid config without failed requests and keeps the old one on an invalid
config."""

import signal
import threading
import time
import unittest

import httpx

from viscount_process import (RequestThread, Viscount, basic_config, header_values, http_get,
                              start_echo_upstream, to_yaml, viscount_bin, wait_until,
                              write_file_atomically)


class DrainTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        viscount_bin()

    def setUp(self):
        self.upstream = start_echo_upstream(self)

    def start(self, **overrides):
        proxy = Viscount.with_config(self, basic_config(self.upstream.url, **overrides))
        self.assertEqual(proxy.admin_get("/ready")[0], 200)
        return proxy

    def in_flight(self, proxy, path, request_id):
        """Starts a request and returns once the upstream is working on it."""
        t = RequestThread(proxy.listener_port, path, {"x-request-id": request_id})
        t.start()
        self.upstream.wait_request(lambda r: request_id in header_values(r, "x-request-id"))
        return t

    def drain_with_in_flight_request(self, sig, reason):
        proxy = self.start(drain_timeout="10s")
        request = self.in_flight(proxy, "/slow?ms=1000", "slow-1")
        signalled = time.monotonic()
        proxy.signal(sig)
        proxy.wait_event("drain_started", reason=reason)

        # /ready turns 503 while the request is still in flight and before the process exits.
        def ready_status():
            status = proxy.admin_get("/ready")[0]
            return status if status == 503 else None
        self.assertEqual(wait_until(ready_status, timeout=2, what="/ready 503"), 503)
        self.assertIsNone(request.error)
        self.assertTrue(proxy.running(), "exited before the in-flight request finished")
        self.assertEqual(proxy.admin_get("/healthz")[0], 200)

        # New connections are no longer served normally.
        try:
            status, headers, _ = http_get(proxy.listener_port, "/new", timeout=2)
        except OSError:
            pass  # refused or closed: not accepting
        else:
            self.assertEqual(status, 503)
            self.assertIn("retry-after", headers)

        request.result(timeout=5)
        self.assertIsNone(request.error, f"in-flight request failed: {request.error!r}")
        self.assertEqual(request.status, 200)
        self.assertEqual(request.headers.get("x-request-id"), "slow-1")
        self.assertEqual(proxy.wait_exit(timeout=5), 0, proxy.diagnostics())
        self.assertLess(time.monotonic() - signalled, 5)
        line = [a for a in proxy.access_log() if a["request_id"] == "slow-1"]
        self.assertEqual(len(line), 1, proxy.diagnostics())
        self.assertEqual(line[0]["status"], 200)
        self.assertTrue(line[0]["path"].startswith("/slow"), line[0])
        self.assertTrue(proxy.events("drain_complete"), proxy.diagnostics())
        self.assertTrue(proxy.events("stopped"))

    def test_sigterm_drains_in_flight_request_and_exits_0(self):
        self.drain_with_in_flight_request(signal.SIGTERM, "SIGTERM")

    def test_sigint_behaves_like_sigterm(self):
        self.drain_with_in_flight_request(signal.SIGINT, "SIGINT")

    def test_idle_proxy_exits_0_promptly_on_sigterm(self):
        proxy = self.start(drain_timeout="30s")
        # An idle keep-alive client connection must not hold the drain open.
        with httpx.Client(timeout=5) as client:
            self.assertEqual(client.get(f"http://127.0.0.1:{proxy.listener_port}/").status_code,
                             200)
            started = time.monotonic()
            proxy.signal(signal.SIGTERM)
            self.assertEqual(proxy.wait_exit(timeout=5), 0, proxy.diagnostics())
        self.assertLess(time.monotonic() - started, 3)

    def test_second_sigterm_during_drain_exits_promptly(self):
        proxy = self.start(drain_timeout="30s")
        request = self.in_flight(proxy, "/hang", "hang-1")
        proxy.signal(signal.SIGTERM)
        proxy.wait_event("drain_started")
        time.sleep(0.2)  # let the drain settle; not an assertion
        self.assertTrue(proxy.running(), "exited although a request was in flight")
        second = time.monotonic()
        proxy.signal(signal.SIGTERM)
        code = proxy.wait_exit(timeout=5)
        self.assertLess(time.monotonic() - second, 2, proxy.diagnostics())
        self.assertGreaterEqual(code, 0, "killed by a signal instead of exiting")
        self.assertTrue(proxy.events("shutdown_forced"), proxy.diagnostics())
        request.result(timeout=5)
        self.assertTrue(request.error is not None or request.status >= 500,
                        f"hanging request got {request.status}")

    def test_drain_timeout_bounds_the_drain(self):
        proxy = self.start(drain_timeout="1s")
        request = self.in_flight(proxy, "/hang", "hang-2")
        signalled = time.monotonic()
        proxy.signal(signal.SIGTERM)
        self.assertEqual(proxy.wait_exit(timeout=5), 0, proxy.diagnostics())
        elapsed = time.monotonic() - signalled
        self.assertGreaterEqual(elapsed, 0.9)
        self.assertLess(elapsed, 3, proxy.diagnostics())
        self.assertTrue(proxy.events("drain_timeout"), proxy.diagnostics())
        request.result(timeout=5)
        self.assertTrue(request.error is not None or request.status >= 500,
                        f"hanging request got {request.status}")

    def test_request_cut_by_drain_timeout_is_still_logged(self):
        # docs/reference.md: one access-log line per request, always -- errors included.
        proxy = self.start(drain_timeout="500ms")
        request = self.in_flight(proxy, "/hang", "hang-3")
        proxy.signal(signal.SIGTERM)
        self.assertEqual(proxy.wait_exit(timeout=5), 0, proxy.diagnostics())
        request.result(timeout=5)
        lines = [a for a in proxy.access_log() if a["request_id"] == "hang-3"]
        self.assertEqual(len(lines), 1, "no access-log line for the request cut by the drain "
                         "timeout\n" + proxy.diagnostics())
        self.assertIsNotNone(lines[0]["error"])

    def test_admin_post_drain(self):
        proxy = self.start(drain_timeout="5s")
        status, _, body = http_get(proxy.admin_port, "/drain", method="POST")
        self.assertEqual(status, 202, body)
        self.assertEqual(proxy.wait_exit(timeout=5), 0, proxy.diagnostics())


class ReloadTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        viscount_bin()

    def setUp(self):
        self.upstream = start_echo_upstream(self)

    def sighup_config(self, **overrides):
        """The file watch is off, so the reload a SIGHUP test waits for came from the signal."""
        return basic_config(self.upstream.url, watch_config=False, **overrides)

    def test_sighup_with_valid_config_applies_to_new_requests_without_failures(self):
        config = self.sighup_config()
        proxy = Viscount.with_config(self, config)
        base = f"http://127.0.0.1:{proxy.listener_port}"

        stop = threading.Event()
        results = []  # (status or exception, response header names)
        lock = threading.Lock()

        def client_loop(keep_alive):
            with httpx.Client(timeout=5) as client:
                while not stop.is_set():
                    try:
                        if keep_alive:
                            r = client.get(base + "/loop")
                        else:
                            r = httpx.get(base + "/loop", timeout=5)
                        item = (r.status_code, set(r.headers.keys()))
                    except Exception as e:  # noqa: BLE001 - counted as a failure
                        item = (repr(e), set())
                    with lock:
                        results.append((keep_alive, item))

        threads = [threading.Thread(target=client_loop, args=(ka,), daemon=True)
                   for ka in (True, True, False)]
        for t in threads:
            t.start()
        self.addCleanup(stop.set)
        wait_until(lambda: len(results) >= 30, what="the client loop to get going")

        new = self.sighup_config(context={"request_id": {"header": "x-req-id"}})
        write_file_atomically(proxy.config_path, to_yaml(new) + "\n")
        # A request in flight across the reload finishes on the config it started with.
        slow = RequestThread(proxy.listener_port, "/slow?ms=800")
        slow.start()
        self.upstream.wait_request(lambda r: r["path"] == "/slow")

        with lock:
            before_reload = len(results)
        proxy.signal(signal.SIGHUP)
        proxy.wait_event("config_reloaded")

        # New requests (fresh connections) use the new header at once.
        status, headers, _ = http_get(proxy.listener_port, "/after")
        self.assertEqual(status, 200)
        self.assertIn("x-req-id", headers)
        self.assertNotIn("x-request-id", headers)
        rec = self.upstream.wait_request(lambda r: r["path"] == "/after")
        self.assertEqual(header_values(rec, "x-req-id"), [headers["x-req-id"]])
        self.assertEqual(header_values(rec, "x-request-id"), [])

        # The looping keep-alive clients pick it up too, for their next requests.
        def loop_saw_new_header():
            with lock:
                return sum(1 for ka, (s, names) in results if ka and "x-req-id" in names) >= 10
        wait_until(loop_saw_new_header, timeout=5, what="keep-alive loop requests with x-req-id")
        wait_until(lambda: len(results) >= before_reload + 30, timeout=5,
                   what="30 more loop requests after the reload")
        stop.set()
        for t in threads:
            t.join(10)

        slow.result(timeout=5)
        self.assertIsNone(slow.error)
        self.assertEqual(slow.status, 200)
        self.assertIn("x-request-id", slow.headers)
        self.assertNotIn("x-req-id", slow.headers)

        failures = [item for _, item in results if item[0] != 200]
        self.assertEqual(failures, [], f"{len(failures)} of {len(results)} requests failed")
        self.assertTrue(proxy.running())
        proxy.signal(signal.SIGTERM)
        self.assertEqual(proxy.wait_exit(), 0)

    def test_sighup_echo_in_response_false(self):
        proxy = Viscount.with_config(self, self.sighup_config())
        self.assertIn("x-request-id", http_get(proxy.listener_port, "/before")[1])
        new = self.sighup_config(context={"echo_in_response": False})
        write_file_atomically(proxy.config_path, to_yaml(new) + "\n")
        proxy.signal(signal.SIGHUP)
        proxy.wait_event("config_reloaded")
        status, headers, _ = http_get(proxy.listener_port, "/after")
        self.assertEqual(status, 200)
        self.assertNotIn("x-request-id", headers)
        self.assertNotIn("x-correlation-id", headers)
        # Still sent upstream and logged.
        rec = self.upstream.wait_request(lambda r: r["path"] == "/after")
        (request_id,) = header_values(rec, "x-request-id")
        proxy.wait_access_log_id(request_id)

    def test_file_change_reloads_without_a_signal(self):
        proxy = Viscount.with_config(self, basic_config(self.upstream.url))
        self.assertIn("x-request-id", http_get(proxy.listener_port, "/before")[1])
        new = basic_config(self.upstream.url, context={"request_id": {"header": "x-req-id"}})
        write_file_atomically(proxy.config_path, to_yaml(new) + "\n")
        proxy.wait_event("config_changed")
        proxy.wait_event("config_reloaded")
        status, headers, _ = http_get(proxy.listener_port, "/after")
        self.assertEqual(status, 200)
        self.assertIn("x-req-id", headers)

    def test_sighup_with_invalid_config_keeps_the_old_one(self):
        proxy = Viscount.with_config(self, self.sighup_config())
        with open(proxy.config_path, encoding="utf-8") as f:
            good_text = f.read()
        bad_text = good_text.replace("drain_timeout: \"10s\"", "drain_timeout: \"10x\"")
        self.assertNotEqual(bad_text, good_text)
        bad_text += "bogus_key: 1\n"
        write_file_atomically(proxy.config_path, bad_text)
        proxy.signal(signal.SIGHUP)
        rejected = proxy.wait_event("reload_rejected")
        self.assertEqual(rejected.get("level"), "error")
        self.assertIn(proxy.config_path, rejected.get("error", ""))
        self.assertFalse(proxy.events("config_reloaded"))

        self.assertTrue(proxy.running())
        self.assertEqual(proxy.admin_get("/ready")[0], 200)
        for _ in range(5):
            status, headers, _ = http_get(proxy.listener_port, "/still")
            self.assertEqual(status, 200)
            self.assertIn("x-request-id", headers)

        # Fixing the file and reloading again works.
        new = self.sighup_config(context={"request_id": {"header": "x-req-id"}})
        write_file_atomically(proxy.config_path, to_yaml(new) + "\n")
        proxy.signal(signal.SIGHUP)
        proxy.wait_event("config_reloaded")
        self.assertIn("x-req-id", http_get(proxy.listener_port, "/fixed")[1])


if __name__ == "__main__":
    unittest.main()
