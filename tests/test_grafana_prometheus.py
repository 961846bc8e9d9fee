"""Every query of the two Prometheus dashboards, run against a real Prometheus that scraped a real
instrumented run, returns data, and the key panels show what the calls really cost.

The run (once per module): the demo workload twice through the real openai client against the fake
OpenAI server (plus a prompt-cached call per round), instrumented services exporting OTLP to the
in-process collector on the store server; one OTLP request with an invalid span; `spendscope budgets` over that
store with a budgets.yaml that puts the recruiters over their daily budget; a reconciliation against
the fake admin API (an un-instrumented key, so coverage is below 1) serving its metrics; and Debian's
Prometheus with prometheus/prometheus.yml's jobs and every rule file, scraping all three each second.

Each panel's targets are interpolated the way Grafana does it (variables at All = `.*`; $__range,
$__interval and $__rate_interval from a "last 5 minutes" range, or today so far for `now/d` panels, with
the data source's scrape interval at the test's 1 s) and run as Grafana would: instant queries at the
range's end, range queries over the range. Expected values come from the rows in ClickHouse, the
budgets config and the reconciliation's own bill, never from Prometheus.
"""

from __future__ import annotations

import math
import time
import urllib.parse
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import openai
import pytest
import yaml
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from prometheus_client import start_http_server

import spendscope
from spendscope import names as n
from spendscope.budgets import BudgetEvaluator, parse_budgets
from spendscope.collector import Collector, CollectorConfig
from spendscope.demo import workload
from spendscope.demo.fake_openai import FakeOpenAI
from spendscope.demo.fake_openai.admin import FakeAdminAPI
from spendscope.demo.services import DemoServices
from spendscope.reconciler import ReconcileMetrics
from spendscope.store import Store
from tests import reconcile_helpers as rh
from tests.grafana_dashboards import (
    DASHBOARD_DIR,
    PROMETHEUS_DASHBOARDS,
    Panel,
    Target,
    builtin_values,
    interpolate,
    panels,
    variable_query,
    variables,
)
from tests.monitoring import PROMETHEUS_DIR, Prometheus, get_json, running_prometheus, wait_for
from tests.store_fixtures import fresh_store

SCRAPE_S = 1.0  # the test's scrape and rule interval, and so its data source's timeInterval
RANGE_S = 300.0  # the dashboard range the test looks at: "Last 5 minutes"
MAX_POINTS = 1000  # Grafana's maxDataPoints (about a panel's width in pixels)
WARNING_PERCENT = 50
DAILY, MONTHLY = Decimal("0.01"), Decimal("1")
TENANT_TOTALS = {"talentco": {"daily_usd": 1, "monthly_usd": 10}, "brightschool": {"monthly_usd": 0.5}}
BUDGETS: dict[str, Any] = {
    "warning_percent": WARNING_PERCENT,
    "per_user": {"daily_usd": str(DAILY), "monthly_usd": str(MONTHLY)},
    "tenants": {tenant: {"total": total} for tenant, total in TENANT_TOTALS.items()},
}
BOARDS = [DASHBOARD_DIR / f"{stem}.json" for stem in PROMETHEUS_DASHBOARDS]
PANELS = [panel for path in BOARDS for panel in panels(path)]


# --- what really happened, from ClickHouse ---------------------------------------------------------------
@dataclass
class Truth:
    """The calls as stored in llm_usage, summed the ways the panels sum them."""

    rows: list[dict[str, Any]]

    def cost(self, by: Sequence[str] = (), **where: str) -> dict[tuple[str, ...], float]:
        out: dict[tuple[str, ...], Decimal] = defaultdict(Decimal)
        for row in self.rows:
            if row["cost_usd"] is not None and all(row[k] == v for k, v in where.items()):
                out[tuple(row[k] for k in by)] += row["cost_usd"]
        return {k: float(v) for k, v in out.items()}

    def total(self, column: str) -> int:
        return sum(int(row[column]) for row in self.rows)

    def priced(self, column: str) -> set[str]:
        return {row[column] for row in self.rows if row["cost_usd"] is not None}


