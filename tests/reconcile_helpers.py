"""Building blocks of the reconciler tests: tracked calls as the collector stores them, OpenAI's side
through the fake admin API, and one run of the reconciler against both."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from spendscope import names as n
from spendscope.demo.fake_openai.admin import ADMIN_KEY, FakeAdminAPI
from spendscope.pricing import Pricer
from spendscope.reconciler import AdminAPI, ReconcileOptions, Reconciler, ReconciliationResult, RetryPolicy
from spendscope.store import SpanRecord, Store
from spendscope.usage import TokenUsage
from tests.store_fixtures import exporter_string, llm_record

DAY = datetime(2026, 11, 10, tzinfo=UTC)
NOW = DAY + timedelta(days=2)
AT = DAY + timedelta(hours=10, minutes=5)
MINI = "gpt-4o-mini-2024-07-18"
GPT5_MINI = "gpt-5-mini-2025-08-07"
EMBED = "text-embedding-3-small"
KEY_A = "sk-proj-...9f2c"  # as the instrumentation records sk-proj-<...>9f2c
PRICER = Pricer()
M = Decimal(1_000_000)
# USD per token, as genai-prices prices these models (and as the README's worked examples)
MINI_IN, MINI_CACHED, MINI_OUT = Decimal("0.15") / M, Decimal("0.075") / M, Decimal("0.60") / M
GPT5_MINI_IN, GPT5_MINI_CACHED, GPT5_MINI_OUT = Decimal("0.25") / M, Decimal("0.025") / M, Decimal("2") / M
EMBED_IN = Decimal("0.02") / M


def call(
    at: datetime = AT,
    *,
    model: str = MINI,
    key: str = KEY_A,
    project: str = "proj_a",
    input_tokens: int = 100,
    output_tokens: int = 20,
    cached: int = 0,
    tier: str = "default",
    batch: bool = False,
    state: str = n.USAGE_STATE_REPORTED,
    error: str | None = None,
    operation: str = n.OP_CHAT,
    priced_as: tuple[str, bool] | None = None,
    price_version: str | None = None,
    cost: Decimal | None = None,
) -> SpanRecord:
    """One call as our instrumentation's span is stored: priced by the Pricer at the recorded tier
    (or at `priced_as` = (tier, batch), or at `cost`), unless the model has no price."""
    if cost is None and state == n.USAGE_STATE_REPORTED and error is None:
        price_tier, price_batch = priced_as or (tier, batch)
        usage = TokenUsage(input=input_tokens, output=output_tokens, cached_input=cached)
        price = PRICER.price(model, usage, at=at, service_tier=price_tier, batch=price_batch)
        cost = price.cost_usd if price is not None else None
    record = llm_record(
        at,
        model=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached=cached,
        cost=None if cost is None else exporter_string(float(cost)),
        state=state,
        error=error,
        tier=tier,
    )
    attrs = dict(record.span_attributes)
    attrs |= {n.OPENAI_PROJECT: project, n.OPENAI_API_KEY_REDACTED: key, n.OPERATION_NAME: operation}
    if batch:
        attrs[n.BATCH] = "true"
    if price_version is not None and n.PRICE_VERSION in attrs:
        attrs[n.PRICE_VERSION] = price_version
    return dataclasses.replace(record, span_attributes=attrs)


def track(store: Store, *records: SpanRecord) -> None:
    store.insert_spans(list(records))


def bill(
    admin: FakeAdminAPI,
    model: str,
    *,
    input_tokens: int = 0,
    cached: int = 0,
    output_tokens: int = 0,
    prices: tuple[Decimal, Decimal, Decimal],
    prefix: str = "",
    project: str | None = "proj_a",
    api_key_id: str | None = None,
    day: datetime = DAY,
) -> Decimal:
    """The Costs API line items OpenAI would bill for these tokens; returns their total."""
    total = Decimal(0)
    for item, count, price in (
        ("input", input_tokens - cached, prices[0]),
        ("cached input", cached, prices[1]),
        ("output", output_tokens, prices[2]),
    ):
        if count:
            amount = count * price
            admin.add_cost(
                day,
                project_id=project,
                api_key_id=api_key_id,
                line_item=f"{prefix}{model}, {item}",
                amount=amount,
                quantity=count,
                quantity_unit="tokens",
            )
            total += amount
    return total


def use(admin: FakeAdminAPI, at: datetime = AT, *, source: str = "completions", **fields: Any) -> None:
    """Usage OpenAI reports (the Usage API side)."""
    defaults: dict[str, Any] = {"project_id": "proj_a", "api_key_id": "key_a", "model": MINI}
    admin.add_usage(source, at, **(defaults | fields))


def reconcile(
    store: Store,
    admin: FakeAdminAPI,
    *,
    since: datetime = DAY,
    until: datetime = DAY + timedelta(days=1),
    retry: RetryPolicy | None = None,
    clock: Callable[[], datetime] = lambda: NOW,
    **options: Any,
) -> ReconciliationResult:
    with AdminAPI(admin_key=ADMIN_KEY, base_url=admin.base_url, retry=retry) as api:
        reconciler = Reconciler(store, api, pricer=PRICER, clock=clock)
        return reconciler.run(ReconcileOptions(since=since, until=until, **options))


def causes(result: ReconciliationResult) -> dict[str, tuple[int, Decimal]]:
    """Non-zero causes: (tokens, usd)."""
    tokens = result.cause_tokens()
    usd = result.cause_usd()
    return {c: (tokens[c], usd[c]) for c in tokens if tokens[c] or usd[c]}


def cause_calls(result: ReconciliationResult) -> dict[str, int]:
    """Non-zero causes: the calls each concerns."""
    return {cause: count for cause, count in result.cause_calls().items() if count}


def summary(result: ReconciliationResult) -> dict[str, Any]:
    t = result.totals
    return {
        "tracked_tokens": t.tracked_tokens,
        "reported_tokens": t.reported_tokens,
        "tracked_usd": t.tracked_usd,
        "reported_usd": t.reported_usd,
        "residual_usd": t.residual_usd,
        "coverage": None if t.coverage_ratio is None else round(t.coverage_ratio, 6),
        "causes": causes(result),
    }
