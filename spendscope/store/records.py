"""One span as the `otel_traces` table stores it: the contract between the collector (which builds
these from OTLP) and the store (which inserts them).

Values follow the OpenTelemetry Collector `clickhouse` exporter, so rows written by either collector
are identical: ids are lower-case hex, attribute values are strings (`pcommon.Value.AsString()`:
doubles in shortest round-trip decimal form without exponent, booleans `true`/`false`, bytes base64,
arrays and maps JSON), times are nanoseconds since the Unix epoch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class SpanEvent:
    timestamp_ns: int
    name: str
    attributes: dict[str, str]


@dataclass(frozen=True, slots=True)
class SpanLink:
    trace_id: str
    span_id: str
    trace_state: str
    attributes: dict[str, str]


@dataclass(frozen=True, slots=True)
class SpanRecord:
    timestamp_ns: int  # span start
    trace_id: str
    span_id: str
    parent_span_id: str
    trace_state: str
    span_name: str
    span_kind: str  # as the contrib exporter writes it
    service_name: str
    resource_attributes: dict[str, str]
    scope_name: str
    scope_version: str
    span_attributes: dict[str, str]
    duration_ns: int
    status_code: str  # as the contrib exporter writes it
    status_message: str
    events: list[SpanEvent] = field(default_factory=list)
    links: list[SpanLink] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str]:
        """What makes a span unique: a retried or replayed span has the same key."""
        return (self.trace_id, self.span_id)


class SpanSink(Protocol):
    """Where the collector writes spans (the ClickHouse store implements it)."""

    def insert_spans(self, records: Sequence[SpanRecord], *, dedup_token: str) -> None:
        """Insert `records` in one block. Inserting the same block again with the same `dedup_token`
        must change nothing (ClickHouse insert deduplication). Raises on any failure."""
        ...
