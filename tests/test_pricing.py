"""Prices: the rates equal genai-prices' own calculation exactly, and both equal hand-computed dollars."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import genai_prices
import pytest
from genai_prices import Usage, calc_price
from genai_prices.types import ModelPrice, Tier, TieredPrices

from spendscope.pricing import PriceFile, PriceFileError, Pricer
from spendscope.pricing.rates import Rate, segments
from spendscope.store.prices import catalogue_rows
from spendscope.usage import TokenUsage, chat_usage, realtime_usage, responses_usage

NOV = datetime(2026, 11, 20, 12, tzinfo=UTC)
M = 1_000_000


def cost(model: str, usage: TokenUsage, **kwargs: object) -> Decimal:
    price = Pricer().price(model, usage, at=kwargs.pop("at", NOV), **kwargs)  # type: ignore[arg-type]
    assert price is not None
    return price.cost_usd


# Expected dollars computed by hand from OpenAI's published per-million-token rates.
@pytest.mark.parametrize(
    ("model", "usage", "kwargs", "expected"),
    [
        # gpt-4o-mini: $0.15 in, $0.60 out -> 19*0.15e-6 + 10*0.6e-6
        ("gpt-4o-mini-2024-07-18", TokenUsage(input=19, output=10), {}, "0.00000885"),
        # gpt-4.1: $2 in, $0.50 cached, $8 out -> 976*2 + 1024*0.5 + 300*8 (per 1e6)
        ("gpt-4.1-2025-04-14", TokenUsage(input=2000, cached_input=1024, output=300), {}, "0.004864"),
        # gpt-4o: $2.50 in, $1.25 cached, $10 out
        ("gpt-4o", TokenUsage(input=1000, cached_input=400, output=500), {}, "0.0070"),
        # embeddings text-embedding-3-small: $0.02 per 1M
        ("text-embedding-3-small", TokenUsage(input=M), {}, "0.02"),
        # whisper-1: $0.006 per minute
        ("whisper-1", TokenUsage(audio_seconds=60), {}, "0.006"),
        # gpt-4o-transcribe: text in $2.50, audio in $6, out $10 -> 14*6 + 45*10 (per 1e6)
        ("gpt-4o-transcribe", TokenUsage(input=14, input_audio=14, output=45), {}, "0.000534"),
        # batch is half price (gpt-4o-mini: 0.075 + 0.30 per 1M in/out)
        ("gpt-4o-mini", TokenUsage(input=M, output=M), {"batch": True}, "0.375"),
        # before genai-prices' batch variant starts (2026-10-14) our own 50% rule applies
        (
            "gpt-4o-mini",
            TokenUsage(input=M, output=M),
            {"batch": True, "at": datetime(2026, 1, 1, tzinfo=UTC)},
            "0.375",
        ),
        # gpt-5 by the tier the response reports: default 1.25/10, flex half, priority double
        ("gpt-5", TokenUsage(input=M, output=M), {"service_tier": "default"}, "11.25"),
        ("gpt-5", TokenUsage(input=M, output=M), {"service_tier": "flex"}, "5.625"),
        ("gpt-5", TokenUsage(input=M, output=M), {"service_tier": "priority"}, "22.5"),
        (
            "gpt-5",
            TokenUsage(input=M, output=M),
            {"service_tier": "scale"},
            "11.25",
        ),  # unknown tier: standard
        # o3 changed price on 2025-06-10: $10/$40 before, $2/$8 after
        ("o3", TokenUsage(input=M, output=M), {"at": datetime(2025, 5, 1, tzinfo=UTC)}, "50"),
        ("o3", TokenUsage(input=M, output=M), {"at": datetime(2025, 7, 1, tzinfo=UTC)}, "10"),
        # gpt-5.4 long context: above 272K input tokens every token pays the tier rate ($5 in, $22.50 out)
        ("gpt-5.4", TokenUsage(input=300_000, output=1000), {}, "1.5225"),
        ("gpt-5.4", TokenUsage(input=200_000, output=1000), {}, "0.515"),  # base: $2.50 in, $15 out
    ],
)
def test_cost_matches_hand_computed_dollars(
    model: str, usage: TokenUsage, kwargs: dict[str, object], expected: str
) -> None:
    assert cost(model, usage, **kwargs) == Decimal(expected)


def test_realtime_response_done_priced_by_modality() -> None:
    usage = realtime_usage(
        {
            "input_tokens": 132,
            "output_tokens": 121,
            "input_token_details": {
                "text_tokens": 119,
                "audio_tokens": 13,
                "cached_tokens": 64,
                "cached_tokens_details": {"text_tokens": 64, "audio_tokens": 0},
            },
            "output_token_details": {"text_tokens": 30, "audio_tokens": 91},
        }
    )
    assert usage == TokenUsage(input=132, output=121, cached_input=64, input_audio=13, output_audio=91)
    # gpt-realtime: text in $4 (cached $0.40), audio in $32, text out $16, audio out $64
    expected = ((119 - 64) * 4 + 64 * Decimal("0.4") + 13 * 32 + 30 * 16 + 91 * 64) / M
    assert cost("gpt-realtime", usage) == expected == Decimal("0.0069656")


def test_unknown_model_has_no_price_not_zero() -> None:
    assert Pricer().price("ft:gpt-4o-mini:acme::xyz", TokenUsage(input=10, output=10), at=NOV) is None
    assert Pricer().price("gpt-4o-2099-01-01", TokenUsage(input=10, output=10), at=NOV) is None


def test_a_call_answered_under_an_unpriced_name_is_priced_as_the_requested_model() -> None:
    """OpenAI answers a `davinci-002` request as `davinci:2023-07-21-v2`, a name without a price."""
    usage = TokenUsage(input=8, output=16)
    assert Pricer().price("davinci:2023-07-21-v2", usage, at=NOV) is None
    price = Pricer().price("davinci:2023-07-21-v2", usage, at=NOV, fallback="davinci-002")
    assert price is not None and price.model == "davinci-002"
    assert price.cost_usd == Decimal(8 + 16) * 2 / M  # $2 per million in and out
    own = Pricer().price("gpt-4o-mini-2024-07-18", usage, at=NOV, fallback="gpt-4o-mini")
    assert own is not None and own.model == "gpt-4o-mini-2024-07-18"  # the answered name first


def _manifest_usages() -> list[tuple[str, str, TokenUsage]]:
    manifest = Path(__file__).resolve().parents[1].parent / "shared/conformance/openai/manifest.json"
    if not manifest.exists():
        return []
    cases = []
    for entry in json.loads(manifest.read_text())["files"]:
        raw = entry.get("usage_raw")
        if not raw or not entry.get("model_responded"):
            continue
        read = responses_usage if "input_tokens" in raw else chat_usage
        usage = read(raw)
        assert usage is not None
        cases.append((entry["file"], entry["model_responded"], usage))
    return cases


@pytest.mark.parametrize(("file", "model", "usage"), _manifest_usages())
def test_fast_path_equals_genai_prices_on_recorded_usage(file: str, model: str, usage: TokenUsage) -> None:
    """Every recorded usage: our cached linear price == genai-prices' own calculation, to the digit."""
    pricer = Pricer()
    price = pricer.price(model, usage, at=NOV, service_tier="default")
    if price is None:
        with pytest.raises(LookupError):
            calc_price(Usage(input_tokens=1), model, provider_id="openai", genai_request_timestamp=NOV)
        return
    reference = calc_price(
        Usage(
            input_tokens=usage.input,
            cache_read_tokens=usage.cached_input,
            cache_write_tokens=usage.cache_write_input,
            input_audio_tokens=usage.input_audio,
            output_tokens=usage.output,
            output_audio_tokens=usage.output_audio,
            output_reasoning_tokens=usage.reasoning,
        ),
        model,
        provider_id="openai",
        genai_request_timestamp=NOV,
        price_context={"service_tier": "default"},
    )
    assert price.cost_usd == reference.total_price
    assert (price.cost_usd > 0) == (usage.input + usage.output > 0)  # one recording reports all zeros
    assert price.version.startswith("genai-prices ")


