"""The access log's policy against the real binary: sampling that keeps every failure (and decides
by trace id, the same in every process), redaction of query secrets in the logged path only, and
SIGUSR1 reopening a file log without losing or duplicating a line."""

import http.client
import json
import os
import re
import signal
import threading
import time
import unittest

from viscount_process import (Viscount, basic_config, start_echo_upstream, temp_dir,
                              viscount_bin, wait_until)


def metric(proxy, name):
    status, _, body = proxy.admin_get("/metrics")
    assert status == 200
    match = re.search(rf"^{name} (\d+)$", body.decode(), re.M)
    assert match, f"{name} missing from /metrics"
    return int(match.group(1))


def send_all(port, requests, connections=4):
    """Sends (path, headers) pairs over `connections` keep-alive connections; returns statuses by
    request id (every request carries an x-request-id)."""
    statuses = {}
    lock = threading.Lock()
    errors = []

    def worker(part):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            for path, headers in part:
                conn.request("GET", path, headers=headers)
                resp = conn.getresponse()
                resp.read()
                with lock:
                    statuses[headers["x-request-id"]] = resp.status
        except Exception as e:  # reported below, with the test's own message
            errors.append(repr(e))
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(requests[i::connections],))
               for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return statuses


def traceparent(trace_id, flags):
    return f"00-{trace_id}-00f067aa0ba902b7-{flags}"


class SamplingTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        viscount_bin()

    def setUp(self):
        self.upstream = start_echo_upstream(self)

    def start(self, fraction):
        return Viscount.with_config(self, basic_config(
            self.upstream.url, logging={"sample": {"success": fraction}}))

    def test_every_failure_is_kept_and_the_counter_is_the_difference(self):
        proxy = self.start(0.1)
        total, failures = 10_000, 100
        requests = []
        for i in range(total):
            failing = i % (total // failures) == 0
            path = "/fail?status=500" if failing else f"/ok?i={i}"
            requests.append((path, {"x-request-id": f"req-{i}"}))
        statuses = send_all(proxy.listener_port, requests)
        self.assertEqual(len(statuses), total)
        self.assertEqual(sum(1 for s in statuses.values() if s == 500), failures)

        # Every request is either a line or counted as sampled out; wait for the writer.
        def settled():
            lines = proxy.access_log()
            return lines if len(lines) + metric(proxy, "viscount_access_log_sampled_out_total") \
                == total else None
        lines = wait_until(settled, timeout=20, what="lines + sampled_out == requests")
        logged_failures = [l for l in lines if l["status"] == 500]
        logged_successes = [l for l in lines if l["status"] == 200]
        self.assertEqual(len(logged_failures), failures, "a failure was sampled out")
        # 9,900 successes at 10%: 990 expected, standard deviation ~30.
        self.assertGreater(len(logged_successes), 850)
        self.assertLess(len(logged_successes), 1150)
        self.assertEqual(metric(proxy, "viscount_access_log_sampled_out_total"),
                         total - failures - len(logged_successes))
        # Metrics still count every request.
        _, _, body = proxy.admin_get("/metrics")
        counted = sum(int(v) for v in re.findall(
            r'^viscount_requests_total\{[^}]*\} (\d+)$', body.decode(), re.M))
        self.assertEqual(counted, total)

    def test_the_same_trace_is_kept_or_dropped_by_every_process(self):
        first, second = self.start(0.5), self.start(0.5)
        trace_ids = [os.urandom(16).hex() for _ in range(200)]
        for proxy in (first, second):
            send_all(proxy.listener_port,
                     [("/ok", {"x-request-id": f"t-{i}", "traceparent": traceparent(t, "00")})
                      for i, t in enumerate(trace_ids)], connections=2)
        kept = []
        for proxy in (first, second):
            wait_until(lambda: len(proxy.access_log()) +
                       metric(proxy, "viscount_access_log_sampled_out_total") == len(trace_ids),
                       timeout=10, what="every request accounted for")
            kept.append({l["trace_id"] for l in proxy.access_log()})
        self.assertEqual(kept[0], kept[1])
        self.assertGreater(len(kept[0]), 50)
        self.assertLess(len(kept[0]), 150)

    def test_a_trace_its_caller_samples_is_always_kept(self):
        proxy = self.start(0)
        trace_ids = [os.urandom(16).hex() for _ in range(50)]
        send_all(proxy.listener_port,
                 [("/ok", {"x-request-id": f"s-{i}", "traceparent": traceparent(t, "01")})
                  for i, t in enumerate(trace_ids)]
                 + [("/ok", {"x-request-id": f"u-{i}"}) for i in range(50)], connections=2)
        wait_until(lambda: metric(proxy, "viscount_access_log_sampled_out_total") == 50,
                   timeout=10, what="the 50 unsampled successes counted")
        wait_until(lambda: len(proxy.access_log()) == 50, timeout=10, what="50 lines")
        self.assertEqual({l["trace_id"] for l in proxy.access_log()}, set(trace_ids))


class RedactionTest(unittest.TestCase):

    def setUp(self):
        self.upstream = start_echo_upstream(self)

    def test_the_log_hides_listed_values_and_the_upstream_gets_the_original(self):
        proxy = Viscount.with_config(self, basic_config(self.upstream.url))
        cases = {
            "/login?token=tokSecretQ&x=1": "/login?token=REDACTED&x=1",
            "/a?%74oken=encSecretQ": "/a?%74oken=REDACTED",
            "/a?API_KEY=keyOneQ&api_key=keyTwoQ&page=3":
                "/a?API_KEY=REDACTED&api_key=REDACTED&page=3",
            "/a?flag&password=hunter2": "/a?flag&password=REDACTED",
            "/a?q=token": "/a?q=token",
        }
        for i, (target, logged) in enumerate(cases.items()):
            send_all(proxy.listener_port, [(target, {"x-request-id": f"r-{i}"})], connections=1)
            line = proxy.wait_access_log_id(f"r-{i}")
            self.assertEqual(line["path"], logged)
            seen = self.upstream.wait_request(
                lambda r, i=i: ["x-request-id", f"r-{i}"] in r["headers"])
            self.assertEqual(seen["path"] + "?" + seen["query"], target)
        everything = "\n".join(proxy.stdout.snapshot())
        # Secrets with letters beyond hex, so that no id or trace id in the lines can hold one.
        for secret in ("tokSecretQ", "encSecretQ", "keyOneQ", "keyTwoQ", "hunter2"):
            self.assertNotIn(secret, everything)

    def test_an_empty_list_turns_redaction_off(self):
        proxy = Viscount.with_config(self, basic_config(self.upstream.url,
                                                        logging={"redact_query": []}))
        send_all(proxy.listener_port, [("/a?token=abc", {"x-request-id": "off-1"})], 1)
        self.assertEqual(proxy.wait_access_log_id("off-1")["path"], "/a?token=abc")


class LoggedHeadersTest(unittest.TestCase):

    def setUp(self):
        self.upstream = start_echo_upstream(self)

    def test_named_headers_from_both_sides_and_null_when_absent(self):
        proxy = Viscount.with_config(self, basic_config(self.upstream.url, logging={
            "headers": {"request": ["user-agent", "x-tenant", "x-missing"],
                        "response": ["content-type"]}}))
        conn = http.client.HTTPConnection("127.0.0.1", proxy.listener_port, timeout=10)
        conn.putrequest("GET", "/h", skip_accept_encoding=True)
        for name, value in [("x-request-id", "hdr-1"), ("user-agent", "probe/1.0"),
                            ("x-tenant", "a"), ("x-tenant", "b")]:
            conn.putheader(name, value)
        conn.endheaders()
        conn.getresponse().read()
        conn.close()
        line = proxy.wait_access_log_id("hdr-1")
        self.assertEqual(line["request_headers"],
                         {"user-agent": "probe/1.0", "x-tenant": "a, b", "x-missing": None})
        self.assertEqual(line["response_headers"], {"content-type": "application/json"})

    def test_a_line_without_an_upstream_answer_names_them_as_null(self):
        proxy = Viscount.with_config(self, basic_config("http://127.0.0.1:9", logging={
            "headers": {"response": ["content-type"]}}))
        send_all(proxy.listener_port, [("/down", {"x-request-id": "hdr-2"})], 1)
        line = proxy.wait_access_log_id("hdr-2")
        self.assertEqual(line["status"], 502)
        self.assertEqual(line["response_headers"], {"content-type": None})
        self.assertNotIn("request_headers", line, "only the sides asked for")


class ReopenTest(unittest.TestCase):

    def setUp(self):
        self.upstream = start_echo_upstream(self)

    def test_sigusr1_during_load_loses_and_duplicates_nothing(self):
        directory = temp_dir(self)
        path = os.path.join(directory, "access.log")
        proxy = Viscount.with_config(self, basic_config(self.upstream.url,
                                                        logging={"access_log": path}))
        sent = []
        stop = threading.Event()
        failures = []

        def load(n):
            conn = http.client.HTTPConnection("127.0.0.1", proxy.listener_port, timeout=10)
            i = 0
            try:
                while not stop.is_set():
                    rid = f"l{n}-{i}"
                    conn.request("GET", "/ok", headers={"x-request-id": rid})
                    resp = conn.getresponse()
                    resp.read()
                    if resp.status != 200:
                        failures.append((rid, resp.status))
                    sent.append(rid)
                    i += 1
            finally:
                conn.close()

        threads = [threading.Thread(target=load, args=(n,)) for n in range(3)]
        for t in threads:
            t.start()
        wait_until(lambda: os.path.exists(path) and os.path.getsize(path) > 20_000, timeout=20,
                   what="the first file filling")
        os.rename(path, path + ".1")  # what logrotate does, then it signals
        proxy.signal(signal.SIGUSR1)
        proxy.wait_event("access_log_reopened")
        wait_until(lambda: os.path.exists(path) and os.path.getsize(path) > 20_000, timeout=20,
                   what="the new file filling")
        stop.set()
        for t in threads:
            t.join()
        self.assertEqual(failures, [])

        def ids(file):
            with open(file) as f:
                return [json.loads(line)["request_id"] for line in f]
        wait_until(lambda: len(ids(path + ".1")) + len(ids(path)) >= len(sent), timeout=10,
                   what="every line written")
        old, new = ids(path + ".1"), ids(path)
        self.assertGreater(len(old), 0)
        self.assertGreater(len(new), 0)
        self.assertEqual(len(old) + len(new), len(sent), "a line was lost or written twice")
        self.assertEqual(set(old) | set(new), set(sent))
        self.assertEqual(set(old) & set(new), set())

    def test_sigusr1_with_stdout_is_harmless(self):
        proxy = Viscount.with_config(self, basic_config(self.upstream.url))
        proxy.signal(signal.SIGUSR1)
        proxy.wait_event("access_log_reopened")
        send_all(proxy.listener_port, [("/ok", {"x-request-id": "after-usr1"})], 1)
        proxy.wait_access_log_id("after-usr1")


if __name__ == "__main__":
    unittest.main()
