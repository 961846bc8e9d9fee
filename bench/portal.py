"""Server time of each portal page on 10 million synthetic calls in the embedded ClickHouse store.

    python bench/portal.py [--calls 10000000] [--users 20000] [--repeats 7] [--dir DIR] [--reuse]

The calls are those of bench/queries.py (20,000 users, 200 tenants, 8 endpoints, 6 models, 5,000 jobs
over 30 days, generated inside ClickHouse into `llm_calls_in`, priced by the store's view), each with
quantities as an app records them (`questions`, `cvs_parsed`, `realtime_seconds`), margins for 20
tenants; the rollup builder builds every bucket. Then the portal is served by the collector's app
(uvicorn on 127.0.0.1, an admin token and a tenant token in the store) and every page is requested
--repeats times after a warm-up, signed in as the browser is (the sign-in cookie): the server time is
the page's `Server-Timing` (the handler's wall time, queries and rendering included), the wall time
the client's, the CPU time that of this process (the app and its rendering) and of the store's server
(the queries), whatever else runs on the machine. Prints a Markdown table and writes
bench/results/portal.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from queries import _CALL, ENDPOINTS, MODELS, http_store

from spendscope.store import Store, open_store, server
from spendscope.store.billing import set_margin
from spendscope.store.rollups import build_rollups

RESULTS = Path(__file__).resolve().parent / "results" / "portal.json"


def generate(store: Store, calls: int, users: int, days: int, chunk: int = 1_000_000) -> float:
    """bench/queries.py's calls, with the quantities an app records on them."""
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
                attributes, quantities, openai_project, api_key_redacted, duration_ns)
            SELECT time, service, trace_id, span_id, concat('chatcmpl-', toString(number)), 'chat', 'openai',
                'chat_completions', model, model, 'default', false, input_tokens, output_tokens,
                cached_input_tokens, reasoning_tokens, 'reported', 'ok', user_id, endpoint, tenant,
                map('job_id', job_id),
                multiIf(
                    endpoint = 'question-generation', map('questions', toFloat64(1 + number % 8)),
                    endpoint = 'cv-parsing', map('cvs_parsed', 1.0),
                    endpoint = 'video-interview', map('realtime_seconds', toFloat64(30 + number % 300)),
                    map()
                ),
                'proj_bench', 'sk-proj-...b3nc', 1000000
            FROM (SELECT number, {_CALL} FROM numbers({offset}, {min(chunk, calls - offset)}))
            """,
            params,
        )
    return time.perf_counter() - started


def prepare(directory: str, calls: int, users: int, days: int) -> None:
    if Path(directory).is_dir():
        server.stop(Path(directory))
    shutil.rmtree(directory, ignore_errors=True)
    Path(directory).mkdir(parents=True)
    store, _ = http_store(Path(directory), "spendscope")
    with store:
        store.migrate()
        generated = generate(store, calls, users, days)
        built = time.perf_counter()
        build = build_rollups(store, lag=timedelta(0))
        build_s = time.perf_counter() - built
        for table in ("llm_usage", "llm_usage_rollup"):  # what background merges do on a live store
            store.command(f"OPTIMIZE TABLE {table} FINAL")
        first = (datetime.now(UTC) - timedelta(days=days + 1)).date()
        for i in range(0, 200, 10):
            set_margin(store, f"tenant-{i}", Decimal(10 + i % 30), effective_from=first)
        print(
            f"generated in {generated:.1f} s; rollups built in {build_s:.1f} s: {build.buckets}", flush=True
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--dir", default="/tmp/spendscope-bench-portal")
    parser.add_argument("--reuse", action="store_true", help="time the pages on data generated before")
    parser.add_argument("--prepare-only", action="store_true", help="generate the data and stop")
    args = parser.parse_args()
    if not args.reuse:
        prepare(args.dir, args.calls, args.users, args.days)
    if args.prepare_only:
        return
    results = time_pages(args.dir, args.repeats)
    print("\n| page | server time: median (min) ms | CPU ms | wall: median ms | bytes |")
    print("|---|---:|---:|---:|---:|")
    for row in results:
        print(
            f"| `{row['page']}` | {row['server_ms']} ({row['server_min_ms']}) | {row['cpu_ms']} "
            f"| {row['wall_ms']} | {row['bytes']:,} |"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps({"args": vars(args), "results": results, "python": sys.version.split()[0]}, indent=2)
    )


def pages(now: datetime) -> list[str]:
    month = now.strftime("%Y-%m")
    return [
        "/",
        "/?since=30d",
        "/users",
        "/users?since=30d",
        "/users?sort=user&order=asc&page=200&size=50",
        "/users?tenant=tenant-7&endpoint=cv-parsing&sort=calls",
        "/users?search=user-123",
        f"/users/user-42?month={month}",
        "/tenants?tenant=tenant-0",
        "/tenants?tenant=tenant-0&since=30d",
        f"/billing?tenant=tenant-0&month={month}",
    ]


def _cpu_s() -> float:
    """This process's CPU seconds: the collector's app (rendering) and the client (a little)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _process_cpu_s(pid: int) -> float:
    """Another process's CPU seconds (the store's server: the queries), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def time_pages(directory: str, repeats: int) -> list[dict[str, Any]]:
    """Each page's Server-Timing and wall time, signed in with an admin token's sign-in cookie."""
    import urllib.parse
    import urllib.request
    from contextlib import nullcontext

    from spendscope.collector._app import reports_app
    from spendscope.collector._server import HttpServer
    from spendscope.store import tokens

    server_pid = server.ensure(Path(directory)).state.pid  # the local store's server for the directory
    store = open_store(directory, migrate=True)
    # the rollups up to date, as the collector's builder keeps them (after a migration that adds a grain,
    # it builds that grain's buckets once)
    built = time.perf_counter()
    build = build_rollups(store, lag=timedelta(0))
    if build.rows:
        print(f"rollups built in {time.perf_counter() - built:.1f} s: {build.buckets}", flush=True)
    _, admin = tokens.create(store, kind=tokens.ADMIN, note="bench")
    http = HttpServer(reports_app(lambda: nullcontext(store), None), "127.0.0.1", 0)
    http.start()
    base = f"http://127.0.0.1:{http.address[1]}"

    class Keep(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(Keep)
    login = urllib.request.Request(
        base + "/login", data=urllib.parse.urlencode({"token": admin, "next": "/"}).encode(), method="POST"
    )
    try:
        opener.open(login)
    except urllib.error.HTTPError as exc:  # the 303 that sets the cookie
        cookie = exc.headers["Set-Cookie"].split(";")[0]
    results = []
    try:
        for page in pages(datetime.now(UTC)):
            server_ms, wall_ms, cpu_ms, size = [], [], [], 0
            for i in range(repeats + 1):
                cpu_started = _cpu_s() + _process_cpu_s(server_pid)
                started = time.perf_counter()
                with opener.open(urllib.request.Request(base + page, headers={"Cookie": cookie})) as response:
                    body = response.read()
                    timing = response.headers["Server-Timing"]
                    assert response.status == 200, page
                wall = (time.perf_counter() - started) * 1000
                cpu = (_cpu_s() + _process_cpu_s(server_pid) - cpu_started) * 1000
                if i == 0:
                    continue  # warm-up
                server_ms.append(float(timing.split("dur=")[1]))
                wall_ms.append(wall)
                cpu_ms.append(cpu)
                size = len(body)
            results.append(
                {
                    "page": page,
                    "server_ms": round(statistics.median(server_ms), 1),
                    "server_min_ms": round(min(server_ms), 1),
                    "wall_ms": round(statistics.median(wall_ms), 1),
                    "cpu_ms": round(statistics.median(cpu_ms), 1),
                    "bytes": size,
                }
            )
            print(results[-1], flush=True)
    finally:
        http.stop()
        store.close()
        server.stop(Path(directory))
    return results


if __name__ == "__main__":
    main()