def genai_prices_cost(model_price: ModelPrice, usage: TokenUsage) -> Decimal:
    """genai-prices' own calculation of `usage` at `model_price`: the reference for our rates."""
    if usage.audio_seconds is not None:  # billed as input audio (whisper-1)
        gp_usage = Usage(audio_seconds=usage.audio_seconds, input_audio_seconds=usage.audio_seconds)
    else:
        gp_usage = Usage(
            input_tokens=usage.input,
            cache_read_tokens=usage.cached_input,
            cache_write_tokens=usage.cache_write_input,
            input_audio_tokens=usage.input_audio,
            cache_audio_read_tokens=usage.cached_input_audio,
            output_tokens=usage.output,
            output_audio_tokens=usage.output_audio,
            output_reasoning_tokens=usage.reasoning,
        )
    total: Decimal = model_price.calc_price(gp_usage)["total_price"]
    return total


def usages(model_price: ModelPrice) -> list[TokenUsage]:
    """Usages with every count, on both sides of every tier start, and duration-billed audio."""
    starts = {0} | {
        tier.start
        for key in dir(model_price)
        if isinstance(price := getattr(model_price, key, None), TieredPrices)
        for tier in price.tiers
    }
    out = [TokenUsage(), TokenUsage(audio_seconds=6.37), TokenUsage(audio_seconds=3600.0)]
    for start in sorted(starts):
        for extra in (0, 1, 7919):
            out.append(
                TokenUsage(
                    input=start + extra + 2_000,
                    cached_input=1_024,
                    cache_write_input=128,
                    input_audio=300,
                    cached_input_audio=64,
                    output=1_733,
                    output_audio=120,
                    reasoning=512,
                )
            )
            out.append(TokenUsage(input=start + extra, output=start + extra))
    return out


