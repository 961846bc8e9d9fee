"""Every call counted once, whichever collector wrote it and however often it was sent.

Spans made by the OpenTelemetry SDK as the instrumentation writes them and stored as the contrib
`clickhouse` exporter stores them (tests/store_fixtures.py `span_record`), inserted in several batchings
(the same spans cut differently, overlapping, reversed), again after their buckets were built (a copy
that arrives hours later), beside a late genuine span, after a reprice and a rollup build that stopped
before publishing: every surface that reads the store counts each span once, and equals what the spans
cost by the Pricer, computed here in Python. Across a restart of a real collector process, through its
API."""

from __future__ import annotations

import csv
import io
import json
import time
import urllib.request
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.request import urlopen

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from spendscope import names as n
from spendscope.budgets import BudgetEvaluator, parse_budgets
from spendscope.pricing import PriceFile, Pricer
from spendscope.store import SpanRecord, Store, breakdowns
from spendscope.store import reports as r
from spendscope.store.prices import reprice
from spendscope.store.rollups import build_rollups
from spendscope.usage import TokenUsage
from tests.grafana_macros import Query, expand
from tests.store_fixtures import serve_reports, span_record
from tests.test_budgets import series
from tests.test_collector import wait_for
from tests.test_grafana_clickhouse import COST, panel_sql, variables

D = Decimal
DAY = datetime(2026, 11, 3, tzinfo=UTC)
SINCE, UNTIL = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
TENANTS = ("acme", "globex", "initech")
ENDPOINTS = ("cv-parsing", "questions", "interview")
MODELS = (("gpt-4o-mini", "gpt-4o-mini-2024-07-18"), ("gpt-4.1", "gpt-4.1-2025-04-14"))


