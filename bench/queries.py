"""Query latency on 10 million synthetic LLM calls in the store, over HTTP to the local store's server
(the path every command takes) and through chdb in-process on the same data, and what the store holds
per million calls.

    python bench/queries.py [--calls 10000000] [--users 20000] [--repeats 7] [--dir DIR] [--raw-calls N]
                            [--paths http,in-process] [--reuse]

The calls are generated inside ClickHouse (INSERT ... SELECT FROM numbers()) into `llm_calls_in`, so the
store's view prices each one and writes it to `llm_usage` as live ingest does; then the rollup builder
builds every hourly and daily bucket (timed), and the tables are merged as background merges would.
All of that runs on the local store's server for DIR (spendscope/store/server.py), started here.

Each report query (from clickhouse/queries, through spendscope.store.reports, reading the `usage` view:
clean rollup buckets, llm_usage FINAL for the rest) is timed beside the same answer, with the same
columns, computed by scanning `llm_usage FINAL` itself: the ratio is what the rollups buy, and the two
answers must be equal, every column of every row (`exact`). Wall time (min and median of --repeats
after a warm-up), CPU time and the rows ClickHouse plans to read (EXPLAIN ESTIMATE: whole granules)
are recorded, and the query alone in ClickHouse (its Native result bytes, not turned into Python
values). Two paths, one after the other, on the same data and the same windows:

- `http`: clickhouse-connect over HTTP to the local store's server, as every command and the collector
  reach the store. CPU is this process's plus the server process's (read from /proc; the server's
  part is also given apart).
- `in-process`: chdb in a process of its own, the embedded store of earlier releases (the server is
  stopped first: one process at a time opens a data directory). CPU is that process's, ClickHouse
  included.

With --raw-calls N (default 1,000,000), N calls are also written as spans into `otel_traces` of a
database of their own (the attributes SpendScope's instrumentation writes, as dense in time as the
main data set: N / calls of its days), derived by the views, and their rollups built: bytes on disk per
million calls of otel_traces, llm_usage and the rollups, and the rollup rows per million calls, are
measured there.

Prints Markdown tables and writes bench/results/queries.json; exits non-zero if an answer differs from
its scan. The server is stopped at the end; the data stays in DIR.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import clickhouse_connect

from spendscope.store import Store, server
from spendscope.store import reports as r
from spendscope.store.dsn import Target
from spendscope.store.rollups import build_rollups
from spendscope.store.sqlfiles import named_query

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
    "gpt-5-mini-2025-08-07",
    "gpt-realtime",
    "text-embedding-3-small",
    "gpt-5-2025-08-07",
]
# One synthetic call per number: when, who, which feature and model, how many tokens.
_CALL = """
    toDateTime64({now:DateTime64(9, 'UTC')}, 9, 'UTC')
        - toIntervalSecond(cityHash64(number, 1) % {seconds:UInt32}) AS time,
    concat('user-', toString(cityHash64(number, 8) % {users:UInt32})) AS user_id,
    ['hr-platform', 'homework-helper', 'search'][1 + cityHash64(user_id) % 3] AS service,
    lower(hex(cityHash64(number, 2)) || hex(cityHash64(number, 3))) AS trace_id,
    lower(hex(cityHash64(number, 4))) AS span_id,
    -- each user works in two features; each feature uses two models, as apps do
    (cityHash64(user_id, 1) + (number % 2) * 3) % length({endpoints:Array(String)}) AS endpoint_index,
    {models:Array(String)}[1 + (endpoint_index + intDiv(number % 4, 2)) % length({models:Array(String)})]
        AS model,
    100 + cityHash64(number, 6) % 4000 AS input_tokens,
    10 + cityHash64(number, 7) % 800 AS output_tokens,
    intDiv(input_tokens, 3) AS cached_input_tokens,
    intDiv(output_tokens, 4) AS reasoning_tokens,
    {endpoints:Array(String)}[1 + endpoint_index] AS endpoint,
    concat('tenant-', toString(cityHash64(user_id) % 200)) AS tenant,
    concat('job-', toString(cityHash64(number, 10) % 5000)) AS job_id
