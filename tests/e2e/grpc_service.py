"""A gRPC service on Debian's python3-grpcio for the e2e tests, with a generic handler (no
generated code): messages are raw bytes, so what the tests send is what the service gets.

Methods of /test.Svc:
    Echo    unary; answers the request bytes; records the metadata and the deadline it saw
    Id      unary; answers the x-request-id the service saw (to spot bleed between calls)
    Fail    unary; the request is a status code name: aborts with it and a message
    Sleep   unary; the request is seconds as text: waits that long (or until cancelled)
    Stream  server-streaming; the request is "COUNT,SIZE[,DELAY]": COUNT messages of SIZE bytes,
            DELAY seconds apart
    Bidi    bidi-streaming; answers every message with the same bytes

Run as a program (`python3 grpc_service.py`), it serves on 127.0.0.1:0 and prints its port.
"""

import sys
import threading
import time
from concurrent import futures

import grpc


class Record:
    """What the service saw, for the tests to check."""

    def __init__(self):
        self.lock = threading.Lock()
        self.calls = []  # (method, {metadata}, time_remaining)
        self.sleeping = 0

    def add(self, method, context):
        metadata = {k: v for k, v in context.invocation_metadata()}
        with self.lock:
            self.calls.append((method, metadata, context.time_remaining()))

    def last(self, method):
        with self.lock:
            for call in reversed(self.calls):
                if call[0] == method:
                    return call
        return None


def _handlers(record):
    def echo(request, context):
        record.add("Echo", context)
        return request

    def request_id(request, context):
        record.add("Id", context)
        metadata = dict(context.invocation_metadata())
        return metadata.get("x-request-id", "").encode()

    def fail(request, context):
        record.add("Fail", context)
        code = getattr(grpc.StatusCode, request.decode())
        context.abort(code, f"failed with {code.name} on purpose: ünïcode")

    def sleep(request, context):
        record.add("Sleep", context)
        with record.lock:
            record.sleeping += 1
        try:
            end = time.monotonic() + float(request.decode())
            while time.monotonic() < end and context.is_active():
                time.sleep(0.01)
        finally:
            with record.lock:
                record.sleeping -= 1
        return b"slept"

    def stream(request, context):
        record.add("Stream", context)
        count, size, *delay = request.decode().split(",")
        for i in range(int(count)):
            if delay and i > 0:
                time.sleep(float(delay[0]))
            yield (i % 256).to_bytes(1, "big") * int(size)

    def bidi(request_iterator, context):
        record.add("Bidi", context)
        for message in request_iterator:
            yield message

    return {
        "Echo": grpc.unary_unary_rpc_method_handler(echo),
        "Id": grpc.unary_unary_rpc_method_handler(request_id),
        "Fail": grpc.unary_unary_rpc_method_handler(fail),
        "Sleep": grpc.unary_unary_rpc_method_handler(sleep),
        "Stream": grpc.unary_stream_rpc_method_handler(stream),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
    }


def start_grpc_service(max_workers=64):
    """(server, port, record); the caller stops the server (server.stop(0))."""
    record = Record()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers),
                         maximum_concurrent_rpcs=None)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("test.Svc", _handlers(record)),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port, record


if __name__ == "__main__":
    srv, p, _ = start_grpc_service()
    print(p, flush=True)
    srv.wait_for_termination()