def stored_calls(store: Store) -> Truth:
    columns = ("service", "tenant", "user_id", "endpoint", "model", "cost_usd", "input_tokens",
               "output_tokens", "cached_input_tokens", "usage_state", "status", "error_type")  # fmt: skip
    rows = store.query(f"SELECT {', '.join(columns)} FROM llm_usage FINAL").rows
    return Truth([dict(zip(columns, row, strict=True)) | {"user": row[2]} for row in rows])


# --- the parts of the run ----------------------------------------------------------------------------------
class Apps(DemoServices):
    """The demo's two services, each with its own providers exporting OTLP to the collector (metrics only
    when flushed, so each round lands as one step)."""

    def __init__(self, collector_url: str) -> None:
        super().__init__(collector_url, metric_export_interval_ms=3_600_000)

    def round(self, server: FakeOpenAI) -> int:
        """The demo workload and one prompt-cached call (the demo has none); returns the calls made."""
        calls = workload.run(server, seed=7, on_client=self.instrument).calls
        with openai.OpenAI(api_key="sk-proj-test0000000000000000000wxyz", base_url=server.base_url,
                           max_retries=0) as client:  # fmt: skip
            self.instrument(client, workload.HR_SERVICE)
            with spendscope.attributes(user="recruiter-1", tenant="talentco", endpoint="cv-parsing"):
                client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": "The same long job description. " * 200}],
                    prompt_cache_key="cv-parsing",
                )
        assert self.flush()
        return calls + 1


def post_invalid_span(collector_url: str) -> None:
    """One OTLP request with a span whose trace id is 2 bytes: refused as a partial success."""
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = b"\x01\x02", b"\x01" * 8, "broken"
    http = urllib.request.Request(
        collector_url + "/v1/traces",
        data=request.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
        method="POST",
    )
    with urllib.request.urlopen(http, timeout=10) as response:
        answer = ExportTraceServiceResponse()
        answer.ParseFromString(response.read())
    assert answer.partial_success.rejected_spans == 1


@dataclass
class Reconciled:
    url: str
    finished_at: float
    coverage: float  # tracked / billed, from the bill the fake admin API serves
    residual_usd: dict[str, float]