"""


def generate(store: Store, calls: int, users: int, days: int, chunk: int = 1_000_000) -> float:
    """Insert `calls` synthetic calls over the last `days` days into llm_calls_in (the store prices and
    stores them); returns seconds taken."""
    started = time.perf_counter()
    params = {
        "now": datetime.now(UTC).replace(microsecond=0),
        "seconds": days * 86400,
        "users": users,
        "models": MODELS,
        "endpoints": ENDPOINTS,
    }
    for offset in range(0, calls, chunk):
        store.command(
            f"""
            INSERT INTO llm_calls_in (time, service, trace_id, span_id, response_id, operation, provider,
                api_type, request_model, response_model, service_tier, batch, input_tokens, output_tokens,
                cached_input_tokens, reasoning_tokens, usage_state, status, user_id, endpoint, tenant,
                attributes, openai_project, api_key_redacted, duration_ns)
            SELECT time, service, trace_id, span_id, concat('chatcmpl-', toString(number)), 'chat', 'openai',
                'chat_completions', model, model, 'default', false, input_tokens, output_tokens,
                cached_input_tokens, reasoning_tokens, 'reported', 'ok', user_id, endpoint, tenant,
                map('job_id', job_id), 'proj_bench', 'sk-proj-...b3nc', 1000000
            FROM (SELECT number, {_CALL} FROM numbers({offset}, {min(chunk, calls - offset)}))
            """,
            params,
        )
    return time.perf_counter() - started


def raw_spans(store: Store, calls: int, users: int, days: int) -> float:
    """Insert `calls` calls as the spans SpendScope's instrumentation writes into otel_traces (the views
    derive llm_usage from them); returns seconds taken."""
    started = time.perf_counter()
    params = {
        "now": datetime.now(UTC).replace(microsecond=0),
        "seconds": days * 86400,
        "users": users,
        "models": MODELS,
        "endpoints": ENDPOINTS,
    }
    for offset in range(0, calls, 250_000):
        store.command(
            f"""
            INSERT INTO otel_traces (Timestamp, TraceId, SpanId, ParentSpanId, SpanName, SpanKind,
                ServiceName, ResourceAttributes, ScopeName, ScopeVersion, SpanAttributes, Duration,
                StatusCode)
            SELECT time, trace_id, span_id, lower(hex(cityHash64(number, 5))), concat('chat ', model),
                'Client', service,
                map('service.name', service, 'telemetry.sdk.language', 'python', 'telemetry.sdk.name',
                    'opentelemetry', 'telemetry.sdk.version', '1.45.2'),
                'spendscope', '0.1.0',
                map(
                    'gen_ai.operation.name', 'chat', 'gen_ai.provider.name', 'openai',
                    'gen_ai.request.model', splitByString('-20', model)[1], 'gen_ai.response.model', model,
                    'gen_ai.response.id', concat('chatcmpl-', toString(number)),
                    'gen_ai.usage.input_tokens', toString(input_tokens),
                    'gen_ai.usage.output_tokens', toString(output_tokens),
                    'gen_ai.usage.cache_read.input_tokens', toString(cached_input_tokens),
                    'gen_ai.usage.reasoning.output_tokens', toString(reasoning_tokens),
                    'openai.api.type', 'chat_completions', 'openai.response.service_tier', 'default',
                    'server.address', 'api.openai.com', 'server.port', '443', 'user.id', user_id,
                    'spendscope.endpoint', endpoint, 'spendscope.tenant', tenant,
                    'spendscope.attr.job_id', job_id, 'spendscope.cost.usd', '0.000123',
                    'spendscope.price.version', 'genai-prices 0.2.5', 'spendscope.usage.state', 'reported',
                    'openai.project', 'proj_bench', 'openai.api_key.redacted', 'sk-proj-...b3nc'
                ),
                300000000 + cityHash64(number, 9) % 3000000000, 'Unset'
            FROM (SELECT number, {_CALL} FROM numbers({offset}, {min(250_000, calls - offset)}))
            """,
            params,
        )
    return time.perf_counter() - started


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _server_cpu_s(pid: int | None) -> float:
    """User + system CPU of the store server process (0 in-process)."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(fn: Callable[[], object], repeats: int, server_pid: int | None = None) -> dict[str, float]:
    """Wall ms (median, min), CPU ms (median: this process's, plus the server's over HTTP) and the
    server's part of it, after one warm-up run."""
    fn()
    wall, cpu, served = [], [], []
    for _ in range(repeats):
        cpu_start, server_start, start = _cpu_s(), _server_cpu_s(server_pid), time.perf_counter()
        fn()
        wall.append((time.perf_counter() - start) * 1000)
        server_cpu = _server_cpu_s(server_pid) - server_start
        cpu.append((_cpu_s() - cpu_start + server_cpu) * 1000)
        served.append(server_cpu * 1000)
    return {
        "ms": round(statistics.median(wall), 1),
        "min_ms": round(min(wall), 1),
        "cpu_ms": round(statistics.median(cpu), 1),
        "server_cpu_ms": round(statistics.median(served), 1),
    }


