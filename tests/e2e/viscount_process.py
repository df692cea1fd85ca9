"""Process helpers for the end-to-end tests: the real `viscount` binary and real upstreams.

Everything binds 127.0.0.1 on port 0 (or on a port found free by binding port 0), and every
process or server started here is registered for cleanup by the caller (`addCleanup`), so a
failing test never leaves anything running.

A viscount a test starts through `Viscount.with_config`, `Viscount.zero_config` or
`Viscount.owned_by` is checked when the test ends: it must still be running, and it must exit 0
on SIGTERM. A crash, a sanitizer abort or a LeakSanitizer report (the sanitizer build exits
non-zero on a leak) then fails the test that owned the process, even when no request noticed.
A test that means the process to exit says so: `expect_exit()`, or `wait_exit()` (which returns
the exit code for the test to check).

    VISCOUNT_BIN        path of the binary under test (CTest sets it to $<TARGET_FILE:viscount>)
    VISCOUNT_SANITIZED  1 when the binary is built with ASan/UBSan (CTest sets it): slower
"""

import contextlib
import hashlib
import http.client
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEMO_APP_DIR = os.path.join(REPO_ROOT, "deploy", "local")
DEBIAN_PYTHON = "/usr/bin/python3"

# Generous, but well inside the per-module CTest timeout.
DEFAULT_TIMEOUT = 10.0

SANITIZED = os.environ.get("VISCOUNT_SANITIZED", "0") == "1"
# The sanitizer build runs everything several times slower (and LeakSanitizer works at exit).
SLACK = 3.0 if SANITIZED else 1.0
# How long a SIGTERM at the end of a test may take: a drain (basic_config's drain_timeout is 10s,
# reached when a test leaves a request hanging) plus the exit itself.
STOP_TIMEOUT = 20.0 * SLACK


def viscount_bin():
    path = os.environ.get("VISCOUNT_BIN", "")
    if not path:
        raise RuntimeError(
            "VISCOUNT_BIN is not set: run through CTest (ctest -L e2e) or export "
            "VISCOUNT_BIN=/path/to/build/proxy/viscount")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"VISCOUNT_BIN={path} is not an executable file")
    return path


def clean_env(**extra):
    """The environment for a child: without VISCOUNT_CONFIG unless a test sets it."""
    env = {k: v for k, v in os.environ.items() if k != "VISCOUNT_CONFIG"}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def free_port():
    """A port that was free a moment ago (for programs that cannot bind port 0 themselves)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout=DEFAULT_TIMEOUT, interval=0.02, what="condition"):
    """Polls `predicate` until it returns something truthy; returns that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


def run_viscount(args, env=None, timeout=DEFAULT_TIMEOUT, cwd=None):
    """Runs the binary to completion (for --version, --validate, ...)."""
    return subprocess.run([viscount_bin(), *args], env=env if env is not None else clean_env(),
                          cwd=cwd, capture_output=True, text=True, timeout=timeout)


