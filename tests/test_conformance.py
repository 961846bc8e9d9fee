"""The 41 recorded real OpenAI interactions, replayed by the fake server through the real client and
SpendScope's instrumentation: the span carries exactly the usage the manifest lists, and the cost
genai-prices computes for it (or none, for an unknown model)."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime
from typing import Any

import openai
import pytest
from genai_prices import Usage, calc_price

from spendscope import names as n
from spendscope.demo.fake_openai import ConformanceCase, FakeOpenAI, load_conformance
from tests.conftest import CONFORMANCE_DIR, Capture

CASES = load_conformance(CONFORMANCE_DIR) if CONFORMANCE_DIR.exists() else []
pytestmark = pytest.mark.skipif(not CASES, reason=f"conformance data not found at {CONFORMANCE_DIR}")


def _method(client: openai.OpenAI, path: str) -> Any:
    return {
        "/v1/chat/completions": client.chat.completions.create,
        "/v1/responses": client.responses.create,
        "/v1/embeddings": client.embeddings.create,
        "/v1/completions": client.completions.create,
    }[path]


def _call(client: openai.OpenAI, case: ConformanceCase) -> Any:
    method = _method(client, case.path)
    params = inspect.signature(method).parameters
    kwargs = {k: v for k, v in case.request.items() if k in params}
    extra = {k: v for k, v in case.request.items() if k not in params}
    if extra:
        kwargs["extra_body"] = extra
    if case.path == "/v1/embeddings" and "encoding_format" not in kwargs:
        kwargs["encoding_format"] = "float"  # the recordings carry float vectors
    result = method(**kwargs)
    if case.stream:
        return list(result)
    return result


def _expected_cost(case: ConformanceCase, usage: dict[str, Any], tier: str | None) -> float | None:
    """genai-prices' own calculation (not SpendScope's cached fast path) at the request time, for the
    model OpenAI answered with, else the one requested (OpenAI answers `davinci-002` as
    `davinci:2023-07-21-v2`, which has no price of its own)."""
    for model in (case.manifest["model_responded"], case.manifest["model_requested"]):
        cost = _genai_prices_cost(model, usage, tier)
        if cost is not None:
            return cost
    return None


def _genai_prices_cost(model: str, usage: dict[str, Any], tier: str | None) -> float | None:
    try:
        price = calc_price(
            Usage(
                input_tokens=usage["input_tokens"] or 0,
                cache_read_tokens=usage.get("cached_tokens") or 0,
                cache_write_tokens=usage.get("cache_write_tokens") or 0,
                input_audio_tokens=usage.get("input_audio_tokens") or 0,
                output_tokens=usage.get("output_tokens") or 0,
                output_audio_tokens=usage.get("output_audio_tokens") or 0,
                output_reasoning_tokens=usage.get("reasoning_tokens") or 0,
            ),
            model,
            provider_id="openai",
            genai_request_timestamp=datetime.now(UTC),
            price_context={"service_tier": tier} if tier else None,
        )
    except LookupError:
        return None
    return float(price.total_price)


@pytest.mark.parametrize("case", CASES, ids=[c.file for c in CASES])
def test_recorded_interaction_through_instrumentation(
    case: ConformanceCase, capture: Capture, server: FakeOpenAI, client: openai.OpenAI
) -> None:
    server.replay(case)
    if case.status >= 400:
        with pytest.raises(openai.APIStatusError) as info:
            _call(client, case)
        assert info.value.status_code == case.status
        attrs = capture.attrs()
        assert attrs[n.ERROR_TYPE] == type(info.value).__name__
        assert n.COST_USD not in attrs and n.USAGE_INPUT_TOKENS not in attrs
        return

    _call(client, case)
    attrs = capture.attrs()
    assert attrs[n.RESPONSE_MODEL] == case.manifest["model_responded"]
    usage = case.usage
    if usage is None:  # a stream recorded without usage: unknown, never zero
        assert attrs[n.USAGE_STATE] == "unavailable"
        assert n.USAGE_INPUT_TOKENS not in attrs and n.COST_USD not in attrs
        assert capture.total(n.METRIC_USAGE_UNAVAILABLE) == 1
        return

    assert attrs[n.USAGE_STATE] == "reported"
    assert attrs[n.USAGE_INPUT_TOKENS] == usage["input_tokens"]
    assert attrs[n.USAGE_OUTPUT_TOKENS] == (usage["output_tokens"] or 0)
    assert attrs[n.USAGE_CACHE_READ_INPUT_TOKENS] == (usage["cached_tokens"] or 0)
    assert attrs[n.USAGE_REASONING_OUTPUT_TOKENS] == (usage["reasoning_tokens"] or 0)
    assert attrs.get(n.USAGE_CACHE_CREATION_INPUT_TOKENS, 0) == (usage["cache_write_tokens"] or 0)
    assert attrs.get(n.USAGE_AUDIO_INPUT_TOKENS, 0) == (usage["input_audio_tokens"] or 0)
    assert capture.total(n.METRIC_TOKENS, type="input") == usage["input_tokens"]

    expected = _expected_cost(case, usage, attrs.get(n.OPENAI_RESPONSE_SERVICE_TIER))
    if expected is None:
        assert n.COST_USD not in attrs
        assert capture.total(n.METRIC_UNPRICED_TOKENS) == usage["input_tokens"] + (
            usage["output_tokens"] or 0
        )
    else:
        assert float(attrs[n.COST_USD]) == expected
        if case.file == "completions_davinci-002_model_alias.json":  # priced as the requested model
            assert attrs[n.PRICE_MODEL] == "davinci-002"
        assert capture.total(n.METRIC_COST) == pytest.approx(expected, rel=1e-12)


def test_every_recorded_usage_was_replayed() -> None:
    """Guard against a manifest that silently shrinks: 41 HTTP interactions; 6 errors and 3 streams carry no usage."""
    assert len(CASES) == 41
    assert sum(1 for c in CASES if c.usage is None) == 9
