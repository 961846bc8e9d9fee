"""The data the ClickHouse dashboards are tested on: one real instrumented run, and its reconciliation.

`instrumented_run` is the demo's main job on a given store (spendscope/demo/runner.py): the workload's two
services, instrumented, export OTLP to an in-process collector writing to the store; the demo's billing
margins are set and the rollups built as the collector's builder builds them. The workload sends no
`prompt_cache_key`, so it has no cached input: two CV parsings with a cached prompt run in the same
session, so that cache savings have something to show.

`reconcile_run` gives the fake admin API what OpenAI would report for those calls: every call that reached
it as SpendScope recorded it, plus what SpendScope could not see (the tokens of the stream the student
abandoned, a batch service on a key nobody instrumented, the bill of the fine-tune nobody has a price
for); then runs the reconciler once to completion and once into a failing Costs API.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest

import spendscope
from spendscope.collector import Collector, CollectorConfig
from spendscope.demo import workload
from spendscope.demo.fake_openai import FakeOpenAI
from spendscope.demo.fake_openai.admin import ADMIN_KEY, FakeAdminAPI
from spendscope.demo.runner import DEMO_MARGINS, wait_for_calls
from spendscope.demo.services import DemoServices
from spendscope.pricing import Pricer
from spendscope.reconciler import (
    AdminAPI,
    FetchError,
    ReconcileOptions,
    Reconciler,
    ReconciliationResult,
    RetryPolicy,
)
from spendscope.reconciler._normalize import normalize_model
from spendscope.store import Store
from spendscope.store.billing import set_margin
from spendscope.store.rollups import build_rollups

API_KEY = "sk-proj-demo000000000000000000d3m0"  # the workload's key
CV = "Experienced engineer. " * 250  # ~1,400 tokens: over the 1,024 a prompt needs to be cached
KEYS = {"proj_talentco": "key_talentco", "proj_brightschool": "key_school"}
LISTED = "sk-proj-****...****d3m0"  # how the admin key listing shows the workload's key
# gpt-4o-mini's published prices per token (input, cached input, output)
MINI = (Decimal("0.15") / 1_000_000, Decimal("0.075") / 1_000_000, Decimal("0.60") / 1_000_000)
BATCH_SERVICE = {"requests": 4, "input_tokens": 4000, "output_tokens": 800}  # key_batch: never instrumented
ABANDONED = {"input_tokens": 5, "output_tokens": 40}  # what the closed stream had been answered
TUTOR_BILL = Decimal("0.00005")  # OpenAI's bill for the fine-tune SpendScope has no price for

Key = tuple[date, str, str]  # (UTC day, project, model as the reconciler names it)


def _wait_for_calls(store: Store, expected: int) -> None:
    """Every call in llm_usage and in the rollups the dashboards read (see the demo's runner)."""
    if wait_for_calls(store, expected) < expected:
        raise AssertionError(f"the collector did not store {expected} calls in time")


def _cached_cv_parsing(client: openai.OpenAI) -> int:
    with spendscope.attributes(
        user="recruiter-2", tenant="talentco", endpoint="cv-parsing", job_id="job-1002"
    ):
        for _ in range(2):
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": CV}], prompt_cache_key="cv-parsing"
            )
    return 2


def instrumented_run(store: Store, dsn: str, spool: Path) -> int:
    """Calls made (and stored)."""
    config = CollectorConfig(listen=("127.0.0.1", 0), store=dsn, spool=spool, flush_interval=0.05)
    with Collector(config, store=store) as collector, FakeOpenAI() as server:
        with DemoServices(collector.url, metrics_exporter="none") as services:
            calls = workload.run(server, on_client=services.instrument).calls
            with openai.OpenAI(
                api_key=API_KEY, project="proj_talentco", base_url=server.base_url, max_retries=0
            ) as client:
                services.instrument(client, workload.HR_SERVICE)
                calls += _cached_cv_parsing(client)
        _wait_for_calls(store, calls)
    for tenant, percent in DEMO_MARGINS.items():
        set_margin(store, tenant, percent)
    build_rollups(store, lag=timedelta(0))  # what the collector's builder does: names priced, buckets built
    return calls