@contextmanager
def reconciler_metrics(server_dsn: str, admin_store: Store) -> Iterator[Reconciled]:
    """One reconciliation (tracked calls in their own database, OpenAI's side with a second,
    un-instrumented key) and its metrics served as `spendscope reconcile --watch` serves them."""
    prices = (rh.MINI_IN, rh.MINI_CACHED, rh.MINI_OUT)
    with fresh_store(server_dsn, admin_store) as store, FakeAdminAPI(now=rh.NOW) as admin:
        admin.add_project("proj_a")
        admin.add_key("proj_a", "key_a", "sk-proj-****...****9f2c")
        admin.add_key("proj_a", "key_b", "sk-proj-****...****7a1e")
        rh.track(store, rh.call(input_tokens=100, output_tokens=20))
        rh.use(admin, requests=1, input_tokens=100, output_tokens=20)
        tracked = rh.bill(admin, rh.MINI, input_tokens=100, output_tokens=20, prices=prices)
        rh.use(admin, api_key_id="key_b", requests=5, input_tokens=5000, output_tokens=1000)
        untracked = rh.bill(admin, rh.MINI, input_tokens=5000, output_tokens=1000, prices=prices)
        result = rh.reconcile(store, admin, clock=lambda: datetime.now(UTC))
    metrics = ReconcileMetrics()
    metrics.observe(result)
    server, thread = start_http_server(0, "127.0.0.1", registry=metrics.registry)
    try:
        yield Reconciled(
            f"127.0.0.1:{server.server_port}",
            result.finished_at.timestamp(),
            float(tracked / (tracked + untracked)),
            {"untracked": float(untracked)},
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def prometheus_config(targets: Mapping[str, str]) -> dict[str, Any]:
    """prometheus/prometheus.yml's jobs (honor_labels and all) pointed at `targets`, every rule file,
    1 s scrapes and evaluations, no Alertmanager."""
    config: dict[str, Any] = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"] |= {"scrape_interval": f"{SCRAPE_S:g}s", "evaluation_interval": f"{SCRAPE_S:g}s"}
    config["rule_files"] = [str(PROMETHEUS_DIR / "rules" / "*.yml")]
    config.pop("alerting")
    jobs = [job for job in config["scrape_configs"] if job["job_name"] in targets]
    for job in jobs:
        job.pop("scrape_interval", None)
        job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
    assert {job["job_name"] for job in jobs} == set(targets)
    config["scrape_configs"] = jobs
    return config


def _avoid_midnight() -> None:
    """ "Today" must be one UTC day for the whole run."""
    now = datetime.now(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    if (midnight - now).total_seconds() < 90:
        time.sleep((midnight - now).total_seconds() + 1)


@dataclass
class Run:
    prometheus: Prometheus
    end: float  # Grafana's "now": every query is evaluated at or up to it
    truth: Truth
    reconciled: Reconciled
    collector_target: str


def scalar(prometheus: Prometheus, expr: str) -> float:
    result = prometheus.query(expr)
    return float(result[0]["value"][1]) if result else math.nan


def scraped_since(prometheus: Prometheus, moment: float) -> bool:
    """Whether Prometheus has scraped the collector after `moment` (Unix time)."""
    return scalar(prometheus, f'timestamp(up{{job="{n.JOB_COLLECTOR}"}})') > moment


@pytest.fixture(scope="module")
def run(server_dsn: str, _store_admin: Store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    _avoid_midnight()
    workdir = tmp_path_factory.mktemp("grafana-prometheus")
    with ExitStack() as stack:
        store = stack.enter_context(fresh_store(server_dsn, _store_admin))
        reconciled = stack.enter_context(reconciler_metrics(server_dsn, _store_admin))
        settings = CollectorConfig(
            listen=("127.0.0.1", 0),
            store=f"{server_dsn}/{store.database}",
            spool=workdir / "spool",
            flush_interval=0.05,
        )
        collector = stack.enter_context(Collector(settings, store=store))
        evaluator = BudgetEvaluator(store, parse_budgets(BUDGETS))
        budgets_url = stack.enter_context(evaluator.serving(("127.0.0.1", 0), interval=SCRAPE_S))
        server = stack.enter_context(FakeOpenAI())
        collector_target = collector.url.removeprefix("http://")
        targets = {
            n.JOB_COLLECTOR: collector_target,
            n.JOB_BUDGETS: budgets_url.removeprefix("http://").removesuffix("/metrics"),
            n.JOB_RECONCILER: reconciled.url,
        }
        prometheus = stack.enter_context(
            running_prometheus(prometheus_config(targets), workdir / "prometheus")
        )
        apps = Apps(collector.url)
        stack.enter_context(apps)
        wait_for("every target up", lambda: scalar(prometheus, "count(up == 1)") == 3, 15, prometheus.log)

        # Round 1 creates every series; Prometheus scrapes it before round 2 moves them (so rates exist).
        calls = apps.round(server)
        post_invalid_span(collector.url)
        round_1 = time.time()
        wait_for("round 1 scraped", lambda: scraped_since(prometheus, round_1), 15, prometheus.log)
        calls += apps.round(server)

        def stored() -> bool:
            return int(store.query("SELECT count() FROM llm_usage FINAL").rows[0][0]) == calls

        wait_for("every call in ClickHouse", stored, 30)
        ready = time.time()

        def settled() -> bool:
            evaluated = scalar(prometheus, n.PROM_BUDGET_LAST_EVALUATION)
            burn = scalar(prometheus, "count(tenant:spendscope_cost_usd:burnrate1h)")
            return evaluated > ready and scraped_since(prometheus, ready) and burn == len(TENANT_TOTALS)

        wait_for("the last round scraped, budgets evaluated and rules recorded", settled, 20, prometheus.log)
        time.sleep(2 * SCRAPE_S)  # rules evaluated once more on the final scrape
        yield Run(prometheus, time.time(), stored_calls(store), reconciled, collector_target)


# --- running a panel as Grafana does ----------------------------------------------------------------------
@dataclass
class Result:
    """One target's answer: label set -> values (one for an instant query, one per step for a range)."""

    target: Target
    expr: str
    series: dict[frozenset[tuple[str, str]], list[float]]

    def finite(self) -> list[float]:
        return [v for values in self.series.values() for v in values if math.isfinite(v)]

    def by(self, *labels: str) -> dict[tuple[str, ...], float]:
        """Instant values keyed by `labels`."""
        out = {}
        for key, values in self.series.items():
            metric = dict(key)
            out[tuple(metric.get(label, "") for label in labels)] = values[-1]
        return out

    def single(self) -> float:
        [value] = self.by().values()
        return value


def _range_of(panel: Panel, end: float) -> float:
    if panel.time_from == "now/d":  # "Today so far" in the dashboard's time zone (UTC)
        return (
            end
            - datetime.fromtimestamp(end, UTC).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
        )
    assert panel.time_from is None, f"{panel.key}: unexpected time override {panel.time_from}"
    return RANGE_S


def _api(prometheus: Prometheus, path: str, params: Mapping[str, Any]) -> Any:
    body = get_json(f"{prometheus.url}/api/v1/{path}?{urllib.parse.urlencode(params)}")
    assert body["status"] == "success", body
    return body["data"]


def run_panel(
    run: Run, panel: Panel, selected: Mapping[str, str | Sequence[str]] | None = None
) -> list[Result]:
    path = DASHBOARD_DIR / f"{panel.dashboard}.json"
    span = _range_of(panel, run.end)
    interval = max(span / MAX_POINTS, SCRAPE_S)
    builtins = builtin_values(span, interval, SCRAPE_S)
    results = []
    for target in panel.targets():
        expr = interpolate(target.query, variables(path), selected or {}, builtins)
        if target.instant:
            data = _api(run.prometheus, "query", {"query": expr, "time": run.end})
            series = {frozenset(s["metric"].items()): [float(s["value"][1])] for s in data["result"]}
        else:
            start = (run.end - span) // interval * interval  # Grafana aligns the range to the step
            params = {"query": expr, "start": start, "end": run.end, "step": interval}
            data = _api(run.prometheus, "query_range", params)
            series = {
                frozenset(s["metric"].items()): [float(v) for _, v in s["values"]] for s in data["result"]
            }
        assert data["resultType"] == ("vector" if target.instant else "matrix"), (
            panel.key,
            data["resultType"],
        )
        results.append(Result(target, expr, series))
    return results


# --- what each key panel must show -------------------------------------------------------------------------
def close(got: Mapping[Any, float], want: Mapping[Any, float]) -> None:
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def _today(run: Run, results: list[Result]) -> None:
    close({(): results[0].single()}, {(): run.truth.cost()[()]})


def _today_by(dim: str) -> Callable[[Run, list[Result]], None]:
    def check(run: Run, results: list[Result]) -> None:
        close(results[0].by(dim), run.truth.cost((dim,)))

    return check


def _top_users(run: Run, results: list[Result]) -> None:
    per_user = run.truth.cost(("tenant", "user"))
    got = results[0].by("tenant", "user")
    assert len(got) == min(10, len(per_user))
    close(got, {key: per_user[key] for key in got})  # each user shown with their own spend
    left_out = [spent for key, spent in per_user.items() if key not in got]
    assert max(left_out, default=0) <= min(got.values()) * (1 + 1e-9)  # nobody left out spent more


def _cache_ratio(run: Run, results: list[Result]) -> None:
    assert run.truth.total("cached_input_tokens") > 0
    want = run.truth.total("cached_input_tokens") / run.truth.total("input_tokens")
    close({(): results[0].single()}, {(): want})


def _unpriced(run: Run, results: list[Result]) -> None:
    want: dict[tuple[str, ...], float] = defaultdict(float)
    for row in run.truth.rows:
        if row["cost_usd"] is None and row["usage_state"] == n.USAGE_STATE_REPORTED and row["status"] == "ok":
            want[(row["model"],)] += row["input_tokens"] + row["output_tokens"]
    assert want
    close(results[0].by("model"), want)


def _unavailable(run: Run, results: list[Result]) -> None:
    want: dict[tuple[str, ...], float] = defaultdict(float)
    for row in run.truth.rows:  # answered (status ok) without usage; failed calls are errors instead
        if row["usage_state"] == n.USAGE_STATE_UNAVAILABLE and row["status"] == "ok":
            want[(row["endpoint"],)] += 1
    assert want
    close(results[0].by("endpoint"), want)


def _error_rate(run: Run, results: list[Result]) -> None:
    """Both rounds make the same calls, so every step that saw a round shows the run's error share."""
    calls = Counter(row["service"] for row in run.truth.rows)
    errors = Counter(
        (row["service"], row["error_type"]) for row in run.truth.rows if row["status"] == "error"
    )
    want = {key: count / calls[key[0]] for key, count in errors.items()}
    got = {}
    for key, values in results[0].series.items():
        labels = dict(key)
        got[(labels["job"], labels["error_type"])] = max(v for v in values if math.isfinite(v))
    close(got, want)


def _positive(run: Run, results: list[Result]) -> None:
    for result in results[:2]:  # spans received and written; duplicates and replays are zero here
        assert max(result.finite()) > 0, result.expr


def _budget_users(run: Run, results: list[Result]) -> None:
    want = {}
    for (tenant, user), spent in run.truth.cost(("tenant", "user")).items():
        for window, limit in (("day", DAILY), ("month", MONTHLY)):
            if spent * 100 >= WARNING_PERCENT * float(limit):
                want[(tenant, user, window)] = spent / float(limit)
    assert any(ratio >= 1 for ratio in want.values()), "the run puts someone over budget"
    close(results[0].by("tenant", "user", "window"), want)


def _tenant_budgets(run: Run, results: list[Result]) -> None:
    spent = run.truth.cost(("tenant",))
    want = {}
    for tenant, totals in TENANT_TOTALS.items():
        for window, key in (("day", "daily_usd"), ("month", "monthly_usd")):
            if key in totals:
                want[(tenant, window)] = spent[(tenant,)] / float(totals[key])
    close(results[0].by("tenant", "window"), want)


def _up(run: Run, results: list[Result]) -> None:
    assert results[0].by("job") == {(job,): 1.0 for job in (n.JOB_COLLECTOR, n.JOB_BUDGETS, n.JOB_RECONCILER)}


def _store_up(run: Run, results: list[Result]) -> None:
    assert results[0].by("instance") == {(run.collector_target,): 1.0}


def _rejected(run: Run, results: list[Result]) -> None:
    assert results[0].by("reason") == {("invalid",): 1.0}


def _nothing_lost(run: Run, results: list[Result]) -> None:
    assert [r.single() for r in results] == [0.0, 0.0, 0.0]


def _reconciliation_age(run: Run, results: list[Result]) -> None:
    assert 0 <= results[0].single() <= run.end - run.reconciled.finished_at + 1


def _coverage(run: Run, results: list[Result]) -> None:
    close({(): results[0].single()}, {(): run.reconciled.coverage})


def _residual(run: Run, results: list[Result]) -> None:
    got = results[0].by("cause")
    assert len(got) == 7  # every cause, most of them zero
    close({k: v for k, v in got.items() if v}, {(c,): v for c, v in run.reconciled.residual_usd.items()})


def _evaluation_age(run: Run, results: list[Result]) -> None:
    assert 0 <= results[0].single() <= 15  # evaluated and scraped every second (slack for a loaded machine)


CHECKS: dict[str, Callable[[Run, list[Result]], None]] = {
    "cost-overview/Today's spend (UTC)": _today,
    "cost-overview/Spend in the selected range": _today,  # the whole run is in the last 5 minutes
    "cost-overview/Today's spend by model (UTC)": _today_by("model"),
    "cost-overview/Today's spend by endpoint (UTC)": _today_by("endpoint"),
    "cost-overview/Today's spend by tenant (UTC)": _today_by("tenant"),
    "cost-overview/Top 10 users by spend in the selected range": _top_users,
    "cost-overview/Cache hit ratio (cached share of input tokens, selected range)": _cache_ratio,
    "cost-overview/Error rate by service and error type": _error_rate,
    "cost-overview/Unpriced tokens by model (selected range)": _unpriced,
    "cost-overview/Calls answered without usage, by endpoint (selected range)": _unavailable,
    "cost-overview/Users at or above the warning percentage of a budget": _budget_users,
    "cost-overview/Tenant budget used": _tenant_budgets,
    "pipeline-health/Scrape targets up": _up,
    "pipeline-health/Collector can write to ClickHouse": _store_up,
    "pipeline-health/Spans per second": _positive,
    "pipeline-health/Spans rejected in the selected range, by reason": _rejected,
    "pipeline-health/Store errors, refused spans and corrupt spool files (selected range)": _nothing_lost,
    "pipeline-health/Since the last complete reconciliation": _reconciliation_age,
    "pipeline-health/Spend coverage of the last reconciliation": _coverage,
    "pipeline-health/Residual of the last reconciliation, by cause": _residual,
    "pipeline-health/Since the last budget evaluation": _evaluation_age,
}
# Rates of what the run did: some step of the panel's first query must be above zero.
ACTIVE = {
    "cost-overview/Spend rate (USD per hour)",
    "cost-overview/Spend rate by model (USD per hour)",
    "cost-overview/Spend rate by endpoint (USD per hour)",
    "cost-overview/Spend rate by tenant (USD per hour)",
    "cost-overview/Tokens per second by type",
    "cost-overview/Calls without usage, share by service (15 min)",
    "cost-overview/Tenant burn rate of the monthly budget (1 = spends it in 30 days)",
    "pipeline-health/OTLP requests per second, by path and status",
    "pipeline-health/Metric points per second",
    "pipeline-health/Insert latency per batch",
    "pipeline-health/Batch inserts per second",
    "pipeline-health/Budget evaluation duration",
}


def test_checks_name_real_panels() -> None:
    keys = {panel.key for panel in PANELS}
    assert len(keys) == len(PANELS), "panel titles are unique per dashboard"
    assert set(CHECKS) | ACTIVE <= keys


@pytest.mark.parametrize("panel", PANELS, ids=lambda p: p.key)
def test_panel_queries_return_what_the_run_did(run: Run, panel: Panel) -> None:
    results = run_panel(run, panel)
    for result in results:
        assert result.finite(), f"{panel.key} {result.target.ref}: no data for\n{result.expr}"
    if panel.key in ACTIVE:
        first = results[0]
        assert max(first.finite()) > 0, f"{panel.key} {first.target.ref}: never above 0\n{first.expr}"
    if panel.key in CHECKS:
        CHECKS[panel.key](run, results)


def panel(key: str) -> Panel:
    [found] = [p for p in PANELS if p.key == key]
    return found


@pytest.mark.parametrize(
    ("selected", "where"),
    [
        ({"tenant": "talentco"}, {"tenant": "talentco"}),
        (
            {"tenant": ["talentco", "brightschool"], "endpoint": ["generate_hint"]},
            {"endpoint": "generate_hint"},
        ),
        ({"model": ["gpt-4.1-2025-04-14"]}, {"model": "gpt-4.1-2025-04-14"}),  # dots are regex-escaped
        ({"user": "recruiter-1", "endpoint": ["cv-parsing", "video-interview"]}, None),
    ],
)
def test_variables_filter_the_spend(
    run: Run, selected: dict[str, str | list[str]], where: dict[str, str] | None
) -> None:
    results = run_panel(run, panel("cost-overview/Today's spend (UTC)"), selected)
    if where is None:  # recruiter-1 on two endpoints
        want = sum(
            run.truth.cost(user="recruiter-1", endpoint=e).get((), 0.0)
            for e in ("cv-parsing", "video-interview")
        )
    else:
        want = run.truth.cost(**where)[()]
    assert want > 0
    assert results[0].single() == pytest.approx(want, rel=1e-9)


def test_variables_list_the_runs_labels(run: Run) -> None:
    """Each variable's label_values query, as Grafana runs it (the labels API with match[])."""
    want = {
        "tenant": run.truth.priced("tenant"),
        "endpoint": run.truth.priced("endpoint"),
        "model": run.truth.priced("model"),
        "user": run.truth.priced("user"),
        "instance": {run.collector_target},
    }
    builtins = builtin_values(RANGE_S, SCRAPE_S, SCRAPE_S)
    checked = set()
    for path in BOARDS:
        for variable in variables(path):
            query = interpolate(variable_query(variable), variables(path), {}, builtins)
            series, label = query.removeprefix("label_values(").removesuffix(")").rsplit(",", 1)
            params = {"match[]": series.strip(), "start": run.end - RANGE_S, "end": run.end}
            values = _api(run.prometheus, f"label/{label.strip()}/values", params)
            assert set(values) == want[variable["name"]], variable["name"]
            checked.add(variable["name"])
    assert checked == set(want)
