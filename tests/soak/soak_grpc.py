"""gRPC in the soak: calls through viscount's second listener to a grpcio service
(tests/e2e/grpc_service.py, its own process), with faults the service or the client injects,
and the audit of what each call got against its access-log line and /metrics.

Faults, chosen at random per call (each call has its own x-request-id token):
    ok        unary echo of up to 64 KiB, byte-exact
    status    the service fails the call with a random status code
    timeout   the service sleeps past the upstream's request timeout -> DEADLINE_EXCEEDED
    deadline  the client's own deadline (grpc-timeout 300 ms) against a 1 s handler
    cancel    the client cancels while the service sleeps -> client_disconnected, no status
    stream    server-streaming of 200 messages
    bidi      bidirectional streaming echo of 20 messages, byte-exact
"""

import collections
import os
import random
import subprocess
import sys
import threading
import time

import grpc

import soak_common as common

HERE = os.path.dirname(os.path.abspath(__file__))
SERVICE = os.path.join(HERE, "..", "e2e", "grpc_service.py")

FAULTS = {"ok": 40, "status": 20, "timeout": 3, "deadline": 8, "cancel": 6, "stream": 12,
          "bidi": 11}
CODES = [c for c in grpc.StatusCode if c != grpc.StatusCode.OK]


def start_service(python):
    proc = subprocess.Popen([python, SERVICE], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    line = proc.stdout.readline().decode().strip()
    if not line.isdigit():
        proc.kill()
        sys.exit(f"soak: the gRPC service did not start: {line!r}")
    return proc, int(line)


class GrpcTraffic(threading.Thread):
    def __init__(self, port, seed, request_timeout_s, run_id):
        super().__init__(name="grpc-traffic", daemon=True)
        self.port = port
        self.rng = random.Random(seed ^ 0x67727063)
        self.request_timeout_s = request_timeout_s
        self.run_id = run_id
        self.stop = threading.Event()
        self.calls = {}  # token -> (fault, expected codes, got code, problem or None)
        self.traces = {}  # token -> the trace id its traceparent (flag 00, not sampled) named
        self.crashes = []

    def run(self):
        try:
            with grpc.insecure_channel(f"127.0.0.1:{self.port}") as channel:
                n = 0
                while not self.stop.is_set():
                    n += 1
                    token = f"{self.run_id}-g{n:06d}"
                    fault = self.rng.choices(list(FAULTS), weights=list(FAULTS.values()))[0]
                    self.calls[token] = self.one(channel, token, fault)
        except Exception as e:  # noqa: BLE001 - reported as a soak failure
            self.crashes.append(repr(e))

    def one(self, channel, token, fault):
        rng = self.rng
        # A trace the caller does not sample: with logging.sample.success below 1 its id alone
        # says whether a successful call's line is written (common.sampling_keeps).
        trace = f"{rng.getrandbits(128) | 1:032x}"
        self.traces[token] = trace
        md = (("x-request-id", token),
              ("traceparent", f"00-{trace}-{rng.getrandbits(64) | 1:016x}-00"))
        try:
            if fault == "ok":
                payload = rng.randbytes(rng.randrange(0, 64 << 10))
                got = channel.unary_unary("/test.Svc/Echo")(payload, metadata=md, timeout=30)
                return fault, {"OK"}, "OK", None if got == payload else "echo differs"
            if fault == "status":
                code = rng.choice(CODES)
                channel.unary_unary("/test.Svc/Fail")(code.name.encode(), metadata=md,
                                                        timeout=30)
                return fault, {code.name}, "OK", "the failing call succeeded"
            if fault == "timeout":
                seconds = str(self.request_timeout_s + 1).encode()
                channel.unary_unary("/test.Svc/Sleep")(seconds, metadata=md, timeout=30)
                return fault, {"DEADLINE_EXCEEDED"}, "OK", "the hanging call succeeded"
            if fault == "deadline":
                channel.unary_unary("/test.Svc/Sleep")(b"1", metadata=md, timeout=0.3)
                return fault, {"DEADLINE_EXCEEDED"}, "OK", "the call outlived its deadline"
            if fault == "cancel":
                future = channel.unary_unary("/test.Svc/Sleep").future(b"1", metadata=md,
                                                                       timeout=30)
                time.sleep(0.05)
                future.cancel()
                return fault, {"CANCELLED"}, "CANCELLED", None
            if fault == "stream":
                size = rng.randrange(1, 4096)
                count = 0
                for i, m in enumerate(channel.unary_stream("/test.Svc/Stream")(
                        f"200,{size}".encode(), metadata=md, timeout=30)):
                    if m != (i % 256).to_bytes(1, "big") * size:
                        return fault, {"OK"}, "OK", f"message {i} differs"
                    count += 1
                return fault, {"OK"}, "OK", None if count == 200 else f"{count} messages"
            messages = [rng.randbytes(rng.randrange(0, 20000)) for _ in range(20)]
            got = list(channel.stream_stream("/test.Svc/Bidi")(iter(messages), metadata=md,
                                                               timeout=30))
            return fault, {"OK"}, "OK", None if got == messages else "bidi echo differs"
        except grpc.RpcError as e:
            return fault, None, e.code().name, None
        except grpc.FutureCancelledError:
            return fault, {"CANCELLED"}, "CANCELLED", None


def check(traffic, lines, metrics_sum, sample_success=1.0):
    """The `grpc` check: every call got the status its fault calls for, has one access-log
    line whose grpc_status says the same (none for a successful call the sampling drops), and
    /metrics counted every status, logged or sampled out."""
    problems, examples = collections.Counter(), []
    by_fault = collections.Counter()
    sampled_out = 0  # successful calls whose lines the sampling rule leaves out
    by_token = collections.defaultdict(list)
    for line in lines:
        by_token[line.get("request_id")].append(line)

    def problem(kind, token, text):
        problems[kind] += 1
        if len(examples) < 10:
            examples.append(f"{token}: {text}")

    for token, (fault, expected, got, note) in traffic.calls.items():
        by_fault[fault] += 1
        if expected is None:  # the call failed: was it the failure the fault calls for?
            expected = {"ok": {"OK"}, "timeout": {"DEADLINE_EXCEEDED"},
                        "deadline": {"DEADLINE_EXCEEDED"}, "cancel": {"CANCELLED"},
                        "stream": {"OK"}, "bidi": {"OK"}}.get(fault, set())
            if fault == "status":
                expected = {got} if got in {c.name for c in CODES} else set()
        if got not in expected or note:
            problem("status", token, f"{fault}: got {got}, expected {sorted(expected)} {note or ''}")
        found = by_token.pop(token, [])
        if fault == "cancel" and not found:
            continue  # cancelled before the request left the client
        if got == "OK" and not note and not found and \
                not common.sampling_keeps(sample_success, traffic.traces[token], False):
            sampled_out += 1
            continue
        if len(found) != 1:
            problem("log", token, f"{fault}: {len(found)} access-log lines")
            continue
        line = found[0]
        status = line.get("grpc_status")
        if fault == "cancel":
            # The client went first: no status reached it (or the service answered just before).
            if line.get("error") != "client_disconnected" and status is None:
                problem("log", token, f"cancel logged as {line.get('error')}")
        elif fault == "deadline":
            # viscount ends the call before the client's deadline; a client quicker than that
            # under load shows as client_disconnected.
            if status != 4 and line.get("error") != "client_disconnected":
                problem("log", token, f"deadline logged with grpc_status {status}")
        elif status != grpc.StatusCode[got].value[0]:
            problem("log", token, f"{fault}: client got {got}, log says grpc_status {status}")
    for token, extra in by_token.items():
        problem("log", token, f"{len(extra)} access-log line(s) for no call")
    logged = sum(1 for line in lines if line.get("grpc_status") is not None)
    if metrics_sum != logged + sampled_out:
        problem("metrics", "-", f"viscount_grpc_requests_total {metrics_sum:g}, "
                                f"{logged} lines with a grpc_status + {sampled_out} sampled out")
    ok = not problems and not traffic.crashes and len(traffic.calls) > 0
    detail = (f"{len(traffic.calls)} calls ({', '.join(f'{k} {v}' for k, v in sorted(by_fault.items()))}); "
              + (f"{sampled_out} lines sampled out; " if sample_success < 1 else "")
              + f"problems {dict(problems) or 0}"
              + (f"; client crash {traffic.crashes[0]}" if traffic.crashes else ""))
    return {"ok": ok, "detail": detail, "examples": examples, "sampled_out": sampled_out}