def same_answer(report: r.Report, scan: list[list[Any]]) -> bool:
    """The report equals the raw scan, every column of every row in order."""
    return report.rows == scan


def clickhouse_alone(store: Store, query: r.Query, repeats: int, server_pid: int | None) -> dict[str, float]:
    """ClickHouse's part of a report: the same query, its Native result bytes not turned into Python
    values."""
    bound = named_query(query.name).bind(dict(query.params))
    run = lambda: store.client.raw_query(query.sql, parameters=bound, fmt="Native")  # noqa: E731
    return timed(run, repeats, server_pid)


def rows_planned(store: Store, sql: str, params: dict[str, Any]) -> int:
    """Rows in the granules ClickHouse will read for `sql`, over every table it touches."""
    return sum(int(row[3]) for row in store.query(f"EXPLAIN ESTIMATE {sql}", params).rows)


def grain_of(sql: str) -> str:
    """The grain a named query that does not take one reads ``usage`` at."""
    found = re.search(r"grain = '(\w+)'", sql)
    return found.group(1) if found else ""


def disk(store: Store, database: str) -> dict[str, dict[str, int]]:
    """Rows and bytes on disk of each table (active parts), and of the rollup per grain."""
    rows = store.query(
        "SELECT table, sum(rows), sum(bytes_on_disk) FROM system.parts "
        "WHERE database = {db:String} AND active GROUP BY table ORDER BY table",
        {"db": database},
    ).rows
    out = {str(t): {"rows": int(n), "bytes": int(b)} for t, n, b in rows}
    for grain in ("hour", "day", "user_day"):
        [[count]] = store.query(f"SELECT count() FROM llm_usage_rollup WHERE grain = '{grain}'").rows
        out[f"llm_usage_rollup ({grain})"] = {"rows": int(count), "bytes": 0}
    return out


# The measures every report returns, computed from llm_usage itself.
_CALLS = "count() AS calls, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens"
_COST = (
    "if(priced_calls = 0 AND unpriced_calls + usage_unavailable_calls > 0, NULL, "
    "sum(ifNull(llm_usage.cost_usd, toDecimal128(0, 18)))) AS cost_usd"
)
_KINDS = (
    "sum(priced) AS priced_calls, sum(unpriced) AS unpriced_calls, "
    "sum(unpriced * llm_usage.input_tokens) AS unpriced_input_tokens, "
    "sum(unpriced * llm_usage.output_tokens) AS unpriced_output_tokens, "
    "sum(usage_unavailable) AS usage_unavailable_calls, sum(error) AS error_calls"
)


