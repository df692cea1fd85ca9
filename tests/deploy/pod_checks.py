"""Checks for tests/deploy/pod_test.sh: what came back to a client, what the app saw, and the
access-log and event-log lines viscount wrote. Each command exits non-zero with one message per
miss, so the shell script stays a list of steps.

    pod_checks.py response RESULT.json [--id ID] [--user USER] [--bytes N]
    pod_checks.py access-log STDOUT.log --id ID [--field NAME=JSON]...
    pod_checks.py untrusted STDOUT.log --sent ID --got ID
    pod_checks.py app-log APP.log --id ID --path PATH
    pod_checks.py events STDERR.log --event NAME...

RESULT.json is {"status": int, "headers": {lower-case name: value}, "body": text}, written by
the `fetch` command (also usable inside the app container, which has python3 but no curl):

    pod_checks.py fetch URL [--header NAME:VALUE]... [--data TEXT] [--timeout S]
"""

import argparse
import ipaddress
import json
import re
import sys
import urllib.error
import urllib.request

# The access-log schema of docs/reference.md: field -> the JSON types it may have.
ACCESS_LOG_FIELDS = {
    "ts": (str,),
    "request_id": (str,),
    "correlation_id": (str,),
    "user_id": (str, type(None)),
    "trace_id": (str, type(None)),
    "span_id": (str, type(None)),
    "method": (str,),
    "path": (str,),
    "protocol": (str,),
    "status": (int,),
    "duration_ms": (int, float),
    "upstream_ms": (int, float, type(None)),
    "bytes_in": (int,),
    "bytes_out": (int,),
    "client_address": (str,),
    "upstream": (str,),
    "upstream_address": (str,),
    "error": (str, type(None)),
    "attempts": (int,),
}
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class Misses:
    def __init__(self, what):
        self.what = what
        self.items = []

    def expect(self, condition, message):
        if not condition:
            self.items.append(message)

    def done(self):
        if self.items:
            sys.exit(f"{self.what}:\n  " + "\n  ".join(self.items))


def json_lines(path, stream):
    """Every line of a log stream must be one JSON object: that is the contract."""
    records = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                sys.exit(f"{stream} line {number} is not JSON ({error}): {line.rstrip()[:200]}")
            if not isinstance(record, dict):
                sys.exit(f"{stream} line {number} is not a JSON object: {line.rstrip()[:200]}")
            records.append(record)
    return records


def fetch(args):
    request = urllib.request.Request(args.url, method="POST" if args.data is not None else "GET",
                                     data=None if args.data is None else args.data.encode())
    for header in args.header:
        name, _, value = header.partition(":")
        request.add_header(name.strip(), value.strip())
    try:
        with urllib.request.urlopen(request, timeout=args.timeout) as response:
            status, headers, body = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, headers, body = error.code, error.headers, error.read()
    print(json.dumps({"status": status,
                      "headers": {k.lower(): v for k, v in headers.items()},
                      "body": body.decode("utf-8", "replace")}))


def response(args):
    with open(args.result, encoding="utf-8") as f:
        result = json.load(f)
    misses = Misses(f"response check failed ({args.result})")
    misses.expect(result["status"] == 200, f"status {result['status']}, expected 200")
    returned = result["headers"].get("x-request-id")
    misses.expect(returned is not None, "no x-request-id on the response")
    try:
        seen = json.loads(result["body"])["context_seen"]
    except (ValueError, KeyError, TypeError):
        misses.expect(False, f"the body is not the demo app's JSON: {result['body'][:200]}")
        misses.done()
    misses.expect(seen["x_request_id"] == returned,
                  f"the app saw x-request-id {seen['x_request_id']!r}, the client got "
                  f"{returned!r}")
    misses.expect(seen["x_correlation_id"] == result["headers"].get("x-correlation-id"),
                  "the app saw another x-correlation-id than the client got")
    misses.expect(bool(seen["traceparent"]), "the app got no traceparent")
    if args.id is not None:
        misses.expect(returned == args.id, f"sent x-request-id {args.id!r}, got back {returned!r}")
    else:
        misses.expect(returned is not None and UUID.match(returned),
                      f"a generated x-request-id should be a uuid4, got {returned!r}")
    if args.user is not None:
        misses.expect(seen["x_user_id"] == args.user,
                      f"the app saw x-user-id {seen['x_user_id']!r}, expected {args.user!r}")
    if args.bytes is not None:
        got = json.loads(result["body"]).get("bytes")
        misses.expect(got == args.bytes, f"the app read {got} body bytes, expected {args.bytes}")
    misses.done()
    print(returned)


