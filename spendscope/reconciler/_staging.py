"""The reconciler's ClickHouse side: staged pages, the tracked aggregate, the comparison queries, and
the result tables. Every query is a named query (clickhouse/queries/reconciliation_*.sql) whose inputs
are bound parameters."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from spendscope.reconciler._keys import KeyMapping
from spendscope.reconciler._model import (
    KIND_CAUSE,
    KIND_LINE_ITEM,
    SOURCE_COSTS,
    DailyTracked,
    Group,
    GroupKey,
    LineRow,
    Piece,
    ReconciliationResult,
    Tokens,
    Totals,
    Windows,
)
from spendscope.reconciler._normalize import (
    AUDIO_SEMANTICS_CHANGED,
    MODEL_ALIASES,
    MODEL_DATE_SUFFIX,
    TIER_ALIASES,
    TIER_SUFFIX,
)
from spendscope.store import Store, StoreError
from spendscope.store.sqlfiles import named_query
from spendscope.store.times import ch_time

RAW_PAGES: Final = "reconciliation_raw_pages"
PAGES: Final = "reconciliation_pages"
PAGE_COLUMNS: Final = ("run_id", "source", "page_no", "object", "has_more", "next_page", "data")
TRACKED: Final = "reconciliation_tracked"
RUNS: Final = "reconciliation_runs"
DIFFS: Final = "reconciliation_diffs"
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")

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
    "ambiguous_keys",
    "unmapped_keys",
    "pages",
    "requests_made",
)


def normalisation_params() -> dict[str, Any]:
    """The normalisation rules of _normalize.py, as the queries' parameters."""
    return {
        "model_from": list(MODEL_ALIASES),
        "model_to": list(MODEL_ALIASES.values()),
        "model_suffix": MODEL_DATE_SUFFIX,
        "tier_from": list(TIER_ALIASES),
        "tier_to": list(TIER_ALIASES.values()),
        "tier_suffix": TIER_SUFFIX,
    }


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _utc(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.combine(value, datetime.min.time(), UTC)


class Staging:
    """One run's staged data; `drop()` removes it."""

    def __init__(self, store: Store, run_id: str) -> None:
        if not _RUN_ID.match(run_id):
            raise ValueError(f"bad run id {run_id!r}")
        self.store = store
        self.run_id = run_id

    def run(self, name: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        bound = {"run_id": self.run_id, **params} if "run_id" in named_query(name).params else dict(params)
        rows = self.store.run(name, bound)
        return [dict(zip(rows.columns, row, strict=True)) for row in rows.rows]

    # --- usage pages ---------------------------------------------------------------------------------
    def add_page(self, source: str, page_no: int, body: bytes) -> None:
        """Stage one raw Usage API page: its bytes as they came (no parsing on the way in), then parsed
        by ClickHouse into reconciliation_pages."""
        from clickhouse_connect.driver.exceptions import ClickHouseError

        label = f"{self.run_id} {source} {page_no}"
        try:
            self.store.client.raw_insert(
                RAW_PAGES, ["body"], body, settings={"log_comment": label}, fmt="RawBLOB"
            )
        except ClickHouseError as exc:
            raise StoreError(f"staging usage/{source} page {page_no} failed: {_first_line(exc)}") from None
        query = named_query("reconciliation_extract_page")
        params = query.bind({"run_id": self.run_id, "source": source, "page_no": page_no})
        self.store.command(f"INSERT INTO {PAGES} ({', '.join(PAGE_COLUMNS)}) {query.sql}", params)

    def envelopes(self) -> dict[tuple[str, int], tuple[bool, str | None]]:
        """(source, page) -> (has_more, next_page) of every staged page that is a `page` object."""
        return {
            (str(r["source"]), int(r["page_no"])): (bool(r["has_more"]), r["next_page"])
            for r in self.run("reconciliation_page", {})
            if r["object"] == "page"
        }

    def buckets(self) -> list[tuple[str, int, int, int]]:
        return [
            (str(r["source"]), int(r["start_time"]), int(r["end_time"]), int(r["results"]))
            for r in self.run("reconciliation_buckets", {})
        ]

    # --- tracked ---------------------------------------------------------------------------------------
    def tracked_keys(self, since: datetime, until: datetime) -> list[tuple[str, str]]:
        rows = self.store.run(
            "reconciliation_tracked_keys", {"since": ch_time(since), "until": ch_time(until)}
        )
        return [(str(project), str(redacted)) for project, redacted, _ in rows.rows]

    def stage_tracked(self, windows: Windows, mapping: KeyMapping) -> None:
        query = named_query("reconciliation_tracked")
        pairs = mapping.matches
        params = {
            "run_id": self.run_id,
            "since": ch_time(windows.start),
            "until": ch_time(windows.usage_end),
            "bucket_width": windows.bucket_width,
            "pair_keys": [f"{m.project}\n{m.redacted}" for m in pairs],
            "pair_projects": [m.project_id for m in pairs],
            "pair_labels": [m.label for m in pairs],
            "pair_status": [m.status for m in pairs],
            **normalisation_params(),
        }
        columns = ", ".join(TRACKED_COLUMNS)
        self.store.command(f"INSERT INTO {TRACKED} ({columns}) {query.sql}", query.bind(params))

    def seen(self) -> list[tuple[str, str, str]]:
        return [
            (str(r["project_id"]), str(r["api_key_id"]), str(r["model"]))
            for r in self.run("reconciliation_seen", {})
        ]

    # --- comparison ------------------------------------------------------------------------------------
    def mismatches(self, mapping: KeyMapping, width_seconds: int) -> list[Group]:
        params = {
            "merge_from": list(mapping.merged),
            "merge_to": list(mapping.merged.values()),
            "audio_change": ch_time(AUDIO_SEMANTICS_CHANGED),
            **normalisation_params(),
        }
        groups = []
        for r in self.run("reconciliation_compare", params):
            bucket = _utc(r["bucket"])
            end = _utc(r["bucket_end"])
            if end <= bucket:  # tracked only: the bucket ends where the next one starts
                end = datetime.fromtimestamp(
                    (int(bucket.timestamp()) // width_seconds + 1) * width_seconds, UTC
                )
            groups.append(
                Group(
                    key=GroupKey(
                        str(r["source"]),
                        bucket,
                        str(r["project_id"]),
                        str(r["api_key_id"]),
                        str(r["model"]),
                        bool(r["batch"]),
                        str(r["service_tier"]),
                    ),
                    bucket_end=end,
                    key_mapping=str(r["key_mapping"]),
                    reported_model=str(r["reported_model"]),
                    tracked_model=str(r["tracked_model"]),
                    reported=Tokens(
                        int(r["requests"]),
                        int(r["input_tokens"]),
                        int(r["cached_input_tokens"]),
                        int(r["output_tokens"]),
                        int(r["input_audio_tokens"]),
                        int(r["output_audio_tokens"]),
                        round(float(r["audio_seconds"]), 3),
                    ),
                    tracked=Tokens(
                        int(r["t_requests"]),
                        int(r["t_input_tokens"]),
                        int(r["t_cached_input_tokens"]),
                        int(r["t_output_tokens"]),
                        int(r["t_input_audio_tokens"]),
                        int(r["t_output_audio_tokens"]),
                        round(float(r["t_audio_seconds"]), 3)
                        if float(r["t_audio_seconds"]) > 0
                        else round(float(r["audio_seconds"]), 3),
                    ),
                    unavailable_calls=int(r["t_unavailable_calls"]),
                    error_calls=int(r["t_error_calls"]),
                    tracked_usd=Decimal(r["t_cost_usd"]),
                )
            )
        return groups

    def totals(self) -> Totals:
        totals = Totals()
        for r in self.run("reconciliation_totals", {}):
            values = {k: int(v or 0) for k, v in r.items() if k != "source"}
            totals.by_source[str(r["source"])] = values
            totals.reported_requests += values["reported_requests"]
            totals.tracked_requests += values["tracked_requests"]
            totals.reported_tokens += values["reported_input_tokens"] + values["reported_output_tokens"]
            totals.tracked_tokens += values["tracked_input_tokens"] + values["tracked_output_tokens"]
            totals.reported_buckets += values["reported_buckets"]
            totals.empty_buckets += values["empty_buckets"]
        return totals

    def daily(self, windows: Windows) -> list[DailyTracked]:
        if not windows.has_costs:
            return []
        rows = self.run(
            "reconciliation_tracked_daily",
            {"costs_start": ch_time(windows.costs_start), "costs_end": ch_time(windows.costs_end)},
        )
        return [
            DailyTracked(
                day=_utc(r["day"]),
                project_id=str(r["project_id"]),
                model=str(r["model"]),
                model_raw=str(r["model_raw"]),
                batch=bool(r["batch"]),
                service_tier=str(r["service_tier"]),
                price_version=str(r["price_version"]),
                priced=bool(r["priced"]),
                tokens=Tokens(
                    int(r["ok_calls"]),
                    int(r["input_tokens"]),
                    int(r["cached_input_tokens"]),
                    int(r["output_tokens"]),
                    int(r["input_audio_tokens"]),
                    int(r["output_audio_tokens"]),
                    round(float(r["audio_seconds"]), 3),
                ),
                cache_write_input=int(r["cache_write_input_tokens"]),
                usd=Decimal(r["cost_usd"]),
                max_input_tokens=int(r["max_input_tokens"]),
            )
            for r in rows
        ]

    def drop(self) -> None:
        for table in (RAW_PAGES, PAGES, TRACKED):
            self.store.command(f"ALTER TABLE {table} DROP PARTITION '{self.run_id}'")


# The output columns of reconciliation_tracked.sql, in order.
TRACKED_COLUMNS: Final = (
    "run_id",
    "source",
    "bucket",
    "project_id",
    "api_key_id",
    "key_mapping",
    "model",
    "model_raw",
    "batch",
    "service_tier",
    "price_version",
    "priced",
    "ok_calls",
    "unavailable_calls",
    "error_calls",
    "input_tokens",
    "cached_input_tokens",
    "cache_write_input_tokens",
    "output_tokens",
    "input_audio_tokens",
    "output_audio_tokens",
    "audio_seconds",
    "cost_usd",
    "max_input_tokens",
)


# --- results ----------------------------------------------------------------------------------------------
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