def cases(store: Store, days: int, now: datetime) -> list[tuple[str, r.Query, str, dict[str, Any]]]:
    """(name, the report's query, the raw scan of llm_usage FINAL answering the same question with the
    same columns, its parameters), for windows ending at `now`."""
    since, until = now - timedelta(days=days), now
    month = date(now.year, now.month, 1)
    month_since = datetime(month.year, month.month, 1, tzinfo=UTC)
    busiest = "SELECT user_id, any(tenant) FROM llm_usage GROUP BY user_id ORDER BY count() DESC LIMIT 1"
    user, tenant = (str(v) for v in store.query(busiest).rows[0])
    window = {"since": since, "until": until}
    in_window = "time >= {since:DateTime64(9, 'UTC')} AND time < {until:DateTime64(9, 'UTC')}"

    def raw(query: r.Query) -> tuple[str, dict[str, Any]]:
        """The same question asked of llm_usage FINAL (usage_by_raw)."""
        return query.sql, named_query(query.name).bind(query.params)

    by_month = r.user_month_query(user, month)
    out: list[tuple[str, r.Query, str, dict[str, Any]]] = [
        (
            f"one user's monthly cost by model ({user})",
            by_month,
            f"SELECT model, {_CALLS}, sum(cached_input_tokens) AS cached_input_tokens, "
            f"sum(reasoning_tokens) AS reasoning_tokens, {_COST}, {_KINDS} FROM llm_usage FINAL "
            f"WHERE user_id = {{user:String}} AND {in_window} GROUP BY model ORDER BY cost_usd DESC, model",
            {
                "user": user,
                "since": month_since,
                "until": datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=UTC),
            },
        ),
    ]
    for by in ("user", "endpoint", "model", "tenant"):
        out.append(
            (
                f"report --by {by} (last {days} days)",
                r.usage_query(by, **window),
                *raw(r.usage_query(by, raw=True, **window)),
            )
        )
    out += [
        (
            f"top 10 users (last {days} days)",
            r.top_users_query(limit=10, **window),
            f"SELECT user_id AS user, {_CALLS}, {_COST}, {_KINDS} FROM llm_usage FINAL WHERE {in_window} "
            "GROUP BY user ORDER BY cost_usd DESC, user LIMIT 10",
            window,
        ),
        (
            f"daily cost (last {days} days)",
            r.series_query("day", **window),
            f"SELECT toDate(time) AS period, '' AS key, {_CALLS}, {_COST}, {_KINDS} FROM llm_usage FINAL "
            f"WHERE {in_window} GROUP BY period ORDER BY period, cost_usd DESC, key",
            window,
        ),
        (
            f"report --by model --where tenant={tenant} (last {days} days)",
            r.usage_query("model", where={"tenant": tenant}, **window),
            *raw(r.usage_query("model", where={"tenant": tenant}, raw=True, **window)),
        ),
    ]
    return out


def http_store(directory: Path, database: str) -> tuple[Store, int]:
    """The store's `database` over HTTP to the local server for `directory` (started if need be), and
    the server's pid. The client waits up to an hour for an answer: generating a million calls or
    merging ten million rows takes longer than the store's default 60 s."""
    state = server.ensure(directory).state
    client = clickhouse_connect.get_client(
        dsn=state.url, autogenerate_session_id=False, connect_timeout=10, send_receive_timeout=3600
    )
    client.command(f"CREATE DATABASE IF NOT EXISTS `{database}`")
    client.database = database
    return Store(Target(state.url, database), client), state.pid


def in_process_store(directory: Path, database: str) -> Store:
    """The store's `database` through chdb in this process (clickhouse-connect's chdb backend)."""
    client = clickhouse_connect.get_client(dsn=f"chdb://{directory}")
    client.database = database
    return Store(Target("", database, directory), client)


