"""SpanRecords as `otel_traces` rows (pure)."""

from __future__ import annotations

from collections.abc import Sequence

from spendscope.store.records import SpanRecord

OTEL_TRACES = "otel_traces"
OTEL_TRACES_COLUMNS = (
    "Timestamp",
    "TraceId",
    "SpanId",
    "ParentSpanId",
    "TraceState",
    "SpanName",
    "SpanKind",
    "ServiceName",
    "ResourceAttributes",
    "ScopeName",
    "ScopeVersion",
    "SpanAttributes",
    "Duration",
    "StatusCode",
    "StatusMessage",
    "Events.Timestamp",
    "Events.Name",
    "Events.Attributes",
    "Links.TraceId",
    "Links.SpanId",
    "Links.TraceState",
    "Links.Attributes",
)


def span_rows(records: Sequence[SpanRecord]) -> list[list[object]]:
    """One row per record, in the order of OTEL_TRACES_COLUMNS (times as integer nanoseconds)."""
    return [
        [
            r.timestamp_ns,
            r.trace_id,
            r.span_id,
            r.parent_span_id,
            r.trace_state,
            r.span_name,
            r.span_kind,
            r.service_name,
            r.resource_attributes,
            r.scope_name,
            r.scope_version,
            r.span_attributes,
            max(r.duration_ns, 0),
            r.status_code,
            r.status_message,
            [e.timestamp_ns for e in r.events],
            [e.name for e in r.events],
            [e.attributes for e in r.events],
            [link.trace_id for link in r.links],
            [link.span_id for link in r.links],
            [link.trace_state for link in r.links],
            [link.attributes for link in r.links],
        ]
        for r in records
    ]
