"""The overview's admin sections on a real store: the latest reconciliation (coverage, residual by
cause) and the budgets at or over their warning; a tenant token's overview has neither."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest

from spendscope.demo.fake_openai.admin import FakeAdminAPI
from spendscope.store import Store
from spendscope.store import tokens as t
from tests.reconcile_helpers import (
    MINI,
    MINI_CACHED,
    MINI_IN,
    MINI_OUT,
    NOW,
    bill,
    call,
    causes,
    reconcile,
    track,
    use,
)
from tests.store_fixtures import llm_record, priced_at, serve_reports
from tests.test_portal_access import get


@pytest.fixture
def admin() -> Iterator[FakeAdminAPI]:
    with FakeAdminAPI(now=NOW) as api:
        yield api


def test_the_overview_shows_the_latest_reconciliation_and_budgets_over_warning(
    store: Store, admin: FakeAdminAPI, tmp_path: Path
) -> None:
    # a tracked call, and an untracked service OpenAI billed: coverage below 100%, residual `untracked`
    track(store, call(input_tokens=100, output_tokens=20))
    use(admin, requests=1, input_tokens=100, output_tokens=20)
    bill(admin, MINI, input_tokens=100, output_tokens=20, prices=(MINI_IN, MINI_CACHED, MINI_OUT))
    admin.add_key("proj_a", "key_b", "sk-proj-****...****7a1e")
    use(admin, api_key_id="key_b", requests=5, input_tokens=5000, output_tokens=1000)
    bill(admin, MINI, input_tokens=5000, output_tokens=1000, prices=(MINI_IN, MINI_CACHED, MINI_OUT))
    result = reconcile(store, admin)
    assert not result.passed
    # a user over 80% of a $1 daily budget, one under it
    now = datetime.now(UTC) - timedelta(minutes=5)
    store.insert_spans(
        [
            llm_record(now, user="big-spender", tenant="acme", **priced_at("0.9")),
            llm_record(now, user="thrifty", tenant="acme", **priced_at("0.1")),
        ]
    )
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text("warning_percent: 80\nper_user:\n  daily_usd: 1\n  monthly_usd: 100\n")
    _, acme = t.create(store, kind=t.TENANT, tenant="acme")
    _, root = t.create(store, kind=t.ADMIN)
    with serve_reports(store, budgets=budgets) as url:
        page = get(url + "/", root)
        assert page.status == 200
        html = page.text
        reconciliation = html[
            html.index('id="reconciliation"') : html.index("</section>", html.index('id="reconciliation"'))
        ]
        coverage = result.totals.coverage_ratio
        assert f"{coverage * 100:.1f}%" in reconciliation and "below the minimum" in reconciliation
        tokens, usd = causes(result)["untracked"]
        assert f'<td>untracked</td><td class="n">{tokens:,}</td>' in reconciliation
        assert f"${D(usd).normalize():f}" in reconciliation
        budget_rows = html[html.index('id="budgets"') :]
        assert "big-spender" in budget_rows and "thrifty" not in budget_rows
        assert "$0.90" in budget_rows and "$1.00" in budget_rows
        tenant_page = get(url + "/", acme)
        assert tenant_page.status == 200
        assert 'id="reconciliation"' not in tenant_page.text and 'id="budgets"' not in tenant_page.text
        assert 'id="stats-month"' in tenant_page.text


def test_money_is_never_shown_as_zero_when_unknown(store: Store) -> None:
    at = datetime.now(UTC) - timedelta(minutes=5)
    store.insert_spans([llm_record(at, model="house-model-v1", cost=None, user="u-1", tenant="acme")])
    with serve_reports(store) as url:
        html = get(url + "/users").text
    row = html[html.index('data-user="u-1"') :]
    cost = row[row.index('data-field="cost_usd"') : row.index("</td>", row.index('data-field="cost_usd"'))]
    assert 'data-usd=""' in cost and ">unknown<" in cost and "$0" not in cost


def test_a_bad_parameter_is_the_page_with_its_error(store: Store) -> None:
    with serve_reports(store) as url:
        for path in ("/users?sort=nonsense", "/users?page=0", "/?since=yesterday-ish", "/billing?month=13"):
            answer = get(url + path)
            assert answer.status == 400 and 'id="error"' in answer.text, path


def test_the_collectors_overview_lists_the_budgets_of_its_budgets_file(
    store: Store, store_dsn: str, tmp_path: Path
) -> None:
    """`spendscope collector --budgets FILE` hands FILE to the portal (`Collector(budgets=...)`)."""
    from spendscope.collector import Collector, CollectorConfig

    now = datetime.now(UTC) - timedelta(minutes=5)
    store.insert_spans([llm_record(now, user="big-spender", tenant="acme", **priced_at("0.9"))])
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text("warning_percent: 80\nper_user:\n  daily_usd: 1\n  monthly_usd: 100\n")
    config = CollectorConfig.resolve(listen="127.0.0.1:0", store=store_dsn, spool=str(tmp_path / "spool"))
    with Collector(config, store=store, budgets=budgets) as collector:
        listed = get(collector.url + "/").text
    with Collector(config, store=store) as collector:
        unlisted = get(collector.url + "/").text
    assert "big-spender" in listed[listed.index('id="budgets"') :]
    assert 'id="budgets"' not in unlisted or "big-spender" not in unlisted[unlisted.index('id="budgets"') :]


def test_realtime_minutes_recorded_are_never_shown_as_nothing() -> None:
    from spendscope.portal._format import quantity_value

    assert quantity_value("realtime_seconds", 0.0) == "0.00"
    assert quantity_value("realtime_seconds", 0.2) == "< 0.01"  # a session of milliseconds
    assert quantity_value("realtime_seconds", 0.6) == "0.01"
    assert quantity_value("realtime_seconds", 5_400.0) == "90.00"
    assert quantity_value("questions", 15.0) == "15"