def http_get(port, path, headers=None, timeout=5.0, method="GET", body=None):
    """One request on a fresh connection: (status, {lower-case header: value}, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def unix_http_get(path, target, headers=None, timeout=5.0, method="GET", body=None):
    """http_get over the Unix socket at `path`."""
    conn = _UnixHTTPConnection(path, timeout)
    try:
        conn.request(method, target, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def parse_curl_i(output):
    """`curl -sS -i` output -> (status, {header: value}, body); skips 1xx heads."""
    text = output.replace("\r\n", "\n")
    while True:
        head, _, rest = text.partition("\n\n")
        lines = head.split("\n")
        status = int(lines[0].split()[1])
        if 100 <= status < 200:
            text = rest
            continue
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return status, headers, rest


# --- YAML ---------------------------------------------------------------------------------------

def _yaml_scalar(value):
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(str(value))  # a JSON string is a valid double-quoted YAML scalar


def to_yaml(value, indent=0):
    """Block-style YAML for nested dicts/lists of scalars (enough for viscount configs)."""
    pad = " " * indent
    lines = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{pad}{key}:")
                lines.append(to_yaml(item, indent + 2))
            elif isinstance(item, list):
                lines.append(f"{pad}{key}: []")
            else:
                lines.append(f"{pad}{key}: {_yaml_scalar(item)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict) and item:
                inner = to_yaml(item, indent + 2).splitlines()
                lines.append(f"{pad}- {inner[0].lstrip()}")
                lines.extend(inner[1:])
            else:
                lines.append(f"{pad}- {_yaml_scalar(item)}")
    else:
        lines.append(pad + _yaml_scalar(value))
    return "\n".join(lines)


def deep_merge(base, overrides):
    out = dict(base)
    for key, value in (overrides or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def basic_config(upstream_url, **overrides):
    """One listener and the admin server on 127.0.0.1:0, fronting `upstream_url`.

    Keyword arguments are merged into the top level (nested dicts merge), e.g.
    basic_config(url, drain_timeout="1s", context={"echo_in_response": False}).
    """
    config = {
        "workers": 2,
        "drain_timeout": "10s",
        "listeners": [{"name": "inbound", "address": "127.0.0.1:0", "upstream": "app"}],
        "upstreams": [{"name": "app", "url": upstream_url}],
        "logging": {"access_log": "stdout", "format": "json", "level": "info"},
        "admin": {"address": "127.0.0.1:0"},
    }
    return deep_merge(config, overrides)


def write_file_atomically(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


# --- line collection ----------------------------------------------------------------------------

class _LineCollector:
    """Reads a pipe on a thread and keeps every line; JSON lines are also kept parsed."""

    def __init__(self, stream, name):
        self.lines = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, args=(stream,), name=name, daemon=True)
        self._thread.start()

    def _run(self, stream):
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        stream.close()

    def snapshot(self):
        with self._cond:
            return list(self.lines)

    def json_lines(self):
        out = []
        for line in self.snapshot():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    out.append(json.loads(line))
        return out

    def wait_for(self, predicate, timeout, what):
        """Waits for a parsed JSON line matching `predicate`; returns it."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for line in self.lines[seen:]:
                    if line.startswith("{"):
                        try:
                            obj = json.loads(line)
                        except ValueError:
                            continue
                        if predicate(obj):
                            return obj
                seen = len(self.lines)
                remaining = deadline - time.monotonic()
                if self._closed or remaining <= 0:
                    raise AssertionError(
                        f"no line with {what} within {timeout:.1f}s"
                        f"{' (stream closed)' if self._closed else ''}; got:\n"
                        + "\n".join(self.lines[-30:]))
                self._cond.wait(remaining)

    def join(self, timeout):
        self._thread.join(timeout)


# --- viscount -----------------------------------------------------------------------------------

