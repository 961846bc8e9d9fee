"""The rollup builder: llm_usage_rollup computed from llm_usage FINAL, bucket by bucket.

    build_rollups(store)   # the collector runs it every SPENDSCOPE_COLLECTOR_ROLLUP_INTERVAL seconds;
                           # `spendscope rollups build` once

Each run:
1. gives the names calls brought that the store has no price row for their rows, and prices those
   calls again (spendscope/store/prices.py: `resolve_seen_models`);
2. for each grain (hour; day; day and user; day and job), finds the stale buckets: those with rows of
   llm_usage written after their latest build covered them (or never built), and quiet for `lag` (no
   row written since: a bucket still being written would be stale again at once), newer than the raw
   retention;
3. builds them: reads their calls through the `usage` view (llm_usage FINAL for stale buckets; a day
   reads the hours already built where they are clean) into new rows under a new build id, in any
   number of blocks, then publishes the build with one rollup_builds row per bucket, `covered_upto` =
   the time it started reading minus `lag`;
4. deletes the rows and build records its builds superseded.

Readers use a bucket's rollup rows only while no row of llm_usage in it is newer than `covered_upto`
(see `usage` in clickhouse/migrations/0001_baseline.sql, and 0004_job_rollup.sql for the grain per day
and job), so a bucket is never read short or double: not if a build stops half-way (its rows are never
published), not if a span arrives again or late, not if a call is priced again. `covered_upto` lags the
build's reading by `lag` because a row's `inserted_at` is set when the view computes it, shortly before
its part is committed: `LAG` is far longer than any insert takes from one to the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from spendscope.store.store import Store
from spendscope.store.times import ch_time

if TYPE_CHECKING:
    from spendscope.pricing import Pricer
    from spendscope.store.prices import Resolved

LAG = timedelta(minutes=5)
GRAINS = ("hour", "day", "user_day", "job_day")  # in this order: a day reads the hours built before it
_SIZE = {
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "user_day": timedelta(days=1),
    "job_day": timedelta(days=1),
}
GRAIN_TYPE = "Enum8('hour' = 1, 'day' = 2, 'user_day' = 3, 'job_day' = 4)"
MAX_BUCKETS = 240  # buckets built per statement (a day of hours, ten days)


@dataclass(frozen=True, slots=True)
class BuildResult:
    resolved: Resolved | None
    buckets: dict[str, int] = field(default_factory=dict)  # buckets built, per grain
    rows: int = 0  # rollup rows written
    superseded: int = 0  # earlier builds of those buckets whose rows were deleted


def _bucket(grain: str, hour_expression: str) -> str:
    """SQL for the bucket of `grain` an hour start falls in."""
    day = f"toStartOfDay({hour_expression})"
    return f"toDateTime({hour_expression if grain == 'hour' else day}, 'UTC')"


def stale_buckets(store: Store, grain: str, *, lag: timedelta = LAG) -> list[datetime]:
    """The buckets of `grain` to build: written since their last build, quiet for `lag`, newer than the
    raw retention. Reads llm_usage's per-hour projection (max(inserted_at)), not its rows."""
    sql = f"""
        SELECT i.bucket
        FROM (
            SELECT {_bucket(grain, "toStartOfHour(time)")} AS bucket, max(inserted_at) AS last_inserted
            FROM llm_usage
            WHERE toStartOfHour(time) >= {{horizon:DateTime('UTC')}}
            GROUP BY bucket
        ) AS i
        LEFT JOIN (
            SELECT bucket, argMax(covered_upto, build_id) AS covered_upto
            FROM rollup_builds
            WHERE grain = {{grain:String}}
            GROUP BY bucket
        ) AS b ON b.bucket = i.bucket
        WHERE i.last_inserted > b.covered_upto
            AND i.last_inserted <= now64(6) - toIntervalMicrosecond({{lag:UInt64}})
        ORDER BY i.bucket
        SETTINGS join_use_nulls = 0
    """
    params = {"horizon": _horizon(store, grain), "grain": grain, "lag": int(lag / timedelta(microseconds=1))}
    return [row[0] for row in store.query(sql, params).rows]


def _horizon(store: Store, grain: str) -> str:
    """The first bucket the raw retention keeps whole (the epoch without one), as a parameter."""
    [[horizon]] = store.query(
        """
        WITH (
            SELECT toUInt32OrZero(argMax(value, updated_at)) FROM store_settings
            WHERE name = 'raw_retention_days'
        ) AS days
        SELECT if(
            days = 0, toDateTime(0, 'UTC'), toStartOfDay(now('UTC')) - toIntervalDay(greatest(days, 1) - 1)
        )
        """
    ).rows
    return str(horizon.strftime("%Y-%m-%d %H:%M:%S"))


