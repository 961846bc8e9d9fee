"""The collector's own health metrics (prometheus-client), served with the re-exposed app metrics."""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Prometheus names (prometheus-client appends _total to counters).
RECEIVED_SPANS: Final = "spendscope_collector_received_spans"
WRITTEN_SPANS: Final = "spendscope_collector_written_spans"
REJECTED_SPANS: Final = "spendscope_collector_rejected_spans"
SPOOLED_SPANS: Final = "spendscope_collector_spooled_spans"
REPLAYED_SPANS: Final = "spendscope_collector_replayed_spans"
RECEIVED_POINTS: Final = "spendscope_collector_received_metric_points"
REJECTED_POINTS: Final = "spendscope_collector_rejected_metric_points"
REQUESTS: Final = "spendscope_collector_requests"
STORE_ERRORS: Final = "spendscope_collector_store_errors"
SPOOL_CORRUPT: Final = "spendscope_collector_spool_corrupt_batches"
REFUSED_SPANS: Final = "spendscope_collector_refused_spans"
QUEUE_SPANS: Final = "spendscope_collector_queue_spans"
QUEUE_BYTES: Final = "spendscope_collector_queue_bytes"
SPOOL_BYTES: Final = "spendscope_collector_spool_bytes"
SPOOL_BATCHES: Final = "spendscope_collector_spool_batches"
STORE_UP: Final = "spendscope_collector_store_up"
INSERT_SECONDS: Final = "spendscope_collector_insert_duration_seconds"
ROLLUP_BUILDS: Final = "spendscope_collector_rollup_builds"
ROLLUP_BUCKETS: Final = "spendscope_collector_rollup_buckets_built"
ROLLUP_LAST_SUCCESS: Final = "spendscope_collector_rollup_last_success_timestamp_seconds"
STORE_REJECTED_SPANS: Final = "spendscope_collector_store_rejected_spans_24h"
STORE_COST_MISMATCH_CALLS: Final = "spendscope_collector_store_cost_mismatch_calls_24h"

INSERT_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Health:
    """Counters and gauges in their own registry (one per collector, so tests stay apart)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(name, doc, labels, registry=registry)

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(name, doc, registry=registry)

        self.received = counter(RECEIVED_SPANS, "Spans received over OTLP.")
        self.written = counter(WRITTEN_SPANS, "Spans written to the store (directly or from the spool).")
        self.rejected = counter(
            REJECTED_SPANS, "Spans refused: invalid (partial success) or not taken (503).", ("reason",)
        )
        self.spooled = counter(SPOOLED_SPANS, "Spans written to the spool while the store was unavailable.")
        self.replayed = counter(REPLAYED_SPANS, "Spans written to the store from the spool.")
        self.received_points = counter(RECEIVED_POINTS, "Metric data points received over OTLP.")
        self.rejected_points = counter(
            REJECTED_POINTS, "Metric data points not re-exposed (unsupported or over the series limit)."
        )
        self.requests = counter(REQUESTS, "HTTP requests served, by path and status code.", ("path", "code"))
        self.store_errors = counter(
            STORE_ERRORS, "Failed store operations (each sends a batch to the spool)."
        )
        self.spool_corrupt = counter(SPOOL_CORRUPT, "Spool files that failed their checksum (moved aside).")
        self.refused = counter(
            REFUSED_SPANS,
            "Spans the store refused for their content (set aside in the spool's refused/), by reason.",
            ("reason",),
        )
        self.queue_spans = gauge(QUEUE_SPANS, "Spans accepted and not yet written or spooled.")
        self.queue_bytes = gauge(
            QUEUE_BYTES, "Memory of the spans in the queue (their rows, estimated when decoded)."
        )
        self.spool_bytes = gauge(SPOOL_BYTES, "Bytes in the spool directory.")
        self.spool_batches = gauge(SPOOL_BATCHES, "Batches in the spool directory.")
        self.store_up = gauge(STORE_UP, "1 when the last store operation succeeded.")
        self.rollup_builds = counter(ROLLUP_BUILDS, "Runs of the rollup builder, by outcome.", ("outcome",))
        self.rollup_buckets = counter(ROLLUP_BUCKETS, "Rollup buckets built, by grain.", ("grain",))
        self.rollup_last_success = gauge(ROLLUP_LAST_SUCCESS, "When the rollup builder last completed a run.")
        self.store_rejected = Gauge(
            STORE_REJECTED_SPANS,
            "Spans of the last 24 hours the store did not take as calls, or took without a value, by reason.",
            ("reason",),
            registry=registry,
        )
        self.store_cost_mismatch = gauge(
            STORE_COST_MISMATCH_CALLS,
            "Calls of the last 24 hours whose client-sent cost differs from the store's price.",
        )
        self.insert_seconds = Histogram(
            INSERT_SECONDS,
            "Time to insert one batch into the store.",
            buckets=INSERT_BUCKETS,
            registry=registry,
        )
