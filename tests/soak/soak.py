#!/usr/bin/python3
"""Soak test: the real viscount binary under mixed, faulty traffic for a while, then an audit.

    tests/soak/soak.py [--binary build/proxy/viscount] [--minutes 30] [--out build/soak]

It builds nothing. It starts a fault-injecting upstream (soak_upstream.py, its own process),
viscount with a config written here (2 workers, short timeouts, access log to a file), and for
the given time drives HTTP/1.1 (keep-alive and one connection per request), HTTP/1.0 and, when
viscount answers an h2c prior-knowledge preface, HTTP/2 clients multiplexing streams: GET, POST
and PUT with small and large bodies both ways, client aborts at every stage, and context ids
sent trusted, untrusted, malformed or not at all. Then it sends SIGTERM and checks:

  process      alive throughout, exit code 0 after SIGTERM
  rss          VmRSS growth from the end of the warm-up (first 10%) to the end under --rss-limit
  statuses     every answer is the upstream's own or a status from the contract's table, and
               the one the injected fault calls for
  aborts       every aborted request has the access-log lines the contract promises
  access_log   lines == requests viscount saw, nothing dropped, nothing unaccounted for
  ids          0 mismatches between response, upstream and access log; sent ids honoured
  checksums    every 2xx body and every upload arrives intact
  gauges       in-flight requests and connections back to 0 once the clients stop
  grpc         gRPC calls with injected faults (soak_grpc.py): the status each got, its
               access-log line's grpc_status and viscount_grpc_requests_total agree

The report is OUT/report.json plus a summary on stdout (also OUT/summary.txt); the exit code
is 1 when any check fails. See tests/soak/README.md.
"""

import argparse
import datetime
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)

import soak_checks  # noqa: E402
import soak_clients as clients  # noqa: E402
import soak_common as common  # noqa: E402
import soak_grpc  # noqa: E402

PYTHON = "/usr/bin/python3"  # Debian's, with python3-h2

# viscount's knobs for the soak: short enough that every fault maps to a status quickly.
REQUEST_TIMEOUT_S = 3           # upstreams[].timeouts.request -> 504 upstream_timeout
STALL_S = 5.0                   # the upstream's stalls: longer than the request timeout
BODY_LIMIT = 8 * 1024 * 1024    # listeners[].limits.max_request_body_size -> 413
DRAIN_TIMEOUT_S = 5

# Fault mix (weights) and size mixes ((weight, low, high) in bytes).
FAULT_WEIGHTS = {"ok": 40, "chunked": 14, "delay": 10, "close": 5, "e500": 6, "reset_head": 4,
                 "garbage": 2, "stall_head": 1, "reset_body": 3, "truncate": 3,
                 "truncate_chunked": 3, "stall_body": 1}
RESPONSE_SIZES = ((55, 0, 2048), (30, 2048, 256 << 10), (12, 256 << 10, 2 << 20),
                  (3, 2 << 20, 4 << 20))
UPLOAD_SIZES = ((50, 0, 4096), (30, 4096, 256 << 10), (15, 256 << 10, 2 << 20),
                (5, 2 << 20, 4 << 20))
ABORT_RATE = 0.06
OVERSIZE_RATE = 0.003
BAD_FRAMING_RATE = 0.02  # of HTTP/1.0 requests: a chunked body, which HTTP/1.0 cannot have

TRUSTED_IP = "127.0.0.1"
UNTRUSTED_IP = "127.0.0.2"  # still loopback, but outside trusted_sources


def pick_size(rng, table):
    weight, low, high = rng.choices(table, [t[0] for t in table])[0]
    return rng.randint(low, high)


