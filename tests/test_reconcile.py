"""The reconciler end to end: tracked calls in the store, OpenAI's side from the fake admin API on 127.0.0.1,
the real openai SDK in between. Each scenario with its exact expected outcome."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest

from spendscope import names as n
from spendscope.demo.fake_openai.admin import FakeAdminAPI
from spendscope.pricing import PriceFile, Pricer
from spendscope.reconciler._model import Tokens
from spendscope.store import Store
from spendscope.store.prices import load_prices
from tests.reconcile_helpers import (
    DAY,
    EMBED,
    EMBED_IN,
    GPT5_MINI,
    GPT5_MINI_CACHED,
    GPT5_MINI_IN,
    GPT5_MINI_OUT,
    MINI,
    MINI_CACHED,
    MINI_IN,
    MINI_OUT,
    NOW,
    bill,
    call,
    cause_calls,
    reconcile,
    summary,
    track,
    use,
)

MINI_PRICES = (MINI_IN, MINI_CACHED, MINI_OUT)


@pytest.fixture
def admin() -> Iterator[FakeAdminAPI]:
    with FakeAdminAPI(now=NOW) as api:
        api.add_project("proj_a")
        api.add_key("proj_a", "key_a", "sk-proj-****...****9f2c")
        yield api


def fully_tracked(store: Store, admin: FakeAdminAPI) -> None:
    """Two chat calls (one with cached input) and an embedding, tracked and reported alike."""
    track(
        store,
        call(input_tokens=100, output_tokens=20),
        call(input_tokens=200, output_tokens=40, cached=100),
        call(model=EMBED, input_tokens=1000, output_tokens=0, operation=n.OP_EMBEDDINGS),
    )
    use(admin, requests=2, input_tokens=300, cached_tokens=100, output_tokens=60)
    use(admin, source="embeddings", model=EMBED, requests=1, input_tokens=1000)
    bill(admin, MINI, input_tokens=300, cached=100, output_tokens=60, prices=MINI_PRICES)
    bill(admin, EMBED, input_tokens=1000, prices=(EMBED_IN, EMBED_IN, EMBED_IN))


TRACKED = D("0.0000935")  # 0.000027 + 0.0000465 + 0.00002


def test_fully_tracked_is_covered_100_percent_with_no_residual(store: Store, admin: FakeAdminAPI) -> None:
    fully_tracked(store, admin)
    result = reconcile(store, admin)
    assert summary(result) == {
        "tracked_tokens": 1360,
        "reported_tokens": 1360,
        "tracked_usd": TRACKED,
        "reported_usd": TRACKED,
        "residual_usd": D(0),
        "coverage": 1.0,
        "causes": {},
    }
    assert result.pieces == []
    assert result.passed
    assert result.totals.tracked_requests == result.totals.reported_requests == 3
    # dollars per line item: SpendScope's cost split like OpenAI's bill, equal line by line
    assert {(line.line_item, line.tracked_usd, line.reported_usd) for line in result.lines} == {
        ("gpt-4o-mini, input", D("0.00003"), D("0.00003")),
        ("gpt-4o-mini, cached input", D("0.0000075"), D("0.0000075")),
        ("gpt-4o-mini, output", D("0.000036"), D("0.000036")),
        ("text-embedding-3-small, input", D("0.00002"), D("0.00002")),
    }
    run = store.query("SELECT status, coverage_ratio, residual_usd, passed FROM reconciliation_runs").rows
    assert run == [["complete", 1.0, D(0), True]]


def test_an_uninstrumented_service_on_another_key_is_untracked(store: Store, admin: FakeAdminAPI) -> None:
    fully_tracked(store, admin)
    admin.add_key("proj_a", "key_b", "sk-proj-****...****7a1e")
    use(admin, api_key_id="key_b", requests=5, input_tokens=5000, output_tokens=1000)
    extra = bill(admin, MINI, input_tokens=5000, output_tokens=1000, prices=MINI_PRICES)
    assert extra == D("0.00135")

    result = reconcile(store, admin)
    assert summary(result) == {
        "tracked_tokens": 1360,
        "reported_tokens": 7360,
        "tracked_usd": TRACKED,
        "reported_usd": TRACKED + extra,
        "residual_usd": extra,
        "coverage": round(float(TRACKED / (TRACKED + extra)), 6),  # 6.48%
        "causes": {"untracked": (6000, extra)},
    }
    [piece] = result.pieces
    assert (piece.key.api_key_id, piece.key.model, piece.detail) == (
        "key_b",
        "gpt-4o-mini",
        "no spans in the window for api key key_b",
    )
    assert (piece.tokens.requests, piece.tokens.input, piece.tokens.output) == (5, 5000, 1000)
    assert cause_calls(result) == {"untracked": 5}
    assert not result.passed


def test_an_interrupted_stream_is_usage_unavailable(store: Store, admin: FakeAdminAPI) -> None:
    track(
        store,
        call(input_tokens=100, output_tokens=20),
        call(input_tokens=100, output_tokens=20),
        call(state=n.USAGE_STATE_UNAVAILABLE),  # the stream was closed before its usage chunk
    )
    use(admin, requests=3, input_tokens=500, output_tokens=120)
    reported = bill(admin, MINI, input_tokens=500, output_tokens=120, prices=MINI_PRICES)

    result = reconcile(store, admin)
    unavailable = 300 * MINI_IN + 80 * MINI_OUT
    assert unavailable == D("0.000093")
    assert summary(result) == {
        "tracked_tokens": 240,
        "reported_tokens": 620,
        "tracked_usd": D("0.000054"),
        "reported_usd": reported,
        "residual_usd": unavailable,
        "coverage": round(float(D("0.000054") / reported), 6),
        "causes": {"usage_unavailable": (380, unavailable)},
    }
    assert result.pieces[0].detail == "1 call(s) answered without usage"
    assert result.pieces[0].tokens.requests == 0  # the request was counted; its tokens were not
    assert cause_calls(result) == {"usage_unavailable": 1}  # the call they concern


@pytest.mark.parametrize(
    "recorded_tier", ["default", "flex"], ids=["tier-recorded-default", "tier-recorded-flex"]
)
def test_a_flex_call_recorded_as_default_is_tier_mispricing(
    store: Store, admin: FakeAdminAPI, recorded_tier: str
) -> None:
    # The client priced 1000 in / 500 out at the default rate; OpenAI served and billed it as flex. The
    # store prices every call itself at its recorded tier: only a call recorded as default is mispriced.
    track(
        store,
        call(
            model=GPT5_MINI,
            input_tokens=1000,
            output_tokens=500,
            tier=recorded_tier,
            priced_as=("default", False),
        ),
    )
    use(admin, model=GPT5_MINI, service_tier="flex", requests=1, input_tokens=1000, output_tokens=500)
    flex = (GPT5_MINI_IN / 2, GPT5_MINI_IN / 4, GPT5_MINI_OUT / 2)
    reported = bill(admin, GPT5_MINI, input_tokens=1000, output_tokens=500, prices=flex, prefix="flex | ")
    default = 1000 * GPT5_MINI_IN + 500 * GPT5_MINI_OUT
    assert (default, reported) == (D("0.00125"), D("0.000625"))

    result = reconcile(store, admin)
    if recorded_tier == "flex":
        assert summary(result) == {
            "tracked_tokens": 1500,
            "reported_tokens": 1500,
            "tracked_usd": reported,
            "reported_usd": reported,
            "residual_usd": D(0),
            "coverage": 1.0,
            "causes": {},
        }
        return
    assert summary(result) == {
        "tracked_tokens": 1500,
        "reported_tokens": 1500,
        "tracked_usd": default,
        "reported_usd": reported,
        "residual_usd": -D("0.000625"),
        "coverage": 2.0,
        "causes": {"tier_batch_mispricing": (1500, -D("0.000625"))},
    }
    [piece] = result.pieces
    assert (
        piece.detail
        == {
            "default": "tracked as default, OpenAI served it as flex",
            "flex": "recorded as flex but priced at the default rate",
        }[recorded_tier]
    )
    assert cause_calls(result) == {"tier_batch_mispricing": 1}


@pytest.mark.parametrize("untracked_flex", [False, True], ids=["moved-whole", "with-an-untracked-flex-call"])
def test_a_flex_call_recorded_as_default_beside_a_default_call_is_valued_at_its_own_tokens(
    store: Store, admin: FakeAdminAPI, untracked_flex: bool
) -> None:
    """One hour, project, key and model: a default call recorded right (input-heavy) and a flex call
    recorded and priced as default (cached- and output-heavy). The moved call is valued at its own
    tokens at both tiers, so the gap is all tier_batch_mispricing and nothing is unexplained."""
    track(
        store,
        call(model=GPT5_MINI, input_tokens=10_000, output_tokens=100),
        call(model=GPT5_MINI, input_tokens=2000, cached=1500, output_tokens=800),
    )
    default = (GPT5_MINI_IN, GPT5_MINI_CACHED, GPT5_MINI_OUT)
    flex = (GPT5_MINI_IN / 2, GPT5_MINI_CACHED / 2, GPT5_MINI_OUT / 2)
    use(admin, model=GPT5_MINI, requests=1, input_tokens=10_000, output_tokens=100)
    bill(admin, GPT5_MINI, input_tokens=10_000, output_tokens=100, prices=default)
    use(admin, model=GPT5_MINI, service_tier="flex", requests=1, input_tokens=2000, cached_tokens=1500,
        output_tokens=800)  # fmt: skip
    bill(admin, GPT5_MINI, input_tokens=2000, cached=1500, output_tokens=800, prices=flex, prefix="flex | ")
    expected = {"tier_batch_mispricing": (2800, -D("0.00088125"))}  # 0.00088125 (flex) - 0.0017625
    if untracked_flex:  # a flex call with no span: the flex group's deficit is more than the move
        use(admin, model=GPT5_MINI, service_tier="flex", requests=1, input_tokens=1000, output_tokens=50)
        bill(admin, GPT5_MINI, input_tokens=1000, output_tokens=50, prices=flex, prefix="flex | ")
        expected["untracked"] = (1050, D("0.000175"))  # 1000 x 0.125 + 50 x 1 per million

    result = reconcile(store, admin)
    assert summary(result)["causes"] == expected
    assert result.cause_usd()["unexplained"] == 0
    assert sum(result.cause_usd().values()) == result.totals.residual_usd
    assert cause_calls(result) == {"tier_batch_mispricing": 1} | ({"untracked": 1} if untracked_flex else {})
    [moved] = [p for p in result.pieces if p.cause == "tier_batch_mispricing"]
    assert (moved.tokens, moved.detail) == (
        Tokens(requests=1, input=2000, cached_input=1500, output=800),
        "tracked as default, OpenAI served it as flex",
    )


def test_a_batch_job_tracked_as_synchronous_calls_is_batch_mispricing(
    store: Store, admin: FakeAdminAPI
) -> None:
    track(store, *(call(input_tokens=1000, output_tokens=200) for _ in range(2)))
    use(admin, batch=True, requests=2, input_tokens=2000, output_tokens=400)
    reported = bill(
        admin,
        MINI,
        input_tokens=2000,
        output_tokens=400,
        prices=(MINI_IN / 2, 0, MINI_OUT / 2),
        prefix="batch | ",
    )
    assert reported == D("0.00027")

    result = reconcile(store, admin)
    assert summary(result) == {
        "tracked_tokens": 2400,
        "reported_tokens": 2400,
        "tracked_usd": D("0.00054"),
        "reported_usd": reported,
        "residual_usd": -D("0.00027"),
        "coverage": 2.0,
        "causes": {"tier_batch_mispricing": (2400, -D("0.00027"))},
    }
    assert result.pieces[0].detail == "tracked as default, OpenAI served it as default batch"
    assert cause_calls(result) == {"tier_batch_mispricing": 2}


def test_a_batch_job_tracked_as_batch_is_covered(store: Store, admin: FakeAdminAPI) -> None:
    track(store, *(call(input_tokens=1000, output_tokens=200, batch=True) for _ in range(2)))
    use(admin, batch=True, requests=2, input_tokens=2000, output_tokens=400)
    reported = bill(
        admin,
        MINI,
        input_tokens=2000,
        output_tokens=400,
        prices=(MINI_IN / 2, 0, MINI_OUT / 2),
        prefix="batch | ",
    )

    result = reconcile(store, admin)
    assert summary(result)["causes"] == {}
    assert (result.totals.tracked_usd, result.totals.reported_usd, result.totals.coverage_ratio) == (
        reported,
        reported,
        1.0,
    )
    assert {line.line_item for line in result.lines} == {
        "batch | gpt-4o-mini, input",
        "batch | gpt-4o-mini, output",
    }


def test_an_ambiguous_key_is_reported_and_compared_as_one(store: Store, admin: FakeAdminAPI) -> None:
    # two keys of proj_a end in 9f2c: the client's sk-proj-...9f2c could be either
    admin.add_key("proj_a", "key_c", "sk-proj-abc...9f2c", owner_type="service_account")
    track(store, call(), call())
    use(admin, requests=2, input_tokens=200, output_tokens=40)
    use(admin, api_key_id="key_c", requests=1, input_tokens=500, output_tokens=100)
    reported = bill(admin, MINI, input_tokens=700, output_tokens=140, prices=MINI_PRICES)

    result = reconcile(store, admin)
    assert result.ambiguous_keys == ["sk-proj-...9f2c in proj_a -> key_a, key_c"]
    other = 500 * MINI_IN + 100 * MINI_OUT
    assert summary(result) == {
        "tracked_tokens": 240,
        "reported_tokens": 840,
        "tracked_usd": D("0.000054"),
        "reported_usd": reported,
        "residual_usd": other,
        "coverage": round(float(D("0.000054") / reported), 6),
        "causes": {"untracked": (600, other)},
    }
    [piece] = result.pieces
    assert (piece.key.api_key_id, piece.key_mapping, piece.detail) == (
        "key_a|key_c",
        "ambiguous",
        "more requests than spans",
    )
    stored = store.query("SELECT ambiguous_keys FROM reconciliation_runs").rows
    assert stored == [[["sk-proj-...9f2c in proj_a -> key_a, key_c"]]]


def test_a_failed_call_openai_billed(store: Store, admin: FakeAdminAPI) -> None:
    track(store, call(), call(state=n.USAGE_STATE_UNAVAILABLE, error="APITimeoutError"))
    use(admin, requests=2, input_tokens=1100, output_tokens=220)
    bill(admin, MINI, input_tokens=1100, output_tokens=220, prices=MINI_PRICES)
    result = reconcile(store, admin)
    billed = 1000 * MINI_IN + 200 * MINI_OUT
    assert summary(result)["causes"] == {"failed_billed": (1200, billed)}
    assert result.pieces[0].tokens.requests == 1
    assert cause_calls(result) == {"failed_billed": 1}


def test_calls_openai_did_not_count_are_unexplained_calls(store: Store, admin: FakeAdminAPI) -> None:
    track(store, call(), call(), call())
    use(admin, requests=1, input_tokens=100, output_tokens=20)
    bill(admin, MINI, input_tokens=100, output_tokens=20, prices=MINI_PRICES)
    result = reconcile(store, admin)
    [piece] = result.pieces  # its dollars are the whole of the day's residual
    assert (piece.cause, piece.detail, piece.tokens.requests, piece.calls) == (
        "unexplained",
        "SpendScope tracked more than OpenAI reports",
        -2,
        2,
    )
    assert cause_calls(result) == {"unexplained": 2}
    assert (
        result.cause_usd()["unexplained"]
        == result.totals.residual_usd
        == -2 * (100 * MINI_IN + 20 * MINI_OUT)
    )


def test_a_missing_price_is_valued_at_the_price_the_costs_api_implies(
    store: Store, admin: FakeAdminAPI
) -> None:
    track(store, call(model="acme-llm-1", input_tokens=1000, output_tokens=100))
    use(admin, model="acme-llm-1", requests=1, input_tokens=1000, output_tokens=100)
    reported = bill(
        admin, "acme-llm-1", input_tokens=1000, output_tokens=100, prices=(D("1e-6"), 0, D("4e-6"))
    )
    result = reconcile(store, admin)
    assert summary(result)["causes"] == {"missing_price": (1100, reported)}
    assert result.totals.tracked_usd == 0
    assert result.pieces[0].detail == "no price for acme-llm-1"
    assert cause_calls(result) == {"missing_price": 1}


def test_a_stale_price(store: Store, admin: FakeAdminAPI, tmp_path: Path) -> None:
    # priced by the store with older price data (a price file since dropped) at twice today's rate
    path = tmp_path / "prices.toml"
    path.write_text('[[models]]\nmatch = "gpt-4o-mini*"\ninput_mtok = 0.30\noutput_mtok = 1.20\n')
    old = PriceFile.load(path)
    load_prices(store, Pricer(old))
    track(store, call())
    use(admin, requests=1, input_tokens=100, output_tokens=20)
    bill(admin, MINI, input_tokens=100, output_tokens=20, prices=MINI_PRICES)
    result = reconcile(store, admin)
    assert summary(result)["causes"] == {"stale_price": (120, -D("0.000027"))}
    assert cause_calls(result) == {"stale_price": 1}
    assert result.pieces[0].detail.startswith(f"priced with {old.version}; genai-prices ")
    assert result.pieces[0].detail.endswith(" prices it differently")


def test_tool_fees_are_untracked_line_items_and_the_rest_unexplained(
    store: Store, admin: FakeAdminAPI
) -> None:
    fully_tracked(store, admin)
    admin.add_cost(DAY, project_id="proj_a", line_item="web search tool calls", amount="0.02")
    admin.add_cost(DAY, project_id="proj_a", line_item="gpt-4o-mini-2024-07-18, output", amount="0.000001")
    result = reconcile(store, admin)
    assert summary(result)["causes"] == {"untracked": (0, D("0.02")), "unexplained": (0, D("0.000001"))}
    assert cause_calls(result) == {}  # a line item and a day's dollars: no call count
    assert result.totals.residual_usd == D("0.020001")


def test_the_audio_semantics_change_of_2026_07_15_is_handled_by_date(store: Store) -> None:
    """Before 2026-07-15 input_audio_tokens counted cached audio; from then on only uncached audio.
    A realtime call with 300 audio input tokens (100 cached) matches on both sides of the change."""
    before = DAY.replace(month=7, day=1)
    after = DAY.replace(month=7, day=20)
    with FakeAdminAPI() as admin:
        admin.add_project("proj_a")
        admin.add_key("proj_a", "key_a", "sk-proj-...9f2c")
        for day in (before, after):
            record = call(
                day + timedelta(hours=10),
                model="gpt-realtime",
                input_tokens=500,
                output_tokens=50,
                cached=100,
            )
            attrs = record.span_attributes | {
                n.USAGE_AUDIO_INPUT_TOKENS: "300",
                n.USAGE_AUDIO_OUTPUT_TOKENS: "40",
                n.OPERATION_NAME: n.OP_REALTIME,
            }
            track(store, dataclasses.replace(record, span_attributes=attrs))
            use(
                admin, day + timedelta(hours=10), model="gpt-realtime", requests=1, input_tokens=500,
                cached_tokens=100, output_tokens=50, input_audio_tokens=300, cached_audio_tokens=100,
                output_audio_tokens=40,
            )  # fmt: skip
            result = reconcile(
                store, admin, since=day, until=day + timedelta(days=1), costs=False,
                clock=lambda d=day: d + timedelta(days=2),
            )  # fmt: skip
            assert result.pieces == [], day
            assert result.totals.reported_tokens == 550
        pages = [r for r in admin.requests if r.path.endswith("/usage/completions")]
        assert len(pages) == 2


def test_a_duration_billed_transcription(store: Store, admin: FakeAdminAPI) -> None:
    record = call(
        model="whisper-1", input_tokens=0, output_tokens=0, operation=n.OP_TRANSCRIPTION, cost=D("0.006")
    )
    seconds = record.span_attributes | {n.USAGE_AUDIO_SECONDS: "60"}
    track(store, dataclasses.replace(record, span_attributes=seconds))
    use(admin, source="audio_transcriptions", model="whisper-1", requests=1, seconds=60)
    admin.add_cost(DAY, project_id="proj_a", line_item="whisper-1, audio", amount="0.006")
    result = reconcile(store, admin)
    assert result.pieces == []
    assert [(line.line_item, line.tracked_usd, line.reported_usd) for line in result.lines] == [
        ("whisper-1, audio", D("0.006"), D("0.006"))
    ]
