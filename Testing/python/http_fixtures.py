"""A real HTTP server on 127.0.0.1 for download tests, with the ways real servers and networks misbehave.

``LoopbackServer`` is a ``ThreadingHTTPServer`` on a free port in a background thread. It serves in-memory files
with HTTP Range support and records every request (request line and headers) so tests can check what the
client asked for. Each file can misbehave for its first N requests: drop the connection part way, serve
corrupted bytes, ignore Range, answer an error status, or wait before the first byte. It also answers
absolute-URI requests ("GET http://host/file"), so it can stand in for an HTTP proxy. ``unused_port`` gives a
port nothing listens on, for "server down".

Use it from a test module with ``from http_fixtures import http_server``.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest


@dataclass
class Misbehaviour:
    """How a file misbehaves; every count says for how many requests (then it is served normally)."""

    drop_after: int | None = None  # bytes of the body sent before the connection is closed
    drop_times: int = 1
    corrupt: bool = False  # always serve bytes that differ from the real file
    ignore_range: bool = False  # always answer 200 with the whole file
    status: int | None = None  # answer this HTTP status instead of the file
    status_times: int = 1
    first_byte_delay: float = 0.0  # seconds to wait before the status line
    delay_times: int = 1


@dataclass
class RecordedRequest:
    request_line: str
    path: str
    headers: dict[str, str]

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


@dataclass
class _File:
    data: bytes
    misbehaviour: Misbehaviour = field(default_factory=Misbehaviour)


class LoopbackServer:
    """Serves files at http://127.0.0.1:<port>/<name> until stopped; a context manager."""

    def __init__(self) -> None:
        self.files: dict[str, _File] = {}
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.owner = self  # type: ignore[attr-defined]
        self._server.handle_error = lambda request, address: None  # client hung up: expected in these tests
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="loopback-http", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url(self, name: str = "") -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def add_file(self, name: str, data: bytes, **misbehaviour) -> str:
        """Serve ``data`` at ``/name`` (misbehaving as asked); returns its url."""
        with self._lock:
            self.files[name] = _File(data, Misbehaviour(**misbehaviour))
        return self.url(name)

    def requests_for(self, name: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == name]

    def start(self) -> "LoopbackServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "LoopbackServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- serving ------------------------------------------------------------------------------------------------

    def _plan(self, handler: BaseHTTPRequestHandler) -> tuple[_File | None, dict]:
        """Record the request and decide, under the lock, how this one request misbehaves."""
        name = urlsplit(handler.path).path.lstrip("/")
        with self._lock:
            self.requests.append(RecordedRequest(handler.requestline, name, dict(handler.headers.items())))
            served = self.files.get(name)
            if served is None:
                return None, {}
            rules = served.misbehaviour
            plan = {"corrupt": rules.corrupt, "ignore_range": rules.ignore_range, "status": None, "delay": 0.0,
                    "drop_after": None}
            if rules.status is not None and rules.status_times > 0:
                rules.status_times -= 1
                plan["status"] = rules.status
            if rules.first_byte_delay and rules.delay_times > 0:
                rules.delay_times -= 1
                plan["delay"] = rules.first_byte_delay
            if rules.drop_after is not None and rules.drop_times > 0:
                rules.drop_times -= 1
                plan["drop_after"] = rules.drop_after
            return served, plan

    def serve(self, handler: BaseHTTPRequestHandler) -> None:
        served, plan = self._plan(handler)
        if served is None:
            _send_plain(handler, 404, b"no such file\n")
            return
        if plan["delay"]:
            time.sleep(plan["delay"])
        if plan["status"] is not None:
            _send_plain(handler, plan["status"], b"try again later\n")
            return
        data = _corrupted(served.data) if plan["corrupt"] else served.data
        start = None if plan["ignore_range"] else _range_start(handler.headers.get("Range"))
        if start is not None and start >= len(data):
            handler.send_response(416)
            handler.send_header("Content-Range", f"bytes */{len(data)}")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        body = data if start is None else data[start:]
        handler.send_response(200 if start is None else 206)
        if start is not None:
            handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        handler.send_header("Content-Type", "application/octet-stream")
        handler.send_header("Accept-Ranges", "bytes")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if plan["drop_after"] is not None:
            handler.wfile.write(body[: plan["drop_after"]])
            handler.wfile.flush()
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)  # the client sees the stream end early
            return
        for offset in range(0, len(body), 64 * 1024):
            handler.wfile.write(body[offset: offset + 64 * 1024])


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        try:
            self.server.owner.serve(self)  # type: ignore[attr-defined]
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True  # the client gave up (timeout, cancel): nothing to clean up

    def log_message(self, format: str, *args) -> None:  # keep test output quiet
        pass


def _send_plain(handler: BaseHTTPRequestHandler, status: int, body: bytes) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", "text/plain")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def _range_start(value: str | None) -> int | None:
    """Start of an open or closed single byte range ("bytes=N-" or "bytes=N-M"); None for no Range."""
    if not value:
        return None
    match = re.fullmatch(r"\s*bytes=(\d+)-(\d*)\s*", value)
    return int(match.group(1)) if match else None


def _corrupted(data: bytes) -> bytes:
    """Same length, a few bytes flipped: what a bad disk or a meddling middlebox delivers."""
    damaged = bytearray(data)
    for index in range(0, len(damaged), max(len(damaged) // 7, 1)):
        damaged[index] ^= 0xFF
    return bytes(damaged)


def unused_port() -> int:
    """A loopback port nothing listens on (bound once by the OS, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def http_server():
    """A started LoopbackServer, stopped after the test."""
    with LoopbackServer() as server:
        yield server
