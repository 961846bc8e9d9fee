"""The reconciler's settings (`spendscope reconcile`, `spendscope collector --reconcile`). The admin key
is not a setting: it is read from OPENAI_ADMIN_KEY only (never from the command line, where `ps` would
show it)."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field

from spendscope.settings._base import Settings
from spendscope.settings._types import AbsolutePath, Duration, Listen, Ratio, Seconds, Whole

# The openai SDK, which makes the retries, waits for a Retry-After of 120 s at most.
SDK_MAX_RETRY_WAIT = 120


class ReconcileSettings(Settings):
    component = "reconcile"

    min_coverage: Ratio = Field(
        0.95,
        ge=0,
        le=10,
        validation_alias="SPENDSCOPE_RECONCILE_MIN_COVERAGE",
        description="exit 3 when tracked / reported spend is below this, as 0.95 or 95% (token coverage "
        "while no cost day is closed)",
    )
    usage_settle: Duration = Field(
        timedelta(hours=1),
        validation_alias="SPENDSCOPE_RECONCILE_USAGE_SETTLE",
        description="compare a usage bucket only this long after it ended",
    )
    costs_settle: Duration = Field(
        timedelta(days=1),
        validation_alias="SPENDSCOPE_RECONCILE_COSTS_SETTLE",
        description="compare a cost day only this long after it ended",
    )
    bucket_width: Literal["1h", "1d"] = Field(
        "1h", validation_alias="SPENDSCOPE_RECONCILE_BUCKET_WIDTH", description="usage buckets: 1h or 1d"
    )
    interval: Duration = Field(
        timedelta(hours=1),
        validation_alias="SPENDSCOPE_RECONCILE_INTERVAL",
        description="--watch: time between runs",
    )
    max_retries: Whole = Field(
        5,
        ge=0,
        le=20,
        validation_alias="SPENDSCOPE_RECONCILE_MAX_RETRIES",
        description="retries per admin API call on 429, 5xx and connection errors",
    )
    max_retry_wait: Seconds = Field(
        120.0,
        ge=0,
        le=SDK_MAX_RETRY_WAIT,
        validation_alias="SPENDSCOPE_RECONCILE_MAX_RETRY_WAIT",
        description="longest Retry-After honoured, in seconds (at most the openai SDK's 120); a longer one "
        "fails the run",
    )
    page_bytes: Whole = Field(
        16 << 20,
        ge=1 << 16,
        le=1 << 30,
        validation_alias="SPENDSCOPE_RECONCILE_PAGE_BYTES",
        description="memory budget of one usage page: later pages are sized to it",
    )
    metrics_file: AbsolutePath | None = Field(
        None,
        validation_alias="SPENDSCOPE_RECONCILE_METRICS_FILE",
        description="write the Prometheus metrics here after each run (node_exporter textfile collector)",
    )
    metrics_listen: Listen = Field(
        ("127.0.0.1", 9466),
        validation_alias="SPENDSCOPE_RECONCILE_METRICS_LISTEN",
        description="--watch: serve Prometheus metrics on HOST:PORT /metrics (prometheus/prometheus.yml "
        "scrapes 9466)",
    )
