"""Out of file descriptors: viscount started with a nofile limit of 64 (soft and hard, so it
cannot raise it) and 120 client connections (and one to the admin port) held open for 3 s. It must not spin on the failing
accept(): its CPU stays near idle, the event log gets a handful of accept_failed lines (with a
count of the ones held back), the failures are counted in /metrics, and once the connections
close new requests are served again. At start it warns that the configured max_connections
cannot fit the limit."""

import os
import resource
import socket
import time
import unittest

from viscount_process import (SLACK, Viscount, basic_config, http_get, start_echo_upstream,
                              temp_dir, to_yaml, viscount_bin, wait_until, write_file_atomically)

NOFILE = 64
CLIENTS = 120
HOLD = 3.0


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of the line, 12 and 13 after the command name.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def limit_descriptors():
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


class DescriptorExhaustionTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        viscount_bin()

    def start(self):
        upstream = start_echo_upstream(self)
        config = basic_config(upstream.url, workers=1, io_uring=False)
        path = os.path.join(temp_dir(self), "viscount.yaml")
        write_file_atomically(path, to_yaml(config) + "\n")
        proxy = Viscount(["--config", path], preexec_fn=limit_descriptors).owned_by(self)
        proxy.wait_started()
        return proxy

    # Not run in the ASan+UBSan build: its vptr check cannot work without descriptors. Before
    # it trusts a vtable, the sanitizer runtime asks the kernel whether the memory is readable by
    # writing it into a pipe (IsAccessibleMemoryRange calls pipe()); at EMFILE the pipe fails and
    # every object whose type pair is not cached yet is reported as "does not point to an object
    # of type ..., invalid vptr, <memory cannot be printed>", and the build makes that fatal.
    # Under gdb the reported object was a live Http1ServerConnection (ASan: allocated, not
    # freed) with its own vtable. The optimised build runs this test.
    @unittest.skipIf(os.environ.get("VISCOUNT_SANITIZED") == "1",
                     "UBSan's vptr check needs a pipe, so it misreports objects at EMFILE")
    def test_a_connection_flood_at_the_limit_does_not_spin(self):
        proxy = self.start()
        low = proxy.wait_event("fd_limit_low")
        self.assertEqual(low["limit"], NOFILE)
        self.assertGreater(low["needed"], NOFILE)
        self.assertEqual(http_get(proxy.listener_port, "/before")[0], 200)

        clients = []
        try:
            for _ in range(CLIENTS):
                clients.append(socket.create_connection(("127.0.0.1", proxy.listener_port),
                                                        timeout=5))
            proxy.wait_event("accept_failed")
            # The admin listener, out of descriptors too, must not spin either.
            clients.append(socket.create_connection(("127.0.0.1", proxy.admin_port), timeout=5))
            before = cpu_seconds(proxy.proc.pid)
            time.sleep(HOLD)
            used = cpu_seconds(proxy.proc.pid) - before
            # Spinning burnt more than a core (5.5 s in 3 s); idle is a few hundredths.
            self.assertLess(used, 0.3 * SLACK, f"viscount used {used:.2f} s of CPU in {HOLD} s")
        finally:
            for c in clients:
                c.close()

        failed = proxy.events("accept_failed")
        self.assertGreaterEqual(len(failed), 1)
        # At most one a second (plus the first): a handful, not a million.
        self.assertLessEqual(len(failed), HOLD + 3, failed)
        self.assertEqual(failed[0]["reason"], "Too many open files")

        # Once the connections are gone, accepting resumes within the backoff (about a second).
        def served():
            try:
                return http_get(proxy.listener_port, "/after", timeout=2)[0] == 200
            except OSError:
                return False
        wait_until(served, timeout=10 * SLACK, what="a request served after the flood")
        _, _, metrics = http_get(proxy.admin_port, "/metrics")
        line = [ln for ln in metrics.decode().splitlines()
                if ln.startswith('viscount_rejected_total{reason="fd_limit"}')]
        self.assertEqual(len(line), 1, "fd_limit not counted")
        self.assertGreaterEqual(float(line[0].split()[-1]), 1)
        self.assertEqual(proxy.admin_get("/ready")[0], 200)


if __name__ == "__main__":
    unittest.main()