class Viscount:
    """A running viscount process with its stderr events and stdout access log collected."""

    def __init__(self, args, env=None, cwd=None, preexec_fn=None):
        """`preexec_fn`: runs in the child before exec (e.g. to lower a resource limit)."""
        self.args = list(args)
        self.proc = subprocess.Popen([viscount_bin(), *self.args], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=env if env is not None else clean_env(), cwd=cwd,
                                     preexec_fn=preexec_fn)
        self.stdout = _LineCollector(self.proc.stdout, "viscount-stdout")
        self.stderr = _LineCollector(self.proc.stderr, "viscount-stderr")
        self.listener_port = None
        self.admin_port = None
        self.exit_expected = False

    def owned_by(self, test):
        """Registers the end-of-test check (see the module docstring) as a cleanup of `test`."""
        test.addCleanup(self.stop_and_check, test.id())
        return self

    @classmethod
    def with_config(cls, test, config, name="viscount.yaml", wait_ready=True, extra_args=()):
        """Writes `config` (dict or YAML text) to a temp dir of `test` and starts viscount."""
        directory = temp_dir(test)
        path = os.path.join(directory, name)
        write_file_atomically(path, config if isinstance(config, str) else to_yaml(config) + "\n")
        proc = cls(["--config", path, *extra_args])
        proc.config_path = path
        proc.owned_by(test)
        if wait_ready:
            proc.wait_started()
        return proc

    @classmethod
    def zero_config(cls, test, upstream_url, listen="127.0.0.1:0", wait_ready=True):
        proc = cls(["--upstream", upstream_url, "--listen", listen])
        proc.config_path = None
        proc.owned_by(test)
        if wait_ready:
            proc.wait_started()
        return proc

    # events on stderr
    def wait_event(self, name, timeout=DEFAULT_TIMEOUT, **fields):
        def match(obj):
            return obj.get("event") == name and all(obj.get(k) == v for k, v in fields.items())
        return self.stderr.wait_for(match, timeout, f'"event":"{name}" {fields or ""}')

    def events(self, name=None):
        return [e for e in self.stderr.json_lines() if name is None or e.get("event") == name]

    def wait_started(self, timeout=DEFAULT_TIMEOUT):
        try:
            # A Unix-socket listener has no port.
            self.listener_port = self.wait_event("listener_bound", timeout).get("port")
            admin = self.wait_event("admin_bound", timeout)
            self.admin_port = admin["port"]
            self.wait_event("started", timeout)
        except AssertionError as e:
            raise AssertionError(f"viscount did not start (exit={self.proc.poll()}): {e}") from None
        return self

    # access log on stdout
    def access_log(self):
        return [line for line in self.stdout.json_lines() if "request_id" in line]

    def wait_access_log(self, predicate, timeout=DEFAULT_TIMEOUT, what="access-log line"):
        return self.stdout.wait_for(lambda o: "request_id" in o and predicate(o), timeout, what)

    def wait_access_log_id(self, request_id, timeout=DEFAULT_TIMEOUT):
        return self.wait_access_log(lambda o: o.get("request_id") == request_id, timeout,
                                    f"request_id={request_id}")

    # admin
    def admin_get(self, path, timeout=2.0):
        return http_get(self.admin_port, path, timeout=timeout)

    # process control
    def signal(self, sig):
        self.proc.send_signal(sig)

    def running(self):
        return self.proc.poll() is None

    def expect_exit(self):
        """The test means the process to exit (bad config, a signal, /drain): the end-of-test
        check neither fails on its exit nor on its exit code; the test checks those."""
        self.exit_expected = True

    def wait_exit(self, timeout=DEFAULT_TIMEOUT):
        """The exit code; fails the test (after killing) when it does not exit in time.

        Waiting for the exit says the test expects it (see expect_exit)."""
        self.expect_exit()
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"viscount did not exit within {timeout:.1f}s; stderr:\n"
                                 + "\n".join(self.stderr.snapshot()[-30:])) from None
        self.stdout.join(2)
        self.stderr.join(2)
        return code

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
        self.stdout.join(2)
        self.stderr.join(2)

    def stop_and_check(self, owner="the test"):
        """The end-of-test check: still running, then SIGTERM and exit 0 within STOP_TIMEOUT,
        and no sanitizer report on stderr.

        An AssertionError from a cleanup fails the test that registered it, under its name."""
        try:
            if self.exit_expected:
                return
            code = self.proc.poll()
            if code is not None:
                self.stdout.join(2)
                self.stderr.join(2)
                raise AssertionError(f"viscount (pid {self.proc.pid}) died during {owner}: "
                                     f"{describe_exit(code)}\n{self.exit_diagnostics()}")
            self.signal(signal.SIGTERM)
            try:
                code = self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"viscount (pid {self.proc.pid}) did not exit within "
                                     f"{STOP_TIMEOUT:.0f}s of the SIGTERM at the end of {owner}"
                                     f"\n{self.exit_diagnostics()}") from None
            self.stdout.join(2)
            self.stderr.join(2)
            if code != 0 or self.sanitizer_report():
                raise AssertionError(f"viscount (pid {self.proc.pid}) exited with "
                                     f"{describe_exit(code)} on the SIGTERM at the end of {owner}"
                                     f"\n{self.exit_diagnostics()}")
        finally:
            self.kill()

    def sanitizer_report(self, max_lines=150):
        """The lines of stderr from the first sanitizer report on (ASan, LSan, UBSan), if any.

        The build makes every report fatal; this also catches one that was not (a different
        UBSAN_OPTIONS), and keeps the report's head, which a tail of stderr may have lost."""
        lines = self.stderr.snapshot()
        for i, line in enumerate(lines):
            if line.startswith("{"):
                continue  # viscount's own JSON events
            if ("Sanitizer" in line and "ERROR" in line) or ": runtime error: " in line:
                return lines[i:i + max_lines]
        return []

    def exit_diagnostics(self):
        report = self.sanitizer_report()
        head = ("--- sanitizer report ---\n" + "\n".join(report) + "\n") if report else ""
        return head + self.diagnostics()

    def diagnostics(self):
        return ("--- viscount stderr ---\n" + "\n".join(self.stderr.snapshot()[-40:])
                + "\n--- viscount stdout ---\n" + "\n".join(self.stdout.snapshot()[-20:]))


