"""Fault injection the sandbox's servers do not do themselves, for the reliability suite.

``FaultProxy`` is a small HTTP reverse proxy put between the operator and one upstream
(the Cloudflare emulator, Prometheus). It forwards every request unchanged and can

* **hold a response**: forward a matching request, let the upstream act on it, and keep the
  answer back for a while. The operator then sits between "the change is made" and "I know
  it is made", which is where a SIGKILL hurts most (a Cache Rule written, its status not);
* **answer for the upstream**: the next N matching requests get an error status;
* **require a bearer token**: answer 401 unless ``Authorization: Bearer <token>`` is sent,
  which proves the operator really sends the token it was given (Prometheus itself has no
  authentication; production ones sit behind such a proxy).

Every request is logged (method, path with query, body, whether it carried the token), so
tests can check exactly what the operator sent, e.g. that a hostile selector value only ever
reached Prometheus inside an escaped string literal.
"""

from __future__ import annotations

import contextlib
import http.client
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "upgrade"}
)


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    """Path and query string, as sent."""
    body: bytes
    authorized: bool | None
    """With ``require_bearer``: whether the right token came; else ``None``."""
    status: int
    at: float

    def query_text(self) -> str:
        """The decoded query parameters and form body (where PromQL travels)."""
        query = urllib.parse.urlsplit(self.path).query
        parts = urllib.parse.parse_qsl(query, keep_blank_values=True)
        if self.body:
            with contextlib.suppress(UnicodeDecodeError):
                parts += urllib.parse.parse_qsl(self.body.decode(), keep_blank_values=True)
        return "\n".join(f"{k}={v}" for k, v in parts)


@dataclass
class _Rule:
    matches: Callable[[str, str], bool]
    count: int
    status: int = 0
    hold_seconds: float = 0.0
    held: int = 0


@dataclass
class FaultProxy:
    upstream: str
    """``http://host:port`` of the real server."""
    require_bearer: str | None = None
    log: list[Seen] = field(default_factory=list)
    _rules: list[_Rule] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _release: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> FaultProxy:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "the proxy is not running"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- faults ------------------------------------------------------------------------
    def hold_next(
        self, method: str, path_contains: str, seconds: float, count: int = 1
    ) -> Callable[[], int]:
        """Forward the next ``count`` matching requests, then keep each answer back for
        ``seconds`` (or until ``release()``). Returns a probe: how many answers are held now."""
        rule = _Rule(_matcher(method, path_contains), count, hold_seconds=seconds)
        with self._lock:
            self._rules.append(rule)
        self._release.clear()
        return lambda: rule.held

    def fail_next(self, method: str, path_contains: str, status: int, count: int = 1) -> None:
        """Answer the next ``count`` matching requests with ``status`` (nothing forwarded)."""
        with self._lock:
            self._rules.append(_Rule(_matcher(method, path_contains), count, status=status))

    def release(self) -> None:
        self._release.set()

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
        self._release.set()

    def _take(self, method: str, path: str) -> _Rule | None:
        with self._lock:
            for rule in self._rules:
                if rule.matches(method, path):
                    rule.count -= 1
                    if rule.count == 0:
                        self._rules.remove(rule)
                    return rule
        return None

    def requests(self, path_contains: str = "") -> list[Seen]:
        with self._lock:
            return [s for s in self.log if path_contains in s.path]

    def _record(self, seen: Seen) -> None:
        with self._lock:
            self.log.append(seen)


def _matcher(method: str, path_contains: str) -> Callable[[str, str], bool]:
    return lambda m, p: (not method or m == method.upper()) and path_contains in p


def _handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    target = urllib.parse.urlsplit(proxy.upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _answer(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
            try:
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):  # the client is gone (SIGKILL)
                self.close_connection = True

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length > 0 else b""
            authorized: bool | None = None
            if proxy.require_bearer is not None:
                sent = self.headers.get("Authorization", "")
                authorized = sent == f"Bearer {proxy.require_bearer}"
            rule = proxy._take(self.command, self.path)

            def seen(status: int) -> None:
                proxy._record(Seen(self.command, self.path, body, authorized, status, time.time()))

            if authorized is False:
                seen(401)
                self._answer(401, b'{"status":"error","error":"unauthorized"}\n', [])
                return
            if rule is not None and rule.status:
                seen(rule.status)
                self._answer(rule.status, b'{"status":"error","error":"injected"}\n', [])
                return
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            try:
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in HOP_BY_HOP and k.lower() != "host"
                }
                conn.request(self.command, self.path, body=body or None, headers=headers)
                upstream = conn.getresponse()
                payload = upstream.read()
                status, reply_headers = upstream.status, upstream.getheaders()
            except OSError as exc:
                seen(502)
                self._answer(502, f"upstream unreachable: {exc}".encode(), [])
                return
            finally:
                conn.close()
            seen(status)
            if rule is not None and rule.hold_seconds > 0:
                rule.held += 1
                proxy._release.wait(rule.hold_seconds)
                rule.held -= 1
            self._answer(status, payload, reply_headers)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle  # noqa: N815

    return Handler