def assert_rates_equal_genai_prices(name: str, model_price: ModelPrice) -> None:
    parts = segments(model_price)
    assert parts is not None, f"{name}: genai-prices {genai_prices.__version__} refuses {model_price}"
    rate = Rate(name, "", parts)
    for usage in usages(model_price):
        assert rate.cost(usage) == genai_prices_cost(model_price, usage), (
            f"genai-prices {genai_prices.__version__} prices {name} ({model_price}) differently from "
            "spendscope/pricing/rates.py, which reads its public price fields (USD per million tokens, per "
            "thousand calls, per hour; a tier applies to every token of a call whose input is above its "
            f"start; a subset without a price of its own pays its total's): {usage}"
        )


def test_rates_equal_genai_prices_for_every_openai_price() -> None:
    """Every price genai-prices has for OpenAI (every name, service tier, batch, and each price change),
    through the rates the instrumentation and the store apply: genai-prices' own calculation, exactly.
    Fails when a genai-prices release changes what spendscope/pricing/rates.py relies on."""
    pricer = Pricer()
    seen: set[str] = set()
    for row in catalogue_rows(pricer):
        day = datetime(row.effective_from.year, row.effective_from.month, row.effective_from.day, tzinfo=UTC)
        terms = pricer.terms(row.model, at=day, service_tier=row.service_tier or None, batch=row.batch)
        if terms is None or repr(terms.model_price) in seen:
            continue
        seen.add(repr(terms.model_price))
        assert_rates_equal_genai_prices(row.model, terms.model_price)
    assert len(seen) > 100


@pytest.mark.parametrize(
    "prices",
    [
        {
            "input_mtok": "1.1",
            "cache_read_mtok": "0.11",
            "input_audio_mtok": "10",
            "cache_audio_read_mtok": "2.5",
            "output_mtok": "4.4",
            "output_audio_mtok": "20",
            "requests_kcount": "0.7",
        },
        {"input_mtok": "1", "cache_read_mtok": "0.1", "cache_write_mtok": "1.25", "output_mtok": "4"},
        {"input_mtok": "1", "output_mtok": "4", "output_reasoning_mtok": "3"},
        {"input_mtok": "1", "cache_read_mtok": "0.1"},  # cached audio pays the cached price
        {"input_mtok": "3", "input_audio_mtok": "8", "output_mtok": "9"},  # cached input pays input's
        {"audio_hours": "0.36"},
        {"audio_hours": "1", "input_audio_hours": "0.5", "requests_kcount": "2"},
    ],
)
def test_rates_equal_genai_prices_for_prices_openai_does_not_use_yet(prices: dict[str, str]) -> None:
    assert_rates_equal_genai_prices("synthetic", ModelPrice(**{k: Decimal(v) for k, v in prices.items()}))


def test_tiered_rates_equal_genai_prices() -> None:
    tiered = TieredPrices(Decimal(2), [Tier(5_000, Decimal(5)), Tier(1_000, Decimal(3))])
    model_price = ModelPrice(
        input_mtok=tiered,
        cache_read_mtok=TieredPrices(Decimal("0.2"), [Tier(1_000, Decimal("0.3"))]),
        output_mtok=TieredPrices(Decimal(8), [Tier(2_000, Decimal(12))]),
        requests_kcount=TieredPrices(Decimal(1), [Tier(0, Decimal(2))]),
    )
    assert_rates_equal_genai_prices("synthetic", model_price)
    parts = segments(model_price)
    assert parts is not None and [s.above for s in parts] == [0, 0, 1_000, 2_000, 5_000]