def sdk_spans(count: int, *, start: datetime = DAY, seed: int = 0) -> list[ReadableSpan]:
    """LLM calls as SpendScope's instrumentation records them, over two days: tokens as ints, the cost
    as an exact decimal string (every third as a double, as older clients send it)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": f"hr-app-{seed % 2}"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("spendscope", "0.1.0")
    pricer = Pricer()
    for i in range(count):
        at = start + timedelta(minutes=47 * i + seed)
        requested, answered = MODELS[i % 2]
        usage = TokenUsage(input=1000 + 17 * i, output=200 + i, cached_input=(i % 3) * 128)
        price = pricer.price(answered, usage, at=at, service_tier="default")
        assert price is not None
        attributes: dict[str, Any] = {
            n.OPERATION_NAME: n.OP_CHAT,
            n.PROVIDER_NAME: n.PROVIDER_OPENAI,
            n.REQUEST_MODEL: requested,
            n.RESPONSE_MODEL: answered,
            n.OPENAI_RESPONSE_SERVICE_TIER: "default",
            n.USAGE_INPUT_TOKENS: usage.input,
            n.USAGE_OUTPUT_TOKENS: usage.output,
            n.USAGE_CACHE_READ_INPUT_TOKENS: usage.cached_input,
            n.USAGE_REASONING_OUTPUT_TOKENS: 0,
            n.USAGE_STATE: n.USAGE_STATE_REPORTED,
            n.COST_USD: float(price.cost_usd) if i % 3 == 0 else format(price.cost_usd, "f"),
            n.PRICE_VERSION: price.version,
            n.USER_ID: f"u-{i % 4}",
            n.TENANT: TENANTS[i % 3],
            n.ENDPOINT: ENDPOINTS[(i // 2) % 3],
            n.EXTRA_PREFIX + "job_id": f"J-{i % 5}",
            n.OPENAI_PROJECT: "proj_hr",
            n.OPENAI_API_KEY_REDACTED: "sk-proj-...abcd",
        }
        start_ns = int(at.timestamp() * 1e9)
        span = tracer.start_span(f"chat {requested}", kind=SpanKind.CLIENT, start_time=start_ns)
        span.set_attributes(attributes)
        span.end(end_time=start_ns + 1_500_000_000)
    provider.shutdown()
    return list(exporter.get_finished_spans())


def expected(
    spans: list[ReadableSpan], pricer: Pricer | None = None
) -> dict[str, dict[str, tuple[int, Decimal]]]:
    """What the distinct spans cost by the Pricer: (calls, cost) per value of each dimension."""
    pricer = pricer or Pricer()
    out: dict[str, dict[str, tuple[int, Decimal]]] = defaultdict(dict)
    seen = set()
    for span in spans:
        context = span.get_span_context()
        assert context is not None and span.start_time is not None
        if (context.trace_id, context.span_id) in seen:
            continue
        seen.add((context.trace_id, context.span_id))
        a = dict(span.attributes or {})
        at = datetime.fromtimestamp(span.start_time / 1e9, UTC)
        usage = TokenUsage(
            input=a[n.USAGE_INPUT_TOKENS],
            output=a[n.USAGE_OUTPUT_TOKENS],
            cached_input=a[n.USAGE_CACHE_READ_INPUT_TOKENS],
        )
        price = pricer.price(a[n.RESPONSE_MODEL], usage, at=at, service_tier="default")
        assert price is not None
        values = {
            "user": a[n.USER_ID], "endpoint": a[n.ENDPOINT], "tenant": a[n.TENANT], "model": a[n.RESPONSE_MODEL],
            "service": span.resource.attributes["service.name"], "operation": n.OP_CHAT,
            "attr:job_id": a[n.EXTRA_PREFIX + "job_id"], "total": "", "day": at.date().isoformat(),
        }  # fmt: skip
        for dimension, value in values.items():
            calls, cost = out[dimension].get(str(value), (0, D(0)))
            out[dimension][str(value)] = (calls + 1, cost + price.cost_usd)
    return out


def records(spans: list[ReadableSpan]) -> list[SpanRecord]:
    return [span_record(s) for s in spans]


# --- every surface ----------------------------------------------------------------------------------------
def surfaces(store: Store) -> dict[str, dict[str, tuple[int, Decimal]]]:
    """(calls, cost) per value, as each surface that reads the store answers."""
    out: dict[str, dict[str, tuple[int, Decimal]]] = {}
    for by in (*r.ROLLUP_DIMENSIONS, "attr:job_id"):
        rows = r.report(store, by=by, since=SINCE, until=UNTIL).as_dicts()
        out[by] = {str(x[by]): (x["calls"], x["cost_usd"]) for x in rows}
        raw = r.run(store, r.usage_query(by, SINCE, UNTIL, raw=True)).as_dicts()
        out[f"{by} (llm_usage)"] = {str(x["key"]): (x["calls"], x["cost_usd"]) for x in raw}
        if by in r.ROLLUP_DIMENSIONS:  # the other grains of the rollups
            query = r.usage_query(by, SINCE, UNTIL)
            other = r.Query("usage_by", {**query.params, "grain": "hour" if by != "user" else "user_day"})
            out[f"{by} (hourly)"] = {
                str(x["key"]): (x["calls"], x["cost_usd"]) for x in r.run(store, other).as_dicts()
            }
    jobs = breakdowns.billing(store, by="attr:job_id", since=SINCE, until=UNTIL).as_dicts()
    out["attr:job_id (billing, per day and job)"] = {
        str(x["attr:job_id"]): (x["calls"], x["cost_usd"]) for x in jobs
    }
    daily = r.daily_series(store, since=SINCE, until=UNTIL).as_dicts()
    out["day"] = {x["day"].isoformat(): (x["calls"], x["cost_usd"]) for x in daily}
    with (
        serve_reports(store) as url,
        urllib.request.urlopen(f"{url}/api/usage/summary?since=2026-11-01&until=2026-12-01") as answer,
    ):
        summary = json.loads(answer.read())
    out["total"] = {"": (summary["total"]["calls"], D(summary["total"]["cost_usd"]))}
    invoices = {}
    for tenant in TENANTS:
        lines = r.invoice(store, tenant=tenant, month=date(2026, 11, 1)).as_dicts()
        invoices[tenant] = (sum(x["calls"] for x in lines), sum((x["cost_usd"] for x in lines), D(0)))
    out["tenant (invoice)"] = invoices
    exported = r.export_calls(store, since=SINCE, until=UNTIL).as_dicts()
    out["total (export)"] = {"": (len(exported), sum((x["cost_usd"] for x in exported), D(0)))}
    as_csv = io.BytesIO()
    r.write_calls_csv(store, as_csv, since=SINCE, until=UNTIL)
    rows = list(csv.DictReader(io.StringIO(as_csv.getvalue().decode())))
    out["total (export csv)"] = {"": (len(rows), sum((D(x["cost_usd"]) for x in rows), D(0)))}
    limits = {"total": {"daily_usd": 10**6, "monthly_usd": 10**6}}
    budgets = parse_budgets({"tenants": {tenant: limits for tenant in TENANTS}})
    evaluator = BudgetEvaluator(store, budgets, now=lambda: DAY + timedelta(days=1, hours=23))
    evaluator.evaluate()
    spend = series(evaluator.exposition(), n.PROM_BUDGET_TENANT_SPEND)  # floats: compared as floats
    out["tenant (budgets, month)"] = {
        dict(k)["tenant"]: (-1, D(repr(v))) for k, v in spend.items() if dict(k)["window"] == "month"
    }
    result = store.run("reconciliation_tracked", _tracked_params())
    tracked = [dict(zip(result.columns, row, strict=True)) for row in result.rows]
    by_model: dict[str, tuple[int, Decimal]] = {}
    for row in tracked:
        calls, cost = by_model.get(row["model_raw"], (0, D(0)))
        by_model[row["model_raw"]] = (calls + row["ok_calls"], cost + row["cost_usd"])
    out["model (reconciliation)"] = by_model
    query = Query(SINCE, UNTIL, variables(COST), interval=timedelta(hours=1))
    for title, key in (("Cost per tenant", "tenant"), ("Cost per user", "user"), ("Cost per model", "model")):
        result = store.query(expand(panel_sql(COST, title), query))
        rows_ = [dict(zip(result.columns, row, strict=True)) for row in result.rows]
        summed: dict[str, tuple[int, Decimal]] = {}
        for x in rows_:  # (per user: a row per user and tenant)
            calls, cost = summed.get(str(x[key]), (0, D(0)))
            summed[str(x[key])] = (calls + x["calls"], cost + x["cost_usd"])
        out[f"{key} (grafana)"] = summed
    [[cost, *_]] = store.query(expand(panel_sql(COST, "Provider cost"), query)).rows
    [[calls, *_]] = store.query(expand(panel_sql(COST, "Calls"), query)).rows
    out["total (grafana)"] = {"": (calls, cost)}
    return out


def _tracked_params() -> dict[str, Any]:
    from spendscope.reconciler._staging import normalisation_params

    return {
        "run_id": "0" * 32, "since": "2026-11-01 00:00:00", "until": "2026-12-01 00:00:00", "bucket_width": "1d",
        "pair_keys": [], "pair_projects": [], "pair_labels": [], "pair_status": [], **normalisation_params(),
    }  # fmt: skip


def assert_counted_once(store: Store, spans: list[ReadableSpan], pricer: Pricer | None = None) -> None:
    want = expected(spans, pricer)
    got = surfaces(store)
    for surface, values in got.items():
        dimension = surface.split(" (")[0]
        if "budgets" in surface:  # a metric: the spend as a float (summed per user, then per tenant)
            assert {k: float(c) for k, (_, c) in values.items()} == pytest.approx(
                {k: float(c) for k, (_, c) in want[dimension].items()}, rel=1e-12
            ), surface
            continue
        assert values == want[dimension], surface


# --- the tests ----------------------------------------------------------------------------------------------
@pytest.fixture
def spans() -> list[ReadableSpan]:
    return sdk_spans(60)


def test_the_same_spans_in_several_batchings_count_once(store: Store, spans: list[ReadableSpan]) -> None:
    rows = records(spans)
    store.insert_spans(rows)  # as one batch
    assert_counted_once(store, spans)
    for start in range(0, 60, 5):  # again, in overlapping batches of ten
        store.insert_spans(rows[start : start + 10])
    store.insert_spans(list(reversed(rows[30:])))  # and again, in another order
    store.insert_spans(rows[:30])
    assert store.query("SELECT count(), uniqExact(TraceId, SpanId) FROM otel_traces").rows == [
        [60 + 115 + 60, 60]
    ]
    assert_counted_once(store, spans)


def test_copies_after_the_build_a_late_span_a_reprice_and_an_aborted_build(
    store: Store, spans: list[ReadableSpan], tmp_path: Path
) -> None:
    rows = records(spans)
    store.insert_spans(rows[:40])
    store.insert_spans(rows[20:])
    result = build_rollups(store, lag=timedelta(0))
    assert result.buckets["day"] == 2 and result.rows > 0
    assert_counted_once(store, spans)
    # hours later, the same spans again (after their buckets were built), and a late genuine one
    late = sdk_spans(1, start=DAY + timedelta(hours=5, minutes=3), seed=7)
    store.insert_spans(rows[10:50] + records(late))
    assert_counted_once(store, spans + late)
    build_rollups(store, lag=timedelta(0))
    assert_counted_once(store, spans + late)
    # a reprice (a discount from the price file on one model from Nov 4) makes the buckets it touches stale
    path = tmp_path / "prices.toml"
    path.write_text('[[discounts]]\nmatch = "gpt-4.1*"\npercent = 20\neffective_from = 2026-11-04\n')
    discounted = Pricer(PriceFile.load(path))
    reprice(store, discounted, since=SINCE, until=UNTIL)
    assert_counted_once(store, spans + late, discounted)
    build_rollups(store, lag=timedelta(0), pricer=discounted)
    assert_counted_once(store, spans + late, discounted)
    # a build that stopped before publishing: its rows are there, never read
    [[build_id]] = store.query("SELECT toUnixTimestamp64Nano(now64(9)) - 1000").rows
    for _ in range(2):
        store.command(
            "INSERT INTO llm_usage_rollup SELECT 'day', bucket, {b:UInt64}, * EXCEPT (bucket) "
            "FROM usage(grain = 'day', since = '2026-11-01 00:00:00', until = '2026-12-01 00:00:00')",
            {"b": build_id},
        )
    assert_counted_once(store, spans + late, discounted)
    store.insert_spans(
        rows[::7]
    )  # copies on every day: the next build rebuilds them, deletes what it supersedes
    result = build_rollups(store, lag=timedelta(0), pricer=discounted)
    assert result.superseded >= 1
    assert store.query(
        "SELECT count() FROM llm_usage_rollup WHERE build_id = {b:UInt64}", {"b": build_id}
    ).rows == [[0]]
    assert_counted_once(store, spans + late, discounted)
    # and merges (what ClickHouse does in the background) change nothing
    for table in ("llm_usage", "llm_usage_rollup", "otel_traces"):
        store.command(f"OPTIMIZE TABLE {table} FINAL")
    assert_counted_once(store, spans + late, discounted)


def test_spans_sent_again_across_a_collector_restart_count_once(tmp_path: Path) -> None:
    """A real collector process, restarted: spans re-sent after the restart, a retried body merged with
    new spans, and a span re-sent after 3,000 others are each counted once, and the report equals the
    export (both read through the collector's reports API)."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import SpanExportResult

    from tests.test_collector import make_spans
    from tests.test_collector_process import Running

    def send(running: Running, batch: list[ReadableSpan]) -> None:
        exporter = OTLPSpanExporter(endpoint=running.url + "/v1/traces")
        for start in range(0, len(batch), 500):
            assert exporter.export(batch[start : start + 500]) is SpanExportResult.SUCCESS
        exporter.shutdown()

    def counted(running: Running) -> tuple[int, Decimal, int, Decimal]:
        report = running.get("/api/usage/summary?by=service&since=1d")
        with urlopen(running.url + "/api/usage/export.csv?since=1d", timeout=30) as answer:
            rows = list(csv.DictReader(io.StringIO(answer.read().decode())))
        total = report["total"]
        return total["calls"], D(total["cost_usd"]), len(rows), sum((D(x["cost_usd"]) for x in rows), D(0))

    first = Running(tmp_path, "first")
    spans = make_spans(150)
    send(first, spans)
    wait_for(lambda: first.calls() == 150, timeout=30)
    once = counted(first)
    first.terminate()

    second = Running(tmp_path, "second")
    try:
        send(second, spans[100:])  # re-sent after the restart
        send(second, spans[:100] + (fresh := make_spans(20)))  # a retried body merged with new spans
        wait_for(lambda: second.calls() == 170, timeout=30)
        many = make_spans(3000)
        send(second, many)
        send(second, spans[:1] + many[:1])  # re-sent after 3,000 others
        wait_for(lambda: second.calls() == 3170, timeout=60)
        time.sleep(1)  # anything still on its way would show now
        calls, cost, exported, exported_cost = counted(second)
        assert (calls, exported) == (3170, 3170) and cost == exported_cost
        assert cost > once[1] == once[3] and once[0] == once[2] == 150
        assert len(fresh) == 20
    finally:
        second.terminate()
