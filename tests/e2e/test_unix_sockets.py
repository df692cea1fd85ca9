"""Unix-domain sockets on both sides, with real servers and clients: the FastAPI demo app under
`uvicorn --uds` and the python-h2 upstream behind `unix:` and `h2c+unix:` URLs, curl and
http.client on a `unix:` listener; the pool, pre-ping, limits and retries over a Unix upstream;
the socket file's life (mode, reload, drain and exit, a stale file, a path that is not a socket);
and the config errors of a bad path.
"""

import http.server
import json
import os
import signal
import socket
import socketserver
import stat
import subprocess
import threading
import time
import unittest
import urllib.parse

from h2_upstream import H2Upstream
from viscount_process import (DEFAULT_TIMEOUT, SLACK, Viscount, basic_config, http_get,
                              run_viscount, start_demo_app, start_echo_upstream, temp_dir,
                              to_yaml, unix_http_get, wait_until, write_file_atomically)


# --- an HTTP/1.1 upstream on a Unix socket that says which connection served each request -------

class _UnixHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def setup(self):
        super().setup()
        self.conn_id = self.server.owner.new_connection()
        self.served = 0

    def address_string(self):  # a Unix peer has no address
        return "unix"

    def do_GET(self):
        parsed = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(parsed.query)
        self.served += 1
        owner = self.server.owner
        if parsed.path == "/drop-on-reuse" and self.served > 1:
            # Read the request, then close without a word: the keep-alive race, which a request
            # sent on a pooled connection can lose.
            owner.record({"conn": self.conn_id, "path": parsed.path, "dropped": True})
            self.close_connection = True
            return
        owner.record({"conn": self.conn_id, "path": parsed.path})
        if parsed.path == "/slow":
            time.sleep(int(query.get("ms", ["500"])[0]) / 1000)
        body = json.dumps({"conn": self.conn_id, "path": parsed.path,
                           "request_id": self.headers.get("x-request-id")}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        if "close" in query:
            # Closed after the response, without `connection: close`: the pooled connection is
            # dead when viscount next looks at it.
            self.close_connection = True


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    request_queue_size = 64


class UnixEchoUpstream:
    def __init__(self, path):
        self.path = path
        self.requests = []
        self.connections = 0
        self._lock = threading.Lock()
        self.server = _UnixServer(path, _UnixHandler)
        self.server.owner = self
        self._thread = threading.Thread(target=self.server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def url(self):
        return f"unix:{self.path}"

    def new_connection(self):
        with self._lock:
            self.connections += 1
            return self.connections

    def record(self, rec):
        with self._lock:
            self.requests.append(rec)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def start_unix_echo(test, path):
    upstream = UnixEchoUpstream(path)
    test.addCleanup(upstream.stop)
    return upstream


def get_json(port, path, headers=None):
    status, _, body = http_get(port, path, headers=headers)
    return status, (json.loads(body) if body.startswith(b"{") else body)


# --- upstreams on Unix sockets ----------------------------------------------------------------------

class UnixUpstreamTest(unittest.TestCase):

    def test_demo_app_under_uvicorn_uds(self):
        path = os.path.join(temp_dir(self), "app.sock")
        app = start_demo_app(self, uds=path)
        proxy = Viscount.with_config(self, basic_config(app.url))
        status, headers, body = http_get(proxy.listener_port, "/",
                                         headers={"x-request-id": "uds-demo-1"})
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["service"], "demo")
        line = proxy.wait_access_log_id("uds-demo-1")
        self.assertEqual(line["upstream_address"], "unix:" + path)
        self.assertEqual(line["status"], 200)
        self.assertEqual(line["attempts"], 1)
        app.wait_log(lambda o: o.get("x_request_id") == "uds-demo-1")
        # A request that named no Host still gets one upstream: the socket has no name.
        status, _, body = http_get(proxy.listener_port, "/echo", method="POST", body=b"hello")
        self.assertEqual(status, 200, body)

    def test_missing_socket_is_a_502_until_the_app_creates_it(self):
        path = os.path.join(temp_dir(self), "late.sock")
        proxy = Viscount.with_config(self, basic_config("unix:" + path))
        status, _, _ = http_get(proxy.listener_port, "/", headers={"x-request-id": "before"})
        self.assertEqual(status, 502)
        self.assertEqual(proxy.wait_access_log_id("before")["error"], "upstream_connect_failed")
        start_unix_echo(self, path)
        status, body = get_json(proxy.listener_port, "/")
        self.assertEqual(status, 200, body)

    def test_keep_alive_connection_is_reused(self):
        upstream = start_unix_echo(self, os.path.join(temp_dir(self), "app.sock"))
        proxy = Viscount.with_config(self, basic_config(upstream.url, workers=1))
        conns = set()
        for i in range(5):
            status, body = get_json(proxy.listener_port, f"/r{i}")
            self.assertEqual(status, 200, body)
            conns.add(body["conn"])
        self.assertEqual(conns, {1}, "five sequential requests should share one connection")
        self.assertEqual(upstream.connections, 1)

    def test_pre_ping_skips_a_connection_the_upstream_closed(self):
        upstream = start_unix_echo(self, os.path.join(temp_dir(self), "app.sock"))
        proxy = Viscount.with_config(self, basic_config(upstream.url, workers=1))
        status, body = get_json(proxy.listener_port, "/?close=1")
        self.assertEqual((status, body["conn"]), (200, 1))
        wait_until(lambda: upstream.connections == 1 and len(upstream.requests) == 1)
        time.sleep(0.2)  # the upstream's close reaches viscount's idle connection
        status, body = get_json(proxy.listener_port, "/after",
                                headers={"x-request-id": "after-close"})
        self.assertEqual((status, body["conn"]), (200, 2))
        # Found closed before anything was sent: no retry was needed.
        self.assertEqual(proxy.wait_access_log_id("after-close")["attempts"], 1)

    def test_retry_after_the_upstream_closed_a_pooled_connection(self):
        upstream = start_unix_echo(self, os.path.join(temp_dir(self), "app.sock"))
        config = basic_config(upstream.url, workers=1)
        config["upstreams"][0].update({"pool": {"pre_ping": False}, "retries": {"attempts": 1}})
        proxy = Viscount.with_config(self, config)
        status, body = get_json(proxy.listener_port, "/first")
        self.assertEqual((status, body["conn"]), (200, 1))
        # Sent on the pooled connection, which the upstream closes instead of answering.
        status, body = get_json(proxy.listener_port, "/drop-on-reuse",
                                headers={"x-request-id": "retried"})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["conn"], 2)
        self.assertTrue(any(r.get("dropped") and r["conn"] == 1 for r in upstream.requests))
        line = proxy.wait_access_log_id("retried")
        self.assertEqual((line["attempts"], line["error"]), (2, None))
        self.assertEqual(line["upstream_address"], upstream.url)

    def test_concurrency_limit_over_a_unix_upstream(self):
        upstream = start_unix_echo(self, os.path.join(temp_dir(self), "app.sock"))
        config = basic_config(upstream.url)
        config["upstreams"][0]["limits"] = {"max_concurrent_requests": 1,
                                            "max_queued_requests": 0}
        proxy = Viscount.with_config(self, config)
        results = []
        slow = threading.Thread(target=lambda: results.append(
            get_json(proxy.listener_port, "/slow?ms=1500")))
        slow.start()
        wait_until(lambda: any(r["path"] == "/slow" for r in upstream.requests) or None,
                   timeout=DEFAULT_TIMEOUT, what="the slow request to reach the upstream")
        status, _, _ = http_get(proxy.listener_port, "/", headers={"x-request-id": "over"})
        self.assertEqual(status, 503)
        self.assertEqual(proxy.wait_access_log_id("over")["error"], "overloaded")
        slow.join(DEFAULT_TIMEOUT * SLACK)
        self.assertEqual(results[0][0], 200)

    def test_h2c_unix_upstream(self):
        upstream = H2Upstream(unix_path=os.path.join(temp_dir(self), "h2.sock"))
        self.addCleanup(upstream.stop)
        self.assertTrue(upstream.url.startswith("h2c+unix:/"))
        proxy = Viscount.with_config(self, basic_config(upstream.url, workers=1))
        results = []
        threads = [threading.Thread(target=lambda i=i: results.append(
            http_get(proxy.listener_port, f"/echo?delay=200&i={i}",
                     headers={"x-request-id": f"h2u-{i}"}))) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(DEFAULT_TIMEOUT * SLACK)
        self.assertEqual([r[0] for r in results], [200] * 4)
        # HTTP/2 over the one socket: the four requests shared a connection.
        self.assertEqual(len(upstream.connections), 1)
        self.assertGreaterEqual(upstream.connections[0]["max_open"], 2)
        line = proxy.wait_access_log_id("h2u-0")
        self.assertEqual(line["upstream_address"], "unix:" + upstream.unix_path)

    def test_grpc_server_on_a_unix_socket(self):
        import grpc  # Debian's python3-grpcio
        path = os.path.join(temp_dir(self), "grpc.sock")

        def reverse(request, context):
            return request[::-1]
        handler = grpc.method_handlers_generic_handler(
            "demo.Echo", {"Reverse": grpc.unary_unary_rpc_method_handler(reverse)})
        server = grpc.server(__import__("concurrent.futures").futures.ThreadPoolExecutor(2))
        server.add_generic_rpc_handlers((handler,))
        server.add_insecure_port("unix:" + path)
        server.start()
        self.addCleanup(server.stop, None)
        proxy = Viscount.with_config(self, basic_config("h2c+unix:" + path))
        with grpc.insecure_channel(f"127.0.0.1:{proxy.listener_port}") as channel:
            call = channel.unary_unary("/demo.Echo/Reverse")
            self.assertEqual(call(b"viscount", timeout=DEFAULT_TIMEOUT * SLACK), b"tnuocsiv")
        line = proxy.wait_access_log(lambda o: o["path"] == "/demo.Echo/Reverse")
        self.assertEqual((line["status"], line["upstream_address"]), (200, "unix:" + path))


# --- a listener on a Unix socket ----------------------------------------------------------------------

def unix_listener_config(path, upstream_url, **overrides):
    config = basic_config(upstream_url, **overrides)
    config["listeners"][0]["address"] = "unix:" + path
    return config


def curl_unix(path, target="/", headers=()):
    args = ["curl", "-sS", "-i", "--max-time", "5", "--unix-socket", path]
    for h in headers:
        args += ["-H", h]
    return subprocess.run([*args, "http://localhost" + target], capture_output=True, text=True,
                          timeout=10)


class UnixListenerTest(unittest.TestCase):

    def setUp(self):
        self.dir = temp_dir(self)
        self.path = os.path.join(self.dir, "viscount.sock")
        self.upstream = start_echo_upstream(self)

    def start(self, **overrides):
        return Viscount.with_config(self, unix_listener_config(self.path, self.upstream.url,
                                                               **overrides))

    def test_curl_through_a_unix_listener_is_untrusted_by_default(self):
        proxy = self.start()
        bound = proxy.wait_event("listener_bound")
        self.assertEqual(bound["address"], "unix:" + self.path)
        self.assertTrue(stat.S_ISSOCK(os.lstat(self.path).st_mode))
        self.assertEqual(stat.S_IMODE(os.lstat(self.path).st_mode), 0o660)
        r = curl_unix(self.path, "/hello", ["x-request-id: from-unix-client"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("HTTP/1.1 200", r.stdout)
        line = proxy.wait_access_log(lambda o: o["path"] == "/hello")
        self.assertEqual(line["client_address"], "unix")
        # Not in trusted_sources (the default lists loopback only): the id was replaced.
        self.assertNotEqual(line["request_id"], "from-unix-client")
        seen = self.upstream.wait_request(lambda r: r["path"] == "/hello")
        self.assertIn(["x-forwarded-for", "unix"], seen["headers"])

    def test_trusted_when_trusted_sources_lists_unix_and_mode_is_set(self):
        config = unix_listener_config(self.path, self.upstream.url,
                                      context={"trusted_sources": ["unix"]})
        config["listeners"][0]["socket_mode"] = "0600"
        proxy = Viscount.with_config(self, config)
        self.assertEqual(stat.S_IMODE(os.lstat(self.path).st_mode), 0o600)
        status, _, _ = unix_http_get(self.path, "/t", headers={"x-request-id": "kept-id"})
        self.assertEqual(status, 200)
        self.assertEqual(proxy.wait_access_log_id("kept-id")["client_address"], "unix")
        config_text = json.loads(proxy.admin_get("/config")[2])
        self.assertIn("unix", config_text["context"]["trusted_sources"])
        self.assertEqual(config_text["listeners"][0]["socket_mode"], "0600")

    def test_every_worker_serves_the_shared_socket(self):
        proxy = self.start(workers=2)
        results = []

        def one(i):
            results.append(unix_http_get(self.path, f"/c{i}?", timeout=10)[0])
        threads = [threading.Thread(target=one, args=(i,)) for i in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(DEFAULT_TIMEOUT * SLACK)
        self.assertEqual(results, [200] * 24)
        self.assertTrue(proxy.running())

    def test_reload_keeps_the_socket(self):
        proxy = self.start()
        before = os.lstat(self.path)
        config = unix_listener_config(self.path, self.upstream.url,
                                      context={"trusted_sources": ["unix"]})
        write_file_atomically(proxy.config_path, to_yaml(config) + "\n")
        proxy.signal(signal.SIGHUP)
        proxy.wait_event("config_reloaded")
        after = os.lstat(self.path)
        self.assertEqual((before.st_ino, before.st_dev), (after.st_ino, after.st_dev))
        status, _, _ = unix_http_get(self.path, "/", headers={"x-request-id": "after-reload"})
        self.assertEqual(status, 200)
        # The reloaded trust applies: the id is kept now.
        self.assertEqual(proxy.wait_access_log_id("after-reload")["status"], 200)

    def test_drain_and_exit_remove_the_socket_file(self):
        proxy = self.start()
        self.assertTrue(os.path.exists(self.path))
        proxy.signal(signal.SIGTERM)
        self.assertEqual(proxy.wait_exit(timeout=20 * SLACK), 0)
        self.assertFalse(os.path.exists(self.path))

    def test_a_stale_socket_file_is_replaced(self):
        # What a killed process leaves: the file, and nobody listening on it.
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(self.path)
        stale.close()
        self.assertTrue(os.path.exists(self.path))
        first = self.start()
        first.expect_exit()
        first.kill()  # SIGKILL: no chance to remove its file
        self.assertTrue(stat.S_ISSOCK(os.lstat(self.path).st_mode))
        self.start()
        status, _, _ = unix_http_get(self.path, "/")
        self.assertEqual(status, 200)

    def test_a_socket_in_use_is_not_taken_over(self):
        live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(live.close)
        live.bind(self.path)
        live.listen(4)
        proxy = Viscount.with_config(
            self, unix_listener_config(self.path, self.upstream.url), wait_ready=False)
        self.assertEqual(proxy.wait_exit(), 2)
        self.assertIn("another process is listening", "\n".join(proxy.stderr.snapshot()))
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.connect(self.path)  # still the other process's socket
        probe.close()

    def test_a_regular_file_is_never_replaced(self):
        with open(self.path, "w") as f:
            f.write("precious\n")
        proxy = Viscount.with_config(
            self, unix_listener_config(self.path, self.upstream.url), wait_ready=False)
        self.assertEqual(proxy.wait_exit(), 2)
        self.assertIn("exists and is not a socket", "\n".join(proxy.stderr.snapshot()))
        with open(self.path) as f:
            self.assertEqual(f.read(), "precious\n")


class UnixConfigErrorTest(unittest.TestCase):

    def test_the_kubernetes_overlay_config_is_valid(self):
        path = os.path.join(os.path.dirname(__file__), "..", "..", "deploy", "kubernetes",
                            "unix-socket", "viscount.yaml")
        r = run_viscount(["--validate", "--config", path])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = run_viscount(["--print-config", "--config", path])
        self.assertIn("unix:/run/app/app.sock", r.stdout)

    def validate(self, listener_address=None, upstream_url="http://127.0.0.1:9"):
        config = basic_config(upstream_url)
        if listener_address is not None:
            config["listeners"][0]["address"] = listener_address
        path = os.path.join(temp_dir(self), "viscount.yaml")
        write_file_atomically(path, to_yaml(config) + "\n")
        r = run_viscount(["--validate", "--config", path])
        self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)
        return path, r.stderr + r.stdout

    def test_bad_paths_are_config_errors_with_a_position(self):
        long_path = "/tmp/" + "x" * 120 + ".sock"
        cases = [
            ({"listener_address": "unix:relative.sock"}, "must be absolute"),
            ({"listener_address": "unix:"}, "empty Unix socket path"),
            ({"listener_address": "unix:" + long_path}, "at most 107"),
            ({"listener_address": "unix:/nonexistent-dir-for-viscount/v.sock"},
             "/nonexistent-dir-for-viscount of the Unix socket does not exist"),
            ({"upstream_url": "unix:app.sock"}, "must be absolute"),
            ({"upstream_url": "h2c+unix:" + long_path}, "at most 107"),
        ]
        for kwargs, message in cases:
            with self.subTest(**kwargs):
                path, output = self.validate(**kwargs)
                self.assertRegex(output, rf"{path}:\d+:\d+: .*{message}")


if __name__ == "__main__":
    unittest.main()
