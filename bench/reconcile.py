"""Reconciler benchmark: 30 days of 1-hour buckets for 20 models x 10 projects x 5 keys per project.

    python bench/reconcile.py [--days 30] [--models 20] [--projects 10] [--keys 5] [--page-buckets 24]

Three processes, so each figure is the reconciler's own:
1. setup: a local store under a temporary directory (its server started here, as any command starts
   it) holding the matching tracked calls (1 or 2 calls for every hour, project, key and model: ~1.1
   million llm_usage rows, generated in SQL);
2. the fake admin API (spendscope/demo/fake_openai/admin.py) serving the same usage (one result per
   hour, project, key and model: 720,000 results in ~440 MB of JSON at the documented shape, gzipped
   on the wire as api.openai.com does) and the Costs API line items; a warm-up run has it render and
   cache its pages, so the measured (second) run times the reconciler, not the fake's JSON encoding;
3. the reconciler (`Reconciler.run`, as `spendscope reconcile` runs it): key listing, every usage page
   streamed into ClickHouse, llm_usage aggregated, compared, explained, results written. It prints
   the wall time, its CPU time (all its threads) and the store server's over the run (ClickHouse's
   work: the two figures that do not depend on what else the machine runs), the time spent waiting
   for HTTP, the 1-minute load average before and after, its peak RSS (ru_maxrss of that process) and
   the server's RSS after the run. The run must find coverage 100% and a zero residual.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = (
    "gpt-4o-mini-2024-07-18",
    "gpt-4o-2024-08-06",
    "gpt-4.1-2025-04-14",
    "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano-2025-04-14",
    "o3-mini-2025-01-31",
    "o4-mini-2025-04-16",
    "o3-2025-04-16",
    "o1-2024-12-17",
    "gpt-5-2025-08-07",
    "gpt-5-mini-2025-08-07",
    "gpt-5-nano-2025-08-07",
    "gpt-3.5-turbo-0125",
    "gpt-4-turbo-2024-04-09",
    "o1-mini-2024-09-12",
    "gpt-4.5-preview-2025-02-27",
    "chatgpt-4o-latest",
    "gpt-4-0613",
    "o3-pro-2025-06-10",
    "codex-mini-latest",
)
END = datetime(2026, 11, 1, tzinfo=UTC)
NOW = END + timedelta(days=2)


def shape(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "days": args.days,
        "models": args.models,
        "projects": args.projects,
        "keys": args.keys,
        "start": int((END - timedelta(days=args.days)).timestamp()),
    }


# One formula for both sides: calls per group, and each call's tokens.
def calls(h: int, p: int, k: int, m: int) -> int:
    return 1 + (h + p + k + m) % 2


def tokens(h: int, p: int, k: int, m: int, c: int) -> tuple[int, int, int]:
    inp = 200 + (h * 31 + p * 17 + k * 13 + m * 7 + c * 101) % 800
    cached = inp // 4 if m % 3 == 0 else 0
    out = 20 + (h * 11 + p * 5 + k * 3 + m * 2 + c * 37) % 180
    return inp, cached, out


SQL_TOKENS = """
    200 + (h * 31 + p * 17 + k * 13 + m * 7 + c * 101) % 800 AS inp,
    if(m % 3 = 0, intDiv(inp, 4), 0) AS cached,
    20 + (h * 11 + p * 5 + k * 3 + m * 2 + c * 37) % 180 AS out
