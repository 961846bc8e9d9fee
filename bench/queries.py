"""Query latency on 10 million synthetic LLM calls in the embedded ClickHouse store.

    python bench/queries.py [--calls 10000000] [--users 20000] [--repeats 7] [--dir DIR]

The calls are generated inside ClickHouse (INSERT ... SELECT FROM numbers()) into `llm_usage`, so the
materialized views fill the hourly and daily rollups exactly as live ingest does. Each report query
(from clickhouse/queries, through spendscope.store.reports, reading the rollups) is timed beside the
same answer computed by scanning `llm_usage` itself: the ratio is what the rollups buy.
Prints a Markdown table and writes bench/results/queries.json.
"""

from __future__ import annotations

import argparse
import json
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

RESULTS = Path(__file__).resolve().parent / "results" / "queries.json"
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


def generate(store: Any, calls: int, users: int, days: int, chunk: int = 1_000_000) -> float:
    """Insert `calls` synthetic calls spread over the last `days` days; returns seconds taken."""
    started = time.perf_counter()
    now = datetime.now(UTC).replace(microsecond=0)
    columns = ", ".join(str(row[0]) for row in store.query("DESCRIBE TABLE llm_usage").rows)
    for offset in range(0, calls, chunk):
        store.command(
            f"""
            INSERT INTO llm_usage ({columns})
            SELECT {columns} FROM (
            SELECT
                toDateTime64({{now:DateTime64(9, 'UTC')}}, 9, 'UTC')
                    - toIntervalSecond(cityHash64(number, 1) % {days * 86400}) AS time,
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
    store.command("OPTIMIZE TABLE llm_usage_daily FINAL")
    store.command("OPTIMIZE TABLE llm_usage_hourly FINAL")
    return time.perf_counter() - started


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, float, object]:
    """(median ms, min ms, last result) after one warm-up run."""
    result = fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), min(samples), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--dir", default="/tmp/spendscope-bench-queries")
    parser.add_argument("--reuse", action="store_true", help="time the queries on data generated before")
    args = parser.parse_args()
    if not args.reuse:
        shutil.rmtree(args.dir, ignore_errors=True)
    store = open_store(f"chdb://{args.dir}", database="bench", migrate=True)
    generate_s = 0.0 if args.reuse else generate(store, args.calls, args.users, args.days)
    counts = {
        table: int(store.query(f"SELECT count() FROM {table}").rows[0][0])
        for table in ("llm_usage", "llm_usage_hourly", "llm_usage_daily")
    }
    now = datetime.now(UTC)
    since, until = now - timedelta(days=args.days), now
    month = date(now.year, now.month, 1)
    month_since = datetime(month.year, month.month, 1, tzinfo=UTC)
    user = str(
        store.query(
            "SELECT user_id FROM llm_usage_daily GROUP BY user_id ORDER BY sum(calls) DESC LIMIT 1"
        ).rows[0][0]
    )
    window = {"since": since, "until": until}

    def raw(sql: str, params: dict[str, Any]) -> Callable[[], object]:
        return lambda: store.query(sql, params).rows

    cases: list[tuple[str, Callable[[], object], Callable[[], object]]] = [
        (
            f"one user's monthly cost by model ({user})",
            lambda: r.user_month(store, user=user, month=month),
            raw(
                "SELECT model, sum(sign * cost_usd) FROM llm_usage WHERE user_id = {u:String} "
                "AND time >= {s:DateTime64(9, 'UTC')} GROUP BY model",
                {"u": user, "s": month_since},
            ),
        ),
        *(
            (
                f"report --by {by} (last {args.days} days)",
                (lambda by=by: r.report(store, by=by, **window)),
                raw(
                    f"SELECT {col} AS key, sum(sign) AS calls, sum(sign * cost_usd) AS cost FROM llm_usage "
                    "WHERE time >= {s:DateTime64(9, 'UTC')} AND time < {u:DateTime64(9, 'UTC')} "
                    "GROUP BY key ORDER BY cost DESC",
                    {"s": since, "u": until},
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
            "top 10 users (last 30 days)",
            lambda: r.top_users(store, limit=10, **window),
            raw(
                "SELECT user_id, sum(sign * cost_usd) AS cost FROM llm_usage "
                "WHERE time >= {s:DateTime64(9, 'UTC')} "
                "GROUP BY user_id ORDER BY cost DESC LIMIT 10",
                {"s": since},
            ),
        ),
    ]
    rows = []
    for name, rollup, scan in cases:
        rollup_med, rollup_min, _ = timed(rollup, args.repeats)
        scan_med, scan_min, _ = timed(scan, args.repeats)
        rows.append(
            {
                "query": name,
                "rollup_ms": round(rollup_med, 1),
                "rollup_min_ms": round(rollup_min, 1),
                "raw_scan_ms": round(scan_med, 1),
                "raw_scan_min_ms": round(scan_min, 1),
                "raw_over_rollup": round(scan_med / rollup_med, 1),
            }
        )
    store.close()
    print(
        f"{args.calls:,} calls, {args.users:,} users, {args.days} days; "
        f"generated in {generate_s:.1f} s; rows: " + ", ".join(f"{t} {c:,}" for t, c in counts.items())
    )
    print(
        "\n| query | from rollups (median ms) | raw scan (median ms) | raw / rollup |\n|---|---:|---:|---:|"
    )
    for row in rows:
        print(f"| {row['query']} | {row['rollup_ms']} | {row['raw_scan_ms']} | {row['raw_over_rollup']}x |")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "args": vars(args),
                "generate_s": generate_s,
                "rows_in": counts,
                "results": rows,
                "python": sys.version.split()[0],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
