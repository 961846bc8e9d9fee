"""The ClickHouse dashboards (grafana/dashboards/cost-analytics.json and reconciliation.json) on a real
run's data: every panel's and variable's SQL, expanded as Grafana and the ClickHouse plugin expand it
(tests/grafana_macros.py), executed over HTTP on a ClickHouse server (the local store server) holding an
instrumented run and its reconciliation (tests/grafana_run.py). Every query must return rows, and the
key panels must show what the stored calls and the reconciler say, computed here without the
dashboards' SQL."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any

import pytest

from spendscope.reconciler._normalize import normalize_model
from spendscope.store import Store
from tests.grafana_macros import ALL, InterpolationError, Query, Variable, expand
from tests.grafana_run import MINI, TUTOR_BILL, Reconciliation, instrumented_run, reconcile_run
from tests.store_fixtures import fresh_store

DASHBOARDS = Path(__file__).resolve().parents[1] / "grafana" / "dashboards"
COST, RECONCILIATION = "spendscope-cost-analytics", "spendscope-reconciliation"
BOARDS: dict[str, dict[str, Any]] = {
    board["uid"]: board
    for board in (
        json.loads((DASHBOARDS / name).read_text()) for name in ("cost-analytics.json", "reconciliation.json")
    )
}
Q18 = Decimal("1e-18")  # Decimal(38, 18)


def targets() -> Iterator[Any]:
    for uid, board in BOARDS.items():
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                yield pytest.param(
                    uid, panel["title"], target["refId"], id=f"{uid}:{panel['title']}:{target['refId']}"
                )


def panel_sql(uid: str, title: str, ref: str = "A") -> str:
    (panel,) = [p for p in BOARDS[uid]["panels"] if p["title"] == title and p["type"] != "row"]
    (target,) = [t for t in panel["targets"] if t["refId"] == ref]
    return str(target["rawSql"])


def variables(uid: str, **chosen: str | tuple[str, ...]) -> dict[str, Variable]:
    """Every variable at its default (All for the multi-value ones), `chosen` ones set."""
    out = {}
    for v in BOARDS[uid]["templating"]["list"]:
        default = (ALL,) if v.get("multi") else v["current"]["value"]
        out[v["name"]] = Variable(chosen.get(v["name"], default))
    return out


# --- the data ---------------------------------------------------------------------------------------
@dataclass
class Run:
    store: Store
    calls: int
    first: datetime
    last: datetime
    reconciliation: Reconciliation

    def query(self, uid: str, **chosen: str | tuple[str, ...]) -> Query:
        if uid == RECONCILIATION:
            start, end = self.reconciliation.since, self.reconciliation.until
        else:  # a day either side: the run's day is read whole from the daily rollup
            start, end = self.first - timedelta(days=1), self.last + timedelta(days=1)
        return Query(start, end, variables(uid, **chosen), interval=timedelta(hours=1))

    def rows(
        self, uid: str, title: str, query: Query | None = None, **chosen: str | tuple[str, ...]
    ) -> list[dict[str, Any]]:
        result = self.store.query(expand(panel_sql(uid, title), query or self.query(uid, **chosen)))
        return [dict(zip(result.columns, row, strict=True)) for row in result.rows]

    def sql(self, sql: str) -> list[list[Any]]:
        return self.store.query(sql).rows


@pytest.fixture(scope="module")
def run(server_dsn: str, _store_admin: Store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    with fresh_store(server_dsn, _store_admin) as store:
        spool = tmp_path_factory.mktemp("grafana-collector") / "spool"
        calls = instrumented_run(store, f"{server_dsn}/{store.database}", spool)
        first, last = store.query("SELECT min(time), max(time) FROM llm_usage").rows[0]
        yield Run(store, calls, first, last, reconcile_run(store))


def by(rows: list[dict[str, Any]], *keys: str) -> dict[Any, dict[str, Any]]:
    return {tuple(r[k] for k in keys) if len(keys) > 1 else r[keys[0]]: r for r in rows}


# --- the expander: exactly what the plugin does, and nothing unknown passes -------------------------
RANGE = Query(
    datetime.fromisoformat("2026-03-01T10:00:00.250+00:00"),
    datetime.fromisoformat("2026-03-02T11:30:00.999+00:00"),
    {"tenant": Variable((ALL,)), "user": Variable(("u'1", "u2")), "margin": Variable("25")},
    interval=timedelta(minutes=5),
)


def test_macros_expand_as_the_plugin_backend_does() -> None:
    sql = "SELECT $__timeInterval(time) FROM t WHERE $__timeFilter(toStartOfHour(time)) AND d IN (toDate($__fromTime), $__toTime_ms)"
    assert expand(sql, RANGE) == (
        "SELECT toStartOfInterval(toDateTime(time), INTERVAL 300 second) FROM t WHERE "
        "toStartOfHour(time) >= toDateTime(1772359200) AND toStartOfHour(time) <= toDateTime(1772451000) "
        "AND d IN (toDate(toDateTime(1772359200)), fromUnixTimestamp64Milli(1772451000999))"
    )
    assert expand("$__dateFilter(day) OR $__timeFilter_ms(t) OR $__interval_s", RANGE) == (
        "day >= toDate('2026-03-01') AND day <= toDate('2026-03-02') OR "
        "t >= fromUnixTimestamp64Milli(1772359200250) AND t <= fromUnixTimestamp64Milli(1772451000999) OR 300"
    )


def test_conditional_all_and_variables_expand_as_grafana_and_the_plugin_frontend_do() -> None:
    sql = "$__conditionalAll(tenant IN (${tenant:singlequote}), $tenant) AND $__conditionalAll(u IN (${user:singlequote}), $user) AND m = '$margin' AND v IN ($user)"
    assert expand(sql, RANGE) == "1=1 AND u IN ('u\\'1','u2') AND m = '25' AND v IN ('u'1','u2')"


@pytest.mark.parametrize(
    "sql",
    [
        "WHERE $__timeFiltr(time)",  # a misspelt macro
        "WHERE $__timeFilter(time",  # never closed
        "WHERE $__timeFilter()",  # no column
        "WHERE tenant IN (${tenants:singlequote})",  # an undefined variable
        "WHERE $__conditionalAll(tenant IN ($tenants), $tenants)",
        "WHERE $__conditionalAll(tenant = 'a', b = 'c', $tenant)",  # a comma at the top level
        "WHERE x IN (${user:regex})",  # a format this SQL must not use
        "WHERE $__from < t",  # Grafana's own variables are not the plugin's macros
    ],
)
def test_anything_unknown_raises(sql: str) -> None:
    with pytest.raises(InterpolationError):
        expand(sql, RANGE)


# --- every query runs and returns rows --------------------------------------------------------------
@pytest.mark.parametrize(("uid", "title", "ref"), list(targets()))
def test_every_panel_query_returns_rows(run: Run, uid: str, title: str, ref: str) -> None:
    assert run.store.query(expand(panel_sql(uid, title, ref), run.query(uid))).rows


def filtered_panels(uid: str) -> list[str]:
    """Panels that must honour every multi-value variable: all of cost analytics; in reconciliation,
    those reading reconciliation_diffs (its rows carry project and model; a run's totals do not)."""
    titles = [p["title"] for p in BOARDS[uid]["panels"] if p["type"] != "row"]
    return [t for t in titles if uid == COST or "reconciliation_diffs" in panel_sql(uid, t)]


@pytest.mark.parametrize(
    ("uid", "name"),
    [
        (COST, "tenant"),
        (COST, "endpoint"),
        (COST, "user"),
        (COST, "model"),
        (RECONCILIATION, "project"),
        (RECONCILIATION, "model"),
    ],
)
def test_every_panel_honours_every_variable(run: Run, uid: str, name: str) -> None:
    for title in filtered_panels(uid):  # a value nothing has: no rows, or nothing but zeros
        rows = run.rows(uid, title, **{name: ("nobody",)})
        assert all(value in (0, None) for row in rows for value in row.values()), (title, rows)


def variable_values(run: Run, uid: str, name: str, **chosen: str | tuple[str, ...]) -> list[str]:
    (variable,) = [v for v in BOARDS[uid]["templating"]["list"] if v["name"] == name]
    return [row[0] for row in run.sql(expand(variable["query"]["rawSql"], run.query(uid, **chosen)))]


def test_variables_list_what_the_run_has(run: Run) -> None:
    for name, column in (
        ("tenant", "tenant"),
        ("endpoint", "endpoint"),
        ("user", "user_id"),
        ("model", "model"),
    ):
        stored = run.sql(
            f"SELECT DISTINCT {column} FROM llm_usage FINAL WHERE {column} != '' ORDER BY {column}"
        )
        assert variable_values(run, COST, name) == [r[0] for r in stored], name
    # each variable narrows the next
    school = run.sql(
        "SELECT DISTINCT endpoint FROM llm_usage FINAL WHERE tenant = 'brightschool' ORDER BY endpoint"
    )
    assert variable_values(run, COST, "endpoint", tenant=("brightschool",)) == [r[0] for r in school]
    assert variable_values(run, COST, "user", tenant=("talentco",), endpoint=("cv-search",)) == [
        "recruiter-1",
        "recruiter-2",
    ]

    result = run.reconciliation.result
    lines = {(line.project_id, line.model) for line in result.lines}
    assert variable_values(run, RECONCILIATION, "project") == sorted({p for p, _ in lines})
    assert variable_values(run, RECONCILIATION, "model") == sorted({m for _, m in lines if m})
    school_models = sorted({m for p, m in lines if p == "proj_brightschool" and m})
    assert variable_values(run, RECONCILIATION, "model", project=("proj_brightschool",)) == school_models


# --- cost analytics ---------------------------------------------------------------------------------
def stored_cost(run: Run, group: str, where: str = "1") -> dict[Any, Decimal | None]:
    """Each group's cost from llm_usage itself: its priced calls' sum, or None (unknown, never 0) when
    none of its calls is priced and some have an unknown cost (no price, or no usage)."""
    unknown = "countIf(priced = 1) = 0 AND countIf(unpriced = 1 OR usage_unavailable = 1) > 0"
    rows = run.sql(
        f"SELECT {group}, if({unknown}, NULL, sum(ifNull(cost_usd, 0))) FROM llm_usage FINAL WHERE {where} "
        "GROUP BY ALL"
    )
    return {tuple(r[:-1]) if len(r) > 2 else r[0]: r[-1] for r in rows}


def known(values: Any) -> Decimal:
    """The sum of the known costs among `values`."""
    return sum((v for v in values if v is not None), Decimal(0))


def test_cost_per_user_is_what_the_calls_cost(run: Run) -> None:
    expected = stored_cost(run, "user_id, tenant")
    narrow = Query(run.first - timedelta(minutes=1), run.last + timedelta(minutes=1), variables(COST))
    # the run's day read whole from the daily rollup, then its minutes from the partial-hour edges
    for query in (run.query(COST), narrow):
        rows = run.rows(COST, "Cost per user", query)
        assert {(r["user"], r["tenant"]): r["cost_usd"] for r in rows} == expected
        (total,) = run.rows(COST, "Provider cost", query)
        assert total["cost_usd"] == known(expected.values()) > 0
    (calls,) = run.rows(COST, "Calls")
    assert calls == {
        "calls": run.calls,
        "priced": run.calls - 4,
        "unpriced": 1,
        "usage_unavailable": 1,
        "errors": 2,
    }


def test_choosing_tenants_filters_every_cost_panel(run: Run) -> None:
    school = stored_cost(run, "user_id", "tenant = 'brightschool'")
    users = run.rows(COST, "Cost per user", tenant=("brightschool",))
    assert {r["user"]: r["cost_usd"] for r in users} == school
    assert [r["tenant"] for r in run.rows(COST, "Cost per tenant", tenant=("brightschool",))] == [
        "brightschool"
    ]
    (total,) = run.rows(COST, "Provider cost", tenant=("brightschool",))
    assert total["cost_usd"] == known(school.values())
    both = run.rows(COST, "Cost per tenant", tenant=("brightschool", "talentco"))
    assert both == run.rows(COST, "Cost per tenant")
    (one,) = run.rows(
        COST,
        "Cost per user",
        tenant=("brightschool",),
        user=("student-03",),
        model=("brightschool-tutor-v2",),
    )
    # a call without a price: no value (unknown), never $0
    assert (one["user"], one["calls"], one["unpriced_calls"], one["cost_usd"]) == ("student-03", 1, 1, None)


def billed(cost: Decimal | None, margin: Decimal) -> Decimal | None:
    return None if cost is None else (cost * (100 + margin) / 100).quantize(Q18, rounding=ROUND_DOWN)


def test_invoice_is_cost_plus_each_tenants_margin(run: Run) -> None:
    cost = stored_cost(run, "tenant")
    for default in ("0", "10"):
        rows = by(run.rows(COST, "Invoice per tenant", default_margin=default), "tenant")
        # talentco's margin is in tenant_margins (the demo's); brightschool has the default
        margins = {"talentco": Decimal(25), "brightschool": Decimal(default)}
        assert {t: (r["cost_usd"], r["margin_percent"], r["billed_usd"]) for t, r in rows.items()} == {
            t: (cost[t], m, billed(cost[t], m)) for t, m in margins.items()
        }
        (total,) = run.rows(COST, "Billed to tenants", default_margin=default)
        assert total["billed_usd"] == known(r["billed_usd"] for r in rows.values())
    lines = run.rows(COST, "Invoice lines per tenant and model")
    assert {(r["tenant"], r["model"]): r["cost_usd"] for r in lines} == stored_cost(run, "tenant, model")


def test_daily_and_monthly_series_add_up_to_the_total(run: Run) -> None:
    total = known(stored_cost(run, "tenant").values())
    for title in ("Daily cost per tenant", "Monthly cost per tenant"):
        rows = run.rows(COST, title)
        assert {r["tenant"] for r in rows} == {"talentco", "brightschool"}
        assert known(r["cost_usd"] for r in rows) == total, title


def test_usage_per_job(run: Run) -> None:
    expected = stored_cost(run, "attributes['job_id']", "attributes['job_id'] != ''")
    calls = dict(
        run.sql(
            "SELECT attributes['job_id'], count() FROM llm_usage FINAL WHERE attributes['job_id'] != '' GROUP BY ALL"
        )
    )
    rows = by(run.rows(COST, "Usage per job"), "job_id")
    assert set(rows) == {"job-1001", "job-1002", "job-1003"}
    for job, row in rows.items():
        assert (row["tenant"], row["calls"], row["cost_usd"]) == ("talentco", calls[job], expected[job])
        assert row["billed_usd"] == billed(expected[job], Decimal(25))
    assert "video-interview" in rows["job-1001"]["endpoints"]


def test_cache_savings_at_the_published_price(run: Run) -> None:
    (cached,) = run.sql("SELECT sum(cached_input_tokens) FROM llm_usage FINAL")[0]
    assert cached > 0  # the two CV parsings with a prompt cache key
    (row,) = run.rows(COST, "Cache savings per model")
    assert (row["model"], row["calls"], row["cached_input_tokens"]) == ("gpt-4o-mini-2024-07-18", 2, cached)
    assert row["savings_usd"] == cached * (MINI[0] - MINI[1]) > 0
    assert run.rows(COST, "Cache savings") == [{"savings_usd": row["savings_usd"]}]


def test_unpriced_calls_are_listed_not_costed_at_zero(run: Run) -> None:
    (row,) = run.rows(COST, "Unpriced calls")
    assert (row["model"], row["tenant"], row["user"], row["endpoint"]) == (
        "brightschool-tutor-v2",
        "brightschool",
        "student-03",
        "analyze_homework",
    )
    assert row["input_tokens"] > 0


COST_COLUMNS = ("cost_usd", "billed_usd")
UNKNOWN_COUNTS = (
    "unpriced_calls",
    "unpriced_input_tokens",
    "unpriced_output_tokens",
    "usage_unavailable_calls",
)


def cost_panels() -> list[str]:
    """The cost analytics panels that show what calls cost (or bill)."""
    return [
        p["title"]
        for p in BOARDS[COST]["panels"]
        if p["type"] != "row" and any(f" AS {c}" in panel_sql(COST, p["title"]) for c in COST_COLUMNS)
    ]


def test_cost_panels_show_unknown_as_no_value_with_the_unknown_calls_beside(run: Run) -> None:
    """The representation of spendscope/store/money.py: a cost is the priced calls' sum, no value (NULL,
    shown as `unknown`) when no call is priced and some have an unknown cost, never $0; the calls (and
    tokens) of unknown cost are beside it, in every panel that shows a cost."""
    titles = cost_panels()
    assert len(titles) == 11, titles
    unpriced = "brightschool-tutor-v2"
    [[in_tokens, out_tokens]] = run.sql(
        f"SELECT sum(input_tokens), sum(output_tokens) FROM llm_usage FINAL WHERE model = '{unpriced}'"
    )
    [[unavailable]] = run.sql(
        "SELECT countIf(usage_unavailable = 1) FROM llm_usage FINAL WHERE tenant = 'brightschool'"
    )
    assert unavailable == 1
    for title in titles:
        panel = next(p for p in BOARDS[COST]["panels"] if p["title"] == title)
        assert panel["fieldConfig"]["defaults"]["mappings"][0]["options"]["match"] == "null", title
        # the model nobody has a price for: no dollar figure at all, its calls counted
        rows = run.rows(COST, title, model=(unpriced,))
        assert rows or title == "Usage per job", title  # the tutor has no job
        for row in rows:
            assert all(row[c] is None for c in COST_COLUMNS if c in row), (title, row)
            assert row.get("unpriced_calls", row.get("unknown_cost_calls")) == 1, (title, row)
            if "unpriced_input_tokens" in row:
                assert (row["unpriced_input_tokens"], row["unpriced_output_tokens"]) == (
                    in_tokens,
                    out_tokens,
                )
        # a tenant that mixes them: the priced part, with every call of unknown cost beside it
        school = run.rows(COST, title, tenant=("brightschool",))
        if title == "Usage per job":
            continue
        if panel["type"] == "timeseries":
            assert sum(r["unknown_cost_calls"] for r in school) == 2, title
            continue
        counts = {c: sum(r[c] for r in school) for c in UNKNOWN_COUNTS if c in school[0]}
        assert counts == {
            "unpriced_calls": 1,
            "unpriced_input_tokens": in_tokens,
            "unpriced_output_tokens": out_tokens,
            "usage_unavailable_calls": 1,
        }, title
    (provider,) = run.rows(COST, "Provider cost", tenant=("brightschool",))
    assert provider["cost_usd"] == stored_cost(run, "tenant")["brightschool"] > 0  # the priced part
    jobs = run.rows(COST, "Usage per job")
    expected = run.sql(
        "SELECT attributes['job_id'], sum(priced), sum(unpriced), sum(usage_unavailable) FROM llm_usage FINAL "
        "WHERE attributes['job_id'] != '' GROUP BY ALL"
    )
    assert {
        r["job_id"]: (r["priced_calls"], r["unpriced_calls"], r["usage_unavailable_calls"]) for r in jobs
    } == {job: (priced, unpriced_calls, no_usage) for job, priced, unpriced_calls, no_usage in expected}


# --- reconciliation ---------------------------------------------------------------------------------
def test_coverage_is_what_the_reconciler_stored(run: Run) -> None:
    totals = run.reconciliation.result.totals
    assert totals.coverage_ratio is not None and totals.token_coverage_ratio is not None
    (coverage,) = run.rows(RECONCILIATION, "Coverage (latest run)")
    assert coverage == {
        "spend": pytest.approx(totals.coverage_ratio),
        "tokens": pytest.approx(totals.token_coverage_ratio),
        "threshold": 0.95,
    }
    assert coverage["spend"] < 1  # OpenAI billed what SpendScope could not see
    (dollars,) = run.rows(RECONCILIATION, "Dollars (latest run)")
    assert dollars == {
        "tracked": totals.tracked_usd,
        "reported": totals.reported_usd,
        "residual": totals.residual_usd,
    }
    (tokens,) = run.rows(RECONCILIATION, "Tokens (latest run)")
    assert tokens == {
        "tracked": totals.tracked_tokens,
        "reported": totals.reported_tokens,
        "residual": totals.residual_tokens,
    }
    (failed,) = run.rows(RECONCILIATION, "Failed runs")
    assert "costs" in failed["error"]


def test_a_run_that_compared_no_dollars_shows_none(store: Store) -> None:
    """A reconciliation without the Costs API (--no-costs) tracked tokens only: its dollar panels
    have no value, not a tracked $0 beside nothing reported."""
    from spendscope.demo.fake_openai.admin import FakeAdminAPI
    from tests.reconcile_helpers import DAY, NOW, call, reconcile, track, use

    with FakeAdminAPI(now=NOW) as admin:
        admin.add_project("proj_a")
        admin.add_key("proj_a", "key_a", "sk-proj-...9f2c")
        track(store, call())
        use(admin, requests=1, input_tokens=100, output_tokens=20)
        result = reconcile(store, admin, costs=False)
    assert result.totals.reported_usd is None
    query = Query(DAY, DAY + timedelta(days=1), variables(RECONCILIATION), interval=timedelta(hours=1))

    def rows(title: str) -> list[dict[str, Any]]:
        answer = store.query(expand(panel_sql(RECONCILIATION, title), query))
        return [dict(zip(answer.columns, row, strict=True)) for row in answer.rows]

    assert rows("Dollars (latest run)") == [{"tracked": None, "reported": None, "residual": None}]
    (complete,) = rows("Complete runs")
    assert (complete["tracked_usd"], complete["reported_usd"], complete["tracked_tokens"]) == (
        None,
        None,
        120,
    )


def normalized_model_cost(run: Run) -> dict[tuple[str, str], Decimal]:
    out: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for (project, model), cost in stored_cost(run, "openai_project, model", "cost_usd IS NOT NULL").items():
        out[(project, normalize_model(model))] += cost
    return out


def test_dollars_per_day_project_and_model(run: Run) -> None:
    reported = run.reconciliation.reported.usd
    rows = run.rows(RECONCILIATION, "USD per day, project and model")
    assert {(r["day"], r["project_id"], r["model"]): r["reported"] for r in rows} == reported
    tracked = normalized_model_cost(run)
    for r in rows:  # SpendScope's cost, split into line items by the reconciler
        assert abs(r["tracked"] - tracked.get((r["project_id"], r["model"]), Decimal(0))) < Decimal("1e-15")
    per_day = run.rows(RECONCILIATION, "Tracked vs reported USD per day")
    assert (
        sum(r["reported"] for r in per_day)
        == sum(reported.values())
        == run.reconciliation.result.totals.reported_usd
    )


def test_tokens_per_day_project_and_model(run: Run) -> None:
    rows = run.rows(RECONCILIATION, "Tracked vs reported tokens per day, project and model")
    assert {
        (r["day"], r["project_id"], r["model"]): r["reported_tokens"] for r in rows
    } == run.reconciliation.reported.tokens
    totals = run.reconciliation.result.totals
    assert sum(r["tracked_tokens"] for r in rows) == totals.tracked_tokens
    assert sum(r["reported_tokens"] for r in rows) == totals.reported_tokens
    mini = run.rows(
        RECONCILIATION, "Tracked vs reported tokens per day, project and model", model=("gpt-4o-mini",)
    )
    assert mini
    assert mini == [r for r in rows if r["model"] == "gpt-4o-mini"]


def call_length(text: str) -> int:
    """The length of the function call `text` starts with (up to its balanced closing parenthesis)."""
    depth = 0
    for i, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == ")" and depth == 0:
            return i + 1
    raise ValueError(f"unbalanced: {text}")


def test_token_panel_names_models_as_the_reconciler_does(run: Run) -> None:
    sql = panel_sql(RECONCILIATION, "Tracked vs reported tokens per day, project and model")
    start = sql.index("replaceRegexpOne(transform(lower(model)")
    end = start + call_length(sql[start:])
    names = [
        "gpt-4o-mini-2024-07-18",
        "GPT-3.5-turbo-0125",
        "text-embedding-ada-002-v2",
        "gpt-realtime",
        "o3-2025-04-16",
        "ft:gpt-4o-mini:acme",
    ]
    literal = ", ".join(f"'{n}'" for n in names)
    normalized = run.sql(f"SELECT {sql[start:end]} FROM (SELECT arrayJoin([{literal}]) AS model)")
    assert [r[0] for r in normalized] == [normalize_model(n) for n in names]


def test_residual_by_cause_is_what_the_reconciler_explained(run: Run) -> None:
    result = run.reconciliation.result
    rows = by(run.rows(RECONCILIATION, "Residual per cause"), "cause")
    tokens, usd = result.cause_tokens(), result.cause_usd()
    assert {c: r["tokens"] for c, r in rows.items()} == {c: t for c, t in tokens.items() if c in rows}
    assert {c: r["residual_usd"] or Decimal(0) for c, r in rows.items()} == {c: usd[c] for c in rows}
    assert {"untracked", "usage_unavailable", "missing_price"} <= set(rows)
    assert sum(usd.values()) == result.totals.residual_usd
    per_day = run.rows(RECONCILIATION, "Residual USD per day by cause")
    assert sum(r["residual_usd"] for r in per_day) == result.totals.residual_usd
    # the fine-tune without a price: its tokens are missing_price, OpenAI's bill for it is in the residual
    assert rows["missing_price"]["residual_usd"] is None
    assert result.totals.residual_usd is not None and result.totals.residual_usd >= TUTOR_BILL


def test_choosing_a_project_filters_the_differences(run: Run) -> None:
    chosen = run.rows(RECONCILIATION, "Differences", project=("proj_talentco",))
    assert chosen and {r["project_id"] for r in chosen} == {"proj_talentco"}
    everything = run.rows(RECONCILIATION, "Differences")
    assert len(everything) > len(chosen)
