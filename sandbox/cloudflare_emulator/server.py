"""HTTP plumbing: a threaded stdlib server on loopback that hands requests to the emulator.

Each request is answered on its own thread. Requests under ``/__emulator`` go to the
admin endpoint; everything else is API traffic, which first meets the fault queue (an
injected failure answers before authentication, like a failing edge would), then the
front door, and is written to the request log *before* the answer is sent, so a test
that has its response can already read the entry.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qs, urlsplit

from sandbox.cloudflare_emulator import admin
from sandbox.cloudflare_emulator.faults import API_PREFIX, Kind
from sandbox.cloudflare_emulator.protocol import ApiError, Code, Reply, failure
from sandbox.cloudflare_emulator.requestlog import Entry, token_fingerprint

if TYPE_CHECKING:
    from sandbox.cloudflare_emulator.emulator import CloudflareEmulator

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
ADMIN_PREFIX = "/__emulator"


class EmulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, emulator: CloudflareEmulator, port: int) -> None:
        super().__init__((HOST, port), _Handler)
        self.emulator = emulator
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def hang_up_all(self) -> None:
        """Unblock handler threads still waiting on idle keep-alive connections."""
        with self._open_lock:
            connections = list(self._open)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "cloudflare-emulator"

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _dispatch(self) -> None:
        emulator = cast(EmulatorServer, self.server).emulator
        started, clock = time.time(), time.monotonic()
        url = urlsplit(self.path)
        path, query = url.path, parse_qs(url.query, keep_blank_values=True)
        raw = self._read_body()
        method = self.command
        if path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/"):
            self._write(admin.handle(emulator, method, path[len(ADMIN_PREFIX) :], query, raw))
            return

        def record(status: int, reply: Reply | None, fault: str | None) -> None:
            errors = ((reply.body or {}).get("errors") if reply else None) or []
            # GraphQL errors carry no v4 code (and ``errors`` is null on success).
            codes = tuple(e["code"] for e in errors if isinstance(e, dict) and "code" in e)
            emulator.log.append(
                Entry(
                    method,
                    path,
                    query,
                    _logged_body(raw),
                    status,
                    started,
                    time.monotonic() - clock,
                    codes,
                    fault,
                    _bearer(self.headers.get("Authorization")),
                    self.headers.get("X-Timeout-Budget-Replica"),
                )
            )

        fault = emulator.faults.take(method, path)
        if fault is not None and fault.kind is Kind.TIMEOUT:
            record(0, None, fault.kind.value)
            emulator.stopping.wait(fault.hold_seconds)
            self.close_connection = True  # hang up without an answer
            return
        if fault is not None:
            reply = failure(fault.error())
        elif path.startswith(API_PREFIX + "/"):
            headers = {k.lower(): v for k, v in self.headers.items()}
            reply = emulator.front_door.handle(method, path[len(API_PREFIX) :], query, headers, raw)
        else:
            reply = failure(ApiError.one(404, Code.NO_ROUTE, "No route for that URI"))
        record(reply.status, reply, fault.kind.value if fault else None)
        self._write(reply)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _write(self, reply: Reply) -> None:
        payload = b"" if reply.body is None else json.dumps(reply.body).encode()
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


def _logged_body(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return raw.decode("utf-8", errors="replace")


def serve(emulator: CloudflareEmulator, port: int = 0) -> tuple[EmulatorServer, threading.Thread]:
    """Start serving on ``127.0.0.1:port`` (0: a free port) in a daemon thread."""
    server = EmulatorServer(emulator, port)
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.1},
        name=f"cloudflare-emulator:{server.server_address[1]}",
        daemon=True,
    )
    thread.start()
    return server, thread


def _bearer(value: str | None) -> str | None:
    """The fingerprint of an ``Authorization: Bearer <token>`` header's token (the log
    never holds credentials)."""
    if value is None or not value.startswith("Bearer "):
        return None
    return token_fingerprint(value[len("Bearer ") :])