def describe_exit(code):
    """A Popen returncode in words: a negative one is the signal that killed the process."""
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit code {code}"


def temp_dir(test):
    d = tempfile.TemporaryDirectory(prefix="viscount-e2e-")
    test.addCleanup(d.cleanup)
    return d.name


# --- upstream: the FastAPI demo app under Debian's uvicorn ---------------------------------------

class DemoApp:
    """deploy/local/demo_app.py under /usr/bin/python3 -m uvicorn on a free port, or on the Unix
    socket `uds` (uvicorn --uds)."""

    def __init__(self, uds=None):
        self.uds = uds
        last_error = None
        for _ in range(3):  # the free port can be taken between probing and binding
            self.port = free_port()
            bind = ["--uds", uds] if uds else ["--host", "127.0.0.1", "--port", str(self.port)]
            self.proc = subprocess.Popen(
                [DEBIAN_PYTHON, "-m", "uvicorn", "demo_app:app", "--app-dir", DEMO_APP_DIR,
                 *bind, "--no-access-log"],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=clean_env(PYTHONUNBUFFERED=1))
            self.stdout = _LineCollector(self.proc.stdout, "demo-stdout")
            self.stderr = _LineCollector(self.proc.stderr, "demo-stderr")
            try:
                self._wait_ready()
                return
            except AssertionError as e:
                last_error = e
                self.stop()
        raise AssertionError(f"demo app did not start: {last_error}")

    @property
    def url(self):
        return f"unix:{self.uds}" if self.uds else f"http://127.0.0.1:{self.port}"

    def _wait_ready(self):
        def up():
            if self.proc.poll() is not None:
                raise AssertionError("uvicorn exited: " + "\n".join(self.stderr.snapshot()))
            try:
                if self.uds:
                    return unix_http_get(self.uds, "/", timeout=1)[0] == 200
                return http_get(self.port, "/", timeout=1)[0] == 200
            except OSError:
                return False
        wait_until(up, timeout=20, interval=0.05, what="the demo app to answer")

    def wait_log(self, predicate, timeout=DEFAULT_TIMEOUT, what="demo app log line"):
        return self.stdout.wait_for(lambda o: o.get("logger") == "demo_app" and predicate(o),
                                    timeout, what)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.stdout.join(2)
        self.stderr.join(2)


# --- upstream: a stdlib HTTP/1.1 keep-alive server with configurable behaviour -------------------

