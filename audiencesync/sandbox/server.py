"""HTTP for the sandbox: a threading HTTP/1.1 server (keep-alive) in front of app.Sandbox.

Each connection gets a daemon thread; the latency sleep happens here, outside every lock, so
64 pooled connections sleeping at once cost nothing but threads.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any
from urllib.parse import unquote

from audiencesync.sandbox import faults, inspection
from audiencesync.sandbox.app import Sandbox
from audiencesync.sandbox.config import SandboxConfig
from audiencesync.sandbox.core import Request, Response, json_response

MAX_BODY_BYTES = 256 * 1024 * 1024  # far above any sane call; Meta's own limit is vaguer
# What signal.signal returns and takes (SIG_DFL and SIG_IGN are ints; None: not set from Python).
SignalHandler = Callable[[int, FrameType | None], Any] | int | None


class _BadRequest(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: SandboxServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: without this, Nagle + delayed ACK add ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, open_=True)

    def finish(self) -> None:
        self.server.track(self.connection, open_=False)
        super().finish()

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: request lines may carry tokens

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        try:
            body = self._read_body()
        except (_BadRequest, ValueError):
            self.close_connection = True
            self._write(json_response(400, faults.bad_param("unreadable request body").body()))
            return
        path, _, query = self.path.partition("?")
        headers = {name.lower(): value for name, value in self.headers.items()}
        req = Request(self.command, unquote(path), query.encode(), headers, body, time.monotonic())
        sandbox = self.server.sandbox
        try:
            if path.startswith(inspection.PREFIX):
                response = inspection.handle(sandbox, req)
            else:
                with sandbox.in_flight():
                    time.sleep(sandbox.latency_s())
                    response = sandbox.graph(req)
        except Exception:  # a sandbox bug: say so loudly, answer like Meta's vaguest error
            traceback.print_exc(file=sys.stderr)
            response = json_response(500, faults.GraphFault("Sandbox bug", code=1).body())
        self._write(response)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            pieces: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(pieces)
                pieces.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 <= length <= MAX_BODY_BYTES:
            raise _BadRequest(f"Content-Length {length}")
        return self.rfile.read(length)

    def _write(self, response: Response) -> None:
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            for name, value in response.headers.items():
                self.send_header(name, value)
            if isinstance(response.body, bytes):
                self.send_header("Content-Length", str(len(response.body)))
                self.end_headers()
                self.wfile.write(response.body)
                return
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in response.body:
                if piece:
                    self.wfile.write(b"%x\r\n%b\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away; nothing to tell it


class SandboxServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 256  # 64 pooled connections may open at once

    def __init__(self, config: SandboxConfig) -> None:
        self.address_family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
        super().__init__((config.host, config.port), _Handler)
        self.sandbox = Sandbox(config)
        self._open_lock = threading.Lock()
        self._open: set[socket.socket] = set()

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        assert isinstance(host, str)  # an AF_INET or AF_INET6 address: (host, port, ...)
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}"

    def track(self, conn: socket.socket, *, open_: bool) -> None:
        with self._open_lock:
            (self._open.add if open_ else self._open.discard)(conn)

    def close_connections(self) -> None:
        """End idle keep-alive connections so their threads exit and clients see the close."""
        with self._open_lock:
            conns = list(self._open)
        for conn in conns:
            with contextlib.suppress(OSError):  # already closed by the other side
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def serve(config: SandboxConfig) -> None:
    """Serve until SIGTERM or SIGINT (blocking)."""
    server = SandboxServer(config)
    previous: dict[signal.Signals, SignalHandler] = {}

    def _stop(signum: int, frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever to return: call it from another thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, _stop)
    print(f"sandbox listening on {server.base_url}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.close_connections()
        server.server_close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def start_in_thread(config: SandboxConfig) -> tuple[str, Callable[[], None]]:
    """Serve from a daemon thread; returns (base_url, stop). Port 0 picks a free port."""
    server = SandboxServer(config)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="sandbox", daemon=True
    )
    thread.start()
    stopped = threading.Event()

    def stop() -> None:
        if stopped.is_set():
            return
        stopped.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        thread.join(timeout=5)

    return server.base_url, stop
