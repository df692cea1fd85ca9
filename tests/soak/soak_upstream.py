"""The soak's fault-injecting upstream: HTTP/1.1 keep-alive on raw sockets, a thread per connection.

Run as a child process of soak.py (its own interpreter, so it does not share a GIL with the
clients):

    soak_upstream.py --records FILE [--stall-seconds S]

It prints `PORT <n>` once it listens on 127.0.0.1, then serves until SIGTERM. Requests for
`/soak/<token>?f=<fault>&n=<bytes>[&d=<ms>]` get the fault named (see soak_common.py); anything
else gets a small 200. For every request it appends one JSON line to the records file, written
before it answers: what it received (every copy of each context header, the body's size and
SHA-256) and the fault it is about to inject. The checker joins these lines with the clients'
results and viscount's access log by token.
"""

import argparse
import hashlib
import json
import os
import random
import signal
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import soak_common as common  # noqa: E402

MAX_HEAD = 64 * 1024
IDLE_TIMEOUT = 120.0  # longer than viscount's pool idle_timeout, as the README asks of upstreams


class ClientGone(Exception):
    """The connection closed (or broke) before a whole request arrived."""


class Reader:
    """Buffered reads from a socket: a request head, then a body by its framing."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()

    def _fill(self):
        data = self.sock.recv(256 * 1024)
        if not data:
            raise ClientGone()
        self.buf += data

    def head(self):
        """The head up to the blank line, or None when the peer closed between requests."""
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                head = bytes(self.buf[:end])
                del self.buf[:end + 4]
                return head
            if len(self.buf) > MAX_HEAD:
                raise ClientGone()
            try:
                self._fill()
            except ClientGone:
                if self.buf:
                    raise
                return None

    def exactly(self, n, sink):
        while n > 0:
            if not self.buf:
                self._fill()
            take = min(n, len(self.buf))
            sink(self.buf[:take])
            del self.buf[:take]
            n -= take

    def line(self):
        while True:
            end = self.buf.find(b"\r\n")
            if end >= 0:
                line = bytes(self.buf[:end])
                del self.buf[:end + 2]
                return line
            self._fill()

    def chunked(self, sink):
        while True:
            size = int(self.line().split(b";")[0].strip(), 16)
            if size == 0:
                while self.line():  # trailers, up to the blank line
                    pass
                return
            self.exactly(size, sink)
            if self.line() != b"":
                raise ClientGone()


class Upstream:
    def __init__(self, records_path, stall_seconds):
        self.stall_seconds = stall_seconds
        self.records = open(records_path, "a", encoding="utf-8")
        self.lock = threading.Lock()
        self.attempts = {}  # token -> times seen (a retried request arrives twice)
        self.conn_seq = 0
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1024)
        self.port = self.listener.getsockname()[1]

    def record(self, rec):
        with self.lock:
            self.records.write(json.dumps(rec, separators=(",", ":")) + "\n")
            self.records.flush()

    def next_attempt(self, token):
        with self.lock:
            n = self.attempts.get(token, 0) + 1
            self.attempts[token] = n
            return n

    def serve_forever(self):
        while True:
            sock, _ = self.listener.accept()
            with self.lock:
                self.conn_seq += 1
                conn_id = self.conn_seq
            threading.Thread(target=self.connection, args=(sock, conn_id), daemon=True).start()

    # --- one connection ------------------------------------------------------------------------

    def connection(self, sock, conn_id):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(IDLE_TIMEOUT)
        reader = Reader(sock)
        try:
            served = 0
            while True:
                head = reader.head()
                if head is None:
                    break
                served += 1
                if not self.request(sock, reader, head, conn_id, served):
                    break
        except (ClientGone, OSError, ValueError):
            pass  # viscount closed or reset the connection (it gave up on a stalled response)
        finally:
            try:
                sock.close()
            except OSError:
                pass

    def request(self, sock, reader, head, conn_id, served):
        """Serves one request; False when the connection must not be reused."""
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ", 2)
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name.strip().lower(), value.strip()))

        def values(name):
            return [v for k, v in headers if k == name]

        token, params = common.parse_soak_path(target)
        fault = params.get("f", "ok")
        size = int(params.get("n", "64"))

        # The body first, whole: every fault below happens after the request was read.
        digest = hashlib.sha256()
        received = [0]

        def sink(chunk):
            digest.update(chunk)
            received[0] += len(chunk)

        rec = {
            "token": token, "fault": fault, "method": method, "target": target,
            "version": version, "conn": conn_id, "served": served, "t": round(time.time(), 3),
            "ids": {h: values(h) for h in common.CONTEXT_HEADERS},
            "forwarded_for": values("x-forwarded-for"),
        }
        try:
            if "chunked" in ",".join(values("transfer-encoding")).lower():
                reader.chunked(sink)
            elif values("content-length"):
                reader.exactly(int(values("content-length")[0]), sink)
        except ClientGone:
            rec.update(body_complete=False, upload_bytes=received[0])
            if token is not None:
                rec["attempt"] = self.next_attempt(token)
            self.record(rec)
            return False
        upload_sha = digest.hexdigest()
        attempt = self.next_attempt(token) if token is not None else 1
        rec.update(body_complete=True, upload_bytes=received[0], upload_sha256=upload_sha,
                   attempt=attempt)
        self.record(rec)
        if token is None:
            self.send_simple(sock, 200, b"ok\n", [])
            return True

        saw = [(common.H_SAW + h.replace("x-", "", 1), vs[0]) for h, vs in rec["ids"].items()
               if len(vs) == 1]
        echo = [(common.H_TOKEN, token), (common.H_ATTEMPT, str(attempt)),
                (common.H_UPLOAD_SHA, upload_sha), (common.H_UPLOAD_BYTES, str(received[0]))]
        echo += saw
        keep_alive = version == "HTTP/1.1" and "close" not in ",".join(values("connection"))

        if fault == "delay":
            time.sleep(int(params.get("d", "0")) / 1000.0)
        if fault == "stall_head":
            time.sleep(self.stall_seconds)
            return False  # viscount has given up and closed by now
        if fault == "reset_head":
            self.reset(sock)
            return False
        if fault == "garbage":
            sock.sendall(b"this is not HTTP\r\n\r\n")
            return False
        if fault == "e500":
            body = b'{"error":"upstream says no"}\n'
            self.send_simple(sock, 500, body, echo)
            return keep_alive

        body = common.body_slice(token, size)
        echo.append((common.H_BODY_SHA, common.sha256_hex(body)))
        chunked = fault in ("chunked", "truncate_chunked")
        if fault == "close":
            echo.append(("connection", "close"))
            keep_alive = False
        head_bytes = self.head(200, echo, None if chunked else len(body))
        if fault in common.CUT_FAULTS:
            part = body[:max(1, len(body) // 3)]
            sock.sendall(head_bytes)
            if chunked:
                self.send_chunks(sock, part, last=False)
            else:
                sock.sendall(part)
            if fault == "reset_body":
                self.reset(sock)
            elif fault == "stall_body":
                time.sleep(self.stall_seconds)
            else:
                sock.shutdown(socket.SHUT_WR)  # a clean FIN, the framing unfinished
            return False
        if method == "HEAD":
            sock.sendall(head_bytes)
        elif chunked:
            sock.sendall(head_bytes)
            self.send_chunks(sock, body, last=True)
        else:
            sock.sendall(head_bytes + body if len(body) < 65536 else head_bytes)
            if len(body) >= 65536:
                sock.sendall(body)
        return keep_alive

    # --- writing -------------------------------------------------------------------------------

    @staticmethod
    def head(status, headers, length):
        reason = {200: "OK", 500: "Internal Server Error"}.get(status, "Status")
        out = [f"HTTP/1.1 {status} {reason}", "content-type: application/octet-stream"]
        out += [f"{k}: {v}" for k, v in headers]
        out.append(f"content-length: {length}" if length is not None
                   else "transfer-encoding: chunked")
        return ("\r\n".join(out) + "\r\n\r\n").encode("latin-1")

    def send_simple(self, sock, status, body, headers):
        headers = headers + [(common.H_BODY_SHA, common.sha256_hex(body))]
        sock.sendall(self.head(status, headers, len(body)) + body)

    @staticmethod
    def send_chunks(sock, data, last):
        rng = random.Random()
        pos = 0
        while pos < len(data):
            n = min(len(data) - pos, rng.choice((1, 100, 4096, 65536, 200000)))
            sock.sendall(b"%x\r\n" % n + bytes(data[pos:pos + n]) + b"\r\n")
            pos += n
        if last:
            sock.sendall(b"0\r\n\r\n")

    @staticmethod
    def reset(sock):
        # SO_LINGER with a zero timeout: close() sends RST instead of FIN.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", required=True, help="JSON-lines file of requests received")
    parser.add_argument("--stall-seconds", type=float, default=5.0)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    common.blob()  # build the body blob before saying we are ready
    upstream = Upstream(args.records, args.stall_seconds)
    print(f"PORT {upstream.port}", flush=True)
    upstream.serve_forever()


if __name__ == "__main__":
    main()
