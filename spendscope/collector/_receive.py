"""The OTLP/HTTP receive path, apart from HTTP: a request's body in, the answer out.

    check the headers (`admit`) -> read the body -> `Receiver.traces` / `Receiver.metrics`:
        decompress -> decode (parse, refuse what the store cannot hold) -> `acknowledge` -> answer

Status codes (OTLP/HTTP): 200 accepted (with `partial_success` when some spans or points were refused:
over a limit of _limits.py, or a metric _metric_rules.py refuses); 400 malformed body (protobuf, JSON
nested past the parsers, gzip, deflate) or a bad Content-Length; 411 no Content-Length; 413 body over
the limit (on its Content-Length before it is read, and again once decompressed) or a request whose
rows would take more than `max_decoded_bytes`; 415 other
Content-Type or Content-Encoding; 503 with Retry-After when the queue is full (checked before the
body is decoded, and again once its rows are made), the collector is stopping, or too many bytes of
bodies are waiting to be decoded (the exporter retries). Error bodies are google.rpc.Status in the
request's encoding.

Memory (_memory.py): at most `decoders` requests are decoded at once, each within `max_decoded_bytes`;
the bodies waiting for their turn are within `_memory.body_budget`; a request's rows then hold room in
the queue (`Pipeline.reserve`) before the request is written to the write-ahead log.

`acknowledge` is the one step after which a request is the collector's: before it anything may
refuse the request, and nothing is kept; it writes the request to the write-ahead log and flushes it
to disk (`_wal.py`), then queues its spans; after it the answer is 200 and the spans reach the store
or the spool, even if the process is killed. A 200 is never sent before it has returned. A log the
disk refuses (full) is a 503 with Retry-After: nothing was taken.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from spendscope.collector import _otlp
from spendscope.collector._limits import Limits
from spendscope.collector._memory import body_budget, release_free_memory
from spendscope.collector._metrics import MetricsState
from spendscope.collector._otlp import BadRequest
from spendscope.collector._pipeline import Offer, Pipeline
from spendscope.collector._spans import DecodedSpans, decode
from spendscope.collector._telemetry import Health
from spendscope.collector._wire import METRIC_MESSAGE_BYTES, parse_bytes

_log = logging.getLogger("spendscope.collector")
RELEASE_AFTER_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Reply:
    status: int
    content_type: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    close: bool = False  # close the connection after answering (the body may be unread)


def error(status: int, message: str, kind: str = _otlp.JSON, *, close: bool = False, **headers: str) -> Reply:
    """An OTLP error answer: google.rpc.Status in `kind`."""
    extra = {name.replace("_", "-"): value for name, value in headers.items()}
    return Reply(status, kind, _otlp.status_body(status, message, kind), extra, close)


class Budget:
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


@dataclass(frozen=True)
class Admitted:
    kind: str  # the body's media type
    length: int  # its Content-Length


class Receiver:
    def __init__(
        self,
        pipeline: Pipeline,
        metrics: MetricsState,
        health: Health,
        max_body_bytes: int,
        limits: Limits | None = None,
        decoders: int = 1,
    ) -> None:
        self.pipeline = pipeline
        self.metrics = metrics
        self.health = health
        self.max_body_bytes = max_body_bytes
        self.limits = limits or Limits()
        self.budget = Budget(body_budget(max_body_bytes))
        self._decoding = threading.BoundedSemaphore(decoders)  # requests decoded at once

    def admit(self, headers: Mapping[str, str]) -> Admitted | Reply:
        """Check a request's headers before its body is read: what to read, or the answer. An
        admitted request holds its length of the budget until `release`."""
        try:
            kind = _otlp.media_type(headers.get("content-type"))
        except BadRequest as exc:
            return error(exc.status, exc.message, close=True)
        length_text = headers.get("content-length")
        if length_text is None:
            return error(411, "Content-Length is required", kind, close=True)
        if not length_text.strip().isdigit():
            return error(400, f"bad Content-Length {length_text!r}", kind, close=True)
        length = int(length_text)
        if length > self.max_body_bytes:
            return error(
                413, f"body of {length} bytes is over the limit of {self.max_body_bytes}", kind, close=True
            )
        if not self.budget.take(length):
            return error(503, "collector busy: retry later", kind, close=True, Retry_After=self._retry())
        return Admitted(kind, length)

    def release(self, admitted: Admitted) -> None:
        self.budget.give(admitted.length)

    def traces(self, body: bytes, kind: str, encoding: str | None) -> Reply:
        if self.pipeline.full:  # no need to decode what cannot be taken
            return error(503, "queue full: retry later", kind, Retry_After=self._retry())
        refusal: Reply | None = None
        try:
            with self._decoding:  # the rows leave it with room in the queue, or not at all
                data = _otlp.decompress(body, encoding, self.max_body_bytes)
                decoded = decode(data, kind, self.limits)
                spans = len(decoded.keys)
                reserved = not spans or self.pipeline.reserve(spans, decoded.nbytes)
                if not reserved:  # not taken: its rows go now
                    decoded.records.clear()
                    decoded.keys.clear()
        except BadRequest as exc:
            refusal = error(exc.status, exc.message, kind)
        if refusal is not None:
            self._release(len(body))  # once the exception, and the decoding's frames, are gone
            return refusal
        self.health.received.inc(spans + decoded.rejected)
        if decoded.rejected:
            self.health.rejected.labels("invalid").inc(decoded.rejected)
        offer = self.acknowledge(decoded, data, kind) if reserved else Offer(0, full=True)
        if offer.full:
            reason = "log_unwritable" if offer.unlogged else "queue_full"
            self.health.rejected.labels(reason).inc(spans)
            message = "cannot write to disk: retry later" if offer.unlogged else "queue full: retry later"
            del decoded, data
            self._release(len(body))
            return error(503, message, kind, Retry_After=self._retry())
        reply = Reply(200, kind, _otlp.traces_response(kind, decoded.rejected, decoded.rejected_reason))
        if not offer.accepted:  # every span refused
            del decoded, data
            self._release(len(body))
        return reply

    def acknowledge(self, decoded: DecodedSpans, data: bytes, kind: str) -> Offer:
        """Make the request's spans, with room reserved for them in the queue, the collector's: the
        request on disk in the write-ahead log and its spans taken into the queue (from there they
        reach the store, or the spool while it is down), or none of it (`full`: the answer is 503)."""
        spans = len(decoded.keys)
        if not spans:
            return Offer(0)
        try:
            segment = self.pipeline.wal.append(data, kind, spans)
        except OSError as exc:
            self.pipeline.unreserve(spans, decoded.nbytes)
            _log.warning("spendscope collector: cannot write the write-ahead log: %s", exc.strerror or exc)
            return Offer(0, full=True, unlogged=True)
        return self.pipeline.offer(decoded.records, decoded.keys, decoded.nbytes, segment)

    def metrics_points(self, body: bytes, kind: str, encoding: str | None) -> Reply:
        refusal: Reply | None = None
        try:
            with self._decoding:  # the parsed request too is held until its points are taken
                data = _otlp.decompress(body, encoding, self.max_body_bytes)
                if (
                    kind == _otlp.PROTOBUF
                    and parse_bytes(data, METRIC_MESSAGE_BYTES) > self.limits.decoded_bytes
                ):
                    raise BadRequest(
                        413,
                        f"request too large once decoded (over {self.limits.decoded_bytes} bytes): "
                        "send fewer points per request",
                    )
                request = _otlp.metrics_request(data, kind, self.limits)
                del data
                accepted, rejected, reason = self.metrics.add(request)
        except BadRequest as exc:
            refusal = error(exc.status, exc.message, kind)
        if refusal is not None:
            self._release(len(body))  # once the exception, and the decoding's frames, are gone
            return refusal
        self.health.received_points.inc(accepted + rejected)
        if rejected:
            self.health.rejected_points.inc(rejected)
        del request
        self._release(len(body))
        return Reply(200, kind, _otlp.metrics_response(kind, rejected, reason))

    def _release(self, nbytes: int) -> None:
        """After a large request that was not queued: its memory back to the system if the queue is
        empty (a queued one's goes back once its batch is written)."""
        if nbytes >= RELEASE_AFTER_BYTES and not self.pipeline.queued_spans:
            release_free_memory()

    def _retry(self) -> str:
        return str(self.pipeline.retry_after())
