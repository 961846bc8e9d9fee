"""Prices: the fast path equals genai-prices exactly, and both equal hand-computed dollars."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from genai_prices import Usage, calc_price

from spendscope.pricing import PriceFile, PriceFileError, Pricer
from spendscope.pricing.rates import exact_cost
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


def test_linear_and_exact_paths_agree_on_many_vectors() -> None:
    pricer = Pricer()
    rate = pricer.rate("gpt-realtime", at=NOV)
    assert rate is not None and rate.coefficients is not None
    for i in range(1, 200, 7):
        usage = TokenUsage(
            input=i * 131,
            cached_input=i * 17,
            input_audio=i * 29,
            cached_input_audio=i * 3,
            output=i * 97,
            output_audio=i * 41,
            reasoning=0,
        )
        assert rate.cost(usage) == exact_cost(rate.model_price, usage)


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