def pattern_bytes(n):
    """n bytes of a repeating, position-dependent pattern (a shifted or cut copy will not match)."""
    block = bytes(range(256)) + bytes(reversed(range(251)))  # 507 bytes: not a power of two
    return (block * (n // len(block) + 1))[:n]


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "e2e-upstream"
    disable_nagle_algorithm = True  # headers and body are separate writes

    def log_message(self, fmt, *args):  # quiet
        pass

    def _any(self):
        server = self.server.owner
        parsed = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(parsed.query)
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        record = {
            "method": self.command,
            "path": parsed.path,
            "query": parsed.query,
            "version": self.request_version,
            "headers": [[k.lower(), v] for k, v in self.headers.items()],
            "body_bytes": len(body),
            "client_port": self.client_address[1],
        }
        record["body_sha256"] = hashlib.sha256(body).hexdigest()
        server.record(record)
        if parsed.path == "/bytes":
            # A deterministic body of n bytes (the tests rebuild it to compare).
            payload = pattern_bytes(int(query.get("n", ["0"])[0]))
            self.send_response(200)
            self.send_header("content-type", "application/octet-stream")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
            return
        if parsed.path == "/slow":
            time.sleep(int(query.get("ms", ["1000"])[0]) / 1000)
        elif parsed.path == "/hang":
            server.release.wait(60)
        status = int(query.get("status", ["200"])[0])
        payload = json.dumps(record).encode()
        self.send_response(status)
        # ?header_bytes=N: a response head that much larger, in fields of 1000 bytes.
        for i in range(int(query.get("header_bytes", ["0"])[0]) // 1000):
            self.send_header(f"x-large-{i}", "h" * 980)
        if status in (204, 304):
            # No body, as HTTP says: bytes after such a head would sit on the keep-alive
            # connection and be read as the start of the next response (a 502 for it).
            self.end_headers()
            return
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _any


class _ThreadingServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # The default backlog (5) drops connects when many requests arrive at once (HTTP/2 streams
    # fan out to many pooled connections): they would time out as upstream_connect_timeout.
    request_queue_size = 256

    def handle_error(self, request, client_address):
        # The proxy going away mid-response (drain timeout, forced exit) is expected in tests.
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class EchoUpstream:
    """ThreadingHTTPServer on 127.0.0.1:0 speaking HTTP/1.1 with keep-alive.

    GET/POST/... any path -> 200 JSON echo of method, path, headers (as [name, value] pairs,
    lower-case names, every copy) and body size. `/slow?ms=N` sleeps N ms first; `/hang` waits
    until `release` is set (or 60 s); `?status=N` answers N; `?header_bytes=N` adds N bytes of
    response fields.
    """

    def __init__(self, tls_context=None):
        self.requests = []          # every request received, in arrival order
        self.release = threading.Event()
        self._cond = threading.Condition()
        self.server = _ThreadingServer(("127.0.0.1", 0), _Handler)
        self.server.owner = self
        self.scheme = "http"
        if tls_context is not None:  # an https:// upstream; handshakes happen at accept
            self.server.socket = tls_context.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="echo-upstream", daemon=True)
        self._thread.start()

    @property
    def url(self):
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def record(self, rec):
        with self._cond:
            self.requests.append(rec)
            self._cond.notify_all()

    def wait_request(self, predicate, timeout=DEFAULT_TIMEOUT):
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for rec in self.requests:
                    if predicate(rec):
                        return rec
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError("upstream never received the expected request")
                self._cond.wait(remaining)

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def header_values(record, name):
    """All values of header `name` in an EchoUpstream record."""
    return [v for k, v in record["headers"] if k == name.lower()]


def start_echo_upstream(test, tls_context=None):
    upstream = EchoUpstream(tls_context)
    test.addCleanup(upstream.stop)
    return upstream


def start_demo_app(test_or_class, class_level=False, uds=None):
    app = DemoApp(uds)
    if class_level:
        test_or_class.addClassCleanup(app.stop)
    else:
        test_or_class.addCleanup(app.stop)
    return app


class RequestThread(threading.Thread):
    """Sends one request on its own thread (for requests that stay in flight across a signal)."""

    def __init__(self, port, path, headers=None, timeout=30.0, method="GET", body=None):
        super().__init__(daemon=True)
        self.args = (port, path, headers, timeout, method, body)
        self.status = None
        self.headers = None
        self.body = None
        self.error = None

    def run(self):
        port, path, headers, timeout, method, body = self.args
        try:
            self.status, self.headers, self.body = http_get(port, path, headers, timeout,
                                                            method, body)
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e

    def result(self, timeout=DEFAULT_TIMEOUT):
        self.join(timeout)
        if self.is_alive():
            raise AssertionError(f"request to {self.args[1]} still running after {timeout}s")
        return self


if __name__ == "__main__":
    sys.exit("helper module; run the test_*.py modules")
