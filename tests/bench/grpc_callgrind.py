#!/usr/bin/python3
"""Instructions per request of a unary gRPC call through viscount beside a plain HTTP/2 request,
counted by callgrind (deterministic, unlike CPU time on a shared machine).

    tests/bench/grpc_callgrind.py BINARY [BINARY...]   (N=1000 by default)

For each binary: viscount (one worker) runs under `valgrind --tool=callgrind` with instrumentation
off; after a warm-up, collection is switched on for N sequential unary calls of
/test.Svc/Echo (grpcio, 16-byte message, to tests/e2e/grpc_service.py), dumped, then for N
sequential HTTP/2 POSTs of 16 bytes (httpx, to tests/e2e/h2_upstream.py's /echo-body). Prints
instructions per request for each. Compare binaries built the same way (RelWithDebInfo).
"""

import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))

import grpc  # noqa: E402
import httpx  # noqa: E402

from grpc_service import start_grpc_service  # noqa: E402
from h2_upstream import H2Upstream  # noqa: E402
from viscount_process import to_yaml, wait_until  # noqa: E402

N = int(os.environ.get("N", "1000"))


def total_ir(path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("totals:"):
                return int(line.split()[1])
    raise RuntimeError(f"no totals in {path}")


def measure(binary):
    server, grpc_port, _ = start_grpc_service()
    h2 = H2Upstream()
    work = tempfile.mkdtemp(prefix="viscount-callgrind-")
    port_grpc, port_h2 = free(), free()
    config = {
        "workers": 1, "watch_config": False, "io_uring": False,
        "listeners": [
            {"name": "grpc", "address": f"127.0.0.1:{port_grpc}", "upstream": "grpc"},
            {"name": "h2", "address": f"127.0.0.1:{port_h2}", "upstream": "h2"}],
        "upstreams": [{"name": "grpc", "url": f"h2c://127.0.0.1:{grpc_port}"},
                      {"name": "h2", "url": f"h2c://127.0.0.1:{h2.port}"}],
        "logging": {"access_log": os.path.join(work, "access.log"), "format": "json",
                    "level": "warn"},
        "admin": {"address": "off"},
    }
    path = os.path.join(work, "viscount.yaml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(to_yaml(config) + "\n")
    out = os.path.join(work, "callgrind.out")
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", "--instr-atstart=no",
                             f"--callgrind-out-file={out}", binary, "--config", path],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{port_grpc}")
        echo = channel.unary_unary("/test.Svc/Echo")
        wait_until(lambda: try_call(echo), timeout=60, what="viscount under valgrind")
        client = httpx.Client(http1=False, http2=True, timeout=30)
        payload = b"0123456789abcdef"
        for _ in range(50):  # warm-up: connections, pools, buffers
            echo(payload, timeout=30)
            client.post(f"http://127.0.0.1:{port_h2}/echo-body", content=payload)
        results = {}
        for dump, (name, one) in enumerate( (("grpc", lambda: echo(payload, timeout=30)),
                          ("h2", lambda: client.post(f"http://127.0.0.1:{port_h2}/echo-body",
                                                     content=payload))), start=1):
            callgrind("--zero", proc.pid)
            callgrind("--instr=on", proc.pid)
            for _ in range(N):
                one()
            callgrind("--instr=off", proc.pid)
            callgrind("--dump", proc.pid)
            wait_until(lambda: os.path.exists(f"{out}.{dump}"), what=f"dump {dump}")
            time.sleep(0.5)  # written in full
            results[name] = total_ir(f"{out}.{dump}") / N
        client.close()
        channel.close()
        return results
    finally:
        proc.terminate()
        proc.wait(60)
        h2.stop()
        server.stop(0)


def try_call(echo):
    try:
        echo(b"x", timeout=5)
        return True
    except grpc.RpcError:
        return False


def callgrind(option, pid):
    subprocess.run(["callgrind_control", option, str(pid)], check=True,
                   stdout=subprocess.DEVNULL)


def free():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    for binary in sys.argv[1:]:
        r = measure(binary)
        print(f"{binary}: grpc {r['grpc']:.0f} Ir/request, h2 {r['h2']:.0f} Ir/request "
              f"(N={N})", flush=True)