def time_cases(
    store: Store, days: int, now: datetime, repeats: int, server_pid: int | None
) -> list[dict[str, Any]]:
    """Every case on `store`: the report, ClickHouse alone and the raw scan, timed; their answers
    compared."""
    rows = []
    for name, query, sql, params in cases(store, days, now):
        report = timed(lambda query=query: r.run(store, query), repeats, server_pid)
        alone = clickhouse_alone(store, query, repeats, server_pid)
        raw = timed(lambda sql=sql, params=params: store.query(sql, params), repeats, server_pid)
        answer = r.run(store, query)
        rows.append(
            {
                "query": name,
                "named_query": query.name,
                "grain": query.params.get("grain") or grain_of(query.sql),
                "exact": same_answer(answer, store.query(sql, params).rows),
                "result_rows": len(answer.rows),
                "report_ms": report["ms"],
                "report_min_ms": report["min_ms"],
                "report_cpu_ms": report["cpu_ms"],
                "report_server_cpu_ms": report["server_cpu_ms"],
                "clickhouse_ms": alone["ms"],
                "raw_scan_ms": raw["ms"],
                "raw_scan_min_ms": raw["min_ms"],
                "raw_scan_cpu_ms": raw["cpu_ms"],
                "raw_scan_server_cpu_ms": raw["server_cpu_ms"],
                "raw_over_report": round(raw["ms"] / report["ms"], 1),
            }
        )
    return rows


def spans_per_million(store: Store, args: argparse.Namespace) -> dict[str, Any]:
    """--raw-calls calls written as spans into the database bench_raw: bytes and rows per million."""
    # as dense as the main data set (the same calls per user and day), so that the rollups per
    # million calls are those of the main data set
    raw_days = max(round(args.days * args.raw_calls / args.calls), 1)
    spans_s = raw_spans(store, args.raw_calls, args.users, raw_days)
    built = time.perf_counter()
    build_rollups(store, lag=timedelta(0))
    build_s = time.perf_counter() - built
    for table in ("otel_traces", "llm_usage", "llm_usage_rollup"):
        store.command(f"OPTIMIZE TABLE {table} FINAL")
    sizes = disk(store, "bench_raw")
    scale = 1_000_000 / args.raw_calls
    return {
        "calls": args.raw_calls,
        "days": raw_days,
        "insert_s": round(spans_s, 1),
        "build_s": round(build_s, 1),
        "per_million_calls": {
            t: {"rows": round(v["rows"] * scale), "bytes": round(v["bytes"] * scale)}
            for t, v in sizes.items()
        },
    }


def in_process_phase(args: argparse.Namespace) -> None:
    """The `in-process` path, in a process of its own: time every case, write the rows to --out."""
    store = in_process_store(Path(args.dir), "bench")
    load = os.getloadavg()[0]
    rows = time_cases(store, args.days, datetime.fromisoformat(args.now), args.repeats, None)
    store.close()
    Path(args.out).write_text(json.dumps({"rows": rows, "load": [load, os.getloadavg()[0]]}))


