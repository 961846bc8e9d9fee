"""The store prices every call itself: its cost equals the Pricer's (genai-prices, the price file) to the
last of 18 decimals; names it has no row for are resolved by the rollup builder and their calls priced
again; `reprice` re-costs history; client costs are kept beside, and used only when trusted."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import pytest

from spendscope import names as n
from spendscope.pricing import PriceFile, Pricer
from spendscope.store import SpanRecord, Store, report
from spendscope.store import reports as r
from spendscope.store.prices import load_prices, price_rows, reprice
from spendscope.store.rollups import build_rollups
from spendscope.store.setup import apply_settings
from spendscope.usage import TokenUsage, chat_usage, responses_usage
from tests.conftest import CONFORMANCE_DIR
from tests.store_fixtures import llm_record

D = Decimal
T0 = datetime(2026, 11, 3, 9, 15, tzinfo=UTC)
SINCE, UNTIL = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
M = 1_000_000
_18 = Decimal("1e-18")


def price_file(tmp_path: Path, text: str) -> PriceFile:
    path = tmp_path / "prices.toml"
    path.write_text(text)
    return PriceFile.load(path)


def call(
    at: datetime,
    model: str,
    usage: TokenUsage,
    *,
    requested: str | None = None,
    tier: str = "default",
    batch: bool = False,
    client_cost: str | None = None,
) -> SpanRecord:
    """A span carrying `usage` as the instrumentation writes it (spendscope/instrumentation/telemetry.py)."""
    record = llm_record(at, model=model, tier=tier, cost=None)
    attrs = {k: v for k, v in record.span_attributes.items() if not k.startswith(n.USAGE_PREFIX)}
    attrs[n.REQUEST_MODEL] = requested or model
    if usage.audio_seconds is not None:
        attrs[n.USAGE_AUDIO_SECONDS] = repr(usage.audio_seconds)
    else:
        attrs |= {
            n.USAGE_INPUT_TOKENS: str(usage.input),
            n.USAGE_OUTPUT_TOKENS: str(usage.output),
            n.USAGE_CACHE_READ_INPUT_TOKENS: str(usage.cached_input),
            n.USAGE_REASONING_OUTPUT_TOKENS: str(usage.reasoning),
            n.USAGE_CACHE_CREATION_INPUT_TOKENS: str(usage.cache_write_input),
            n.USAGE_AUDIO_INPUT_TOKENS: str(usage.input_audio),
            n.USAGE_AUDIO_CACHE_READ_INPUT_TOKENS: str(usage.cached_input_audio),
            n.USAGE_AUDIO_OUTPUT_TOKENS: str(usage.output_audio),
        }
    if batch:
        attrs[n.BATCH] = "true"
    if client_cost is not None:
        attrs[n.COST_USD] = client_cost
    return replace(record, span_attributes=attrs)


def _manifest_cases() -> list[tuple[str, str, str, TokenUsage]]:
    manifest = CONFORMANCE_DIR / "manifest.json"
    if not manifest.exists():
        return []
    cases = []
    for entry in json.loads(manifest.read_text())["files"]:
        raw = entry.get("usage_raw")
        if not raw or not entry.get("model_responded"):
            continue
        usage = (responses_usage if "input_tokens" in raw else chat_usage)(raw)
        assert usage is not None
        cases.append((entry["file"], entry["model_responded"], entry["model_requested"], usage))
    return cases


# Synthetic usages: every token kind, tiers, the Batch API, long context, audio seconds, a price change.
SYNTHETIC: list[tuple[str, TokenUsage, dict[str, Any]]] = [
    ("gpt-4o-mini-2024-07-18", TokenUsage(input=19, output=10), {}),
    ("gpt-4o-mini-2024-07-18", TokenUsage(input=2000, cached_input=1024, output=300), {"tier": "priority"}),
    ("gpt-4o-mini", TokenUsage(input=M, output=M), {"batch": True}),
    ("gpt-4o-mini", TokenUsage(input=M, output=M), {"batch": True, "at": datetime(2026, 1, 1, tzinfo=UTC)}),
    ("gpt-5", TokenUsage(input=M, output=M, reasoning=400_000), {"tier": "flex"}),
    ("gpt-5", TokenUsage(input=123_457, cached_input=100_000, output=98_765, reasoning=98_000), {"tier": "scale"}),
    ("gpt-5.4", TokenUsage(input=300_000, cached_input=12_345, output=1000), {}),  # above the 272K tier
    ("gpt-5.4", TokenUsage(input=272_000, output=1000), {"tier": "flex"}),  # at it: the base price
    ("gpt-5.4", TokenUsage(input=272_001, output=7), {"batch": True}),
    ("gpt-5.6-sol", TokenUsage(input=1220, cache_write_input=1217, output=100, reasoning=54), {}),
    ("gpt-5.6-sol", TokenUsage(input=4020, cached_input=4012, output=5), {"tier": "priority"}),
    ("gpt-realtime", TokenUsage(input=132, cached_input=64, input_audio=13, cached_input_audio=7, output=121, output_audio=91), {}),
    ("gpt-4o-audio-preview-2024-12-17", TokenUsage(input=64, input_audio=44, output=9, output_audio=3), {}),
    ("gpt-4o-transcribe", TokenUsage(input=14, input_audio=14, output=45), {}),
    ("whisper-1", TokenUsage(audio_seconds=6.37), {}),
    ("whisper-1", TokenUsage(audio_seconds=3600.0), {"batch": True}),
    ("o3", TokenUsage(input=M, output=M), {"at": datetime(2025, 5, 1, tzinfo=UTC)}),
    ("o3", TokenUsage(input=M, output=M), {"at": datetime(2025, 7, 1, tzinfo=UTC)}),
    ("text-embedding-3-small", TokenUsage(input=7919), {}),
]  # fmt: skip


def test_the_store_prices_every_call_as_the_pricer_does_to_18_decimals(store: Store) -> None:
    """Every usage recorded from OpenAI (the conformance manifest) and the synthetic ones: the cost the
    store computes in SQL equals the Pricer's (genai-prices' own calculation), to the last decimal."""
    pricer = Pricer()
    cases = [(model, requested, usage, {}) for _, model, requested, usage in _manifest_cases()] + [
        (model, None, usage, kwargs) for model, usage, kwargs in SYNTHETIC
    ]
    assert len(cases) > len(SYNTHETIC) + 20 or not CONFORMANCE_DIR.exists()
    records, expected = [], []
    for i, (model, requested, usage, kwargs) in enumerate(cases):
        at = kwargs.get("at", T0) + timedelta(seconds=i)
        tier, batch = kwargs.get("tier", "default"), kwargs.get("batch", False)
        record = call(at, model, usage, requested=requested, tier=tier, batch=batch)
        price = pricer.price(model, usage, at=at, service_tier=tier, batch=batch, fallback=requested)
        records.append(record)
        expected.append(
            (record.span_id, None if price is None else price.cost_usd.quantize(_18, ROUND_HALF_EVEN),
             None if price is None else price.model)
        )  # fmt: skip
    store.insert_spans(records)
    build_rollups(store, lag=timedelta(0))  # gives dated names seen for the first time their rows
    stored = {
        str(span): (cost, str(priced) or None)
        for span, cost, priced in store.query(
            "SELECT span_id, cost_usd, priced_model FROM llm_usage FINAL"
        ).rows
    }
    assert {span: stored[span] for span, _, _ in expected} == {span: (c, m) for span, c, m in expected}
    assert sum(1 for _, c, _ in expected if c is not None) >= len(SYNTHETIC)
    # OpenAI answers davinci-002 as davinci:2023-07-21-v2, which has no price: priced as requested
    if CONFORMANCE_DIR.exists():
        [[priced, cost]] = store.query(
            "SELECT priced_model, cost_usd FROM llm_usage FINAL WHERE response_model = 'davinci:2023-07-21-v2'"
        ).rows
        assert (priced, cost) == ("davinci-002", D(8 + 16) * 2 / M)


def test_a_price_file_model_seen_for_the_first_time_is_priced_by_the_builder(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fine-tuned model the price file prices by a glob has no row until a call brings its name:
    its calls are unpriced until the rollup builder resolves the name, then priced, earlier ones too."""
    path = tmp_path / "prices.toml"
    path.write_text(
        '[[models]]\nmatch = "ft:gpt-4o-mini-2024-07-18:acme:*"\ninput_mtok = 0.30\noutput_mtok = 1.20\n'
    )
    monkeypatch.setenv("SPENDSCOPE_PRICE_FILE", str(path))
    store.migrate()  # the price file's data: a new generation
    ft = "ft:gpt-4o-mini-2024-07-18:acme::abc123"
    store.insert_spans(
        [
            llm_record(T0 + timedelta(hours=i), model=ft, input_tokens=1000, output_tokens=500, cost=None)
            for i in range(3)
        ]
    )
    before = {row[0]: row for row in report(store, by="model", since=SINCE, until=UNTIL).rows}
    assert (before[ft][6], before[ft][8]) == (None, 3)  # cost_usd, unpriced_calls: unknown, not 0
    assert store.query("SELECT model FROM llm_models_seen").rows == [[ft]]
    result = build_rollups(store, lag=timedelta(0))
    assert result.resolved is not None and (
        result.resolved.names,
        result.resolved.priced,
        result.resolved.calls,
    ) == (1, 1, 3)
    after = {row[0]: row for row in report(store, by="model", since=SINCE, until=UNTIL).rows}
    assert (after[ft][6], after[ft][8]) == (D("0.0027"), 0)  # 3 x (1000 x $0.30 + 500 x $1.20) / 1M
    assert store.query(
        f"SELECT DISTINCT priced_model, price_version FROM llm_usage FINAL WHERE model = '{ft}'"
    ).rows == [[ft, PriceFile.load(path).version]]
    later = llm_record(T0 + timedelta(days=1), model=ft, input_tokens=1000, output_tokens=500, cost=None)
    store.insert_spans([later])  # priced on arrival now
    assert store.query(f"SELECT cost_usd FROM llm_usage FINAL WHERE span_id = '{later.span_id}'").rows == [
        [D("0.0009")]
    ]


