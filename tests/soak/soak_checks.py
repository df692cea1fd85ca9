"""Joins what the clients saw, what the upstream received and viscount's access log, and checks it.

Every request the soak sends has a unique token in its path (`/soak/<token>?...`). Three sources
mention it:

  client     the plan (what was sent: ids, body, fault, abort) and the result (what came back)
  upstream   one record per attempt that reached it (the ids it received, the body's SHA-256)
  log        viscount's access-log line(s) for it (the path carries the token)

`Reconciler` tails the log and the upstream's records while the soak runs, attaches them to the
client's entry by token, and checks each entry a few seconds after the client finished with it
(so late lines have arrived), then forgets it: memory stays flat over a long run. Lines without a
token are requests whose path viscount never learned (a head cut off by the client) or the h2c
probe; they are counted by kind and reconciled in totals.
"""

import collections
import json
import re
import threading
import time

import soak_common as common

GRACE_SECONDS = 5.0
ABORT_NOTICE_MS = 2000  # how much later than the client's abort its log line may end
MAX_EXAMPLES = 25

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[47][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")  # the default context.id_pattern
TRACEPARENT_RE = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")

# The contract's table: every status viscount makes itself, by error code.
CONTRACT_ERRORS = {
    "bad_request": 400, "headers_too_large": 431, "uri_too_long": 414, "body_too_large": 413,
    "request_header_timeout": 408, "not_implemented": 501, "version_not_supported": 505,
    "expectation_failed": 417, "upstream_connect_failed": 502, "upstream_reset": 502,
    "upstream_protocol_error": 502, "overloaded": 503, "pool_timeout": 503, "draining": 503,
    "upstream_connect_timeout": 504, "upstream_timeout": 504,
}
CLIENT_GONE_ERRORS = ("client_disconnected", "client_timeout")


class Entry:
    __slots__ = ("plan", "result", "lines", "recs", "t_done")

    def __init__(self):
        self.plan = None
        self.result = None
        self.lines = []
        self.recs = []
        self.t_done = None


class Tail:
    """Reads whole lines appended to a file since the last call."""

    def __init__(self, path):
        self.path = path
        self.file = None
        self.rest = b""

    def lines(self):
        if self.file is None:
            try:
                self.file = open(self.path, "rb")
            except FileNotFoundError:
                return []
        data = self.rest + self.file.read()
        *whole, self.rest = data.split(b"\n")
        out = []
        for raw in whole:
            if raw.strip():
                try:
                    out.append(json.loads(raw))
                except ValueError:
                    out.append({"unparsable": raw[:300].decode("latin-1")})
        return out


class Stats:
    """Counters and the first few examples of each kind of problem."""

    def __init__(self):
        self.by_protocol = collections.defaultdict(collections.Counter)
        self.by_outcome = collections.Counter()
        self.by_fault = collections.defaultdict(collections.Counter)
        self.aborts = collections.Counter()
        self.faults_injected = collections.Counter()   # from the upstream's records
        self.problems = collections.Counter()          # category -> entries with it
        self.examples = collections.defaultdict(list)
        self.tolerated = collections.Counter()
        self.log = collections.Counter()               # reconciliation counters
        self.checked = collections.Counter()

    def problem(self, category, token, message):
        self.problems[category] += 1
        if len(self.examples[category]) < MAX_EXAMPLES:
            self.examples[category].append(f"{token}: {message}")


class Reconciler:
    def __init__(self, access_log_path, records_path, request_timeout_s, sample_success=1.0):
        self.sample_success = sample_success  # logging.sample.success of the run
        self.log_tail = Tail(access_log_path)
        self.rec_tail = Tail(records_path)
        self.request_timeout_s = request_timeout_s
        self.entries = {}
        self.lock = threading.Lock()
        self.stats = Stats()
        self.grpc_lines = []  # the gRPC listener's lines, audited by soak_grpc.check

    # --- input ---------------------------------------------------------------------------------

    def client_done(self, plan, result):
        plan = dict(plan)
        plan.pop("upload", None)  # the bytes; their length and hash stay
        with self.lock:
            entry = self.entries.get(plan["token"])
            if entry is None:
                entry = self.entries[plan["token"]] = Entry()
            entry.plan = plan
            entry.result = result
            entry.t_done = time.monotonic()

    def _entry(self, token):
        entry = self.entries.get(token)
        if entry is None:
            entry = self.entries[token] = Entry()
        return entry

    def poll(self, final=False):
        """Reads new log lines and records, and checks the entries that are ready."""
        lines = self.log_tail.lines()
        recs = self.rec_tail.lines()
        now = time.monotonic()
        with self.lock:
            for rec in recs:
                token = rec.get("token")
                if token is None:
                    self.stats.log["upstream_records_without_token"] += 1
                    continue
                self.stats.faults_injected[rec.get("fault", "?")] += 1
                self._entry(token).recs.append(rec)
            for line in lines:
                if line.get("upstream") == "grpc":
                    self.grpc_lines.append(line)
                    continue
                self.stats.log["lines"] += 1
                token, _ = common.parse_soak_path(line.get("path") or "")
                if token is not None:
                    self._entry(token).lines.append(line)
                else:
                    self._unjoined(line)
            ready = [t for t, e in self.entries.items()
                     if e.plan is not None and (final or now - e.t_done >= GRACE_SECONDS)]
            for token in ready:
                self._check(token, self.entries.pop(token))
            if final:
                for token, entry in self.entries.items():
                    what = f"{len(entry.lines)} log line(s), {len(entry.recs)} upstream record(s)"
                    self.stats.problem("log", token, "no client sent this token: " + what)
                    self.stats.log["orphan_lines"] += len(entry.lines)
                self.entries.clear()

    def _unjoined(self, line):
        """A log line whose path has no token."""
        if line.get("method") == "PRI":
            self.stats.log["probe_lines"] += 1   # the h2c probe, when HTTP/2 is not spoken
        elif not line.get("path") and line.get("error") in CLIENT_GONE_ERRORS:
            self.stats.log["head_abort_lines"] += 1  # a head the client cut off
        else:
            self.stats.log["unexpected_lines"] += 1
            self.stats.problem("log", "-", "line for no soak request: " + json.dumps(line)[:300])

    # --- checking one request ------------------------------------------------------------------

    def _check(self, token, e):
        p, r, st = e.plan, e.result, self.stats
        outcome = r["outcome"]
        proto = p["proto"]
        label = outcome if outcome in ("cut", "aborted", "no_response", "timeout", "error",
                                       "unsent") else str(r["status"])
        st.by_protocol[proto][label] += 1
        st.by_outcome[outcome] += 1
        st.by_fault[p["fault"]][label] += 1
        if p.get("abort"):
            st.aborts[f"{p['abort']}{'+conn' if p.get('abort_conn') else ''}->{outcome}"] += 1

        problems = []  # (category, message)

        def problem(category, message):
            problems.append((category, message))

        self._check_log_count(p, r, e.lines, e.recs, problem)
        line = e.lines[0] if len(e.lines) == 1 else None
        if line is not None:
            self._check_log_line(p, r, line, e.recs, problem)
        if outcome in ("response", "cut"):
            self._check_response(p, r, line, problem)
        elif outcome == "aborted":
            if line is not None:
                self._check_abort(r, line, problem)
        elif outcome == "unsent":
            pass
        else:
            problem("status", f"{outcome}: {r['detail']} (fault {p['fault']}, {proto})")
        self._check_ids(p, r, line, e.recs, problem)
        self._check_upstream(p, r, line, e.recs, problem)

        for category in {c for c, _ in problems}:
            st.problem(category, token, "; ".join(m for c, m in problems if c == category)
                       + f" [{proto} {p['method']} f={p['fault']} outcome={outcome}"
                       f" status={r['status']}]")

    def _check_abort(self, r, line, problem):
        """An abort is logged as the client's doing, and noticed at once.

        viscount may also have finished (or failed) the response before the abort reached it:
        then the line has the status it sent and whatever error it had, but it must not be
        longer than the client's own wait. A line that ends long after the client left means
        the abort went unnoticed until something else (a timeout) ended the exchange.
        """
        waited_ms = (r["t1"] - r["t0"]) * 1000
        took_ms = line.get("duration_ms") or 0
        error = line.get("error")
        if error not in CLIENT_GONE_ERRORS and not line.get("status"):
            problem("abort", f"aborted request logged with error {error!r} and no status")
        if took_ms > waited_ms + ABORT_NOTICE_MS:
            problem("abort", f"abort noticed late: the log line ends {took_ms:.0f} ms after the "
                    f"start, the client left after {waited_ms:.0f} ms (error {error!r})")

    def _sampled_out(self, p, r, lines, recs):
        """Whether sampling must have left this request's line out ("yes"), may have ("maybe":
        the client aborted, and viscount may have finished the response first and logged a
        plain success), or must not (None). Exact for the rest, so a missing error line is never
        taken for a sampled one: a plain success as the client saw it, whose trace the rule
        drops, and no line with a viscount error written anyway."""
        if self.sample_success >= 1 or r["outcome"] not in ("response", "aborted") or \
                (r["status"] or 0) >= 400:
            return None
        if any(line.get("error") or (line.get("status") or 0) >= 400 for line in lines):
            return None  # viscount saw a failure the client did not: its line is kept
        traces = {m.group(1) for m in (TRACEPARENT_RE.match(v) for rec in recs
                                       for v in rec["ids"][common.TRACEPARENT]) if m}
        if len(traces) != 1:
            return None  # it never reached the upstream: not a success viscount could log
        kind, values = p["sent"].get("tp", (None, []))
        caller_sampled = kind == "valid" and values[0].endswith("-01")
        if common.sampling_keeps(self.sample_success, traces.pop(), caller_sampled):
            return None
        return "yes" if r["outcome"] == "response" else "maybe"

    def _check_log_count(self, p, r, lines, recs, problem):
        st = self.stats
        n = len(lines)
        sampled = self._sampled_out(p, r, lines, recs)
        if sampled == "yes":
            expected = (0, 0)
            st.log["sampled_out_expected"] += 1
        elif sampled == "maybe":
            expected = (0, 1)
            st.log["sampled_out_possible"] += n == 0
        elif not r["wire"]:
            expected = (0, 0)       # nothing reached viscount (or a GOAWAY refused the stream)
        elif p.get("abort") == "head" and r["outcome"] == "aborted":
            expected = (0, 0)       # its line has no path: counted as a head abort instead
            st.log["expected_head_abort_lines"] += 1
        elif r["outcome"] == "aborted" and p["proto"] == "HTTP/2" and not r.get("acked"):
            # The client dropped the connection right after sending this stream's HEADERS:
            # viscount may have closed before reading them. Either count is right.
            expected = (0, 1)
            st.log["streams_maybe_unseen"] += 1
        else:
            expected = (1, 1)
        st.log["expected_min"] += expected[0]
        st.log["expected_max"] += expected[1]
        st.log["joined_lines"] += n
        if n < expected[0]:
            st.log["missing"] += expected[0] - n
            problem("log", f"no access-log line (outcome {r['outcome']})")
        elif n > expected[1]:
            st.log["extra"] += n - expected[1]
            problem("log", f"{n} access-log lines, expected {expected[1]}")

    def _check_log_line(self, p, r, line, recs, problem):
        if line.get("method") != p["method"]:
            problem("log", f"log method {line.get('method')!r}")
        if line.get("protocol") != p["proto"]:
            problem("log", f"log protocol {line.get('protocol')!r}, client spoke {p['proto']}")
        outcome = r["outcome"]
        if outcome in ("response", "cut") and line.get("status") != r["status"]:
            problem("log", f"log status {line.get('status')} but the client got {r['status']}")
        if outcome == "response" and r["status"] and p["method"] != "HEAD" \
                and line.get("bytes_out") != r["body_len"]:
            problem("log", f"log bytes_out {line.get('bytes_out')}, client read {r['body_len']}")
        if p.get("upload_len") is not None and r["upload_done"] and outcome == "response" \
                and not p.get("oversize") and r["hdr"].get(common.H_TOKEN) \
                and line.get("bytes_in") != p["upload_len"]:
            problem("log", f"log bytes_in {line.get('bytes_in')}, client sent {p['upload_len']}")
        if line.get("attempts", 0) < len(recs):
            problem("log", f"log attempts {line.get('attempts')} < {len(recs)} upstream records")
        if outcome == "response" and r["hdr"].get(common.H_TOKEN) and \
                line.get("attempts") != len(recs):
            problem("log", f"log attempts {line.get('attempts')} != {len(recs)} upstream records")

    def _check_response(self, p, r, line, problem):
        """The status against the fault injected and the contract's table; bodies on 2xx."""
        st = self.stats
        status, outcome, fault = r["status"], r["outcome"], p["fault"]
        from_upstream = common.H_TOKEN in r["hdr"]
        if r["rid_copies"] != 1:
            problem("id", f"{r['rid_copies']} x-request-id headers in the response")
        if from_upstream:
            if r["hdr"][common.H_TOKEN] != p["token"]:
                problem("id", f"response for token {r['hdr'][common.H_TOKEN]} (a mixed-up body)")
            expected_status = 500 if fault == "e500" else 200
            if status != expected_status:
                problem("status", f"upstream status {status}, it sent {expected_status}")
        else:
            local = r["local"] or {}
            code = local.get("error")
            if CONTRACT_ERRORS.get(code) != status:
                problem("status", f"status {status} with error {code!r} is not in the contract")
            if not r["hdr"].get("content-type", "").startswith("application/json") or \
                    "proxy-status" not in r["hdr"]:
                problem("status", "local reply without content-type json or proxy-status")
            if status == 503 and "retry-after" not in r["hdr"]:
                problem("status", "503 without retry-after")
            if local.get("request_id") != r["hdr"].get("x-request-id"):
                problem("id", f"error body request_id {local.get('request_id')!r} != header "
                        f"{r['hdr'].get('x-request-id')!r}")
            if line is not None and line.get("error") != code:
                problem("log", f"log error {line.get('error')!r}, reply said {code!r}")

        # What this fault must produce.
        if p.get("oversize"):
            want = {("response", 413, "body_too_large")}
        elif p.get("bad_framing"):
            want = {("response", 400, "bad_request")}
        elif fault in common.CLEAN_FAULTS:
            want = {("response", 200, None)}
        elif fault == "e500":
            want = {("response", 500, None)}
        elif fault == "reset_head":
            want = {("response", 502, "upstream_reset")}
        elif fault == "garbage":
            want = {("response", 502, "upstream_protocol_error")}
        elif fault == "stall_head":
            want = {("response", 504, "upstream_timeout")}
        elif fault == "stall_body":
            want = {("cut", 200, "upstream_timeout")}
        elif fault == "reset_body":
            # An RST can overtake the head in viscount's receive queue: then it is a 502.
            want = {("cut", 200, "upstream_reset"), ("response", 502, "upstream_reset")}
        else:  # truncate, truncate_chunked
            want = {("cut", 200, "upstream_reset")}
        error = (r["local"] or {}).get("error") if not from_upstream else None
        if outcome == "cut":
            error = line.get("error") if line else "?"
        got = (outcome, status, error)
        if got not in want:
            duration = (line or {}).get("duration_ms") or 0
            if got[1:] == (504, "upstream_timeout") and \
                    duration >= 900 * self.request_timeout_s:
                # The request really outlived its budget (a loaded machine): the contract's
                # answer, not a proxy fault. Counted, not failed.
                st.tolerated["504 after the full request timeout"] += 1
            else:
                problem("status", f"got {got}, fault {fault} must give one of "
                        f"{sorted(want, key=str)} ({r['detail']})".replace(" ()", ""))

        # Bodies: every 2xx is checked end to end, and so is the upload the upstream received.
        if outcome == "response" and 200 <= status < 300 and from_upstream:
            st.checked["response_bodies"] += 1
            if r["body_sha"] != r["hdr"].get(common.H_BODY_SHA) or r["body_len"] != p["n"]:
                problem("checksum", f"response body {r['body_len']} bytes, sha {r['body_sha']}, "
                        f"upstream sent {p['n']} bytes, sha {r['hdr'].get(common.H_BODY_SHA)}")
        if from_upstream and p.get("upload_len") is not None:
            st.checked["uploads"] += 1
            if r["hdr"].get(common.H_UPLOAD_SHA) != p["upload_sha"] or \
                    r["hdr"].get(common.H_UPLOAD_BYTES) != str(p["upload_len"]):
                problem("checksum", f"upload of {p['upload_len']} bytes arrived as "
                        f"{r['hdr'].get(common.H_UPLOAD_BYTES)} bytes with another sha")

    def _check_ids(self, p, r, line, recs, problem):
        """The same ids in the response, at the upstream and in the log; the sent ones honoured."""
        st = self.stats
        if line is None and not recs:
            return
        st.checked["id_sets"] += 1
        rid = line.get("request_id") if line else None
        cid = line.get("correlation_id") if line else None
        resp_rid = r["hdr"].get("x-request-id")
        resp_cid = r["hdr"].get("x-correlation-id")
        if line is not None and r["outcome"] in ("response", "cut"):
            if resp_rid != rid:
                problem("id", f"response x-request-id {resp_rid!r} != log {rid!r}")
            if resp_cid != cid:
                problem("id", f"response x-correlation-id {resp_cid!r} != log {cid!r}")
        saw = r["hdr"].get(common.H_SAW + "request-id")
        if saw is not None and saw != resp_rid:
            problem("id", f"upstream saw request id {saw!r}, response says {resp_rid!r}")
        for rec in recs:
            ids = rec["ids"]
            for name in (common.REQUEST_ID, common.CORRELATION_ID, common.TRACEPARENT):
                if len(ids[name]) != 1:
                    problem("id", f"upstream got {len(ids[name])} copies of {name}")
            if len(ids[common.USER_ID]) > 1:
                problem("id", f"upstream got {len(ids[common.USER_ID])} copies of x-user-id")
            if line is None:
                continue
            if ids[common.REQUEST_ID][:1] != [rid]:
                problem("id", f"upstream saw request id {ids[common.REQUEST_ID]} != log {rid!r}")
            if ids[common.CORRELATION_ID][:1] != [cid]:
                problem("id", f"upstream saw correlation id {ids[common.CORRELATION_ID]} != "
                        f"log {cid!r}")
            uid = ids[common.USER_ID][0] if ids[common.USER_ID] else None
            if uid != line.get("user_id"):
                problem("id", f"upstream saw user id {uid!r} != log {line.get('user_id')!r}")
            tp = TRACEPARENT_RE.match(ids[common.TRACEPARENT][0] if ids[common.TRACEPARENT]
                                      else "")
            if not tp:
                problem("id", f"upstream got no valid traceparent: {ids[common.TRACEPARENT]}")
            elif (tp.group(1), tp.group(2)) != (line.get("trace_id"), line.get("span_id")):
                problem("id", f"upstream traceparent {tp.group(0)} != log trace "
                        f"{line.get('trace_id')}/{line.get('span_id')}")
        if line is None or p.get("bad_framing"):
            return  # (a request refused while parsing never reached the context filters)

        # What the client sent: kept from a trusted source when well-formed, replaced otherwise.
        sent = p["sent"]
        trusted = p["source"] == "127.0.0.1"
        for key, value, name in (("rid", rid, "request id"), ("cid", cid, "correlation id")):
            kind, sent_values = sent.get(key, (None, []))
            if trusted and kind == "valid":
                if value != sent_values[0]:
                    problem("id", f"trusted {name} {sent_values[0]!r} replaced by {value!r}")
            elif value in sent_values or not (value and UUID_RE.match(value)):
                problem("id", f"{name} {value!r} kept or malformed (sent {kind} "
                        f"{sent_values}, trusted={trusted})")
        if rid == cid:
            problem("id", "request id == correlation id")
        kind, sent_values = sent.get("uid", (None, []))
        want_uid = sent_values[0] if trusted and kind == "valid" else None
        if line.get("user_id") != want_uid:
            problem("id", f"log user_id {line.get('user_id')!r}, expected {want_uid!r} "
                    f"(sent {kind}, trusted={trusted})")
        kind, sent_values = sent.get("tp", (None, []))
        if kind == "valid":
            sent_tp = TRACEPARENT_RE.match(sent_values[0])
            if line.get("trace_id") != sent_tp.group(1):
                problem("id", f"trace {sent_tp.group(1)} not continued: {line.get('trace_id')}")
            if line.get("span_id") == sent_tp.group(2):
                problem("id", "span id not renewed")

    def _check_upstream(self, p, r, line, recs, problem):
        """How many times the upstream saw the request, and what it received."""
        fault = p["fault"]
        n = len(recs)
        if p.get("oversize") or p.get("bad_framing") or not r["wire"]:
            if n:
                problem("upstream", f"the upstream saw a request viscount should not send ({n})")
            return
        if r["outcome"] in ("response", "cut"):
            retryable = fault == "reset_head" and p["method"] in ("GET", "PUT")
            if n < 1 or n > (2 if retryable else 1):
                problem("upstream", f"upstream saw it {n} times")
        for rec in recs:
            if rec.get("forwarded_for") != [p["source"]]:
                problem("upstream",
                        f"x-forwarded-for {rec.get('forwarded_for')} from {p['source']}")
            if rec.get("body_complete") and p.get("upload_len") is not None and \
                    rec.get("upload_sha256") != p["upload_sha"]:
                problem("checksum", f"upstream attempt {rec.get('attempt')} received "
                        f"{rec.get('upload_bytes')} bytes, not the body sent")
            if rec.get("body_complete") is False and r["outcome"] != "aborted":
                problem("upstream", "the upstream got a cut request body")

    # --- totals --------------------------------------------------------------------------------

    def summary(self):
        st = self.stats
        return {
            "by_protocol": {k: dict(v) for k, v in st.by_protocol.items()},
            "by_outcome": dict(st.by_outcome),
            "by_fault": {k: dict(v) for k, v in st.by_fault.items()},
            "aborts": dict(st.aborts),
            "faults_injected": dict(st.faults_injected),
            "problems": dict(st.problems),
            "tolerated": dict(st.tolerated),
            "checked": dict(st.checked),
            "log": dict(st.log),
            "examples": {k: v for k, v in st.examples.items()},
        }
