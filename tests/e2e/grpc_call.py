"""One gRPC call as a separate process, so a test can read what the client library prints on
stderr (metadata parse errors and the like) beside the outcome.

    python3 grpc_call.py TARGET METHOD PAYLOAD [TIMEOUT_SECONDS]

prints one JSON object: code (the status name), details, initial and trailing metadata, elapsed
seconds.
"""

import json
import sys
import time

import grpc


def main():
    target, method, payload = sys.argv[1:4]
    timeout = float(sys.argv[4]) if len(sys.argv) > 4 else None
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(f"/test.Svc/{method}")
        start = time.monotonic()
        out = {}
        try:
            _, info = call.with_call(payload.encode(), timeout=timeout)
            out["code"] = info.code().name
            out["details"] = info.details()
            out["initial_metadata"] = [list(m) for m in info.initial_metadata()]
            out["trailing_metadata"] = [list(m) for m in info.trailing_metadata()]
        except grpc.RpcError as e:
            out["code"] = e.code().name
            out["details"] = e.details()
            out["initial_metadata"] = [list(m) for m in (e.initial_metadata() or ())]
            out["trailing_metadata"] = [list(m) for m in (e.trailing_metadata() or ())]
        out["elapsed"] = time.monotonic() - start
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