def test_a_model_without_a_price_is_unknown_even_with_a_client_cost_unless_trusted(store: Store) -> None:
    def insert(tag: str) -> None:
        store.insert_spans(
            [
                llm_record(T0, model="acme-llm-1", cost="0.25", user=tag),
                llm_record(
                    T0, model="gpt-4o-mini-2024-07-18", cost="9.99", user=tag
                ),  # the store's: $0.000027
            ]
        )

    insert("before")
    apply_settings(store, trust_client_costs=True)
    insert("trusted")
    apply_settings(store, trust_client_costs=False)
    insert("after")
    rows = store.query(
        "SELECT user_id, model, cost_usd, cost_source, client_cost_usd, cost_mismatch FROM llm_usage FINAL "
        "ORDER BY user_id, model"
    ).rows
    assert rows == [
        ["after", "acme-llm-1", None, "", D("0.25"), 0],
        ["after", "gpt-4o-mini-2024-07-18", D("0.000027"), "store", D("9.99"), 1],
        ["before", "acme-llm-1", None, "", D("0.25"), 0],
        ["before", "gpt-4o-mini-2024-07-18", D("0.000027"), "store", D("9.99"), 1],
        ["trusted", "acme-llm-1", D("0.25"), "client", D("0.25"), 0],
        ["trusted", "gpt-4o-mini-2024-07-18", D("0.000027"), "store", D("9.99"), 1],  # never preferred
    ]
    by_user = {row[0]: row for row in report(store, by="user", since=SINCE, until=UNTIL).rows}
    # cost_usd and unpriced_calls
    assert (by_user["trusted"][6], by_user["trusted"][8]) == (D("0.250027"), 0)
    assert (by_user["before"][6], by_user["before"][8]) == (D("0.000027"), 1)
    assert by_user["before"][-1] == 1  # the mismatching client cost is counted


