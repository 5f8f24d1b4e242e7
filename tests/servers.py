"""Servers on the loopback for remote shards: an HTTP file server that answers byte ranges and fails on a schedule
(503s and connections dropped mid-body), and moto's S3 server. Used by tests/test_remote.py and
benchmarks/faults.py."""
from __future__ import annotations

import contextlib
import logging
import os
import random
import re
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator


class FlakyFiles(ThreadingHTTPServer):
    """Serves the files under `root` (GET with one byte range, HEAD). A request fails with probability `fault_rate`
    (from `seed`): half of the failed GETs answer 503, half send the headers and part of the body, then close the
    connection; a failed HEAD answers 503. `served` counts the complete answers per (path, first byte, last byte); `faults` the failures."""

    daemon_threads = True

    def __init__(self, root: Path, fault_rate: float = 0.0, seed: int = 0) -> None:
        super().__init__(("127.0.0.1", 0), FlakyHandler)
        self.root, self.fault_rate, self.rng = Path(root), fault_rate, random.Random(seed)
        self.lock = threading.Lock()
        self.served: Counter[tuple[str, int, int]] = Counter()
        self.faults: Counter[str] = Counter()

    def handle_error(self, request, client_address) -> None:
        pass  # a client that closes early (fsspec reads a size from a GET's headers) is not an error here

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def fault(self) -> str | None:
        with self.lock:
            if self.rng.random() >= self.fault_rate:
                return None
            kind = self.rng.choice(("503", "drop"))
            self.faults[kind] += 1
            return kind


class FlakyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: FlakyFiles

    def log_message(self, *args) -> None:
        pass

    def file(self) -> Path | None:
        path = (self.server.root / self.path.split("?")[0].lstrip("/")).resolve()
        return path if path.is_file() and self.server.root.resolve() in path.parents else None

    def do_HEAD(self) -> None:
        path = self.file()
        if path is None:
            return self.answer(404)
        if self.server.fault() is not None:
            return self.answer(503)
        self.send_response(200)
        self.send_header("Content-Length", str(path.stat().st_size))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()

    def do_GET(self) -> None:
        path = self.file()
        if path is None:
            return self.answer(404)
        size = path.stat().st_size
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        first, last = (int(m.group(1)), int(m.group(2) or size - 1)) if m else (0, size - 1)
        last = min(last, size - 1)
        fault = self.server.fault()
        if fault == "503":
            return self.answer(503)
        with open(path, "rb") as f:
            f.seek(first)
            body = f.read(last - first + 1)
        self.send_response(206 if m else 200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        if m:
            self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.end_headers()
        if fault == "drop":
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)
        with self.server.lock:
            self.server.served[(self.path, first, last)] += 1

    def answer(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()


@contextlib.contextmanager
def flaky_files(root: Path, fault_rate: float = 0.0, seed: int = 0) -> Iterator[FlakyFiles]:
    server = FlakyFiles(root, fault_rate, seed)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@contextlib.contextmanager
def s3_server() -> Iterator[str]:
    """moto's S3 server on the loopback; yields its endpoint URL, also set (with test credentials) in os.environ for
    this process and the processes it starts."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in (*S3_ENV, "AWS_ENDPOINT_URL")}
    os.environ.update(S3_ENV, AWS_ENDPOINT_URL=endpoint)
    try:
        yield endpoint
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()
