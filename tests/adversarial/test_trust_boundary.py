"""The trust boundary: who may drive the sidecar, and who may claim a client's address.

Admin: the probes and /metrics answer any caller; /drain, /config and every other endpoint answer
admin.control_from only (127.0.0.1/32 here), so a caller on another loopback address (127.0.0.5)
gets 403 and the proxy carries on, serving and ready.

Client identity: from an untrusted caller (127.0.0.2; trusted_sources is 127.0.0.1/32) every
header that claims the client's address, scheme, host, port or prefix is gone at the upstream,
and so are their underscore look-alikes; the ones viscount sets arrive exactly once. From the
trusted caller they pass, with viscount's hop appended to the lists.
"""

import http.client
import json
import unittest

from adversarial_support import ProxyTestCase, exchange

UNTRUSTED = "127.0.0.2"
OUTSIDE_CONTROL = "127.0.0.5"

# Claims only the proxy may make; viscount itself sets the first two of them when asked to
# (context.forwarded).
CLAIMS = {
    "x-real-ip": "10.1.2.3",
    "forwarded": "for=10.1.2.3;proto=https",
    "x-forwarded-host": "evil.example",
    "x-forwarded-port": "8443",
    "x-forwarded-prefix": "/admin",
    "x-forwarded-server": "evil.example",
    "x-original-forwarded-for": "10.1.2.3",
    "x-client-ip": "10.1.2.3",
    "true-client-ip": "10.1.2.3",
    "cf-connecting-ip": "10.1.2.3",
    "x-cluster-client-ip": "10.1.2.3",
    "fastly-client-ip": "10.1.2.3",
}
ALSO_SENT = {"x-forwarded-for": "10.9.9.9", "x-forwarded-proto": "https"}


def lookalike(name):
    """X_Forwarded_Host for x-forwarded-host: one name to a CGI-style server. `forwarded` has no
    hyphen, hence no look-alike."""
    return "_".join(part.capitalize() for part in name.split("-"))


LOOKALIKES = [lookalike(k) for k in [*CLAIMS, *ALSO_SENT] if "-" in k]


def request_with(headers):
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers)
    return f"GET /who HTTP/1.1\r\nHost: app.example\r\n{lines}\r\n".encode()


def admin_request(port, method, path, source=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5,
                                      source_address=(source, 0) if source else None)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, dict((k.lower(), v) for k, v in resp.getheaders()), resp.read()
    finally:
        conn.close()


