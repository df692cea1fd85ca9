"""deploy/local/demo.sh --once: the README's first command, on free ports, prints viscount's
access-log lines and the demo app's lines with the same request ids, and cleans up after itself.
It runs in place with VISCOUNT_BIN pointing at the binary under test (no build step).
"""

import json
import os
import signal
import socket
import subprocess
import unittest

from viscount_process import (DEMO_APP_DIR, clean_env, free_port, temp_dir, viscount_bin,
                              wait_until)

DEMO_SH = os.path.join(DEMO_APP_DIR, "demo.sh")


def port_is_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is fine, LISTEN not
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


class DemoScriptTest(unittest.TestCase):

    def run_demo(self, *extra_args):
        """demo.sh --once on three distinct ports the OS just gave out (never its fixed
        defaults, which a developer's demo or another test may hold); (ports, proc, out, err)."""
        ports = set()
        while len(ports) < 3:
            ports.add(free_port())
        app_port, proxy_port, admin_port = sorted(ports)
        env = clean_env(VISCOUNT_SKIP_INSTALL=1, APP_PORT=app_port, PROXY_PORT=proxy_port,
                        ADMIN_PORT=admin_port, VISCOUNT_BIN=viscount_bin())
        proc = subprocess.Popen(["bash", DEMO_SH, "--once", *extra_args], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                start_new_session=True)

        def kill_group():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        self.addCleanup(kill_group)
        try:
            out, err = proc.communicate(timeout=45)
        except subprocess.TimeoutExpired:
            kill_group()
            out, err = proc.communicate()
            self.fail("demo.sh --once did not finish in 45 s\n" + out.decode() + err.decode())
        return ((app_port, proxy_port, admin_port), proc, out.decode(errors="replace"),
                err.decode(errors="replace"))

    def test_demo_once_on_free_ports(self):
        for _ in range(3):
            (app_port, proxy_port, admin_port), proc, out, err = self.run_demo()
            # A port that was free when asked for can be taken before demo.sh binds it (ports
            # from the OS are handed out again); demo.sh then says so, and a new set is tried.
            if proc.returncode == 0 or "is busy: another process" not in err:
                break
        report = f"--- stdout ---\n{out}\n--- stderr ---\n{err}"
        self.assertEqual(proc.returncode, 0, report)

        self.assertIn(f"127.0.0.1:{proxy_port} -> demo app 127.0.0.1:{app_port}", out)
        self.assertIn("== viscount access log", out)
        self.assertIn("== demo app log", out)
        self.assertEqual(out.count("HTTP/1.1 200"), 2, report)

        access, app = [], []
        for line in out.splitlines():
            if not line.startswith("{"):
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if obj.get("logger") == "demo_app":
                app.append(obj)
            elif "request_id" in obj and "ts" in obj:
                access.append(obj)
        self.assertEqual(len(access), 3, report)
        # demo.sh's readiness probe goes to the app directly and is logged without ids.
        app = [a for a in app if a["x_request_id"] is not None]
        self.assertEqual(len(app), 3, report)
        self.assertEqual({a["request_id"] for a in access}, {a["x_request_id"] for a in app},
                         report)
        self.assertEqual({a["correlation_id"] for a in access},
                         {a["x_correlation_id"] for a in app}, report)
        own = [a for a in access if a["request_id"] == "my-own-id-123"]
        self.assertEqual(len(own), 1, report)
        self.assertEqual(own[0]["user_id"], "alice")
        self.assertEqual(own[0]["method"], "POST")
        self.assertEqual(sorted(a["status"] for a in access), [101, 200, 200], report)
        # The websocket: its id on the 101, in the app's log and in one access-log line that
        # counts the tunnelled bytes.
        ws = [a for a in access if a["status"] == 101][0]
        self.assertEqual(ws["upgrade"], "websocket", report)
        self.assertIn(f"101 x-request-id: {ws['request_id']}", out, report)
        self.assertIn("echo: hello over a websocket", out, report)
        self.assertTrue(any(a.get("websocket") and a["x_request_id"] == ws["request_id"]
                            for a in app), report)
        self.assertGreater(ws["bytes_in"], len("hello over a websocket"), report)
        self.assertTrue(all(a["upstream_address"] == f"127.0.0.1:{app_port}" for a in access))

        # The script's trap stopped both processes: their ports are free again.
        wait_until(lambda: port_is_free(proxy_port) and port_is_free(app_port), timeout=10,
                   what="demo.sh's processes to release their ports")

    def test_demo_once_with_the_app_on_a_unix_socket(self):
        # uvicorn --uds: the demo app as a pod would run it next to its sidecar.
        for _ in range(3):
            (_, proxy_port, _), proc, out, err = self.run_demo("--uds")
            if proc.returncode == 0 or "is busy: another process" not in err:
                break
        report = f"--- stdout ---\n{out}\n--- stderr ---\n{err}"
        self.assertEqual(proc.returncode, 0, report)
        self.assertRegex(out, rf"127\.0\.0\.1:{proxy_port} -> demo app unix:/\S+/app\.sock")
        self.assertEqual(out.count("HTTP/1.1 200"), 2, report)
        access, app = [], []
        for line in out.splitlines():
            try:
                obj = json.loads(line) if line.startswith("{") else {}
            except ValueError:
                continue
            if obj.get("logger") == "demo_app" and obj.get("x_request_id"):
                app.append(obj)
            elif "request_id" in obj and "ts" in obj:
                access.append(obj)
        # The demo's two requests (and its WebSocket, when it sends one) all went to the socket.
        self.assertEqual(len([a for a in access if a.get("upgrade") is None]), 2, report)
        self.assertTrue(all(a["status"] in (101, 200) for a in access), report)
        self.assertTrue(all(a["upstream_address"].startswith("unix:/") and
                            a["upstream_address"].endswith("/app.sock") for a in access), report)
        self.assertEqual({a["request_id"] for a in access}, {a["x_request_id"] for a in app},
                         report)

    def test_demo_stops_when_the_app_port_is_taken(self):
        # Something else listening on APP_PORT: demo.sh must not send its requests there (they
        # would get that process's answers), but stop and name the port and its variable.
        holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(holder.close)
        holder.bind(("127.0.0.1", 0))
        holder.listen(8)
        taken = holder.getsockname()[1]
        ports = set()
        while len(ports) < 2:
            ports.add(free_port())
        proxy_port, admin_port = sorted(ports)
        env = clean_env(VISCOUNT_SKIP_INSTALL=1, APP_PORT=taken, PROXY_PORT=proxy_port,
                        ADMIN_PORT=admin_port, VISCOUNT_BIN=viscount_bin())
        r = subprocess.run(["bash", DEMO_SH, "--once"], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, env=env, timeout=45)
        report = f"--- stdout ---\n{r.stdout}\n--- stderr ---\n{r.stderr}"
        self.assertEqual(r.returncode, 1, report)
        self.assertIn(f"port {taken} is busy", r.stderr, report)
        self.assertIn("APP_PORT", r.stderr, report)
        self.assertNotIn("== requests through viscount", r.stdout, report)


if __name__ == "__main__":
    unittest.main()
