"""Hostile values sent to the real collector, as OTLP protobuf and as OTLP JSON: costs a client makes up
(negative, or beyond any bill) are dropped and the call priced by the store; token counts no model can
bill (negative, not an integer, beyond 10^8, parts above their total, up to 2^64 - 1) reject the span
with the reason recorded. Tenant totals stay exactly what the genuine calls cost, and nothing wraps."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from spendscope import names as n
from spendscope.collector import Collector
from spendscope.pricing import Pricer
from spendscope.store import Store
from spendscope.usage import TokenUsage
from tests.test_collector import config, metric, request, wait_for

MODEL = "gpt-4o-mini-2024-07-18"
# (what, attributes over a genuine call's, what the store does: a rejection reason, or "priced")
HOSTILE: list[tuple[str, dict[str, Any], str]] = [
    ("negative cost", {n.COST_USD: -250.0}, "priced"),
    ("very negative cost", {n.COST_USD: -1_000_000.0}, "priced"),
    ("cost beyond any bill", {n.COST_USD: "99999999999999999999"}, "priced"),
    ("cost beyond Decimal(38, 18)", {n.COST_USD: "99999999999999999999999"}, "priced"),
    ("cost as a double beyond it", {n.COST_USD: 9.9e22}, "priced"),
    ("cost that is no number", {n.COST_USD: "free"}, "priced"),
    ("input tokens of 2^64 - 1", {n.USAGE_INPUT_TOKENS: "18446744073709551615"}, "token_count_too_large"),
    ("input tokens beyond 10^8", {n.USAGE_INPUT_TOKENS: 100_000_001}, "token_count_too_large"),
    ("negative output tokens", {n.USAGE_OUTPUT_TOKENS: -5}, "token_count_negative"),
    ("tokens that are no integer", {n.USAGE_INPUT_TOKENS: 12.5}, "token_count_not_an_integer"),
    ("cached above input", {n.USAGE_CACHE_READ_INPUT_TOKENS: 5000}, "token_counts_inconsistent"),
    ("negative audio seconds", {n.USAGE_AUDIO_SECONDS: -3.0}, "audio_seconds_invalid"),
    ("a quantity of infinity", {n.QUANTITY_PREFIX + "pages": "inf"}, "quantity_invalid"),
]


def attributes(i: int, tenant: str, **overrides: Any) -> dict[str, Any]:
    return {
        n.OPERATION_NAME: n.OP_CHAT,
        n.PROVIDER_NAME: n.PROVIDER_OPENAI,
        n.REQUEST_MODEL: "gpt-4o-mini",
        n.RESPONSE_MODEL: MODEL,
        n.OPENAI_RESPONSE_SERVICE_TIER: "default",
        n.USAGE_INPUT_TOKENS: 1000 + i,
        n.USAGE_OUTPUT_TOKENS: 100,
        n.USAGE_CACHE_READ_INPUT_TOKENS: 0,
        n.USAGE_STATE: n.USAGE_STATE_REPORTED,
        n.COST_USD: "0.1",  # whatever the client says, the store prices it
        n.TENANT: tenant,
        n.USER_ID: f"u-{i}",
        **overrides,
    }


def calls(at: datetime) -> list[tuple[dict[str, Any], str]]:
    """Genuine calls in tenants acme and globex, and one hostile call per case in tenant evil."""
    genuine = [(attributes(i, ("acme", "globex")[i % 2]), "priced") for i in range(6)]
    hostile = [(attributes(100 + i, "evil", **over), outcome) for i, (_, over, outcome) in enumerate(HOSTILE)]
    return genuine + hostile


def cost(attrs: dict[str, Any], at: datetime) -> Decimal:
    usage = TokenUsage(input=int(attrs[n.USAGE_INPUT_TOKENS]), output=int(attrs[n.USAGE_OUTPUT_TOKENS]))
    price = Pricer().price(MODEL, usage, at=at, service_tier="default")
    assert price is not None
    return price.cost_usd


def protobuf_export(url: str, at: datetime, cases: list[tuple[dict[str, Any], str]]) -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "hostile"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("hostile")
    start = int(at.timestamp() * 1e9)
    for attrs, _ in cases:
        span = tracer.start_span("chat", kind=SpanKind.CLIENT, start_time=start)
        span.set_attributes(attrs)
        span.end(end_time=start + 1000)
    provider.shutdown()
    exporter = OTLPSpanExporter(endpoint=url + "/v1/traces")
    assert exporter.export(memory.get_finished_spans()) is SpanExportResult.SUCCESS
    exporter.shutdown()


def _value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    return {"stringValue": str(value)}


def json_export(url: str, at: datetime, cases: list[tuple[dict[str, Any], str]]) -> None:
    start = int(at.timestamp() * 1e9)
    spans = [
        {
            "traceId": f"{i + 1:032x}",
            "spanId": f"{i + 1:016x}",
            "name": "chat",
            "kind": 3,
            "startTimeUnixNano": str(start),
            "endTimeUnixNano": str(start + 1000),
            "attributes": [{"key": k, "value": _value(v)} for k, v in attrs.items()],
        }
        for i, (attrs, _) in enumerate(cases)
    ]
    document = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "hostile-json"}}]
                },
                "scopeSpans": [{"scope": {"name": "hostile"}, "spans": spans}],
            }
        ]
    }
    status, _, answer = request(
        url, "POST", "/v1/traces", json.dumps(document).encode(), {"Content-Type": "application/json"}
    )
    assert status == 200, answer


@pytest.fixture(params=["protobuf", "json"])
def encoding(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def collector(tmp_path: Path, store_dsn: str, store: Store, encoding: str) -> Iterator[Collector]:
    with Collector(config(tmp_path, store_dsn), store=store) as running:
        yield running


def test_hostile_values_are_rejected_or_priced_by_the_store(
    collector: Collector, store: Store, encoding: str
) -> None:
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    cases = calls(at)
    (json_export if encoding == "json" else protobuf_export)(collector.url, at, cases)
    wait_for(lambda: metric(collector, "spendscope_collector_written_spans_total") == len(cases))

    stored = {str(u): (t, c, cc) for u, t, c, cc in store.query(
        "SELECT user_id, tenant, cost_usd, client_cost_usd FROM llm_usage FINAL"
    ).rows}  # fmt: skip
    priced = [attrs for attrs, outcome in cases if outcome == "priced"]
    assert set(stored) == {a[n.USER_ID] for a in priced}
    for attrs in priced:  # every call that is stored is priced by the store, whatever its client said
        tenant, stored_cost, client_cost = stored[attrs[n.USER_ID]]
        assert (tenant, stored_cost) == (attrs[n.TENANT], cost(attrs, at))
        assert client_cost == (Decimal("0.1") if attrs[n.COST_USD] == "0.1" else None)

    rejected = store.query(
        "SELECT reason, call_stored, count() FROM llm_usage_rejected FINAL GROUP BY ALL ORDER BY ALL"
    ).rows
    expected: dict[tuple[str, bool], int] = {}
    for _, _, outcome in HOSTILE:
        key = ("client_cost_invalid", True) if outcome == "priced" else (outcome, False)
        expected[key] = expected.get(key, 0) + 1
    assert {(reason, bool(kept)): count for reason, kept, count in rejected} == expected
    [[sent]] = store.query(
        "SELECT sent FROM llm_usage_rejected WHERE reason = 'token_count_too_large' ORDER BY time LIMIT 1"
    ).rows
    assert sent[n.USAGE_INPUT_TOKENS] in ("18446744073709551615", "100000001")

    # the tenants' totals are what their calls cost, exactly; nothing wrapped
    status, _, body = request(collector.url, "GET", "/api/usage/summary?by=tenant&since=1d")
    assert status == 200
    summary = json.loads(body)
    totals = {row[0]: (row[1], Decimal(row[6])) for row in summary["rows"]}
    want: dict[str, tuple[int, Decimal]] = {}
    for attrs in priced:
        calls_, cost_ = want.get(attrs[n.TENANT], (0, Decimal(0)))
        want[attrs[n.TENANT]] = (calls_ + 1, cost_ + cost(attrs, at))
    assert totals == want
    assert Decimal(summary["total"]["cost_usd"]) == sum(c for _, c in want.values()) > 0
    [[client_sum, token_sum]] = store.query(
        "SELECT sum(client_cost_usd), sum(input_tokens) FROM llm_usage FINAL"
    ).rows
    assert client_sum == Decimal("0.1") * sum(1 for a in priced if a[n.COST_USD] == "0.1")
    assert token_sum == sum(int(a[n.USAGE_INPUT_TOKENS]) for a in priced)

    # the builder's run exports what the store refused and took without its value, by reason
    collector.rollups.run_once()
    assert (
        metric(collector, "spendscope_collector_store_rejected_spans_24h", reason="client_cost_invalid") == 6
    )
    assert (
        metric(collector, "spendscope_collector_store_rejected_spans_24h", reason="token_count_too_large")
        == 2
    )
    assert metric(collector, "spendscope_collector_store_cost_mismatch_calls_24h") == 6  # "0.1" is no price
