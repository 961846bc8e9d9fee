"""The reconciler's results in ClickHouse: reconciliation_diffs and reconciliation_runs, written so
that only a complete run is ever a result, and a re-run of a window replaces what it replaces."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from spendscope.reconciler._model import (
    KIND_CAUSE,
    KIND_LINE_ITEM,
    SOURCE_COSTS,
    LineRow,
    Piece,
    ReconciliationResult,
    Windows,
)
from spendscope.store import Store
from spendscope.store.times import ch_time

RUNS: Final = "reconciliation_runs"
DIFFS: Final = "reconciliation_diffs"
DIFF_COLUMNS: Final = (
    "run_id",
    "kind",
    "cause",
    "detail",
    "source",
    "bucket",
    "bucket_end",
    "project_id",
    "api_key_id",
    "key_mapping",
    "model",
    "batch",
    "service_tier",
    "line_item",
    "requests",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "input_audio_tokens",
    "output_audio_tokens",
    "audio_seconds",
    "tokens",
    "calls",
    "usd",
    "tracked_usd",
    "reported_usd",
)
RUN_COLUMNS: Final = (
    "run_id",
    "status",
    "error",
    "window_start",
    "window_end",
    "usage_end",
    "costs_start",
    "costs_end",
    "bucket_width",
    "started_at",
    "finished_at",
    "tracked_requests",
    "reported_requests",
    "tracked_tokens",
    "reported_tokens",
    "residual_tokens",
    "tracked_usd",
    "reported_usd",
    "residual_usd",
    "coverage_ratio",
    "token_coverage_ratio",
    "min_coverage",
    "passed",
    "cause_tokens",
    "cause_usd",
    "cause_calls",
    "ambiguous_keys",
    "unmapped_keys",
    "pages",
    "requests_made",
)


def diff_rows(run_id: str, result_pieces: Sequence[Piece], lines: Sequence[LineRow]) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for p in result_pieces:
        t = p.tokens
        k = p.key
        rows.append(
            [
                run_id,
                KIND_CAUSE,
                p.cause,
                p.detail,
                k.source,
                k.bucket,
                p.bucket_end,
                k.project_id,
                k.api_key_id,
                p.key_mapping,
                k.model,
                k.batch,
                k.service_tier,
                p.line_item,
                t.requests,
                t.input,
                t.cached_input,
                t.output,
                t.input_audio,
                t.output_audio,
                float(t.audio_seconds),
                t.total,
                p.calls,
                p.usd,
                None,
                None,
            ]
        )
    for line in lines:
        rows.append(
            [
                run_id,
                KIND_LINE_ITEM,
                "",
                "",
                SOURCE_COSTS,
                line.day,
                line.day + _ONE_DAY,
                line.project_id,
                "",
                "",
                line.model,
                line.batch,
                line.service_tier,
                line.line_item,
                0,
                0,
                0,
                0,
                0,
                0,
                0.0,
                0,
                0,
                line.diff_usd,
                line.tracked_usd,
                line.reported_usd,
            ]
        )
    return rows


def run_row(result: ReconciliationResult) -> list[Any]:
    t = result.totals
    w = result.windows
    return [
        result.run_id,
        "complete",
        "",
        w.start,
        w.until,
        w.usage_end,
        w.costs_start,
        w.costs_end,
        w.bucket_width,
        result.started_at,
        result.finished_at,
        t.tracked_requests,
        t.reported_requests,
        t.tracked_tokens,
        t.reported_tokens,
        t.residual_tokens,
        t.tracked_usd,
        t.reported_usd,
        t.residual_usd,
        _finite(t.coverage_ratio),
        t.token_coverage_ratio,
        result.min_coverage,
        result.passed,
        result.cause_tokens(),
        result.cause_usd(),
        result.cause_calls(),
        result.ambiguous_keys,
        result.unmapped_keys,
        result.pages,
        result.requests_made,
    ]


def failed_row(
    run_id: str, windows: Windows, started_at: datetime, error: str, min_coverage: float, requests_made: int
) -> list[Any]:
    w = windows
    return [
        run_id,
        "failed",
        error[:2000],
        w.start,
        w.until,
        w.usage_end,
        w.costs_start,
        w.costs_end,
        w.bucket_width,
        started_at,
        datetime.now(UTC),
        0,
        0,
        0,
        0,
        0,
        Decimal(0),
        None,
        None,
        None,
        None,
        min_coverage,
        False,
        {},
        {},
        {},
        [],
        [],
        0,
        requests_made,
    ]


def _finite(value: float | None) -> float | None:
    return None if value is None or value == float("inf") else value


_ONE_DAY = timedelta(days=1)


def write_result(store: Store, result: ReconciliationResult) -> None:
    """Write the diffs, then the run (the commit: only a complete run is written as complete), then
    delete what earlier runs wrote for the same buckets and window."""
    w = result.windows
    rows = diff_rows(result.run_id, result.pieces, result.lines)
    for start in range(0, len(rows), 50_000):
        store.insert(DIFFS, rows[start : start + 50_000], DIFF_COLUMNS)
    store.insert(RUNS, [run_row(result)], RUN_COLUMNS)
    params = {"run_id": result.run_id, "start": ch_time(w.start), "end": ch_time(w.usage_end)}
    store.command(
        f"DELETE FROM {DIFFS} WHERE run_id != {{run_id:String}} "
        "AND bucket >= {start:DateTime64(9, 'UTC')} AND bucket_end <= {end:DateTime64(9, 'UTC')}",
        params,
    )
    store.command(
        f"DELETE FROM {RUNS} WHERE run_id != {{run_id:String}} "
        "AND window_start = {start:DateTime64(9, 'UTC')} AND usage_end = {end:DateTime64(9, 'UTC')}",
        params,
    )


def write_failure(store: Store, row: list[Any]) -> None:
    store.insert(RUNS, [row], RUN_COLUMNS)