class TrustBoundaryTest(ProxyTestCase):
    config_overrides = {
        "context": {"trusted_sources": ["127.0.0.1/32"], "forwarded": ["x-real-ip", "forwarded"]},
        "admin": {"address": "127.0.0.1:0", "control_from": ["127.0.0.1/32"]},
    }

    def forward(self, headers, source):
        result = exchange(self.port, request_with(headers), until_close=False, linger=0.1,
                          source=source)
        self.assertEqual([r.status for r in result.responses], [200], result)
        requests = self.upstream_since_mark()
        self.assertEqual(len(requests), 1, requests)
        return requests[0]

    def names(self, req):
        return [k for k, _ in req.headers]

    # --- client identity ------------------------------------------------------------------

    def test_untrusted_claims_are_removed(self):
        for name, value in CLAIMS.items():
            with self.subTest(name):
                self.mark = self.upstream.mark()
                sent = [(name, value)] + ([(lookalike(name), value)] if "-" in name else [])
                req = self.forward(sent, UNTRUSTED)
                if name == "x-real-ip":
                    self.assertEqual(req.values(name), [UNTRUSTED])
                elif name == "forwarded":
                    self.assertEqual(req.values(name), [f"for={UNTRUSTED};proto=http"])
                else:
                    self.assertEqual(req.values(name), [], f"{name} reached the upstream")
                self.assertEqual([k for k in self.names(req) if "_" in k], [])
                self.assertNotIn(value, [v for k, v in req.headers
                                         if k not in ("host",)], "a claimed value got through")

    def test_untrusted_caller_gets_exactly_one_of_each_header_viscount_sets(self):
        sent = [*CLAIMS.items(), *ALSO_SENT.items(), *CLAIMS.items(),
                *((name, "10.1.2.3") for name in LOOKALIKES)]
        req = self.forward(sent, UNTRUSTED)
        self.assertEqual(req.values("x-forwarded-for"), [UNTRUSTED])
        self.assertEqual(req.values("x-forwarded-proto"), ["http"])
        self.assertEqual(req.values("x-real-ip"), [UNTRUSTED])
        self.assertEqual(req.values("forwarded"), [f"for={UNTRUSTED};proto=http"])
        for name in CLAIMS:
            if name not in ("x-real-ip", "forwarded"):
                self.assertEqual(req.values(name), [], name)
        leaked = [k for k in self.names(req) if "_" in k]
        self.assertEqual(leaked, [], "underscore look-alikes reached the upstream")

    def test_trusted_claims_pass_with_our_hop_appended(self):
        sent = [*CLAIMS.items(), *ALSO_SENT.items(), *((name, "9.9.9.9") for name in LOOKALIKES)]
        req = self.forward(sent, "127.0.0.1")
        for name, value in CLAIMS.items():
            if name == "forwarded":
                self.assertEqual(req.values(name), [value + ", for=127.0.0.1;proto=http"])
            else:
                self.assertEqual(req.values(name), [value], name)
        self.assertEqual(req.values("x-forwarded-for"), ["10.9.9.9, 127.0.0.1"])
        self.assertEqual(req.values("x-forwarded-proto"), ["https"])
        self.assertEqual([k for k in self.names(req) if "_" in k], [],
                         "look-alikes are never believed, even from a trusted caller")

    def test_trusted_caller_without_claims_gets_ours(self):
        req = self.forward([], "127.0.0.1")
        self.assertEqual(req.values("x-forwarded-for"), ["127.0.0.1"])
        self.assertEqual(req.values("x-real-ip"), ["127.0.0.1"])
        self.assertEqual(req.values("forwarded"), ["for=127.0.0.1;proto=http"])

    # --- admin ------------------------------------------------------------------------------

    def test_probes_and_metrics_answer_everyone(self):
        for source in (None, OUTSIDE_CONTROL):
            for path in ("/healthz", "/ready", "/metrics"):
                with self.subTest(source=source, path=path):
                    status, _, _ = admin_request(self.proxy.admin_port, "GET", path, source)
                    self.assertEqual(status, 200)

    def test_control_endpoints_refuse_callers_outside_control_from(self):
        for method, path in (("POST", "/drain"), ("GET", "/config"), ("GET", "/anything"),
                             ("GET", "/drain")):
            with self.subTest(method=method, path=path):
                status, headers, body = admin_request(self.proxy.admin_port, method, path,
                                                      OUTSIDE_CONTROL)
                self.assertEqual(status, 403)
                self.assertEqual(headers["content-type"], "application/json")
                self.assertEqual(json.loads(body)["error"], "admin_forbidden")
                self.assertNotIn(b"listeners", body, "the config leaked")
        # The process carries on untouched: ready, and serving.
        self.assertEqual(admin_request(self.proxy.admin_port, "GET", "/ready")[0], 200)
        self.assertEqual(admin_request(self.proxy.admin_port, "GET", "/ready",
                                       OUTSIDE_CONTROL)[0], 200)
        result = exchange(self.port, request_with([]), until_close=False, linger=0.1)
        self.assertEqual([r.status for r in result.responses], [200], result)
        _, _, metrics = admin_request(self.proxy.admin_port, "GET", "/metrics")
        line = [ln for ln in metrics.decode().splitlines()
                if ln.startswith('viscount_rejected_total{reason="admin_forbidden"}')]
        self.assertEqual(len(line), 1, metrics.decode())
        self.assertGreaterEqual(float(line[0].split()[-1]), 4)

    def test_config_answers_callers_inside_control_from(self):
        status, headers, body = admin_request(self.proxy.admin_port, "GET", "/config")
        self.assertEqual(status, 200)
        config = json.loads(body)
        self.assertEqual(config["admin"]["control_from"], ["127.0.0.1/32"])
        self.assertEqual(config["context"]["forwarded"], ["x-real-ip", "forwarded"])


class AdminDrainInsideTest(ProxyTestCase):
    """POST /drain from inside control_from still drains (its own proxy: it ends it)."""

    config_overrides = {"admin": {"address": "127.0.0.1:0", "control_from": ["127.0.0.1/32"]}}

    @classmethod
    def tearDownClass(cls):
        code = cls.proxy.wait_exit(timeout=20)
        if code != 0:
            raise AssertionError(f"viscount exited with {code}\n{cls.proxy.diagnostics()}")

    def tearDown(self):
        pass

    def test_drain_from_inside(self):
        status, _, body = admin_request(self.proxy.admin_port, "POST", "/drain")
        self.assertEqual(status, 202, body)
        self.assertEqual(json.loads(body)["status"], "draining")


if __name__ == "__main__":
    unittest.main()