@dataclass
class Reported:
    """What the fake admin API reported, per (day, project, model as the reconciler names it)."""

    tokens: dict[Key, int] = field(default_factory=lambda: defaultdict(int))
    usd: dict[Key, Decimal] = field(default_factory=lambda: defaultdict(Decimal))

    def use(
        self, admin: FakeAdminAPI, source: str, hour: datetime, project: str, model: str, **fields: Any
    ) -> None:
        admin.add_usage(source, hour, project_id=project, model=model, **fields)
        key = (hour.date(), project, normalize_model(model))
        self.tokens[key] += fields.get("input_tokens", 0) + fields.get("output_tokens", 0)

    def bill(
        self, admin: FakeAdminAPI, day: datetime, project: str, model: str, amount: Decimal, item: str
    ) -> None:
        admin.add_cost(day, project_id=project, line_item=f"{model}, {item}", amount=amount)
        self.usd[(day.date(), project, normalize_model(model))] += amount


def _day(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def _openai_side(store: Store, admin: FakeAdminAPI) -> Reported:
    reported = Reported()
    for project, key in KEYS.items():
        admin.add_project(project)
        admin.add_key(project, key, LISTED)
    admin.add_key("proj_talentco", "key_batch", "sk-proj-****...****b4tc")
    calls = store.query(
        """SELECT toStartOfHour(time) AS hour, openai_project AS project, model, operation,
            service_tier AS tier, count() AS requests, sum(input_tokens) AS input_tokens,
            sum(cached_input_tokens) AS cached_tokens, sum(output_tokens) AS output_tokens,
            sum(cost_usd) AS cost, countIf(usage_state = 'unavailable') AS abandoned
        FROM llm_usage FINAL
        WHERE status = 'ok' AND provider = 'openai'
        GROUP BY ALL"""
    )
    for g in (dict(zip(calls.columns, row, strict=True)) for row in calls.rows):
        hour, project, model = g["hour"], g["project"], g["model"]
        fields = {k: g[k] for k in ("requests", "input_tokens", "output_tokens")}
        source = "embeddings" if g["operation"] == "embeddings" else "completions"
        if source == "completions":
            fields |= {"cached_tokens": g["cached_tokens"], "service_tier": g["tier"] or "default"}
        reported.use(admin, source, hour, project, model, api_key_id=KEYS[project], **fields)
        # one Costs API line per model: dollars are compared per day and project
        if g["cost"]:
            reported.bill(admin, _day(hour), project, model, g["cost"], "input")
        if g["abandoned"]:  # OpenAI counts the answer the student closed before its usage arrived
            reported.use(
                admin, source, hour, project, model, api_key_id=KEYS[project], requests=0, **ABANDONED
            )
            price = ABANDONED["input_tokens"] * MINI[0] + ABANDONED["output_tokens"] * MINI[2]
            reported.bill(admin, _day(hour), project, model, price, "output")
        if model == "brightschool-tutor-v2":
            reported.bill(admin, _day(hour), project, model, TUTOR_BILL, "input")
    hour = min(row[0] for row in calls.rows)
    mini = "gpt-4o-mini-2024-07-18"
    reported.use(admin, "completions", hour, "proj_talentco", mini, api_key_id="key_batch", **BATCH_SERVICE)
    reported.bill(admin, _day(hour), "proj_talentco", mini, BATCH_SERVICE["input_tokens"] * MINI[0], "input")
    reported.bill(
        admin, _day(hour), "proj_talentco", mini, BATCH_SERVICE["output_tokens"] * MINI[2], "output"
    )
    return reported


@dataclass
class Reconciliation:
    since: datetime
    until: datetime
    result: ReconciliationResult
    reported: Reported


def reconcile_run(store: Store) -> Reconciliation:
    first, last = store.query("SELECT min(time), max(time) FROM llm_usage").rows[0]
    since, until = _day(first), _day(last) + timedelta(days=1)
    now = until + timedelta(days=2)  # every usage bucket and cost day of the window is closed
    with FakeAdminAPI(now=now) as admin:
        reported = _openai_side(store, admin)

        def run(retry: RetryPolicy | None = None) -> ReconciliationResult:
            with AdminAPI(admin_key=ADMIN_KEY, base_url=admin.base_url, retry=retry) as api:
                reconciler = Reconciler(store, api, pricer=Pricer(), clock=lambda: now)
                return reconciler.run(ReconcileOptions(since=since, until=until))

        result = run()
        admin.fail("/v1/organization/costs", 500, times=5)
        with pytest.raises(FetchError):
            run(RetryPolicy(retries=0))
    return Reconciliation(since, until, result, reported)