def build_buckets(store: Store, grain: str, buckets: Sequence[datetime], *, lag: timedelta = LAG) -> int:
    """Build and publish `buckets` of `grain` (one statement); returns the rows written."""
    if not buckets:
        return 0
    [[build_id, started]] = store.query("SELECT toUnixTimestamp64Nano(now64(9)), now64(6)").rows
    covered_upto = started - lag
    window = {
        "grain": grain,
        "since": ch_time(min(buckets)),
        "until": ch_time(max(buckets) + _SIZE[grain]),
        "buckets": [b.strftime("%Y-%m-%d %H:%M:%S") for b in buckets],
        "build_id": int(build_id),
    }
    # The rows in as many blocks as ClickHouse makes: unpublished, they are read by nothing.
    store.command(
        """
        INSERT INTO llm_usage_rollup
        SELECT
            {grain:String} AS grain, bucket, {build_id:UInt64} AS build_id, tenant, user_id, endpoint, model,
            service, operation,
            -- every measure summed (a day's rows may come from its clean hours: one row per hour)
            * EXCEPT (bucket, tenant, user_id, endpoint, model, service, operation, quantities, job_id)
                APPLY(sum),
            sumMap(quantities),
            job_id
        FROM usage(
            grain = {grain:String}, since = {since:DateTime64(9, 'UTC')}, until = {until:DateTime64(9, 'UTC')}
        )
        WHERE bucket IN {buckets:Array(DateTime('UTC'))}
        GROUP BY bucket, tenant, user_id, endpoint, model, service, operation, job_id
        """,
        window,
    )
    [[rows]] = store.query(
        "SELECT count() FROM llm_usage_rollup WHERE grain = {grain:String} AND build_id = {build_id:UInt64} "
        "AND bucket IN {buckets:Array(DateTime('UTC'))}",
        window,
    ).rows
    # Published: one block, so all of these buckets at once.
    store.insert(
        "rollup_builds",
        [[grain, bucket, int(build_id), covered_upto, started] for bucket in buckets],
        ["grain", "bucket", "build_id", "covered_upto", "built_at"],
        column_type_names=[
            GRAIN_TYPE,
            "DateTime('UTC')",
            "UInt64",
            "DateTime64(6, 'UTC')",
            "DateTime64(6, 'UTC')",
        ],
    )
    return int(rows)


def delete_superseded(store: Store, grain: str, buckets: Sequence[datetime]) -> int:
    """Delete the rollup rows and build records of `buckets` older than each one's latest published
    build (their own rows, and those of builds that never published); returns how many builds."""
    params: dict[str, Any] = {"grain": grain, "buckets": [b.strftime("%Y-%m-%d %H:%M:%S") for b in buckets]}
    old = store.query(
        """
        SELECT r.bucket, r.build_id
        FROM (
            SELECT DISTINCT bucket, build_id FROM llm_usage_rollup
            WHERE grain = {grain:String} AND bucket IN {buckets:Array(DateTime('UTC'))}
            UNION DISTINCT
            SELECT bucket, build_id FROM rollup_builds
            WHERE grain = {grain:String} AND bucket IN {buckets:Array(DateTime('UTC'))}
        ) AS r
        INNER JOIN (
            SELECT bucket, max(build_id) AS latest FROM rollup_builds
            WHERE grain = {grain:String} AND bucket IN {buckets:Array(DateTime('UTC'))}
            GROUP BY bucket
        ) AS l ON l.bucket = r.bucket
        WHERE r.build_id < l.latest
        """,
        params,
    ).rows
    if old:
        params["old"] = [(bucket.strftime("%Y-%m-%d %H:%M:%S"), int(build)) for bucket, build in old]
        for table in ("llm_usage_rollup", "rollup_builds"):
            store.command(
                f"DELETE FROM {table} WHERE grain = {{grain:String}} "
                "AND (bucket, build_id) IN {old:Array(Tuple(DateTime('UTC'), UInt64))}",
                params,
            )
    return len(old)


def build_rollups(
    store: Store,
    pricer: Pricer | None = None,
    *,
    grains: Sequence[str] = GRAINS,
    lag: timedelta = LAG,
    max_buckets: int = MAX_BUCKETS,
) -> BuildResult:
    """One run of the builder (see the module's docstring)."""
    from spendscope.store.prices import resolve_seen_models
    from spendscope.store.setup import pricer as configured_pricer

    resolved = resolve_seen_models(store, pricer or configured_pricer())
    built: dict[str, int] = {}
    rows = superseded = 0
    for grain in grains:
        stale = stale_buckets(store, grain, lag=lag)
        for start in range(0, len(stale), max_buckets):
            chunk = stale[start : start + max_buckets]
            rows += build_buckets(store, grain, chunk, lag=lag)
            superseded += delete_superseded(store, grain, chunk)
        built[grain] = len(stale)
    return BuildResult(resolved, built, rows, superseded)
