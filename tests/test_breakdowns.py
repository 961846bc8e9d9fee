"""The portal's reports on a real store: totals with billed cost and active users, endpoint x model,
a sorted page of users, billed cost and quantities per tenant and per job, every figure checked
against sums computed here from the calls written; and the tenant scope, which no parameter escapes."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest

from spendscope import names as n
from spendscope.store import Report, Store, money
from spendscope.store import breakdowns as b
from spendscope.store import reports as r
from spendscope.store.billing import set_margin
from spendscope.store.scope import OutsideScope, TenantScope
from tests.store_fixtures import llm_record, priced_at

NOW = datetime.now(UTC).replace(microsecond=0)
DAY = NOW.replace(hour=0, minute=0, second=0)
SINCE, UNTIL = DAY - timedelta(days=3), NOW + timedelta(minutes=1)

# (days ago, tenant, user, endpoint, job, cost or None for an unpriced model, quantities)
CALLS: list[tuple[int, str, str, str, str, str | None, dict[str, float]]] = [
    (0, "acme", "u-1", "cv-parsing", "J-1", "0.010", {"cvs_parsed": 1}),
    (0, "acme", "u-1", "cv-parsing", "J-2", "0.020", {"cvs_parsed": 1}),
    (1, "acme", "u-2", "question-generation", "J-1", "0.100", {"questions": 5}),
    (2, "acme", "u-2", "video-interview", "J-1", "0.300", {"realtime_seconds": 90.5}),
    (0, "beta", "u-9", "cv-parsing", "J-1", "0.040", {"cvs_parsed": 1}),
    (1, "beta", "u-8", "chat", "", None, {}),
]


def _record(
    days: int, tenant: str, user: str, endpoint: str, job: str, cost: str | None, q: dict[str, float]
) -> Any:
    at = (DAY if days == 0 else DAY - timedelta(days=days)) + timedelta(minutes=5)
    args: dict[str, Any] = priced_at(cost) if cost else {"model": "house-model-v1", "cost": None}
    record = llm_record(
        at, user=user, endpoint=endpoint, tenant=tenant, extra={"job_id": job} if job else None, **args
    )
    attrs = {**record.span_attributes, **{n.QUANTITY_PREFIX + k: repr(v) for k, v in q.items()}}
    return dataclasses.replace(record, span_attributes=attrs)


@pytest.fixture
def loaded(store: Store) -> Store:
    store.insert_spans([_record(*call) for call in CALLS])
    set_margin(store, "acme", D(25), effective_from=DAY - timedelta(days=30))
    return store


def _expected(tenant: str | None = None) -> dict[str, Any]:
    rows = [c for c in CALLS if tenant is None or c[1] == tenant]
    cost = sum((D(c[5]) for c in rows if c[5]), D(0))
    billed = sum((D(c[5]) * (D(125) / 100 if c[1] == "acme" else 1) for c in rows if c[5]), D(0))
    quantities: dict[str, float] = {}
    for c in rows:
        for k, v in c[6].items():
            quantities[k] = quantities.get(k, 0) + v
    return {
        "calls": len(rows),
        "cost": cost,
        "billed": billed,
        "users": len({c[2] for c in rows}),
        "q": quantities,
    }


def test_stats_are_the_sums_of_the_calls(loaded: Store) -> None:
    got = b.stats(loaded, since=SINCE, until=UNTIL)
    want = _expected()
    assert got["calls"] == want["calls"] and got["active_users"] == want["users"]
    assert got["cost_usd"] == want["cost"] and got["billed_usd"] == want["billed"]
    assert got["unpriced_calls"] == 1 and got["unpriced_input_tokens"] == 100
    assert got["quantities"] == want["q"]
    today = b.stats(loaded, since=DAY, until=UNTIL)
    assert today["calls"] == 3 and today["cost_usd"] == D("0.070")


def test_stats_of_an_empty_window_is_a_row_of_nothing(loaded: Store) -> None:
    got = b.stats(loaded, since=SINCE - timedelta(days=30), until=SINCE - timedelta(days=29))
    assert got["calls"] == 0 and got["active_users"] == 0 and got["quantities"] == {}
    assert got["cost_usd"] == 0 and got["billed_usd"] == 0


def test_windows_today_month_and_window_agree_with_their_own_stats(loaded: Store) -> None:
    """The overview's three windows, from one query of the days, equal each window's stats read alone,
    whether the window is whole days of that query or not."""
    month = DAY.replace(day=1)
    months_from = month - timedelta(days=62)
    for since, until in [
        (SINCE, NOW),
        (DAY - timedelta(days=1), NOW),
        (SINCE + timedelta(hours=3), NOW),
        (SINCE, UNTIL),
    ]:
        found = b.windows(loaded, now=NOW, since=since, until=until, months_from=months_from)
        spans = {"today": (DAY, NOW), "month": (month, NOW), "window": (since, until)}
        for name, (start, end) in spans.items():
            assert found.totals[name] == b.stats(loaded, since=start, until=end), (name, since, until)
        assert sum(row[3] for row in found.window_days.rows) == found.totals["window"]["calls"]
    same = b.windows(loaded, now=NOW, since=month, until=NOW)
    assert same.totals["window"] == same.totals["month"]


def test_collapse_adds_up_by_any_key(loaded: Store) -> None:
    rows = b.days(loaded, since=SINCE, until=UNTIL)
    by_endpoint = {row[0]: row for row in b.collapse(rows, ["endpoint"]).rows}
    assert set(by_endpoint) == {c[3] for c in CALLS}
    pairs = b.pairs(loaded, by="endpoint", by2="model", since=SINCE, until=UNTIL).as_dicts()
    collapsed = b.collapse(rows, ["endpoint", "model"]).as_dicts()
    key = lambda row: (row["endpoint"], row["model"])  # noqa: E731
    for want, got in zip(sorted(pairs, key=key), sorted(collapsed, key=key), strict=True):
        for column in ("calls", "input_tokens", "cost_usd", "unpriced_calls", "quantities"):
            assert got[column] == want[column], column


def test_endpoint_by_model(loaded: Store) -> None:
    report = b.pairs(loaded, by="endpoint", by2="model", since=SINCE, until=UNTIL)
    rows = {(row["endpoint"], row["model"]): row for row in report.as_dicts()}
    assert rows[("cv-parsing", "gpt-4.1-2025-04-14")]["calls"] == 3
    assert rows[("cv-parsing", "gpt-4.1-2025-04-14")]["cost_usd"] == D("0.070")
    unknown = rows[("chat", "house-model-v1")]
    assert unknown["cost_usd"] is None and unknown["unpriced_calls"] == 1  # unknown, never $0
    assert rows[("question-generation", "gpt-4.1-2025-04-14")]["quantities"] == {"questions": 5.0}
    with pytest.raises(r.ReportError):
        b.pairs(loaded, by="endpoint", by2="endpoint", since=SINCE, until=UNTIL)


@pytest.mark.parametrize(
    ("sort", "descending", "users"),
    [
        ("cost_usd", True, ["u-2", "u-9", "u-1", "u-8"]),  # the unknown cost last
        ("cost_usd", False, ["u-1", "u-9", "u-2", "u-8"]),  # last either way
        ("user", False, ["u-1", "u-2", "u-8", "u-9"]),
        ("calls", True, ["u-1", "u-2", "u-8", "u-9"]),
    ],
)
def test_users_page_sorts_on_the_server(loaded: Store, sort: str, descending: bool, users: list[str]) -> None:
    page, total = b.users_page(loaded, since=SINCE, until=UNTIL, sort=sort, descending=descending)
    assert [row["user"] for row in page.as_dicts()] == users and total == 4


def test_users_page_pages_filters_and_searches(loaded: Store) -> None:
    page, total = b.users_page(
        loaded, since=SINCE, until=UNTIL, sort="user", descending=False, limit=2, offset=2
    )
    assert [row["user"] for row in page.as_dicts()] == ["u-8", "u-9"] and total == 4
    page, total = b.users_page(loaded, since=SINCE, until=UNTIL, sort="user", limit=2, offset=10)
    assert page.rows == [] and total == 4
    page, total = b.users_page(loaded, since=SINCE, until=UNTIL, where={"tenant": "acme"})
    assert {row["user"] for row in page.as_dicts()} == {"u-1", "u-2"} and total == 2
    assert page.as_dicts()[0]["tenants"] == ["acme"]
    page, total = b.users_page(
        loaded, since=SINCE, until=UNTIL, where={"endpoint": "cv-parsing"}, search="U-"
    )
    assert {row["user"] for row in page.as_dicts()} == {"u-1", "u-9"} and total == 2
    with pytest.raises(r.ReportError):
        b.users_page(loaded, since=SINCE, until=UNTIL, sort="cost_usd; DROP TABLE x")


def test_billing_per_tenant_has_the_margin(loaded: Store) -> None:
    report = b.billing(loaded, by="tenant", since=SINCE, until=UNTIL, with_users=True)
    rows = {row["tenant"]: row for row in report.as_dicts()}
    assert rows["acme"]["cost_usd"] == _expected("acme")["cost"] == D("0.430")
    assert rows["acme"]["billed_usd"] == _expected("acme")["billed"] == D("0.5375")
    assert rows["beta"]["billed_usd"] == rows["beta"]["cost_usd"] == D("0.040")
    assert rows["beta"]["unpriced_calls"] == 1 and rows["acme"]["active_users"] == 2


def test_jobs_by_endpoint_pivot(loaded: Store) -> None:
    report = b.billing(
        loaded, by="attr:job_id", by2="endpoint", since=SINCE, until=UNTIL, where={"tenant": "acme"}
    )
    table = b.pivot(report)
    columns, rows = table.columns, table.rows
    assert columns == ["video-interview", "question-generation", "cv-parsing"]
    job1 = next(row for row in rows if row["key"] == "J-1")
    assert job1["cells"]["cv-parsing"].usd == D("0.0125") and job1["total"].usd == D("0.5125")
    assert job1["quantities"] == {"cvs_parsed": 1.0, "questions": 5.0, "realtime_seconds": 90.5}
    assert [row["key"] for row in rows] == ["J-1", "J-2"] and table.total_rows == 2
    assert table.quantity_names == ["cvs_parsed", "questions", "realtime_seconds"]
    first = b.pivot(report, limit=1)
    assert (first.rows, first.columns, first.total_rows) == (rows[:1], columns, 2)
    assert first.quantity_names == table.quantity_names  # of every row, shown or not
    flat = b.flatten_quantities(report)
    assert flat.columns[-3:] == ["quantity:cvs_parsed", "quantity:questions", "quantity:realtime_seconds"]


def test_pivot_totals_are_the_costs_sums() -> None:
    """Each row's total and the columns' order are the sums of its cells' Costs (unknown when no call is
    priced and some are not), as money.Cost adds them."""
    columns = ["job", "endpoint", "calls", "billed_usd", *money.COUNTS, "quantities"]
    report = Report(columns, [
        ["J-1", "a", 2, D("0.5"), 2, 0, 0, 0, 0, {"q": 1.0}],
        ["J-1", "b", 1, None, 0, 1, 10, 5, 0, {}],
        ["J-2", "b", 1, None, 0, 0, 0, 0, 1, {"r": 2.0}],
        ["J-3", "a", 3, D("0.25"), 3, 0, 0, 0, 0, {}],
        ["J-3", "c", 1, D("0.75"), 1, 0, 0, 0, 0, {}],
    ])  # fmt: skip
    table = b.pivot(report)
    for row in table.rows:
        assert row["total"] == sum(row["cells"].values(), money.Cost.zero())
    assert [(r["key"], r["total"].usd, r["calls"]) for r in table.rows] == [
        ("J-3", D("1.00"), 4),
        ("J-1", D("0.5"), 3),  # a partial sum: one call of unknown cost beside it
        ("J-2", None, 1),  # unknown, sorted as 0
    ]
    assert table.rows[1]["total"].unpriced_input_tokens == 10 and table.rows[1]["quantities"] == {"q": 1.0}
    assert table.columns == ["a", "c", "b"] and table.quantity_names == ["q", "r"]  # a tie: by name
    assert b.pivot(report, limit=2).rows == table.rows[:2]


def test_a_tenant_scope_sees_its_tenant_whatever_the_parameters(loaded: Store) -> None:
    acme = TenantScope(loaded, "acme")
    assert b.stats(acme, since=SINCE, until=UNTIL)["calls"] == 4
    assert b.stats(acme, since=SINCE, until=UNTIL, where={"tenant": "beta"})["calls"] == 0
    assert {row["tenant"] for row in r.report(acme, by="tenant", since=SINCE, until=UNTIL).as_dicts()} == {
        "acme"
    }
    assert r.report(acme, by="attr:job_id", since=SINCE, until=UNTIL, where={"tenant": "beta"}).rows == []
    assert r.user_month(acme, user="u-9", month=DAY.date()).rows == []  # beta's user
    assert b.users_page(acme, since=SINCE, until=UNTIL, search="u-9")[1] == 0
    assert {row["tenant"] for row in b.billing(acme, by="tenant", since=SINCE, until=UNTIL).as_dicts()} == {
        "acme"
    }
    calls = r.export_calls(acme, since=SINCE, until=UNTIL, where={"user": "u-9"})
    assert calls.rows == []
    assert {row["tenant"] for row in r.export_calls(acme, since=SINCE, until=UNTIL).as_dicts()} == {"acme"}
    with pytest.raises(OutsideScope):
        r.unpriced_calls(acme, since=SINCE, until=UNTIL)
    with pytest.raises(OutsideScope):
        r.invoice(acme, tenant="beta", month=date(DAY.year, DAY.month, 1))
