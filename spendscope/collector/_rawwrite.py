"""Writing a batch of raw OTLP requests: one `INSERT ... SELECT` that ClickHouse decodes (see
_otlp_sql.py), and the Python decoder for the requests SQL refuses.

A batch goes in as one insert (a small one is simply decoded in Python: see `write_requests`). If
ClickHouse refuses it for its content (FALLBACK_MARKER: a value SQL does not render exactly; or a
Protobuf error: bytes the scan did not read are malformed), nothing of it was written, and each
request is inserted on its own: by SQL again, or, where SQL refuses that request too, as the Python
decoder's SpanRecords (identical rows). A request the Python decoder cannot decode either is
malformed: it was answered 200 on the scan's word, so it is dropped here and reported. Whatever a
replay writes again, the store counts each span once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from spendscope.collector import _otlp_sql as sql
from spendscope.collector._spans import DecodeError, decode_spans
from spendscope.store.records import SpanRecord
from spendscope.store.rows import OTEL_TRACES, OTEL_TRACES_COLUMNS

_log = logging.getLogger("spendscope.collector")


class RawSink(Protocol):
    """What writing raw requests takes of the store (spendscope.store.Store has both)."""

    def insert_spans(self, records: Sequence[SpanRecord]) -> None: ...

    def insert_select(
        self,
        table: str,
        columns: Sequence[str],
        select: str,
        data: bytes,
        *,
        structure: str,
        fmt: str,
        settings: Mapping[str, Any],
    ) -> None: ...


@dataclass(frozen=True)
class RawWritten:
    python_requests: int = 0  # requests written through the Python decoder
    dropped_requests: int = 0  # malformed requests, not written
    dropped_spans: int = 0  # the spans the scan had counted in them


def frame(requests: Sequence[bytes]) -> bytes:
    """Requests as ClickHouse's length-delimited Protobuf input: each prefixed by its varint length."""
    parts: list[bytes] = []
    for request in requests:
        n = len(request)
        prefix = bytearray()
        while n >= 0x80:
            prefix.append(n & 0x7F | 0x80)
            n >>= 7
        prefix.append(n)
        parts += (bytes(prefix), request)
    return b"".join(parts)


def refused_for_content(exc: BaseException) -> bool:
    """Whether ClickHouse refused the input itself (raised before writing anything)."""
    text = str(exc)
    return sql.FALLBACK_MARKER in text or "protobuf" in text.lower()


def _insert(store: RawSink, requests: Sequence[bytes]) -> None:
    store.insert_select(
        OTEL_TRACES,
        OTEL_TRACES_COLUMNS,
        sql.SELECT,
        frame(requests),
        structure=sql.STRUCTURE,
        fmt=sql.FORMAT,
        settings=sql.SETTINGS,
    )


def write_requests(
    store: RawSink,
    requests: Sequence[bytes],
    spans: Sequence[int],
    *,
    use_sql: bool = True,
    sql_min_spans: int = 0,
) -> RawWritten:
    """Insert a batch of requests (`spans[i]`: the spans the scan kept in request i). A batch of
    fewer than `sql_min_spans` spans is decoded in Python (one insert): an INSERT
    ... SELECT costs ClickHouse a fixed ~0.3 s of query analysis, which small batches do not repay.
    Raises what the store raises for anything but a refusal of the content."""
    if not use_sql or sum(spans) < sql_min_spans:
        return _in_python(store, requests, spans)
    try:
        _insert(store, requests)
        return RawWritten()
    except Exception as exc:
        if not refused_for_content(exc):
            raise
        _log.info("spendscope collector: SQL refused a batch (%s); writing it request by request", exc)
    python = dropped = dropped_spans = 0
    for request, count in zip(requests, spans, strict=True):
        if len(requests) > 1:
            try:
                _insert(store, [request])
                continue
            except Exception as exc:
                if not refused_for_content(exc):
                    raise
        written = _in_python(store, [request], [count])
        python += written.python_requests
        dropped += written.dropped_requests
        dropped_spans += written.dropped_spans
    return RawWritten(python, dropped, dropped_spans)


def _in_python(store: RawSink, requests: Sequence[bytes], spans: Sequence[int]) -> RawWritten:
    """Requests through the Python decoder, as one insert; a request it cannot decode
    is malformed (answered 200 on the scan's word): dropped, logged and counted."""
    records: list[SpanRecord] = []
    python = dropped = dropped_spans = 0
    for request, count in zip(requests, spans, strict=True):
        try:
            records += decode_spans(request).records
        except DecodeError as exc:
            _log.warning("spendscope collector: dropping a malformed request of %d spans: %s", count, exc)
            dropped += 1
            dropped_spans += count
            continue
        python += 1
    if records:
        store.insert_spans(records)
    return RawWritten(python, dropped, dropped_spans)