def test_a_double_from_an_older_client_is_no_mismatch(store: Store) -> None:
    exact = Pricer().price("gpt-4o-mini-2024-07-18", TokenUsage(1149, 353, cached_input=1024), at=T0)
    assert exact is not None
    record = llm_record(
        T0, input_tokens=1149, output_tokens=353, cached=1024, cost=repr(float(exact.cost_usd))
    )
    store.insert_spans([record])
    assert store.query("SELECT cost_usd, cost_mismatch FROM llm_usage").rows == [[exact.cost_usd, 0]]


@pytest.fixture
def history(store: Store) -> Store:
    records = [
        *(llm_record(T0 + timedelta(hours=i), model="acme-llm-1", input_tokens=1000, output_tokens=500, cost=None) for i in range(3)),
        *(llm_record(T0 + timedelta(days=i), input_tokens=2000, output_tokens=300, cost=None) for i in range(2)),
    ]  # fmt: skip
    store.insert_spans(records)
    return store


def assert_usage_is_llm_usage(store: Store) -> None:
    for by in r.ROLLUP_DIMENSIONS:
        assert r.run(store, r.usage_query(by, SINCE, UNTIL)) == r.run(
            store, r.usage_query(by, SINCE, UNTIL, raw=True)
        )


def test_reprice_prices_a_model_that_had_no_price_and_the_rollups_follow(
    history: Store, tmp_path: Path
) -> None:
    build_rollups(history, lag=timedelta(0))
    before = {row[0]: row for row in report(history, by="model", since=SINCE, until=UNTIL).rows}
    assert (before["acme-llm-1"][6], before["acme-llm-1"][8]) == (None, 3)  # 3 unpriced calls: unknown
    assert len(r.unpriced_calls(history, since=SINCE, until=UNTIL).rows) == 3

    pricer = Pricer(
        price_file(tmp_path, '[[models]]\nmatch = "acme-llm-*"\ninput_mtok = 2\noutput_mtok = 8\n')
    )
    result = reprice(history, pricer, since=SINCE, until=UNTIL)
    assert (result.examined, result.changed, result.newly_priced, result.still_unpriced, result.unpriced_now) == (
        5, 3, 3, 0, 0
    )  # fmt: skip
    # 1000 * $2/M + 500 * $8/M = $0.006 a call
    costs = history.query(
        "SELECT model, cost_usd, price_version FROM llm_usage FINAL WHERE model = 'acme-llm-1'"
    ).rows
    assert [c[1] for c in costs] == [D("0.006")] * 3
    assert all(c[2] == pricer.price_file.version for c in costs)  # type: ignore[union-attr]
    after = {row[0]: row for row in report(history, by="model", since=SINCE, until=UNTIL).rows}
    assert after["acme-llm-1"][1] == 3 and (after["acme-llm-1"][6], after["acme-llm-1"][8]) == (D("0.018"), 0)
    assert after["gpt-4o-mini-2024-07-18"] == before["gpt-4o-mini-2024-07-18"]
    assert r.unpriced_calls(history, since=SINCE, until=UNTIL).rows == []
    assert_usage_is_llm_usage(history)  # the reprice made its buckets stale
    build_rollups(history, lag=timedelta(0))
    assert_usage_is_llm_usage(history)

    again = reprice(history, pricer, since=SINCE, until=UNTIL)
    assert (again.examined, again.changed) == (5, 0)
    # merges (what ClickHouse does in the background) change nothing
    history.command("OPTIMIZE TABLE llm_usage FINAL")
    assert history.query("SELECT count() FROM llm_usage").rows == [[5]]
    build_rollups(history, lag=timedelta(0))
    assert_usage_is_llm_usage(history)


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
    assert_usage_is_llm_usage(history)
    from_nov_4 = reprice(history, Pricer(), since=datetime(2026, 11, 4, tzinfo=UTC), until=UNTIL)
    assert (from_nov_4.examined, from_nov_4.changed) == (1, 1)  # back to the catalogue price
    assert history.query("SELECT sum(cost_usd) FROM llm_usage FINAL").rows == [
        [sum(c[0] for c in costs_before)]
    ]
    assert_usage_is_llm_usage(history)


