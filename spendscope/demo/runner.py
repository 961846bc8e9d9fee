"""The main job on local defaults: a collector on a local ClickHouse store (its server started for
the demo and stopped after it, unless it was running before), a fake OpenAI server, two instrumented
services sending OTLP to the collector, and the cost reports read back from ClickHouse — checked
against the Prometheus metrics the collector re-exposes."""

from __future__ import annotations

import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

from prometheus_client.parser import text_string_to_metric_families

from spendscope import names
from spendscope.collector import Collector, CollectorConfig
from spendscope.demo import workload
from spendscope.demo.fake_openai import FakeOpenAI
from spendscope.demo.services import DemoServices
from spendscope.store import Report, Store, report, server
from spendscope.store.billing import default_margin, set_margin
from spendscope.store.dsn import parse_dsn
from spendscope.store.invoice import invoice
from spendscope.store.money import Cost
from spendscope.store.rollups import build_rollups

# The demo's HR platform resells its LLM use to its customers with a margin; the school does not.
DEMO_MARGINS = {"talentco": Decimal(25)}
GROUPS = ("tenant", "endpoint", "user", "model")


@dataclass
class DemoResult:
    outcome: workload.Outcome
    store_dsn: str | None  # None: the store was temporary, and is gone
    collector_url: str
    reports: dict[str, Report]  # by dimension, plus "job" (talentco per job_id)
    tenants: list[dict[str, Any]]  # tenant, margin_percent and its invoice's total (this month)
    total_cost: Cost  # from ClickHouse
    metric_cost_usd: float  # spendscope_cost_usd_total as the collector exposes it to Prometheus
    llm_calls_stored: int
    serving: bool = False  # the collector (and its portal) still serves at collector_url


def wait_for_calls(store: Store, expected: int, timeout: float = 30.0) -> int:
    """The collector batches inserts; wait until every exported call is in ClickHouse's `llm_usage`,
    then run the rollup builder once (as the collector does every minute): names seen for the first
    time get their prices, and the rollups are built."""
    deadline = time.monotonic() + timeout
    stored = 0
    while time.monotonic() < deadline:
        stored = int(store.query("SELECT count() FROM llm_usage FINAL").rows[0][0])
        if stored >= expected:
            build_rollups(store, lag=timedelta(0))
            return stored
        time.sleep(0.1)
    return stored


def _metric_total(url: str, name: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    )


def run_demo(
    *,
    seed: int = 7,
    store: str | None = None,
    listen: str = "127.0.0.1:0",
    serve: Callable[[DemoResult], None] | None = None,
) -> DemoResult:
    """The demo on `store` (kept), else on a store in a temporary directory, removed when the demo
    ends, whether it finishes, fails or is interrupted. With `serve`, the collector (its reports API
    and portal) keeps serving the demo's data at `listen` while `serve(result)` runs."""
    with tempfile.TemporaryDirectory(prefix="spendscope-demo-") as temporary:
        data = Path(temporary)
        dsn = store or str(data / "store")
        with _server_for_the_demo(dsn):
            return _run(seed, dsn, data / "spool", kept=store is not None, listen=listen, serve=serve)


@contextmanager
def _server_for_the_demo(dsn: str) -> Iterator[None]:
    """A local store's server that the demo starts (its collector does) is stopped when it ends."""
    directory = parse_dsn(dsn).directory
    was_running = directory is not None and server.running(directory) is not None
    try:
        yield
    finally:
        if directory is not None and not was_running:
            server.stop(directory)


def _run(
    seed: int,
    dsn: str,
    spool: Path,
    *,
    kept: bool,
    listen: str = "127.0.0.1:0",
    serve: Callable[[DemoResult], None] | None = None,
) -> DemoResult:
    config = CollectorConfig.resolve(listen=listen, store=dsn, spool=str(spool))
    with Collector(config) as collector, FakeOpenAI() as server:
        with DemoServices(collector.url) as services:
            outcome = workload.run(server, seed=seed, on_client=services.instrument)
        db = cast(Store, collector.store.get())
        stored = wait_for_calls(db, outcome.calls)
        for tenant, percent in DEMO_MARGINS.items():
            set_margin(db, tenant, percent)
        now = datetime.now(UTC)
        since, until = now - timedelta(days=1), now + timedelta(minutes=1)
        reports = {by: report(db, by=by, since=since, until=until) for by in GROUPS}
        reports["job"] = report(db, by="attr:job_id", since=since, until=until, where={"tenant": "talentco"})
        tenants = _tenants_with_margin(db, reports["tenant"], now)
        total = sum((Cost.of(row) for row in reports["tenant"].as_dicts()), Cost.zero())
        metric_cost = _metric_total(collector.url, names.PROM_COST)
        shown = dsn if kept else None
        result = DemoResult(
            outcome,
            shown,
            collector.url,
            reports,
            tenants,
            total,
            metric_cost,
            stored,
            serving=serve is not None,
        )
        if serve is not None:
            serve(result)
        return result


def _tenants_with_margin(db: Store, by_tenant: Report, now: datetime) -> list[dict[str, Any]]:
    """Each tenant's invoice total for this month (provider and billed cost, the calls of unknown cost)."""
    rows = []
    for row in by_tenant.as_dicts():
        bill = invoice(db, tenant=row["tenant"], month=now.date(), default_margin=default_margin())
        margin = DEMO_MARGINS.get(row["tenant"], default_margin())
        rows.append({"tenant": row["tenant"], **bill.total(), "margin_percent": margin})
    return rows