def test_a_price_genai_prices_refuses_is_unknown_not_zero(tmp_path: Path) -> None:
    assert segments(ModelPrice(cache_read_mtok=Decimal(1))) is None  # no input price for it to be part of
    assert segments(ModelPrice(input_mtok=Decimal(-1))) is None
    # genai-prices would need a count of cache-written audio tokens, which calls do not report
    every = {"input_mtok": 1, "cache_write_mtok": 2, "input_audio_mtok": 3, "cache_audio_write_mtok": 4}
    assert segments(ModelPrice(**{k: Decimal(v) for k, v in every.items()})) is None
    pricer = Pricer(PriceFile.load(write(tmp_path, '[[models]]\nmatch = "m"\ncache_read_mtok = 0.1\n')))
    assert pricer.price("m", TokenUsage(input=M, cached_input=M), at=NOV) is None


def write(tmp_path: Path, text: str, name: str = "prices.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_price_file_prices_fine_tuned_model_and_discounts_catalogue(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[[models]]
match = "ft:gpt-4o-mini-2024-07-18:acme:*"
input_mtok = 0.30
cache_read_mtok = 0.15
output_mtok = 1.20

[[models]]
match = "ft:gpt-4o-mini-2024-07-18:acme:*"
effective_from = 2026-11-01
input_mtok = 0.20
output_mtok = 0.80

[[discounts]]
match = "gpt-4o*"
percent = 10
effective_from = 2026-06-01

[[discounts]]
match = "gpt-4o*"
percent = 20
effective_from = 2026-10-01
""",
    )
    pricer = Pricer(PriceFile.load(path))
    ft = "ft:gpt-4o-mini-2024-07-18:acme::abc123"
    usage = TokenUsage(input=M, output=M)
    october = datetime(2026, 10, 15, tzinfo=UTC)
    before = pricer.price(ft, usage, at=october)
    after = pricer.price(ft, usage, at=NOV)
    assert before is not None and before.cost_usd == Decimal("1.50")
    assert after is not None and after.cost_usd == Decimal("1.00")
    assert after.version.startswith("file:prices.toml#")
    # catalogue gpt-4o: $2.50 + $10 = $12.50; 20% off from October, 10% off before
    discounted = pricer.price("gpt-4o", usage, at=NOV)
    assert discounted is not None and discounted.cost_usd == Decimal("10.00")
    july = pricer.price("gpt-4o", usage, at=datetime(2026, 7, 1, tzinfo=UTC))
    assert july is not None and july.cost_usd == Decimal("11.25")
    assert "genai-prices" in discounted.version and "file:prices.toml" in discounted.version
    undiscounted = pricer.price("gpt-5", usage, at=NOV)
    assert undiscounted is not None and undiscounted.cost_usd == Decimal("11.25")


def test_price_file_tier_specific_rule_wins(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[models]]\nmatch = "my-model"\ninput_mtok = 1\noutput_mtok = 1\n\n'
        '[[models]]\nmatch = "my-model"\nservice_tier = "flex"\ninput_mtok = 0.5\noutput_mtok = 0.5\n',
    )
    pricer = Pricer(PriceFile.load(path))
    usage = TokenUsage(input=M, output=M)
    assert pricer.price("my-model", usage, at=NOV, service_tier="flex").cost_usd == Decimal(1)  # type: ignore[union-attr]
    assert pricer.price("my-model", usage, at=NOV, service_tier="default").cost_usd == Decimal(2)  # type: ignore[union-attr]


def test_price_file_json_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, json.dumps({"models": [{"match": "m", "input_mtok": 2}]}), "p.json")
    assert Pricer(PriceFile.load(path)).price("m", TokenUsage(input=M), at=NOV).cost_usd == 2  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[[models]]\nmatch = "x"\ninput_mtok = -1\n',
            "models.0.input_mtok: Input should be greater than or equal to 0",
        ),
        ('[[models]]\nmatch = "x"\ninput_mtk = 1\n', "models.0.input_mtk: Extra inputs are not permitted"),
        ('[[models]]\nmatch = "x"\n', "rule 'x' sets no price"),
        ('[[discounts]]\nmatch = "x"\npercent = 150\n', "discounts.0.percent"),
        ("[[models]\n", "not valid .toml"),
    ],
)
def test_bad_price_file_gets_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(PriceFileError, match=r"price file .*prices\.toml") as info:
        PriceFile.load(write(tmp_path, text))
    assert message in str(info.value)


def test_missing_price_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PriceFileError, match="cannot read it"):
        PriceFile.load(tmp_path / "nope.toml")


def test_cached_greater_than_input_is_clamped_not_crashing() -> None:
    usage = responses_usage(
        {"input_tokens": 5136, "input_tokens_details": {"cached_tokens": 10192}, "output_tokens": 1}
    )
    assert usage == TokenUsage(input=5136, cached_input=5136, output=1)
    assert cost("gpt-4o", usage) == (5136 * Decimal("1.25") + 10) / M