def test_model_prices_hold_the_price_history_of_file_and_catalogue(store: Store, tmp_path: Path) -> None:
    pricer = Pricer(
        price_file(
            tmp_path,
            '[[models]]\nmatch = "acme-llm-1"\neffective_from = 2026-01-01\ninput_mtok = 1\noutput_mtok = 4\n'
            '[[models]]\nmatch = "acme-llm-1"\neffective_from = 2026-06-01\ninput_mtok = 2\noutput_mtok = 4\n',
        )
    )
    rows = price_rows(pricer, "acme-llm-1")
    per_million = [
        (
            row.effective_from,
            row.segments and (row.segments[0].per_token[0] * M, row.segments[0].per_token[5] * M),
        )
        for row in rows
    ]
    assert per_million == [
        (date(1970, 1, 1), None),  # no price before the file's first rule: unknown
        (date(2026, 1, 1), (D(1), D(4))),
        (date(2026, 6, 1), (D(2), D(4))),
    ]
    assert load_prices(store, pricer) > 1000  # the catalogue, every tier, and this file
    assert load_prices(store, pricer) == 0  # the same data: nothing to load
    loaded = store.query(
        "SELECT model, service_tier, batch, effective_from, priced, per_input, per_cached_input, per_output "
        "FROM model_prices_current WHERE model IN ('acme-llm-1', 'gpt-4o-mini') ORDER BY ALL"
    ).rows
    assert [
        row[1:5] for row in loaded if row[0] == "acme-llm-1" and row[1] in ("", "flex") and not row[2]
    ] == [
        ["", False, date(1970, 1, 1), False],
        ["", False, date(2026, 1, 1), True],
        ["", False, date(2026, 6, 1), True],
        ["flex", False, date(1970, 1, 1), False],
        ["flex", False, date(2026, 1, 1), True],
        ["flex", False, date(2026, 6, 1), True],
    ]
    mini = [row for row in loaded if row[0] == "gpt-4o-mini" and row[1] == "default"]
    # per token: $0.15 per million input, a cached token $0.075 less, $0.60 output
    assert mini[0][3:] == [date(1970, 1, 1), True, [D("0.00000015")], [D("-0.000000075")], [D("0.0000006")]]
    # a new load replaces the whole generation: a rule removed from the file disappears
    load_prices(store, Pricer())
    assert store.query(
        "SELECT DISTINCT priced FROM model_prices_current WHERE model = 'acme-llm-1'"
    ).rows == [[False]]