"""


def coefficients(models: int) -> list[tuple[Decimal, Decimal, Decimal]]:
    """Per model: USD per input, per cached-input delta, per output token (the Pricer's)."""
    from spendscope.pricing import Pricer

    pricer = Pricer()
    out = []
    for model in MODELS[:models]:
        rate = pricer.rate(model, at=END - timedelta(days=15), service_tier="default")
        assert rate is not None and rate.coefficients is not None, model
        c = rate.coefficients
        out.append((c[0], c[1], c[5]))
    return out


def redacted(p: int, k: int) -> str:
    return f"sk-proj-...{p:02d}{k:02d}"


# --- 1. the store ----------------------------------------------------------------------------------------
def setup_store(dsn: str, s: dict[str, Any]) -> dict[str, Any]:
    from spendscope.store import open_store

    coeff = coefficients(s["models"])
    started = time.perf_counter()
    with open_store(dsn, database="bench", migrate=True) as store:
        hours = s["days"] * 24
        total = hours * s["projects"] * s["keys"] * s["models"] * 2
        models = [m for m in MODELS[: s["models"]]]
        store.command(
            f"""
            INSERT INTO llm_usage (time, service, trace_id, span_id, operation, provider, api_type,
                request_model, response_model, model, service_tier, batch, input_tokens, output_tokens,
                cached_input_tokens,
                cost_usd, price_version, usage_state, status, openai_project, api_key_redacted, version)
            SELECT
                toDateTime64({s["start"]} + h * 3600 + 60 + c, 9, 'UTC') AS time, 'bench',
                hex(number), hex(number),
                'chat', 'openai', 'chat_completions', model_name, model_name, model_name, 'default', false,
                inp, out, cached,
                toDecimal128(inp, 0) * toDecimal128({{cin:Array(String)}}[m + 1], 18)
                    + toDecimal128(cached, 0) * toDecimal128({{ccr:Array(String)}}[m + 1], 18)
                    + toDecimal128(out, 0) * toDecimal128({{cout:Array(String)}}[m + 1], 18),
                'bench', 'reported', 'ok', concat('proj_', leftPad(toString(p), 2, '0')),
                concat('sk-proj-...', leftPad(toString(p), 2, '0'), leftPad(toString(k), 2, '0')), 0
            FROM (
                SELECT
                    number,
                    intDiv(number, {s["projects"] * s["keys"] * s["models"] * 2}) AS h,
                    intDiv(number, {s["keys"] * s["models"] * 2}) % {s["projects"]} AS p,
                    intDiv(number, {s["models"] * 2}) % {s["keys"]} AS k,
                    intDiv(number, 2) % {s["models"]} AS m,
                    number % 2 AS c,
                    {{models:Array(String)}}[m + 1] AS model_name,
                    {SQL_TOKENS}
                FROM numbers({total})
            )
            WHERE c < 1 + (h + p + k + m) % 2
            """,
            {
                "models": models,
                "cin": [format(x, "f") for x, _, _ in coeff],
                "ccr": [format(x, "f") for _, x, _ in coeff],
                "cout": [format(x, "f") for _, _, x in coeff],
            },
        )
        rows = store.query("SELECT count(), sum(cost_usd) FROM llm_usage").rows[0]
    return {
        "calls": int(rows[0]),
        "tracked_usd": str(rows[1]),
        "setup_s": round(time.perf_counter() - started, 1),
    }


# --- 2. the fake admin API --------------------------------------------------------------------------------
class BenchUsage:
    """The usage results of one bucket, from the formulas (documented shape, post-2026-07-15 fields)."""

    def __init__(self, s: dict[str, Any]) -> None:
        self.s = s

    def usage_results(self, source: str, start: int, end: int, group_by: Any) -> list[dict[str, Any]]:
        from spendscope.demo.fake_openai.admin import UsageEvent, completions_fields

        s = self.s
        if source != "completions" or (start - s["start"]) % 3600:
            return []
        h = (start - s["start"]) // 3600
        results = []
        for p in range(s["projects"]):
            for k in range(s["keys"]):
                for m in range(s["models"]):
                    n = calls(h, p, k, m)
                    inp = cached = out = 0
                    for c in range(n):
                        i, ca, o = tokens(h, p, k, m, c)
                        inp, cached, out = inp + i, cached + ca, out + o
                    event = UsageEvent(
                        "completions",
                        start,
                        requests=n,
                        input_tokens=inp,
                        cached_tokens=cached,
                        output_tokens=out,
                    )
                    results.append(
                        {
                            "object": "organization.usage.completions.result",
                            **completions_fields(event, new_semantics=True),
                            "project_id": f"proj_{p:02d}",
                            "user_id": None,
                            "api_key_id": f"key_{p:02d}_{k:02d}",
                            "model": MODELS[m],
                            "batch": False,
                            "service_tier": "default",
                            "api_source": None,
                        }
                    )
        return results


def serve(s: dict[str, Any], out: Any, stop: Any) -> None:
    from spendscope.demo.fake_openai.admin import FakeAdminAPI

    coeff = coefficients(s["models"])
    api = FakeAdminAPI(usage=BenchUsage(s), cache_pages=True, now=NOW)
    for p in range(s["projects"]):
        api.add_project(f"proj_{p:02d}")
        for k in range(s["keys"]):
            api.add_key(f"proj_{p:02d}", f"key_{p:02d}_{k:02d}", redacted(p, k))
    lines: dict[tuple[int, int, int, str], list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for h in range(s["days"] * 24):
        day = s["start"] + h // 24 * 86400
        for p in range(s["projects"]):
            for k in range(s["keys"]):
                for m in range(s["models"]):
                    cin, ccr, cout = coeff[m]
                    for c in range(calls(h, p, k, m)):
                        i, ca, o = tokens(h, p, k, m, c)
                        for item, count, price in (
                            ("input", i - ca, cin),
                            ("cached input", ca, cin + ccr),
                            ("output", o, cout),
                        ):
                            if count:
                                total = lines[(day, p, m, item)]
                                total[0] += count * price
                                total[1] += count
    for (day, p, m, item), (amount, quantity) in lines.items():
        api.add_cost(
            day,
            project_id=f"proj_{p:02d}",
            line_item=f"{MODELS[m]}, {item}",
            amount=amount,
            quantity=quantity,
            quantity_unit="tokens",
        )
    out.put(api.base_url)
    stop.get()  # until told to stop
    api.close()


# --- 3. the reconciler ------------------------------------------------------------------------------------
def _server_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    return 0


def reconcile(
    dsn: str,
    base_url: str,
    s: dict[str, Any],
    page_buckets: int,
    queue: Any,
    profile_to: str | None,
    server_pid: int,
) -> None:
    from spendscope.demo.fake_openai.admin import ADMIN_KEY
    from spendscope.reconciler import AdminAPI, ReconcileOptions, Reconciler
    from spendscope.store import open_store

    store = open_store(dsn, database="bench")
    options = ReconcileOptions(
        since=datetime.fromtimestamp(s["start"], UTC), until=END, page_buckets=page_buckets, min_coverage=0.99
    )
    api = AdminAPI(admin_key=ADMIN_KEY, base_url=base_url, timeout=600)
    waiting = [0.0]
    slowest: list[tuple[float, str]] = []
    call = api.call

    def timed(what: str, fn: Any) -> Any:
        started = time.perf_counter()
        try:
            return call(what, fn)
        finally:
            took = time.perf_counter() - started
            waiting[0] += took
            slowest.append((round(took, 3), what))

    api.call = timed  # type: ignore[method-assign]
    before = resource.getrusage(resource.RUSAGE_SELF)
    rss_before = before.ru_maxrss
    load_before = os.getloadavg()[0]
    server_before = _server_cpu_s(server_pid)
    profile = None
    if profile_to:
        import cProfile

        profile = cProfile.Profile()
        profile.enable()
    started = time.perf_counter()
    result = Reconciler(store, api, clock=lambda: NOW).run(options)
    elapsed = time.perf_counter() - started
    if profile is not None:
        profile.disable()
        profile.dump_stats(profile_to)
    after = resource.getrusage(resource.RUSAGE_SELF)
    rss = after.ru_maxrss
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    server_cpu = _server_cpu_s(server_pid) - server_before
    t = result.totals
    queue.put(
        {
            "reconcile_s": round(elapsed, 2),
            "cpu_s": round(cpu, 2),
            "server_cpu_s": round(server_cpu, 2),
            "server_rss_mib": _rss_mib(server_pid),
            "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "http_wait_s": round(waiting[0], 2),
            "peak_rss_mib": round(rss / 1024),
            "rss_before_run_mib": round(rss_before / 1024),
            "pages": result.pages,
            "http_requests": result.requests_made,
            "reported_buckets": t.reported_buckets,
            "reported_requests": t.reported_requests,
            "tracked_requests": t.tracked_requests,
            "reported_tokens": t.reported_tokens,
            "tracked_tokens": t.tracked_tokens,
            "reported_usd": str(t.reported_usd),
            "tracked_usd": str(t.tracked_usd),
            "coverage_ratio": t.coverage_ratio,
            "residual_pieces": len(result.pieces),
            "line_items": len(result.lines),
            "passed": result.passed,
            "phases_s": result.timings,
            "slowest_http_s": sorted(slowest, reverse=True)[:5],
        }
    )
    api.close()
    store.close()


@contextmanager
def _store_server(directory: Path) -> Iterator[int]:
    """The local store's server for `directory`, started and stopped here; its pid."""
    from spendscope.store import server

    directory.mkdir()
    state = server.start(directory).state
    try:
        yield state.pid
    finally:
        server.stop(directory)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--models", type=int, default=20, choices=range(1, len(MODELS) + 1), metavar="1-20")
    parser.add_argument("--projects", type=int, default=10)
    parser.add_argument("--keys", type=int, default=5, help="keys per project")
    parser.add_argument("--page-buckets", type=int, default=24, help="buckets per usage page (limit)")
    parser.add_argument("--profile", metavar="FILE", help="write a cProfile of the reconcile run to FILE")
    args = parser.parse_args()
    s = shape(args)
    ctx = multiprocessing.get_context("spawn")
    with (
        tempfile.TemporaryDirectory(prefix="spendscope-bench-") as tmp,
        _store_server(Path(tmp) / "store") as pid,
    ):
        dsn = f"{tmp}/store"
        with ctx.Pool(1) as pool:
            setup = pool.apply(setup_store, (dsn, s))
        print(
            f"store: {setup['calls']:,} tracked calls (${setup['tracked_usd']}) in {setup['setup_s']} s",
            flush=True,
        )
        to_server, from_server = ctx.Queue(), ctx.Queue()
        server = ctx.Process(target=serve, args=(s, from_server, to_server))
        server.start()
        base_url = from_server.get(timeout=600)
        results = ctx.Queue()
        figures: dict[str, Any] = {}
        for run, profile in (("warm-up", None), ("measured", args.profile)):
            # the warm-up run has the fake render (and cache) its pages; the measured one re-runs the
            # same window, replacing the warm-up's results
            worker = ctx.Process(
                target=reconcile, args=(dsn, base_url, s, args.page_buckets, results, profile, pid)
            )
            worker.start()
            figures = results.get(timeout=1800)
            worker.join()
            print(f"{run} run: {figures['reconcile_s']} s", flush=True)
        to_server.put("stop")
        server.join(timeout=30)
    print(json.dumps({"shape": {k: v for k, v in s.items() if k != "start"}, **figures}, indent=2))
    ok = figures["passed"] and figures["residual_pieces"] == 0 and figures["coverage_ratio"] == 1.0
    if not ok:
        raise SystemExit("the benchmark's data should reconcile exactly (coverage 100%, no residual)")


if __name__ == "__main__":
    main()