class Planner:
    """Makes request plans: what to send, which fault the upstream injects, when to abort."""

    def __init__(self, run_id):
        self.run_id = run_id
        self.seq = 0
        self.lock = threading.Lock()

    def token(self):
        with self.lock:
            self.seq += 1
            return f"{self.run_id}{self.seq:07x}"

    @staticmethod
    def ids(rng, token):
        """Context headers to send, and what was sent: {key: (kind, [values])}."""
        headers, sent = [], {}

        def one(key, header, valid, invalid, p_valid, p_invalid, p_conflict):
            x = rng.random()
            if x < p_valid:
                values, kind = [valid], "valid"
            elif x < p_valid + p_invalid:
                values, kind = [invalid], "invalid"
            elif x < p_valid + p_invalid + p_conflict:
                values, kind = [valid + "-a", valid + "-b"], "conflict"
            else:
                return
            headers.extend((header, v) for v in values)
            sent[key] = (kind, values)

        one("rid", common.REQUEST_ID, f"rid-{token}", f"rid/{token}!", 0.45, 0.03, 0.02)
        one("cid", common.CORRELATION_ID, f"cid-{token}", f"cid {token}", 0.45, 0.03, 0.02)
        one("uid", common.USER_ID, f"user-{rng.randint(1, 50)}", "user 0", 0.30, 0.03, 0.01)
        trace = f"00-{rng.getrandbits(128) | 1:032x}-{rng.getrandbits(64) | 1:016x}-01"
        one("tp", common.TRACEPARENT, trace, "00-not-a-trace-01", 0.40, 0.05, 0.0)
        if "tp" in sent and rng.random() < 0.3:
            headers.append(("tracestate", "soak=1"))
        return headers, sent

    def make(self, rng, proto, source, aborts=("head", "body", "wait", "response")):
        token = self.token()
        method = rng.choices(("GET", "POST", "PUT"), (55, 35, 10))[0]
        fault = rng.choices(list(FAULT_WEIGHTS), list(FAULT_WEIGHTS.values()))[0]
        n = pick_size(rng, RESPONSE_SIZES)
        delay = rng.randint(1, 300) if fault == "delay" else 0
        abort = rng.choice(aborts) if aborts and rng.random() < ABORT_RATE else None
        upload_len = None
        if method == "POST":
            upload_len = pick_size(rng, UPLOAD_SIZES)
        elif method == "PUT":
            upload_len = rng.randint(0, 64 << 10)  # small enough to be replayed on a retry
        plan = {"token": token, "proto": proto, "source": source, "abort": abort}

        # Shape the request around its abort, so that the abort happens where it is meant to.
        if abort == "body":
            method, fault = "POST", "ok"
            upload_len = rng.randint(256 << 10, 3 << 20)
            plan["abort_at"] = rng.randint(1, upload_len - 1)
        elif abort == "wait":
            fault, delay = "delay", 1500  # the client leaves after abort_delay
            plan["abort_delay"] = rng.uniform(0.05, 0.5)
        elif abort == "response":
            fault = rng.choice(("ok", "chunked"))
            n = rng.randint(1 << 20, 4 << 20)
            plan["abort_at"] = rng.randint(1, 256 << 10)
        plan["abort_rst"] = rng.random() < 0.5  # close with RST rather than FIN
        if fault in common.CUT_FAULTS:
            n = max(n, 4096)  # something to cut
        if proto == "HTTP/1.0" and fault == "truncate_chunked":
            fault = "truncate"  # a close-delimited body cut short cannot be told from a whole one

        if proto != "HTTP/2" and abort is None and rng.random() < OVERSIZE_RATE:
            # A declared body over max_request_body_size: 413 from the head alone.
            method, fault, upload_len = "POST", "ok", 0
            plan["oversize"] = BODY_LIMIT + rng.randint(1, 1 << 20)
        framing = rng.choices(("cl", "chunked", "expect"), (70, 20, 10))[0]
        if proto == "HTTP/1.0":
            framing = "cl"  # no chunked bodies and no 100-continue in HTTP/1.0 ...
            if abort is None and rng.random() < BAD_FRAMING_RATE:
                # ... except on purpose: malformed framing, 400 bad_request and a close.
                method, fault, framing = "POST", "ok", "chunked"
                upload_len = rng.randint(1, 4096)
                plan["bad_framing"] = True

        headers, sent = self.ids(rng, token)
        plan.update(method=method, fault=fault, n=n, path=common.soak_path(token, fault, n, delay),
                    headers=headers, sent=sent, upload=None, upload_len=upload_len,
                    framing=framing)
        if upload_len is not None:
            plan["upload"] = common.body_slice(token + "up", upload_len)
            plan["upload_sha"] = common.sha256_hex(plan["upload"])
        if proto == "HTTP/2":
            plan["framing"] = "h2"
        return plan


# --- the processes --------------------------------------------------------------------------------

def start_upstream(out):
    stderr = open(os.path.join(out, "upstream.stderr.log"), "wb")
    proc = subprocess.Popen([PYTHON, os.path.join(HERE, "soak_upstream.py"),
                             "--records", os.path.join(out, "upstream-records.jsonl"),
                             "--stall-seconds", str(STALL_S)],
                            stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL)
    line = proc.stdout.readline().decode()
    if not line.startswith("PORT "):
        proc.kill()
        sys.exit(f"soak: the upstream did not start: {line!r}")
    return proc, int(line.split()[1])