def access_lines(path, request_id):
    lines = [r for r in json_lines(path, "viscount stdout") if r.get("request_id") == request_id]
    if len(lines) != 1:
        sys.exit(f"expected one access-log line with request_id {request_id!r}, "
                 f"found {len(lines)}")
    return lines[0]


def access_log(args):
    line = access_lines(args.log, args.id)
    misses = Misses(f"access-log line for {args.id} does not match the contract")
    missing = set(ACCESS_LOG_FIELDS) - set(line)
    misses.expect(not missing, f"fields missing: {sorted(missing)}")
    for field, types in ACCESS_LOG_FIELDS.items():
        if field in line:
            value = line[field]
            ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
            misses.expect(ok, f"{field}={value!r} is not {'/'.join(t.__name__ for t in types)}")
    misses.expect(bool(TS.match(str(line.get("ts")))), f"ts {line.get('ts')!r} is not RFC 3339 "
                  "UTC with milliseconds")
    if line.get("trace_id") is not None:
        misses.expect(bool(re.fullmatch(r"[0-9a-f]{32}", line["trace_id"])), "trace_id not hex32")
    if line.get("span_id") is not None:
        misses.expect(bool(re.fullmatch(r"[0-9a-f]{16}", line["span_id"])), "span_id not hex16")
    if isinstance(line.get("upstream_ms"), (int, float)):
        misses.expect(0 <= line["upstream_ms"] <= line["duration_ms"],
                      "upstream_ms must lie between 0 and duration_ms")
    for expectation in args.field:
        name, _, wanted = expectation.partition("=")
        wanted_value = json.loads(wanted)
        misses.expect(line.get(name) == wanted_value,
                      f"{name}={line.get(name)!r}, expected {wanted_value!r}")
    misses.done()
    print(json.dumps(line))


def untrusted(args):
    """An id sent from outside the pod is kept only if viscount saw a trusted (loopback) peer."""
    line = access_lines(args.log, args.got)
    host = line["client_address"].rsplit(":", 1)[0].strip("[]")
    loopback = ipaddress.ip_address(host).is_loopback
    if loopback and args.got != args.sent:
        sys.exit(f"a loopback caller's x-request-id {args.sent!r} was replaced by {args.got!r}")
    if not loopback and args.got == args.sent:
        sys.exit(f"the x-request-id of {host}, not in trusted_sources, was kept")
    print(host)


def app_log(args):
    lines = [r for r in json_lines(args.log, "app stdout") if r.get("x_request_id") == args.id]
    if len(lines) != 1 or lines[0].get("path") != args.path:
        sys.exit(f"the app's log should have one {args.path} line with x_request_id "
                 f"{args.id!r}: {lines}")


def events(args):
    records = json_lines(args.log, "viscount stderr")
    seen = [r.get("event") for r in records]
    misses = Misses("viscount's event log (stderr)")
    misses.expect(all("ts" in r and "level" in r and "event" in r for r in records),
                  "every event line needs ts, level and event")
    for name in args.event:
        misses.expect(name in seen, f"no {name!r} event; saw {seen}")
    misses.done()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("fetch")
    p.add_argument("url")
    p.add_argument("--header", action="append", default=[])
    p.add_argument("--data")
    p.add_argument("--timeout", type=float, default=10)
    p.set_defaults(run=fetch)
    p = commands.add_parser("response")
    p.add_argument("result")
    p.add_argument("--id")
    p.add_argument("--user")
    p.add_argument("--bytes", type=int)
    p.set_defaults(run=response)
    p = commands.add_parser("access-log")
    p.add_argument("log")
    p.add_argument("--id", required=True)
    p.add_argument("--field", action="append", default=[])
    p.set_defaults(run=access_log)
    p = commands.add_parser("untrusted")
    p.add_argument("log")
    p.add_argument("--sent", required=True)
    p.add_argument("--got", required=True)
    p.set_defaults(run=untrusted)
    p = commands.add_parser("app-log")
    p.add_argument("log")
    p.add_argument("--id", required=True)
    p.add_argument("--path", required=True)
    p.set_defaults(run=app_log)
    p = commands.add_parser("events")
    p.add_argument("log")
    p.add_argument("--event", action="append", default=[])
    p.set_defaults(run=events)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
