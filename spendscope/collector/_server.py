"""The HTTP side: OTLP/HTTP receiver, /metrics, /healthz and the reports API, on ThreadingHTTPServer.

Status codes (OTLP/HTTP spec): 200 accepted (with `partial_success` when some spans were invalid); 400
malformed body (protobuf, JSON, gzip); 401 missing or wrong bearer token; 404 unknown path; 405 wrong
method; 411 no Content-Length; 413 body over the limit (checked on Content-Length before reading, and
again after decompression); 415 other Content-Type or Content-Encoding; 503 with Retry-After when the
queue is full or too many bytes are being decoded at once (the exporter retries). Error bodies are
google.rpc.Status in the request's encoding.
"""

from __future__ import annotations

import hmac
import json
import logging
import shutil
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from spendscope.collector import _api, _otlp
from spendscope.collector._handle import StoreUnavailable
from spendscope.collector._otlp import BadRequest
from spendscope.collector._spans import request_spans
from spendscope.store.errors import ReportError, StoreError

if TYPE_CHECKING:
    from spendscope.collector._collector import Collector

_log = logging.getLogger("spendscope.collector")
TRACES = "/v1/traces"
METRICS = "/v1/metrics"
_KNOWN = (TRACES, METRICS, "/metrics", "/healthz")
IDLE_TIMEOUT_S = 75.0  # longer than the OTLP exporters' 60 s metric interval, so connections are reused


class _Budget:
    """Bytes of request bodies being read and decoded at once: beyond it, 503 rather than memory."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._used = 0
        self._lock = threading.Lock()

    def take(self, n: int) -> bool:
        with self._lock:
            if self._used and self._used + n > self.limit:
                return False
            self._used += n
            return True

    def give(self, n: int) -> None:
        with self._lock:
            self._used -= n


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], collector: Collector, registry: CollectorRegistry) -> None:
        self.collector = collector
        self.registry = registry
        self.budget = _Budget(max(64 * 1024 * 1024, 3 * collector.config.max_body_bytes))
        self.closing = False  # stopping: answer 503 (and close) to requests on open connections
        self._busy = 0
        self._idle = threading.Condition()
        super().__init__(address, Handler)

    def enter(self) -> None:
        with self._idle:
            self._busy += 1

    def leave(self) -> None:
        with self._idle:
            self._busy -= 1
            self._idle.notify_all()

    def drain(self, timeout: float) -> bool:
        """Wait until no request is being handled (so every 200 sent was for spans now queued)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout)