def run_in_process(args: argparse.Namespace, now: datetime) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rows.json"
        phase = ["--in-process-phase", "--out", str(out), "--now", now.isoformat()]
        options = ["--dir", args.dir, "--days", str(args.days), "--repeats", str(args.repeats)]
        subprocess.run([sys.executable, __file__, *phase, *options], check=True)
        result: dict[str, Any] = json.loads(out.read_text())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--dir", default="/tmp/spendscope-bench-queries")
    parser.add_argument("--reuse", action="store_true", help="time the queries on data generated before")
    parser.add_argument("--raw-calls", type=int, default=1_000_000, help="calls written as spans (0: none)")
    parser.add_argument("--paths", default="http,in-process", help="which paths to time, in this order")
    parser.add_argument("--in-process-phase", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--now", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.in_process_phase:
        in_process_phase(args)
        return
    paths = args.paths.split(",")
    if not set(paths) <= {"http", "in-process"}:
        parser.error("--paths: http, in-process or both")
    directory = Path(args.dir)
    if not args.reuse:
        if directory.is_dir():
            server.stop(directory)
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
    per_million: dict[str, Any] = {}
    if args.raw_calls and not args.reuse:
        raw, _ = http_store(directory, "bench_raw")
        with raw:
            raw.migrate()
            per_million = spans_per_million(raw, args)
        print(f"{args.raw_calls:,} calls as spans: {json.dumps(per_million, indent=1)}")
    elif args.raw_calls:  # the spans written before, if any
        raw, _ = http_store(directory, "bench_raw")
        with raw:
            sizes = disk(raw, "bench_raw")
        if sizes.get("llm_usage", {}).get("rows"):
            scale = 1_000_000 / sizes["llm_usage"]["rows"]
            per_million = {
                "calls": sizes["llm_usage"]["rows"],
                "per_million_calls": {
                    t: {"rows": round(v["rows"] * scale), "bytes": round(v["bytes"] * scale)}
                    for t, v in sizes.items()
                },
            }
    store, _ = http_store(directory, "bench")
    generate_s = build_s = 0.0
    if not args.reuse:
        store.migrate()
        generate_s = generate(store, args.calls, args.users, args.days)
        built = time.perf_counter()
        build = build_rollups(store, lag=timedelta(0))
        build_s = time.perf_counter() - built
        print(f"generated in {generate_s:.1f} s; rollups built in {build_s:.1f} s: {build.buckets}")
        for table in ("llm_usage", "llm_usage_rollup"):  # what background merges do on a live store
            store.command(f"OPTIMIZE TABLE {table} FINAL")
    sizes = disk(store, "bench")
    now = datetime.now(UTC)
    planned = {
        name: (rows_planned(store, query.sql, query.params), rows_planned(store, sql, params))
        for name, query, sql, params in cases(store, args.days, now)
    }
    store.close()
    timings: dict[str, Any] = {}
    for path in paths:
        if path == "http":
            store, pid = http_store(directory, "bench")
            load = os.getloadavg()[0]
            rows = time_cases(store, args.days, now, args.repeats, pid)
            timings["http"] = {"rows": rows, "load": [load, os.getloadavg()[0]]}
            store.close()
        else:
            server.stop(directory)  # one process opens a data directory: the in-process one now
            timings["in-process"] = run_in_process(args, now)
    server.stop(directory)
    print(
        f"{args.calls:,} calls, {args.users:,} users, {args.days} days; generated in {generate_s:.1f} s, "
        f"rollups built in {build_s:.1f} s; rows: "
        + ", ".join(f"{t} {v['rows']:,}" for t, v in sizes.items() if v["rows"])
    )
    for path, timed_path in timings.items():
        low, high = sorted(timed_path["load"])
        print(
            f"\n{path} (1-minute load average {low:.1f}-{high:.1f})\n"
            "| query | report: median (min) ms | CPU ms (server) | rows planned | ClickHouse alone ms "
            "| raw scan (FINAL): median (min) ms | CPU ms (server) | rows planned | raw / report | equal |"
            "\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        )
        for row in timed_path["rows"]:
            report_planned, raw_planned = planned[row["query"]]
            print(
                f"| {row['query']} | {row['report_ms']} ({row['report_min_ms']}) | {row['report_cpu_ms']} "
                f"({row['report_server_cpu_ms']}) | {report_planned:,} | {row['clickhouse_ms']} "
                f"| {row['raw_scan_ms']} ({row['raw_scan_min_ms']}) | {row['raw_scan_cpu_ms']} "
                f"({row['raw_scan_server_cpu_ms']}) | {raw_planned:,} | {row['raw_over_report']}x "
                f"| {'yes' if row['exact'] else 'NO'} |"
            )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "args": vars(args),
                "generate_s": round(generate_s, 1),
                "build_s": round(build_s, 1),
                "tables": sizes,
                "spans": per_million,
                "rows_planned": {name: {"report": p[0], "raw_scan": p[1]} for name, p in planned.items()},
                "paths": timings,
                "python": sys.version.split()[0],
            },
            indent=2,
        )
    )
    if not all(row["exact"] for timed_path in timings.values() for row in timed_path["rows"]):
        sys.exit("a report differs from the raw scan of llm_usage")


if __name__ == "__main__":
    main()
