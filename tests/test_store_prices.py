"""Prices as data and `reprice`: history re-costed with the current Pricer, rollups following."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from spendscope.pricing import PriceFile, Pricer
from spendscope.store import Store, report
from spendscope.store import reports as r
from spendscope.store.prices import load_model_prices, price_rows, reprice
from spendscope.usage import TokenUsage
from tests.store_fixtures import llm_record

D = Decimal
T0 = datetime(2026, 11, 3, 9, 15, tzinfo=UTC)
SINCE, UNTIL = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
GROUP = "tenant, user_id, endpoint, model, service"


def price_file(tmp_path: Path, text: str) -> PriceFile:
    path = tmp_path / "prices.toml"
    path.write_text(text)
    return PriceFile.load(path)


def mini_cost(pricer: Pricer, at: datetime, input_tokens: int, output_tokens: int) -> str:
    price = pricer.price(
        "gpt-4o-mini-2024-07-18", TokenUsage(input_tokens, output_tokens), at=at, service_tier="default"
    )
    assert price is not None
    return str(price.cost_usd)


def assert_rollups_match_llm_usage(store: Store) -> None:
    raw = store.query(
        f"SELECT {GROUP}, count(), sum(input_tokens), sum(ifNull(cost_usd, 0)), countIf(cost_usd IS NOT NULL), "
        f"countIf(status = 'ok' AND usage_state != 'unavailable' AND cost_usd IS NULL) "
        f"FROM llm_usage FINAL GROUP BY {GROUP} ORDER BY {GROUP}"
    ).rows
    summed = "sum(calls), sum(input_tokens), sum(cost_usd), sum(priced_calls), sum(unpriced_calls)"
    for table in ("llm_usage_hourly", "llm_usage_daily", "llm_usage_timeline"):
        assert (
            store.query(f"SELECT {GROUP}, {summed} FROM {table} GROUP BY {GROUP} ORDER BY {GROUP}").rows
            == raw
        ), table
    for dimension, column in (("user", "user_id"), ("model", "model"), ("tenant", "tenant")):
        by_value = store.query(
            f"SELECT {column}, count(), sum(input_tokens), sum(ifNull(cost_usd, 0)), countIf(cost_usd IS NOT NULL), "
            f"countIf(status = 'ok' AND usage_state != 'unavailable' AND cost_usd IS NULL) "
            f"FROM llm_usage FINAL GROUP BY {column} ORDER BY {column}"
        ).rows
        for grain in ("hour", "day", "week", "month"):
            assert (
                store.query(
                    f"SELECT key, {summed} FROM llm_usage_by_dimension "
                    f"WHERE dimension = '{dimension}' AND grain = '{grain}' GROUP BY key ORDER BY key"
                ).rows
                == by_value
            ), (dimension, grain)


@pytest.fixture
def history(store: Store) -> Store:
    pricer = Pricer()
    records = [
        *(llm_record(T0 + timedelta(hours=i), model="acme-llm-1", input_tokens=1000, output_tokens=500, cost=None) for i in range(3)),
        *(
            llm_record(T0 + timedelta(days=i), input_tokens=2000, output_tokens=300, cost=mini_cost(pricer, T0 + timedelta(days=i), 2000, 300))
            for i in range(2)
        ),
    ]  # fmt: skip
    store.insert_spans(records, dedup_token="history")
    return store


def test_reprice_prices_a_model_that_had_no_price_and_the_rollups_follow(
    history: Store, tmp_path: Path
) -> None:
    before = {row[0]: row for row in report(history, by="model", since=SINCE, until=UNTIL).rows}
    assert before["acme-llm-1"][6:8] == [D(0), 3]  # cost_usd 0 with 3 unpriced calls: unknown
    assert len(r.unpriced_calls(history, since=SINCE, until=UNTIL).rows) == 3

    pricer = Pricer(
        price_file(tmp_path, '[[models]]\nmatch = "acme-llm-*"\ninput_mtok = 2\noutput_mtok = 8\n')
    )
    result = reprice(history, pricer, since=SINCE, until=UNTIL)
    assert (result.examined, result.changed, result.newly_priced, result.still_unpriced, result.kept) == (
        5,
        3,
        3,
        0,
        0,
    )

    # 1000 * $2/M + 500 * $8/M = $0.006 a call
    costs = history.query(
        "SELECT model, cost_usd, price_version FROM llm_usage FINAL WHERE model = 'acme-llm-1'"
    ).rows
    assert [c[1] for c in costs] == [D("0.006")] * 3
    assert all(c[2] == pricer.price_file.version for c in costs)  # type: ignore[union-attr]
    after = {row[0]: row for row in report(history, by="model", since=SINCE, until=UNTIL).rows}
    assert after["acme-llm-1"][1] == 3 and after["acme-llm-1"][6:8] == [D("0.018"), 0]
    assert after["gpt-4o-mini-2024-07-18"] == before["gpt-4o-mini-2024-07-18"]
    assert r.unpriced_calls(history, since=SINCE, until=UNTIL).rows == []
    assert_rollups_match_llm_usage(history)

    again = reprice(history, pricer, since=SINCE, until=UNTIL)
    assert (again.examined, again.changed) == (5, 0)
    assert_rollups_match_llm_usage(history)
    # merges (what ClickHouse does in the background) change nothing either
    for table in (
        "llm_usage",
        "llm_usage_hourly",
        "llm_usage_daily",
        "llm_usage_by_dimension",
        "llm_usage_timeline",
    ):
        history.command(f"OPTIMIZE TABLE {table} FINAL")
    assert history.query("SELECT count() FROM llm_usage").rows == [[5]]
    assert_rollups_match_llm_usage(history)


def test_reprice_corrects_a_wrong_price_from_its_date(history: Store, tmp_path: Path) -> None:
    file = '[[discounts]]\nmatch = "gpt-4o-mini*"\npercent = 50\neffective_from = 2026-11-04\n'
    pricer = Pricer(price_file(tmp_path, file))
    costs_before = history.query(
        "SELECT cost_usd FROM llm_usage FINAL WHERE model != 'acme-llm-1' ORDER BY time"
    ).rows
    result = reprice(history, pricer, since=SINCE, until=UNTIL)
    assert (result.changed, result.still_unpriced) == (1, 3)  # only the call from Nov 4 on
    costs_after = history.query(
        "SELECT cost_usd FROM llm_usage FINAL WHERE model != 'acme-llm-1' ORDER BY time"
    ).rows
    assert costs_after == [costs_before[0], [costs_before[1][0] / 2]]
    assert_rollups_match_llm_usage(history)
    from_nov_4 = reprice(history, Pricer(), since=datetime(2026, 11, 4, tzinfo=UTC), until=UNTIL)
    assert (from_nov_4.examined, from_nov_4.changed) == (1, 1)  # back to the catalogue price
    assert history.query("SELECT sum(cost_usd) FROM llm_usage FINAL").rows == [
        [sum(c[0] for c in costs_before)]
    ]
    assert_rollups_match_llm_usage(history)


def test_model_prices_hold_the_price_history_of_file_and_catalogue(store: Store, tmp_path: Path) -> None:
    pricer = Pricer(
        price_file(
            tmp_path,
            '[[models]]\nmatch = "acme-llm-1"\neffective_from = 2026-01-01\ninput_mtok = 1\noutput_mtok = 4\n'
            '[[models]]\nmatch = "acme-llm-1"\neffective_from = 2026-06-01\ninput_mtok = 2\noutput_mtok = 4\n',
        )
    )
    rows = price_rows(pricer, "acme-llm-1")
    assert [(row.effective_from, row.prices[0], row.prices[3]) for row in rows] == [
        (date(2023, 1, 1), None, None),  # no price before the file's first rule: unknown
        (date(2026, 1, 1), D(1), D(4)),
        (date(2026, 6, 1), D(2), D(4)),
    ]
    store.insert_spans([llm_record(T0, model="acme-llm-1", tier="flex")], dedup_token="x")
    load_model_prices(store, pricer, models=["gpt-4o-mini"])
    loaded = store.query(
        "SELECT model, service_tier, effective_from, input_mtok, cached_input_mtok, output_mtok "
        "FROM model_prices_current ORDER BY model, service_tier, effective_from"
    ).rows
    assert [row[:4] for row in loaded if row[0] == "acme-llm-1"] == [
        ["acme-llm-1", "", date(2023, 1, 1), None],
        ["acme-llm-1", "", date(2026, 1, 1), D(1)],
        ["acme-llm-1", "", date(2026, 6, 1), D(2)],
        ["acme-llm-1", "flex", date(2023, 1, 1), None],
        ["acme-llm-1", "flex", date(2026, 1, 1), D(1)],
        ["acme-llm-1", "flex", date(2026, 6, 1), D(2)],
    ]
    mini = [row for row in loaded if row[0] == "gpt-4o-mini"]
    assert mini[0][2:] == [date(2023, 1, 1), D("0.15"), D("0.075"), D("0.6")]
    # a new load replaces the whole generation: a rule removed from the file disappears
    load_model_prices(store, Pricer(), models=[])
    assert store.query("SELECT model, service_tier, input_mtok FROM model_prices_current").rows == [
        ["acme-llm-1", "flex", None]
    ]