def write_config(out, upstream_port, grpc_port, sample_success=1.0):
    config = f"""# Written by tests/soak/soak.py: short timeouts so that every injected fault maps to
# a status within seconds; a pool large enough that no request waits for a connection.
workers: 2
drain_timeout: {DRAIN_TIMEOUT_S}s
listeners:
  - name: inbound
    address: 127.0.0.1:0
    upstream: app
    timeouts: {{request_headers: 5s, idle: 5m}}
    limits: {{max_request_body_size: {BODY_LIMIT}}}
  - name: grpc
    address: 127.0.0.1:0
    upstream: grpc
upstreams:
  - name: app
    url: http://127.0.0.1:{upstream_port}
    timeouts: {{connect: 1s, request: {REQUEST_TIMEOUT_S}s}}
    pool: {{size: 8, max_overflow: 56, wait_timeout: 10s, idle_timeout: 5s}}
    limits: {{max_concurrent_requests: 100, max_queued_requests: 1000, queue_timeout: 5s}}
    retries: {{attempts: 1}}
  - name: grpc
    url: h2c://127.0.0.1:{grpc_port}
    timeouts: {{connect: 1s, request: {REQUEST_TIMEOUT_S}s}}
context:
  trusted_sources: ["{TRUSTED_IP}/32"]
logging: {{access_log: {os.path.join(out, "access.log")}, format: json, level: info, buffer: 65536,
          sample: {{success: {sample_success}}}}}
admin: {{address: 127.0.0.1:0}}
"""
    path = os.path.join(out, "viscount.yaml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(config)
    return path


class Viscount:
    """The process under test: viscount (or, with --h2-mock, h2_mock_proxy.py)."""

    def __init__(self, argv, out):
        self.stderr_path = os.path.join(out, "viscount.stderr.log")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=open(os.path.join(out, "viscount.stdout.log"), "wb"),
                                     stderr=open(self.stderr_path, "wb"))
        self.port = self.admin_port = self.grpc_port = None

    def events(self):
        out = []
        with open(self.stderr_path, "rb") as f:
            for raw in f:
                try:
                    out.append(json.loads(raw))
                except ValueError:
                    pass
        return out

    def wait_started(self, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            evs = self.events()
            names = {e.get("event") for e in evs}
            if "started" in names:
                bound = [e for e in evs if e.get("event") == "listener_bound"]
                self.port = next(e["port"] for e in bound if e.get("listener") != "grpc")
                self.grpc_port = next((e["port"] for e in bound if e.get("listener") == "grpc"),
                                      None)
                self.admin_port = next(e["port"] for e in evs if e.get("event") == "admin_bound")
                return
            time.sleep(0.05)
        self.proc.kill()
        with open(self.stderr_path, "rb") as f:
            sys.exit("soak: viscount did not start:\n" + f.read().decode(errors="replace"))

    def rss_kb(self):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None

    def metrics(self):
        """{name{labels}: value} from /metrics, or {} when it does not answer."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/metrics",
                                        timeout=5) as resp:
                text = resp.read().decode()
        except OSError:
            return {}
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                try:
                    out[key] = float(value)
                except ValueError:
                    pass
        return out


def metric_sum(metrics, name, **labels):
    total = 0.0
    for key, value in metrics.items():
        base, _, rest = key.partition("{")
        if base == name and all(f'{k}="{v}"' in rest for k, v in labels.items()):
            total += value
    return total


# --- traffic --------------------------------------------------------------------------------------

class Traffic:
    """The client threads. Each loops until `stop`, handing every result to the reconciler."""

    def __init__(self, port, planner, reconciler, h2, seed, h1=True):
        self.h1 = h1
        self.port = port
        self.planner = planner
        self.recon = reconciler
        self.h2 = h2
        self.seed = seed
        self.stop = threading.Event()
        self.threads = []
        self.count = 0
        self.count_lock = threading.Lock()
        self.crashes = []  # exceptions that escaped a client thread (bugs in the soak itself)

    def done(self, plan, result):
        if result["t1"] is None:
            result["t1"] = time.monotonic()
        self.recon.client_done(plan, result)
        with self.count_lock:
            self.count += 1

    def start(self):
        specs = []
        if self.h1:
            specs += [("h1-keepalive", self.h1_keepalive, TRUSTED_IP)] * 5
            specs += [("h1-keepalive-untrusted", self.h1_keepalive, UNTRUSTED_IP)]
            specs += [("h1-new-connection", self.h1_new_connection, TRUSTED_IP)] * 3
        if self.h2:
            specs += [("h2", self.h2_connections, TRUSTED_IP)] * 3
        for i, (name, target, source) in enumerate(specs):
            rng = random.Random(self.seed * 1000 + i)
            t = threading.Thread(target=self._guard, args=(target, rng, source),
                                 name=f"{name}-{i}", daemon=True)
            self.threads.append(t)
            t.start()

    def _guard(self, target, rng, source):
        try:
            target(rng, source)
        except Exception as e:  # noqa: BLE001 - reported as a failure of the soak itself
            import traceback
            self.crashes.append(f"{threading.current_thread().name}: {e!r}\n"
                                + traceback.format_exc())

    def join(self, timeout):
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.1, deadline - time.monotonic()))
        return [t.name for t in self.threads if t.is_alive()]

    def _connect_failed(self, plan, error):
        result = clients.new_result(plan)
        result.update(outcome="error", detail=f"connect to viscount failed: {error}")
        self.done(plan, result)
        time.sleep(0.5)

    def h1_keepalive(self, rng, source):
        conn = None
        while not self.stop.is_set():
            plan = self.planner.make(rng, "HTTP/1.1", source)
            if conn is None or not conn.reusable:
                try:
                    conn = clients.H1Connection(self.port, source)
                except OSError as e:
                    self._connect_failed(plan, e)
                    continue
            self.done(plan, clients.h1_exchange(conn, plan, self.port))
            if not conn.reusable:
                conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def h1_new_connection(self, rng, source):
        while not self.stop.is_set():
            proto = "HTTP/1.0" if rng.random() < 0.2 else "HTTP/1.1"
            plan = self.planner.make(rng, proto, source,
                                     aborts=("connect", "head", "body", "wait", "response"))
            plan["close"] = proto == "HTTP/1.1" and rng.random() < 0.5
            try:
                conn = clients.H1Connection(self.port, source)
            except OSError as e:
                self._connect_failed(plan, e)
                continue
            if plan["abort"] == "connect":
                conn.close(reset=plan["abort_rst"])  # connected, sent nothing: no request
                result = clients.new_result(plan)
                result["outcome"] = "aborted"
                self.done(plan, result)
                continue
            self.done(plan, clients.h1_exchange(conn, plan, self.port))
            conn.close()

    def h2_connections(self, rng, source):
        while not self.stop.is_set():
            # A batch of requests for one source; a connection dropped on purpose (or closed by
            # viscount with GOAWAY) leaves the rest of the batch to a new connection.
            src = UNTRUSTED_IP if rng.random() < 0.25 else source
            plans = [self.planner.make(rng, "HTTP/2", src, aborts=("body", "wait", "response"))
                     for _ in range(rng.randint(4, 60))]
            for plan in plans:
                # Some aborts drop the whole connection instead of resetting one stream.
                plan["abort_conn"] = plan["abort"] is not None and rng.random() < 0.3
            while plans:
                try:
                    conn = clients.H2Connection(self.port, src,
                                                concurrency=rng.choice((2, 4, 8)))
                except OSError as e:
                    for plan in plans:
                        self._connect_failed(plan, e)
                    break
                unsent = conn.run(plans, self.done)
                conn.close()
                if len(unsent) == len(plans) or self.stop.is_set():
                    for plan in unsent:  # never left the client
                        result = clients.new_result(plan)
                        result["outcome"] = "unsent"
                        self.done(plan, result)
                    break
                plans = unsent


# --- the run --------------------------------------------------------------------------------------

class RssSampler(threading.Thread):
    def __init__(self, viscount, interval):
        super().__init__(daemon=True, name="rss")
        self.viscount = viscount
        self.interval = interval
        self.samples = []  # (seconds since start, kB)
        self.t0 = time.monotonic()
        self.stop = threading.Event()
        self.died_at = None

    def run(self):
        while not self.stop.is_set():
            if self.viscount.proc.poll() is not None:
                self.died_at = time.monotonic() - self.t0
                return
            kb = self.viscount.rss_kb()
            if kb is not None:
                self.samples.append((round(time.monotonic() - self.t0, 1), kb))
            self.stop.wait(self.interval)


def median(values):
    values = sorted(values)
    return values[len(values) // 2] if values else None


SHORT_RUN_S = 300        # below this, RSS is still settling after the warm-up ...
SHORT_RUN_RSS_LIMIT = 25  # ... so this looser limit applies (it still catches 1 KiB a request)


def rss_figures(samples, duration, limit_pct):
    """Growth from the end of the warm-up (10% of the run) to the end, from windowed medians.

    One sample can catch a burst of large bodies in flight, so each end is the median of the
    samples in a window of 5% of the run (at least one sample): just after the warm-up, and the
    last one before the clients stopped. In a run shorter than SHORT_RUN_S the warm-up ends
    before RSS reaches its plateau (buffers and allocator arenas grow in steps until the run
    has seen its peak concurrency), so the limit is SHORT_RUN_RSS_LIMIT there.
    """
    if not samples:
        return {"ok": False, "detail": "no samples"}
    if duration < SHORT_RUN_S:
        limit_pct = max(limit_pct, SHORT_RUN_RSS_LIMIT)
    warm_end = 0.10 * duration
    window = max(0.05 * duration, 1.0)
    warm = [kb for t, kb in samples if warm_end <= t <= warm_end + window] or \
        [next((kb for t, kb in samples if t >= warm_end), samples[-1][1])]
    end = [kb for t, kb in samples if t >= duration - window] or [samples[-1][1]]
    warm_kb, end_kb = median(warm), median(end)
    growth = 100.0 * (end_kb - warm_kb) / warm_kb
    return {"samples": len(samples), "warmup_end_kb": warm_kb, "end_kb": end_kb,
            "peak_kb": max(kb for _, kb in samples), "first_kb": samples[0][1],
            "growth_pct": round(growth, 2), "limit_pct": limit_pct, "ok": growth < limit_pct}


def main():
    parser = argparse.ArgumentParser(
        description="Soak viscount under faulty mixed traffic and audit the result.")
    parser.add_argument("--binary", default=os.path.join(REPO, "build", "proxy", "viscount"))
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--out", default=os.path.join(REPO, "build", "soak"))
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--rss-limit", type=float, default=5.0,
                        help="largest allowed RSS growth after the warm-up, in percent "
                             f"(at least {SHORT_RUN_RSS_LIMIT} in runs under "
                             f"{SHORT_RUN_S // 60} minutes)")
    parser.add_argument("--rss-interval", type=float, default=2.0)
    parser.add_argument("--no-h2", action="store_true", help="HTTP/1 only, even if h2c answers")
    parser.add_argument("--sample-success", type=float, default=1.0,
                        help="logging.sample.success: the audit then expects exactly the lines "
                             "the sampling rule keeps, and every error's")
    parser.add_argument("--h2-mock", action="store_true",
                        help="test the soak itself: HTTP/2 traffic against h2_mock_proxy.py "
                             "instead of viscount")
    args = parser.parse_args()

    if not args.h2_mock and not os.access(args.binary, os.X_OK):
        sys.exit(f"soak: {args.binary} is not an executable (build it first)")
    os.makedirs(args.out, exist_ok=True)
    for name in ("access.log", "upstream-records.jsonl"):
        if os.path.exists(os.path.join(args.out, name)):
            os.remove(os.path.join(args.out, name))
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    duration = args.minutes * 60.0
    started = datetime.datetime.now(datetime.timezone.utc)
    say = print

    upstream, upstream_port = start_upstream(args.out)
    grpc_service, grpc_port = soak_grpc.start_service(PYTHON)
    config = write_config(args.out, upstream_port, grpc_port, args.sample_success)
    grpc_traffic = grpc_check = None
    if args.h2_mock:
        viscount = Viscount([PYTHON, os.path.join(HERE, "h2_mock_proxy.py"),
                             "--upstream-port", str(upstream_port),
                             "--access-log", os.path.join(args.out, "access.log"),
                             "--request-timeout", str(REQUEST_TIMEOUT_S)], args.out)
    else:
        viscount = Viscount([args.binary, "--config", config], args.out)
    try:
        viscount.wait_started()
        h2_ok, h2_detail = clients.probe_h2c(viscount.port)
        use_h2 = h2_ok and not args.no_h2
        if args.h2_mock:
            say("soak: SELF-TEST of the soak's HTTP/2 side against h2_mock_proxy.py, "
                "not viscount")
        say(f"soak: viscount pid {viscount.proc.pid} on 127.0.0.1:{viscount.port}, upstream on "
            f":{upstream_port}, {args.minutes:g} min, seed {seed}, output in {args.out}")
        if not h2_ok:
            say("soak: " + "!" * 70)
            say(f"soak: HTTP/2 NOT TESTED: viscount did not answer an h2c preface with SETTINGS "
                f"({h2_detail}). Running HTTP/1 only; the verdict will be FAIL "
                f"(--no-h2 asks for HTTP/1 only).")
            say("soak: " + "!" * 70)
        elif not use_h2:
            say("soak: HTTP/2 answers but --no-h2 was given: HTTP/1 only")

        recon = soak_checks.Reconciler(os.path.join(args.out, "access.log"),
                                       os.path.join(args.out, "upstream-records.jsonl"),
                                       REQUEST_TIMEOUT_S, args.sample_success)
        planner = Planner(run_id=f"s{seed % 46656:03x}")
        sampler = RssSampler(viscount, args.rss_interval)
        traffic = Traffic(viscount.port, planner, recon, use_h2, seed, h1=not args.h2_mock)
        sampler.start()
        traffic.start()
        if viscount.grpc_port is not None:  # not with --h2-mock
            grpc_traffic = soak_grpc.GrpcTraffic(viscount.grpc_port, seed, REQUEST_TIMEOUT_S,
                                                 planner.run_id)
            grpc_traffic.start()
        t_end = sampler.t0 + duration
        next_report = time.monotonic() + 30
        shown = {}  # problem examples printed so far, by category
        while time.monotonic() < t_end and viscount.proc.poll() is None:
            time.sleep(min(2.0, max(0.0, t_end - time.monotonic())))
            recon.poll()
            if time.monotonic() >= next_report:
                next_report += 30
                rss = sampler.samples[-1][1] if sampler.samples else "?"
                say(f"soak: {time.monotonic() - sampler.t0:6.0f}s  {traffic.count} requests  "
                    f"RSS {rss} kB  problems {dict(recon.stats.problems) or 0}", flush=True)
                # The first few examples of each kind of problem as they appear: a long run
                # can be looked into before it ends.
                for category, examples in list(recon.stats.examples.items()):
                    for example in examples[shown.get(category, 0):3]:
                        say(f"soak:   {category}: {example}", flush=True)
                    shown[category] = min(len(examples), 3)
        traffic_seconds = time.monotonic() - sampler.t0
        sampler.stop.set()
        sampler.join()
        traffic.stop.set()
        stuck = traffic.join(timeout=60)
        if grpc_traffic is not None:
            grpc_traffic.stop.set()
            grpc_traffic.join(60)
            if grpc_traffic.is_alive():
                stuck = (stuck or []) + ["grpc-traffic"]
        alive = viscount.proc.poll() is None

        # With the clients gone, every gauge of work in progress must fall back to zero.
        gauges, metrics = {}, {}
        deadline = time.monotonic() + 15
        while alive and time.monotonic() < deadline:
            metrics = viscount.metrics()
            gauges = {
                "upstream_requests_in_flight": metric_sum(
                    metrics, "viscount_upstream_requests_in_flight"),
                "upstream_queue_depth": metric_sum(metrics, "viscount_upstream_queue_depth"),
                "upstream_pool_waiters": metric_sum(metrics, "viscount_upstream_pool_waiters"),
                "upstream_connections_active": metric_sum(
                    metrics, "viscount_upstream_connections", state="active"),
                "downstream_connections": metric_sum(metrics, "viscount_downstream_connections"),
            }
            if not any(gauges.values()):
                break
            time.sleep(0.5)

        # Drain: SIGTERM, exit code 0 expected.
        exit_code = None
        if alive:
            viscount.proc.send_signal(signal.SIGTERM)
            try:
                exit_code = viscount.proc.wait(DRAIN_TIMEOUT_S + 15)
            except subprocess.TimeoutExpired:
                viscount.proc.kill()
                exit_code = "did not exit within the drain timeout + 15s"
        else:
            exit_code = viscount.proc.returncode
        time.sleep(0.5)
        recon.poll(final=True)
        if grpc_traffic is not None:
            grpc_check = soak_grpc.check(grpc_traffic, recon.grpc_lines,
                                         metric_sum(metrics, "viscount_grpc_requests_total"),
                                         args.sample_success)
    finally:
        if viscount.proc.poll() is None:
            viscount.proc.kill()
        upstream.terminate()
        grpc_service.terminate()
        grpc_service.wait(10)
        upstream.wait(10)

    report = build_report(args, seed, started, traffic_seconds, h2_ok, h2_detail, use_h2,
                          alive, sampler, exit_code, recon, metrics, gauges, stuck, traffic,
                          grpc_check)
    with open(os.path.join(args.out, "report.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    with open(os.path.join(args.out, "rss.csv"), "w", encoding="utf-8") as f:
        f.write("seconds,vmrss_kb\n")
        f.writelines(f"{t},{kb}\n" for t, kb in sampler.samples)
    text = summary_text(report)
    with open(os.path.join(args.out, "summary.txt"), "w", encoding="utf-8") as f:
        f.write(text)
    say(text, end="")
    return 0 if report["ok"] else 1


def build_report(args, seed, started, seconds, h2_ok, h2_detail, use_h2, alive, sampler,
                 exit_code, recon, metrics, gauges, stuck, traffic, grpc_check=None):
    s = recon.summary()
    log = s["log"]
    problems = s["problems"]
    dropped = metric_sum(metrics, "viscount_access_log_dropped_total")
    # Every line the sampling left out is one the audit expected missing: the counter says so too.
    sampled = (metric_sum(metrics, "viscount_access_log_sampled_out_total"),
               log.get("sampled_out_expected", 0) + (grpc_check or {}).get("sampled_out", 0))
    sampled += (sampled[1] + log.get("sampled_out_possible", 0),)  # aborts viscount finished
    viscount_requests = metric_sum(metrics, "viscount_requests_total")
    rss = rss_figures(sampler.samples, seconds, args.rss_limit)
    if args.h2_mock:
        rss.update(ok=True, limit_pct="not checked: the mock's memory says nothing of viscount")
    total = sum(s["by_outcome"].values())
    # What the access log should hold: one line per request that reached viscount, where a head
    # cut off by the client has a line with no path, and the h2c probe one line when viscount
    # answered it as HTTP/1.
    expected_min = log.get("expected_min", 0) + log.get("expected_head_abort_lines", 0) + \
        (0 if h2_ok else 1)
    expected_max = log.get("expected_max", 0) + log.get("expected_head_abort_lines", 0) + \
        (0 if h2_ok else 1)
    lines = log.get("lines", 0)
    # A protocol the run was asked to test and did not (viscount did not answer h2c, or no
    # request of it was ever made) fails the run: a green soak must mean every one was soaked.
    asked = ([] if args.h2_mock else ["HTTP/1.1", "HTTP/1.0"]) + ([] if args.no_h2 else ["HTTP/2"])
    requests_of = {proto: sum(s["by_protocol"].get(proto, {}).values()) for proto in asked}
    untested = [proto for proto in asked
                if requests_of[proto] == 0 or (proto == "HTTP/2" and not use_h2)]
    checks = {
        "protocols": {"ok": not untested,
                      "detail": ", ".join(f"{proto} {requests_of[proto]} requests"
                                          for proto in asked)
                                + (f"; NOT TESTED: {', '.join(untested)}" if untested else "")
                                + ("" if h2_ok or "HTTP/2" not in asked
                                   else f" (h2c probe: {h2_detail})")},
        "process_alive": {"ok": alive and sampler.died_at is None,
                          "detail": "alive throughout" if alive else
                          f"viscount died after {sampler.died_at}s"},
        "clean_exit": {"ok": exit_code == 0, "detail": f"exit code {exit_code} after SIGTERM"},
        "rss_growth": {"ok": rss.get("ok", False),
                       "detail": f"{rss.get('warmup_end_kb')} kB -> {rss.get('end_kb')} kB "
                                 f"({rss.get('growth_pct')}%, limit {rss.get('limit_pct')}%"
                                 + (", a short run" if seconds < SHORT_RUN_S else "") + ")"},
        "statuses": {"ok": problems.get("status", 0) == 0,
                     "detail": f"{problems.get('status', 0)} requests with a wrong or unexpected "
                               f"outcome; tolerated {s['tolerated'] or 'none'}"},
        "aborts": {"ok": problems.get("abort", 0) == 0,
                   "detail": f"{sum(s['aborts'].values())} planned aborts, "
                             f"{problems.get('abort', 0)} wrongly logged"},
        "access_log": {"ok": problems.get("log", 0) == 0 and expected_min <= lines <= expected_max
                       and dropped == 0 and log.get("unexpected_lines", 0) == 0
                       and sampled[1] <= sampled[0] <= sampled[2],
                       "detail": f"{lines} lines, expected {expected_min}"
                                 + (f"..{expected_max}" if expected_max != expected_min else "")
                                 + f"; {problems.get('log', 0)} requests with a log problem; "
                                   f"dropped {dropped:g}; sampled out {sampled[0]:g}, "
                                   f"expected {sampled[1]}..{sampled[2]}"},
        "ids": {"ok": problems.get("id", 0) == 0,
                "detail": f"{problems.get('id', 0)} id mismatches in "
                          f"{s['checked'].get('id_sets', 0)} requests checked"},
        "checksums": {"ok": problems.get("checksum", 0) == 0,
                      "detail": f"{problems.get('checksum', 0)} bad of "
                                f"{s['checked'].get('response_bodies', 0)} 2xx bodies and "
                                f"{s['checked'].get('uploads', 0)} uploads"},
        "upstream": {"ok": problems.get("upstream", 0) == 0,
                     "detail": f"{problems.get('upstream', 0)} requests seen wrongly upstream"},
        "gauges": {"ok": bool(gauges) and not any(gauges.values()),
                   "detail": json.dumps(gauges) if gauges else "no /metrics"},
        "soak_itself": {"ok": not traffic.crashes and not stuck,
                        "detail": f"{len(traffic.crashes)} client thread crashes, "
                                  f"stuck threads: {stuck or 'none'}"},
    }
    if grpc_check is not None:
        checks["grpc"] = {"ok": grpc_check["ok"], "detail": grpc_check["detail"]}
        if grpc_check["examples"]:
            s["examples"]["grpc"] = grpc_check["examples"]
    return {
        "ok": all(c["ok"] for c in checks.values()),
        "checks": checks,
        "run": {"binary": "h2_mock_proxy.py (self-test)" if args.h2_mock else args.binary,
                "minutes": args.minutes, "seed": seed,
                "started": started.isoformat(timespec="seconds"),
                "traffic_seconds": round(seconds, 1), "out": args.out,
                "http2": {"answered_h2c": h2_ok, "probe": h2_detail, "tested": use_h2},
                "config": {"workers": 2, "request_timeout_s": REQUEST_TIMEOUT_S,
                           "upstream_stall_s": STALL_S, "max_request_body_size": BODY_LIMIT}},
        "requests": {"total": total, "per_second": round(total / max(seconds, 1), 1),
                     "by_protocol": s["by_protocol"], "by_outcome": s["by_outcome"],
                     "by_fault": s["by_fault"], "aborts": s["aborts"]},
        "faults_injected": s["faults_injected"],
        "rss": rss,
        "access_log": {"lines": lines, "expected_min": expected_min,
                       "expected_max": expected_max, **log, "dropped_metric": dropped,
                       "viscount_requests_total": viscount_requests},
        "checked": s["checked"],
        "problems": problems,
        "examples": s["examples"],
        "client_thread_crashes": traffic.crashes,
    }


def summary_text(report):
    r, req, rss, log = report["run"], report["requests"], report["rss"], report["access_log"]
    out = []
    w = out.append
    w("=" * 78)
    if r["binary"].startswith("h2_mock"):
        w("SELF-TEST of the soak's HTTP/2 client against h2_mock_proxy.py: says nothing about "
          "viscount")
    w(f"viscount soak: {r['traffic_seconds']}s of traffic, seed {r['seed']}, "
      f"{req['total']} requests ({req['per_second']}/s)")
    h2 = r["http2"]
    if h2["tested"]:
        w("HTTP/2: tested (h2c prior knowledge)")
    else:
        w(f"HTTP/2: NOT TESTED ({'--no-h2' if h2['answered_h2c'] else h2['probe']})")
    w("requests by protocol and status/outcome:")
    for proto, counts in sorted(req["by_protocol"].items()):
        w(f"  {proto:9} " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    w("faults injected upstream (attempts): " + ", ".join(
        f"{k} {v}" for k, v in sorted(report["faults_injected"].items())))
    w("client aborts (planned -> outcome): " + (", ".join(
        f"{k} {v}" for k, v in sorted(req["aborts"].items())) or "none"))
    w(f"RSS: first {rss.get('first_kb')} kB, warm-up end {rss.get('warmup_end_kb')} kB, end "
      f"{rss.get('end_kb')} kB, peak {rss.get('peak_kb')} kB, growth {rss.get('growth_pct')}%")
    w(f"access log: {log['lines']} lines for {log.get('joined_lines', 0)} soak requests + "
      f"{log.get('head_abort_lines', 0)} cut heads (expected "
      f"{log.get('expected_head_abort_lines', 0)}) + {log.get('probe_lines', 0)} probe; "
      f"missing {log.get('missing', 0)}, extra {log.get('extra', 0)}, "
      f"dropped {log['dropped_metric']:g}")
    w("checks:")
    for name, c in report["checks"].items():
        w(f"  {'PASS' if c['ok'] else 'FAIL'}  {name:13} {c['detail']}")
    for category, examples in report["examples"].items():
        w(f"examples of {category} problems:")
        out.extend(f"    {e}" for e in examples[:10])
    for crash in report["client_thread_crashes"][:3]:
        w("client thread crash: " + crash)
    w(f"RESULT: {'PASS' if report['ok'] else 'FAIL'}  (report: {r['out']}/report.json)")
    w("=" * 78)
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())
