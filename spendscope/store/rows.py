"""SpanRecords as `otel_traces` rows (pure)."""

from __future__ import annotations

from collections.abc import Sequence

from spendscope.store.records import SpanEvent, SpanLink, SpanRecord

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
            *(_event_columns(r.events) if r.events else _NO_EVENTS),
            *(_link_columns(r.links) if r.links else _NO_LINKS),
        ]
        for r in records
    ]


# Most spans have no events and no links: their columns are these shared empty lists, which the insert
# only reads (a list comprehension each would be a call per column and span).
_NO_EVENTS: tuple[list[object], ...] = ([], [], [])
_NO_LINKS: tuple[list[object], ...] = ([], [], [], [])


def _event_columns(events: Sequence[SpanEvent]) -> tuple[list[object], ...]:
    return [e.timestamp_ns for e in events], [e.name for e in events], [e.attributes for e in events]


def _link_columns(links: Sequence[SpanLink]) -> tuple[list[object], ...]:
    return (
        [link.trace_id for link in links],
        [link.span_id for link in links],
        [link.trace_state for link in links],
        [link.attributes for link in links],
    )