class Handler(BaseHTTPRequestHandler):
    server: Server
    protocol_version = "HTTP/1.1"
    server_version = "spendscope-collector"
    timeout = IDLE_TIMEOUT_S

    def handle_expect_100(self) -> bool:
        """`Expect: 100-continue` (curl sends it for larger bodies): refuse an oversize body before
        the client sends it, instead of inviting it with 100 Continue."""
        length = self.headers.get("Content-Length", "")
        limit = self.server.collector.config.max_body_bytes
        if length.isdigit() and int(length) > limit:
            self._metric_path = urlsplit(self.path).path
            self._error(413, f"body of {length} bytes is over the limit of {limit}", close=True)
            return False
        return super().handle_expect_100()

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("%s %s", self.address_string(), format % args)

    # --- routing ------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        self.server.enter()
        try:
            self._route(method)
        finally:
            self.server.leave()

    def _route(self, method: str) -> None:
        url = urlsplit(self.path)
        path = url.path
        self._metric_path = _api.metric_path(path) if path.startswith(_api.PREFIX) else path
        if path not in _KNOWN and not _api.route_exists(path):
            self._metric_path = "other"
        if not self._authorized():
            return self._error(401, "missing or wrong bearer token (Authorization: Bearer ...)", close=True)
        if self._metric_path == "other":
            return self._error(404, f"no such endpoint {path!r}", close=True)
        if self.server.closing:
            return self._error(503, "the collector is stopping", close=True, Retry_After="1")
        post = path in (TRACES, METRICS)
        if method != ("POST" if post else "GET"):
            return self._error(405, f"{path} takes {'POST' if post else 'GET'}", close=True)
        try:
            if path == TRACES:
                self._otlp(self._traces)
            elif path == METRICS:
                self._otlp(self._metrics)
            elif path == "/metrics":
                self._scrape()
            elif path == "/healthz":
                self._health()
            else:
                self._reports(path, parse_qs(url.query, keep_blank_values=True))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:
            _log.exception("spendscope collector: %s %s failed", method, path)
            self._error(500, "internal error (see the collector's log)", close=True)

    def _authorized(self) -> bool:
        token = self.server.collector.config.token
        if token is None:
            return True
        given = self.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())

    # --- responses ----------------------------------------------------------------------------------

    def _send(
        self,
        status: int,
        content_type: str,
        body: bytes | Path,
        headers: dict[str, str] | None = None,
        close: bool = False,
    ) -> None:
        """Answer with `body`, bytes or a file's content (a large export, copied as it is read)."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(body.stat().st_size if isinstance(body, Path) else len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            if isinstance(body, Path):
                with body.open("rb") as source:
                    shutil.copyfileobj(source, self.wfile, 1 << 20)
            else:
                self.wfile.write(body)
        self.server.collector.health.requests.labels(self._metric_path, str(status)).inc()

    def _error(
        self, status: int, message: str, *, kind: str = _otlp.JSON, close: bool = False, **headers: str
    ) -> None:
        extra = {k.replace("_", "-"): v for k, v in headers.items()}
        if status == 401:
            extra["WWW-Authenticate"] = 'Bearer realm="spendscope"'
        if self.path.startswith(_api.PREFIX) or self.path.startswith("/healthz"):
            body = json.dumps({"error": message}).encode()
            return self._send(status, "application/json", body, extra, close)
        self._send(status, kind, _otlp.status_body(status, message, kind), extra, close)

    # --- OTLP ---------------------------------------------------------------------------------------

    def _otlp(self, handle: Callable[[bytes, str], None]) -> None:
        config = self.server.collector.config
        try:
            kind = _otlp.media_type(self.headers.get("Content-Type"))
        except BadRequest as exc:
            return self._error(exc.status, exc.message, close=True)
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            return self._error(411, "Content-Length is required", kind=kind, close=True)
        if not length_text.strip().isdigit():
            return self._error(400, f"bad Content-Length {length_text!r}", kind=kind, close=True)
        length = int(length_text)
        if length > config.max_body_bytes:
            return self._error(
                413,
                f"body of {length} bytes is over the limit of {config.max_body_bytes}",
                kind=kind,
                close=True,
            )
        budget = self.server.budget
        if not budget.take(length):
            retry = str(self.server.collector.pipeline.retry_after())
            return self._error(503, "collector busy: retry later", kind=kind, close=True, Retry_After=retry)
        try:
            body = self.rfile.read(length)
            if len(body) < length:
                self.close_connection = True  # the client went away mid-body
                return
            try:
                data = _otlp.decompress(body, self.headers.get("Content-Encoding"), config.max_body_bytes)
                handle(data, kind)
            except BadRequest as exc:
                self._error(exc.status, exc.message, kind=kind)
        finally:
            budget.give(length)

    def _traces(self, data: bytes, kind: str) -> None:
        collector = self.server.collector
        pipeline = collector.pipeline
        decoded = request_spans(_otlp.traces_request(data, kind))
        offer = pipeline.offer(decoded.records, decoded.keys, len(data))
        received = len(decoded.keys) + decoded.rejected
        collector.health.received.inc(received)
        if decoded.rejected:
            collector.health.rejected.labels("invalid").inc(decoded.rejected)
        if offer.full:
            collector.health.rejected.labels("queue_full").inc(len(decoded.keys))
            retry = str(pipeline.retry_after())
            return self._error(503, "queue full: retry later", kind=kind, Retry_After=retry)
        if offer.duplicates:
            collector.health.duplicates.inc(offer.duplicates)
        body = _otlp.traces_response(kind, decoded.rejected, decoded.rejected_reason)
        self._send(200, kind, body)

    def _metrics(self, data: bytes, kind: str) -> None:
        collector = self.server.collector
        request = _otlp.metrics_request(data, kind)
        accepted, rejected, reason = collector.metrics.add(request)
        collector.health.received_points.inc(accepted + rejected)
        if rejected:
            collector.health.rejected_points.inc(rejected)
        self._send(200, kind, _otlp.metrics_response(kind, rejected, reason))

    # --- the rest -----------------------------------------------------------------------------------

    def _scrape(self) -> None:
        encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
        self._send(200, content_type, encoder(self.server.registry))

    def _health(self) -> None:
        collector = self.server.collector
        body = {
            "status": "ok",
            "store": "up" if collector.pipeline.store_up else "down",
            "store_error": "" if collector.pipeline.store_up else collector.store.last_error,
            "queue_spans": collector.pipeline.queued_spans,
            "spool_batches": collector.spool.files,
            "spool_bytes": collector.spool.bytes,
        }
        self._send(200, "application/json", json.dumps(body).encode())

    def _reports(self, path: str, query: dict[str, list[str]]) -> None:
        store = self.server.collector.store
        try:
            with store.lock:
                answer = _api.handle(path, query, store.get())
        except ReportError as exc:
            return self._error(400, str(exc))
        except (StoreUnavailable, StoreError) as exc:
            return self._error(503, f"store unavailable: {exc}", Retry_After="5")
        try:  # sent with the store released: a slow client does not hold up the writers
            self._send(answer.status, answer.content_type, answer.file or answer.body)
        finally:
            if answer.file is not None:
                answer.file.unlink(missing_ok=True)
