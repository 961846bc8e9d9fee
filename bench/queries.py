"""Query latency on 10 million synthetic LLM calls in the embedded ClickHouse store.

    python bench/queries.py [--calls 10000000] [--users 20000] [--repeats 7] [--dir DIR]

The calls are generated inside ClickHouse (INSERT ... SELECT FROM numbers()) into `llm_usage`, so the
materialized views fill every rollup exactly as live ingest does. Each report query (from
clickhouse/queries, through spendscope.store.reports, reading the rollups) is timed beside the same
answer computed by scanning `llm_usage` itself: the ratio is what the rollups buy, and the two
answers must be equal (each value's cost, and calls where the scan counts them: `exact`). Wall time
(min and median of --repeats after a warm-up), the process CPU time (chdb runs in-process, so it is
the query's work whatever else runs on the machine) and the rows ClickHouse plans to read (EXPLAIN
ESTIMATE: whole granules of 8,192 rows) are recorded. Two more columns split a report's time: the
query alone in ClickHouse (its Native result bytes, not turned into Python values), and its answer
alone (computed beforehand into a Memory table, then fetched into Python rows as the report is: what
the result's size costs the client, however the answer is computed). Prints a Markdown table and writes
bench/results/queries.json; exits non-zero if an answer differs from its scan.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from spendscope.store import open_store
from spendscope.store import reports as r
from spendscope.store.sqlfiles import named_query

RESULTS = Path(__file__).resolve().parent / "results" / "queries.json"
ROLLUPS = ("llm_usage_hourly", "llm_usage_daily", "llm_usage_by_dimension", "llm_usage_timeline")
ENDPOINTS = [
    "cv-parsing",
    "question-generation",
    "video-interview",
    "cv-search",
    "analyze_homework",
    "generate_hint",
    "chat",
    "summarize",
]
MODELS = [
    "gpt-4o-mini-2024-07-18",
    "gpt-4.1-2025-04-14",
    "gpt-5-mini",
    "gpt-realtime",
    "text-embedding-3-small",
    "gpt-5",
]


def generate(
    store: Any, calls: int, users: int, days: int, chunk: int = 1_000_000, *, live: bool = False
) -> float:
    """Insert `calls` synthetic calls spread over the last `days` days (`live`: one a millisecond from
    now on, so each insert is a few seconds of calls, as a collector's batch); returns seconds taken."""
    started = time.perf_counter()
    now = datetime.now(UTC).replace(microsecond=0)
    columns = ", ".join(str(row[0]) for row in store.query("DESCRIBE TABLE llm_usage").rows)
    offset_time = (
        "+ toIntervalMillisecond(number)"
        if live
        else f"- toIntervalSecond(cityHash64(number, 1) % {days * 86400})"
    )
    for offset in range(0, calls, chunk):
        store.command(
            f"""
            INSERT INTO llm_usage ({columns})
            SELECT {columns} FROM (
            SELECT
                toDateTime64({{now:DateTime64(9, 'UTC')}}, 9, 'UTC') {offset_time} AS time,
                concat('user-', toString(cityHash64(number, 8) % {users})) AS user_id,
                ['hr-platform', 'homework-helper', 'search'][1 + cityHash64(user_id) % 3] AS service,
                hex(cityHash64(number, 2)) || hex(cityHash64(number, 3)) AS trace_id,
                hex(cityHash64(number, 4)) AS span_id,
                concat('chatcmpl-', toString(number)) AS response_id,
                'chat' AS operation, 'openai' AS provider, 'chat_completions' AS api_type,
                -- each user works in two features; each feature uses two models, as apps do
                (cityHash64(user_id, 1) + (number % 2) * 3) % {len(ENDPOINTS)} AS endpoint_index,
                {{models:Array(String)}}[1 + (endpoint_index + intDiv(number % 4, 2)) % {len(MODELS)}]
                    AS request_model,
                request_model AS response_model, request_model AS model,
                'default' AS service_tier, '' AS request_service_tier, false AS batch,
                100 + cityHash64(number, 6) % 4000 AS input_tokens,
                10 + cityHash64(number, 7) % 800 AS output_tokens,
                intDiv(input_tokens, 3) AS cached_input_tokens, 0 AS cache_write_input_tokens,
                intDiv(output_tokens, 4) AS reasoning_tokens,
                0 AS input_audio_tokens, 0 AS output_audio_tokens,
                0 AS audio_seconds,
                toDecimal128((input_tokens * 0.15 + output_tokens * 0.6) / 1000000, 18) AS cost_usd,
                'genai-prices 0.2.3' AS price_version, 'reported' AS usage_state, 'ok' AS status,
                '' AS error_type,
                {{endpoints:Array(String)}}[1 + endpoint_index] AS endpoint,
                concat('tenant-', toString(cityHash64(user_id) % 200)) AS tenant,
                map('job_id', concat('job-', toString(cityHash64(number, 10) % 5000))) AS attributes,
                'proj_bench' AS openai_project, 'sk-proj-...b3nc' AS api_key_redacted,
                1000000 AS duration_ns, 1 AS sign, 0 AS version
            FROM numbers({offset}, {min(chunk, calls - offset)})
            )
            """,
            {"now": now, "models": MODELS, "endpoints": ENDPOINTS},
        )
    if not live:
        for table in ROLLUPS:  # what background merges do on a live store
            store.command(f"OPTIMIZE TABLE {table} FINAL")
    return time.perf_counter() - started


def ingest_cost(store: Any, calls: int, users: int) -> dict[str, float]:
    """Process CPU seconds to insert `calls` live calls in blocks of 5,000, with every view and
    without 0008's (llm_usage_by_dimension, llm_usage_timeline), in this store's fresh database."""
    out = {}
    for label in ("with_0008_views", "without_0008_views"):
        if label.startswith("without"):
            for view in ("llm_usage_by_dimension_mv", "llm_usage_timeline_mv"):
                store.command(f"DROP TABLE {view}")
        cpu_start = _cpu_s()
        generate(store, calls, users, 1, chunk=5_000, live=True)
        out[label] = round(_cpu_s() - cpu_start, 1)
    return out


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(fn: Callable[[], object], repeats: int) -> dict[str, float]:
    """Wall ms (median, min) and process CPU ms (median) after one warm-up run."""
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        cpu_start, start = _cpu_s(), time.perf_counter()
        fn()
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((_cpu_s() - cpu_start) * 1000)
    return {
        "ms": round(statistics.median(wall), 1),
        "min_ms": round(min(wall), 1),
        "cpu_ms": round(statistics.median(cpu), 1),
    }


def same_answer(report: r.Report, scan: list[list[Any]]) -> bool:
    """The report equals the raw scan, whose rows are (value, [calls,] cost): the report's first
    column is the value (a model, user, day, ...)."""
    calls = bool(scan) and len(scan[0]) == 3
    mine = [
        (d[report.columns[0]], *([d["calls"]] if calls else []), d["cost_usd"]) for d in report.as_dicts()
    ]
    return sorted(mine) == sorted(tuple(row) for row in scan)


def clickhouse_alone(store: Any, query: r.Query, repeats: int) -> dict[str, float]:
    """ClickHouse's part of a report: the same query, its Native result bytes not turned into Python
    values."""
    bound = named_query(query.name).bind(dict(query.params))
    return timed(lambda: store.client.raw_query(query.sql, parameters=bound, fmt="Native"), repeats)


def answer_alone(store: Any, query: r.Query, repeats: int) -> dict[str, float]:
    """The same answer computed beforehand (a Memory table), fetched into Python rows as the report
    is: what its size costs the client alone, whatever the query."""
    bound = named_query(query.name).bind(dict(query.params))
    store.command("DROP TABLE IF EXISTS bench_answer")
    store.command(f"CREATE TABLE bench_answer ENGINE = Memory AS {query.sql}", bound)
    try:
        return timed(lambda: store.query("SELECT * FROM bench_answer"), repeats)
    finally:
        store.command("DROP TABLE bench_answer")


def rows_planned(store: Any, sql: str, params: dict[str, Any]) -> int:
    """Rows in the granules ClickHouse will read for `sql`, over every table it touches."""
    return sum(int(row[3]) for row in store.query(f"EXPLAIN ESTIMATE {sql}", params).rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--dir", default="/tmp/spendscope-bench-queries")
    parser.add_argument("--reuse", action="store_true", help="time the queries on data generated before")
    parser.add_argument(
        "--ingest-cost",
        type=int,
        default=0,
        metavar="CALLS",
        help="also measure what 0008's views add to inserts",
    )
    args = parser.parse_args()
    if not args.reuse:
        shutil.rmtree(args.dir, ignore_errors=True)
    ingest = {}
    if args.ingest_cost:
        # a database of its own in the same directory (chdb opens one directory per process)
        with open_store(f"chdb://{args.dir}", database="bench_ingest", migrate=True) as scratch:
            ingest = ingest_cost(scratch, args.ingest_cost, args.users)
            scratch.command("DROP DATABASE bench_ingest SYNC")
        print(f"CPU to insert {args.ingest_cost:,} calls in blocks of 5,000: {ingest}")
    store = open_store(f"chdb://{args.dir}", database="bench", migrate=True)
    generate_s = 0.0 if args.reuse else generate(store, args.calls, args.users, args.days)
    counts = {
        table: int(store.query(f"SELECT count() FROM {table}").rows[0][0])
        for table in ("llm_usage", *ROLLUPS)
    }
    now = datetime.now(UTC)
    since, until = now - timedelta(days=args.days), now
    month = date(now.year, now.month, 1)
    month_since = datetime(month.year, month.month, 1, tzinfo=UTC)
    busiest = (
        "SELECT user_id, any(tenant) FROM llm_usage_daily GROUP BY user_id ORDER BY sum(calls) DESC LIMIT 1"
    )
    user, tenant = (str(v) for v in store.query(busiest).rows[0])
    window = {"since": since, "until": until}
    scan_window = "time >= {s:DateTime64(9, 'UTC')} AND time < {u:DateTime64(9, 'UTC')}"
    scan_params = {"s": since, "u": until}

    def scan(sql: str, params: dict[str, Any] = scan_params) -> tuple[str, dict[str, Any]]:
        return sql, params

    # (name, the report's query, the raw scan answering the same question)
    cases: list[tuple[str, r.Query, tuple[str, dict[str, Any]]]] = [
        (
            f"one user's monthly cost by model ({user})",
            r.user_month_query(user, month),
            scan(
                "SELECT model, sum(sign * cost_usd) FROM llm_usage WHERE user_id = {u:String} "
                "AND time >= {s:DateTime64(9, 'UTC')} GROUP BY model",
                {"u": user, "s": month_since},
            ),
        ),
        *(
            (
                f"report --by {by} (last {args.days} days)",
                r.usage_query(by, **window),
                scan(
                    f"SELECT {col} AS key, sum(sign) AS calls, sum(sign * cost_usd) AS cost FROM llm_usage "
                    f"WHERE {scan_window} GROUP BY key ORDER BY cost DESC"
                ),
            )
            for by, col in (
                ("user", "user_id"),
                ("endpoint", "endpoint"),
                ("model", "model"),
                ("tenant", "tenant"),
            )
        ),
        (
            f"top 10 users (last {args.days} days)",
            r.top_users_query(limit=10, **window),
            scan(
                f"SELECT user_id, sum(sign * cost_usd) AS cost FROM llm_usage WHERE {scan_window} "
                "GROUP BY user_id ORDER BY cost DESC, user_id LIMIT 10"
            ),
        ),
        (
            f"daily cost (last {args.days} days)",
            r.series_query("day", **window),
            scan(
                f"SELECT toDate(time) AS day, sum(sign * cost_usd) FROM llm_usage WHERE {scan_window} "
                "GROUP BY day ORDER BY day"
            ),
        ),
        (
            f"report --by model --where tenant={tenant} (last {args.days} days)",
            r.usage_query("model", where={"tenant": tenant}, **window),
            scan(
                "SELECT model, sum(sign * cost_usd) AS cost FROM llm_usage "
                f"WHERE tenant = {{t:String}} AND {scan_window} GROUP BY model ORDER BY cost DESC",
                {"t": tenant, **scan_params},
            ),
        ),
    ]
    rows = []
    for name, query, (sql, params) in cases:
        rollup = timed(lambda query=query: r.run(store, query), args.repeats)
        server = clickhouse_alone(store, query, args.repeats)
        answer = answer_alone(store, query, args.repeats)
        result_rows = len(r.run(store, query).rows)
        raw = timed(lambda sql=sql, params=params: store.query(sql, params), args.repeats)
        exact = same_answer(r.run(store, query), store.query(sql, params).rows)
        rows.append(
            {
                "query": name,
                "named_query": query.name,
                "exact": exact,
                "rollup_ms": rollup["ms"],
                "rollup_min_ms": rollup["min_ms"],
                "rollup_cpu_ms": rollup["cpu_ms"],
                "rollup_rows_planned": rows_planned(store, query.sql, query.params),
                "result_rows": result_rows,
                "clickhouse_ms": server["ms"],
                "clickhouse_min_ms": server["min_ms"],
                "answer_alone_ms": answer["ms"],
                "answer_alone_min_ms": answer["min_ms"],
                "raw_scan_ms": raw["ms"],
                "raw_scan_min_ms": raw["min_ms"],
                "raw_scan_cpu_ms": raw["cpu_ms"],
                "raw_scan_rows_planned": rows_planned(store, sql, params),
                "raw_over_rollup": round(raw["ms"] / rollup["ms"], 1),
            }
        )
    store.close()
    print(
        f"{args.calls:,} calls, {args.users:,} users, {args.days} days; "
        f"generated in {generate_s:.1f} s; rows: " + ", ".join(f"{t} {c:,}" for t, c in counts.items())
    )
    print(
        "\n| query | rollups: median (min) ms | CPU ms | rows planned | ClickHouse alone ms "
        "| answer alone ms (rows) | raw scan: median (min) ms | CPU ms | rows planned | raw / rollup "
        "| equal |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    )
    for row in rows:
        print(
            f"| {row['query']} | {row['rollup_ms']} ({row['rollup_min_ms']}) | {row['rollup_cpu_ms']} "
            f"| {row['rollup_rows_planned']:,} | {row['clickhouse_ms']} ({row['clickhouse_min_ms']}) "
            f"| {row['answer_alone_ms']} ({row['answer_alone_min_ms']}; {row['result_rows']:,}) "
            f"| {row['raw_scan_ms']} ({row['raw_scan_min_ms']}) "
            f"| {row['raw_scan_cpu_ms']} | {row['raw_scan_rows_planned']:,} | {row['raw_over_rollup']}x "
            f"| {'yes' if row['exact'] else 'NO'} |"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "args": vars(args),
                "generate_s": generate_s,
                "rows_in": counts,
                "ingest_cpu_s": ingest,
                "results": rows,
                "python": sys.version.split()[0],
            },
            indent=2,
        )
    )
    if not all(row["exact"] for row in rows):
        sys.exit("a report differs from the raw scan of llm_usage")


if __name__ == "__main__":
    main()
