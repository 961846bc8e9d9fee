"""The reconciler's ClickHouse side: staged pages, the tracked aggregate, the comparison queries, and
the result tables. Every query is a named query (clickhouse/queries/reconciliation_*.sql) whose inputs
are bound parameters."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from spendscope.reconciler._errors import FetchError
from spendscope.reconciler._keys import KeyMapping
from spendscope.reconciler._model import (
    DailyTracked,
    Group,
    GroupKey,
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
from spendscope.store import Store
from spendscope.store.sqlfiles import named_query
from spendscope.store.times import ch_time

PAGES: Final = "reconciliation_pages"
_JSON_SETTINGS: Final = {
    "input_format_skip_unknown_fields": 1,
    "input_format_json_ignore_unknown_keys_in_named_tuple": 1,
    "input_format_json_defaults_for_missing_elements_in_named_tuple": 1,
    "input_format_null_as_default": 1,
    "async_insert": 0,
}
TRACKED: Final = "reconciliation_tracked"
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


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
        query = named_query(name)
        bound = {"run_id": self.run_id, **params} if "run_id" in query.params else dict(params)
        rows = self.store.query(query.sql, query.bind(bound))
        return [dict(zip(rows.columns, row, strict=True)) for row in rows.rows]

    # --- usage pages ---------------------------------------------------------------------------------
    def add_page(self, source: str, page_no: int, body: bytes) -> None:
        """Stage one raw Usage API page: ClickHouse parses it into reconciliation_pages' columns (the
        run, source and page number are prepended to the page object as three more keys)."""
        from clickhouse_connect.driver.exceptions import ClickHouseError

        text = body.lstrip()
        if not text.startswith(b"{"):
            raise FetchError(f"usage/{source} page {page_no} is not a JSON object")
        head = json.dumps({"run_id": self.run_id, "source": source, "page_no": page_no})[:-1].encode()
        try:
            self.store.client.raw_insert(
                PAGES, None, head + b"," + text[1:], settings=_JSON_SETTINGS, fmt="JSONEachRow"
            )
        except ClickHouseError as exc:
            raise FetchError(
                f"usage/{source} page {page_no} is not a Usage API page: {_first_line(exc)}"
            ) from None

    def staged_pages(self) -> dict[tuple[str, int], int]:
        """(source, page) -> the number of buckets of every staged page that is a `page` object."""
        return {
            (str(r["source"]), int(r["page_no"])): int(r["buckets"])
            for r in self.run("reconciliation_page", {})
            if r["object"] == "page"
        }

    def buckets(self) -> list[tuple[str, int, int, int]]:
        return [
            (str(r["source"]), int(r["start_time"]), int(r["end_time"]), int(r["results"]))
            for r in self.run("reconciliation_buckets", {})
        ]

    # --- tracked ---------------------------------------------------------------------------------------
    def tracked_keys(self, windows: Windows) -> list[tuple[str, str, int, int, Decimal]]:
        """(recorded project, redacted key, requests, tokens, stored cost over the closed cost days)."""
        params = {
            "since": ch_time(windows.start),
            "until": ch_time(windows.usage_end),
            "costs_start": ch_time(windows.costs_start),
            "costs_end": ch_time(windows.costs_end),
        }
        return [
            (
                str(r["project"]),
                str(r["redacted"]),
                int(r["requests"]),
                int(r["tokens"]),
                Decimal(r["cost_usd"]),
            )
            for r in self.run("reconciliation_tracked_keys", params)
        ]

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

    def reported_keys(self) -> list[tuple[str, str, int, int]]:
        """(project_id, api_key_id, requests, tokens) as the Usage API reported them."""
        return [
            (str(r["project_id"]), str(r["api_key_id"]), int(r["requests"]), int(r["tokens"]))
            for r in self.run("reconciliation_reported_keys", {})
        ]

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
        for table in (PAGES, TRACKED):
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
