"""The command line of docs/reference.md against the real binary: flags, exit codes, --validate,
--print-config, VISCOUNT_CONFIG and a listener that cannot bind."""

import os
import re
import signal
import socket
import unittest

from viscount_process import (Viscount, basic_config, clean_env, run_viscount, temp_dir,
                              to_yaml, viscount_bin, write_file_atomically)

GOOD_YAML = """\
workers: 1
drain_timeout: 7s

listeners:
  - name: inbound
    address: 127.0.0.1:0
    upstream: app
    timeouts:
      request_headers: 10s

upstreams:
  - name: app
    url: http://127.0.0.1:9
    pool:
      size: 4

context:
  request_id:
    header: x-request-id
  trusted_sources: [127.0.0.0/8, "::1/128"]

logging:
  access_log: stdout
  format: json

admin:
  address: 127.0.0.1:0
"""

# Four independent mistakes; (line, key column, value column) of each, 1-based.
BAD_YAML = """\
workers: 1
drain_timeout: 10x
bogus_key: true

listeners:
  - name: inbound
    address: 127.0.0.1:0
    upstream: app

upstreams:
  - name: app
    url: not a url

context:
  trusted_sources:
    - 127.0.0.0/8
    - 10.0.0.0/33

admin:
  address: 127.0.0.1:0
"""
BAD_ERRORS = {
    "bad duration": (2, 1, 16),
    "unknown key": (3, 1, 12),
    "bad URL": (12, 5, 10),
    "bad CIDR": (17, 5, 7),
}
ERROR_LINE = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<msg>.+)$")


class CliTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        viscount_bin()

    def write(self, name, text):
        path = os.path.join(temp_dir(self), name)
        write_file_atomically(path, text)
        return path

    def test_version(self):
        r = run_viscount(["--version"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"^viscount \d+\.\d+\.\d+")

    def test_help(self):
        r = run_viscount(["--help"])
        self.assertEqual(r.returncode, 0, r.stderr)
        for flag in ("--config", "--upstream", "--validate", "--print-config", "--listen",
                     "--version", "VISCOUNT_CONFIG"):
            self.assertIn(flag, r.stdout)

    def test_no_arguments_is_exit_1_with_a_message(self):
        r = run_viscount([])
        self.assertEqual(r.returncode, 1)
        self.assertIn("--config", r.stderr)
        self.assertIn("--upstream", r.stderr)
        self.assertEqual(r.stdout, "")

    def test_unknown_flag_is_exit_1(self):
        r = run_viscount(["--upstream", "http://127.0.0.1:9", "--bogus-flag"])
        self.assertEqual(r.returncode, 1)
        self.assertIn("--bogus-flag", r.stderr)

    def test_flag_missing_its_value_is_exit_1(self):
        r = run_viscount(["--config"])
        self.assertEqual(r.returncode, 1)
        self.assertIn("--config", r.stderr)

    def test_validate_good_config(self):
        path = self.write("good.yaml", GOOD_YAML)
        r = run_viscount(["--validate", "--config", path])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotRegex(r.stderr, ERROR_LINE.pattern.replace("^", "(?m)^"))

    def test_validate_bad_config_reports_every_error_with_position(self):
        path = self.write("bad.yaml", BAD_YAML)
        r = run_viscount(["--validate", "--config", path])
        self.assertEqual(r.returncode, 1, r.stderr)
        errors = []
        for line in r.stderr.splitlines():
            m = ERROR_LINE.match(line)
            if m and m["file"] == path:
                errors.append((int(m["line"]), int(m["col"]), m["msg"]))
        self.assertTrue(errors, "no FILE:LINE:COL: lines on stderr:\n" + r.stderr)
        for what, (line, key_col, value_col) in BAD_ERRORS.items():
            with self.subTest(what):
                at_line = [e for e in errors if e[0] == line]
                self.assertTrue(at_line, f"{what}: no error at line {line}:\n{r.stderr}")
                self.assertTrue(any(e[1] in (key_col, value_col) for e in at_line),
                                f"{what}: column is not {key_col} or {value_col}: {at_line}")
        # Nothing reported on lines that are fine.
        self.assertEqual({e[0] for e in errors}, {v[0] for v in BAD_ERRORS.values()}, r.stderr)
        self.assertEqual(r.stdout, "")

    def test_validate_missing_file(self):
        path = os.path.join(temp_dir(self), "absent.yaml")
        r = run_viscount(["--validate", "--config", path])
        self.assertEqual(r.returncode, 1)
        self.assertIn(path, r.stderr)

    def test_viscount_config_environment_variable_for_validate(self):
        good = self.write("good.yaml", GOOD_YAML)
        bad = self.write("bad.yaml", BAD_YAML)
        r = run_viscount(["--validate"], env=clean_env(VISCOUNT_CONFIG=good))
        self.assertEqual(r.returncode, 0, r.stderr)
        r = run_viscount(["--validate"], env=clean_env(VISCOUNT_CONFIG=bad))
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"{bad}:2:", r.stderr)

    def test_viscount_config_environment_variable_runs_the_proxy(self):
        path = self.write("run.yaml", to_yaml(basic_config("http://127.0.0.1:9")) + "\n")
        proc = Viscount([], env=clean_env(VISCOUNT_CONFIG=path)).owned_by(self)
        proc.wait_started()
        started = proc.wait_event("started")
        self.assertEqual(started.get("config"), path)
        self.assertEqual(proc.admin_get("/ready")[0], 200)
        proc.signal(signal.SIGTERM)
        self.assertEqual(proc.wait_exit(), 0)

    def test_print_config_is_valid_yaml_with_defaults(self):
        path = self.write("good.yaml", GOOD_YAML)
        r = run_viscount(["--print-config", "--config", path])
        self.assertEqual(r.returncode, 0, r.stderr)
        printed = r.stdout
        # Values from the file survive...
        self.assertRegex(printed, r"drain_timeout: \"?7s")
        self.assertIn("http://127.0.0.1:9", printed)
        # ...and defaults the file left out are filled in.
        for default_key in ("max_overflow", "wait_timeout", "pre_ping", "recycle",
                            "max_concurrent_requests", "queue_timeout", "correlation_id",
                            "user_id", "id_pattern", "echo_in_response", "max_request_body_size",
                            "buffer", "level"):
            self.assertIn(default_key, printed)
        again = self.write("printed.yaml", printed)
        r2 = run_viscount(["--validate", "--config", again])
        self.assertEqual(r2.returncode, 0, r2.stderr + "\n--- printed ---\n" + printed)
        # And printing the printed config is a fixed point.
        r3 = run_viscount(["--print-config", "--config", again])
        self.assertEqual(r3.returncode, 0, r3.stderr)
        self.assertEqual(r3.stdout, printed)

    def test_print_config_zero_config(self):
        r = run_viscount(["--print-config", "--upstream", "http://127.0.0.1:9"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("http://127.0.0.1:9", r.stdout)
        self.assertIn("127.0.0.1:8080", r.stdout)  # the default --listen
        again = self.write("printed.yaml", r.stdout)
        r2 = run_viscount(["--validate", "--config", again])
        self.assertEqual(r2.returncode, 0, r2.stderr + "\n--- printed ---\n" + r.stdout)

    def test_print_config_with_bad_upstream_url_is_exit_1(self):
        r = run_viscount(["--print-config", "--upstream", "not a url"])
        self.assertEqual(r.returncode, 1)
        self.assertIn("--upstream", r.stderr)

    def test_listener_port_in_use_is_exit_2(self):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
            blocker.bind(("127.0.0.1", 0))
            blocker.listen(1)
            port = blocker.getsockname()[1]
            config = basic_config("http://127.0.0.1:9")
            config["listeners"][0]["address"] = f"127.0.0.1:{port}"
            path = self.write("busy.yaml", to_yaml(config) + "\n")
            r = run_viscount(["--config", path])
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertRegex(r.stderr, r"(?i)address already in use|in use")
        self.assertIn(str(port), r.stderr)
        self.assertIn("viscount: ", r.stderr)

    def test_admin_port_in_use_is_exit_2(self):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
            blocker.bind(("127.0.0.1", 0))
            blocker.listen(1)
            port = blocker.getsockname()[1]
            config = basic_config("http://127.0.0.1:9", admin={"address": f"127.0.0.1:{port}"})
            path = self.write("busy.yaml", to_yaml(config) + "\n")
            r = run_viscount(["--config", path])
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertRegex(r.stderr, r"(?i)in use")
        self.assertIn("admin", r.stderr)


if __name__ == "__main__":
    unittest.main()
