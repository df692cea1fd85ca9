"""What the soak's clients and its upstream agree on: faults, bodies, header names.

A request names its own fault and sizes in its query string (`/soak/<token>?f=<fault>&n=...`):
the client picks them at random, the upstream obeys, and the checker then knows exactly which
outcome each request must have. Bodies are slices of one random blob both sides can rebuild, and
every body carries its SHA-256 so a cut, shifted or mixed-up body is caught.
"""

import hashlib
import math
import random
import urllib.parse
import zlib

# Random bytes both processes build from the same seed: bodies are slices of it.
BLOB_SEED = 20261124
BLOB_SIZE = 9 * 1024 * 1024
_blob = None


def blob():
    global _blob
    if _blob is None:
        _blob = memoryview(random.Random(BLOB_SEED).randbytes(BLOB_SIZE))
    return _blob


def body_slice(key, n):
    """n bytes of the blob at an offset that depends on `key` (a token, or a token + "up")."""
    n = min(n, BLOB_SIZE)
    offset = zlib.crc32(key.encode()) % (BLOB_SIZE - n + 1)
    return blob()[offset:offset + n]


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


# --- faults the upstream injects, chosen per request by the client --------------------------------
#
# fault             the upstream, after reading the whole request       the client must see
# ok                200, Content-Length body                            200, body intact
# chunked           200, chunked body in random-sized chunks            200, body intact
# delay             sleeps d ms (under the request timeout), then ok    200, body intact
# close             ok with `connection: close`, then closes            200, body intact
# e500              500 with a small body                               that 500, passed on
# reset_head        TCP RST before any response byte                    502 upstream_reset
# garbage           a response that is not HTTP                         502 upstream_protocol_error
# stall_head        sleeps past the request timeout before the head     504 upstream_timeout
# reset_body        head, part of the body, then RST                    the response cut short
# truncate          head (Content-Length), part of the body, then FIN   the response cut short
# truncate_chunked  head (chunked), some chunks, FIN, no last chunk     the response cut short
# stall_body        head, part of the body, then past the timeout       the response cut short

CLEAN_FAULTS = ("ok", "chunked", "delay", "close")
CUT_FAULTS = ("reset_body", "truncate", "truncate_chunked", "stall_body")
FAULTS = CLEAN_FAULTS + ("e500", "reset_head", "garbage", "stall_head") + CUT_FAULTS

# The upstream echoes what it received in these response headers.
H_TOKEN = "x-soak-token"
H_ATTEMPT = "x-soak-attempt"              # 1 for the first time this token reached the upstream
H_BODY_SHA = "x-soak-body-sha256"         # of the response body it sends
H_UPLOAD_SHA = "x-soak-upload-sha256"     # of the request body it received
H_UPLOAD_BYTES = "x-soak-upload-bytes"
H_SAW = "x-soak-saw-"                     # + request-id, correlation-id, traceparent, user-id

# The context headers viscount owns (its defaults).
REQUEST_ID = "x-request-id"
CORRELATION_ID = "x-correlation-id"
USER_ID = "x-user-id"
TRACEPARENT = "traceparent"
CONTEXT_HEADERS = (REQUEST_ID, CORRELATION_ID, USER_ID, TRACEPARENT)


def soak_path(token, fault, n, delay_ms=0):
    query = {"f": fault, "n": n}
    if delay_ms:
        query["d"] = delay_ms
    return f"/soak/{token}?{urllib.parse.urlencode(query)}"


def parse_soak_path(target):
    """(token, {param: value}) for a soak path, (None, {}) for anything else."""
    path, _, query = target.partition("?")
    if not path.startswith("/soak/"):
        return None, {}
    params = {k: v[-1] for k, v in urllib.parse.parse_qs(query).items()}
    return path[len("/soak/"):], params


def sampling_keeps(fraction, trace_id, caller_sampled):
    """Whether `logging.sample.success: fraction` keeps a plain success's line: the rule of
    telemetry/log_sampling.cc, so the audit knows which lines must be missing, not roughly how
    many. A caller's sampled flag keeps it; else the trace id's rightmost 56 bits decide."""
    if fraction >= 1 or caller_sampled:
        return True
    return int(trace_id[-14:], 16) < int(math.ldexp(max(fraction, 0.0), 56))
