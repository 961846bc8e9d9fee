"""Server time of each portal page on 10 million synthetic calls in the embedded ClickHouse store.

    python bench/portal.py [--calls 10000000] [--users 20000] [--repeats 7] [--dir DIR] [--reuse]

The calls are those of bench/queries.py (20,000 users, 200 tenants, 8 endpoints, 6 models, 5,000 jobs
over 30 days, generated inside ClickHouse into `llm_calls_in`, priced by the store's view), each with
quantities as an app records them (`questions`, `cvs_parsed`, `realtime_seconds`), margins for 20
tenants; the rollup builder builds every bucket. Then the portal is served by the collector's app
(uvicorn on 127.0.0.1, an admin token and a tenant token in the store) and every page is requested
--repeats times after a warm-up, signed in as the browser is (the session cookie): the server time is
the page's `Server-Timing` (the handler's wall time, queries and rendering included), the wall time
the client's. Prints a Markdown table and writes bench/results/portal.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from queries import _CALL, ENDPOINTS, MODELS  # noqa: E402  (bench/queries.py: the same calls)

from spendscope.store import Store, open_store  # noqa: E402
from spendscope.store.billing import set_margin  # noqa: E402
from spendscope.store.rollups import build_rollups  # noqa: E402

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
    shutil.rmtree(directory, ignore_errors=True)
    with open_store(f"chdb://{directory}", migrate=True) as store:
        generated = generate(store, calls, users, days)
        built = time.perf_counter()
        build = build_rollups(store, lag=timedelta(0))
        build_s = time.perf_counter() - built
        for table in ("llm_usage", "llm_usage_rollup"):  # what background merges do on a live store
            store.command(f"OPTIMIZE TABLE {table} FINAL")
        first = (datetime.now(UTC) - timedelta(days=days + 1)).date()
        for i in range(0, 200, 10):
            set_margin(store, f"tenant-{i}", Decimal(10 + i % 30), effective_from=first)
        print(f"generated in {generated:.1f} s; rollups built in {build_s:.1f} s: {build.buckets}", flush=True)


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
    results: list[dict[str, Any]] = []
    print(json.dumps(results))


if __name__ == "__main__":
    main()
