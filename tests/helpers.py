"""Canned OpenAI bodies with known usage, so tests can assert exact tokens and dollars."""

from __future__ import annotations

import json
from decimal import Decimal
from importlib.metadata import version
from typing import Any

from spendscope.demo.fake_openai import synth

M = Decimal(1_000_000)
# What the pricer records as spendscope.price.version: the installed genai-prices, whichever it is.
PRICE_VERSION = f"genai-prices {version('genai-prices')}"
# Published OpenAI prices (USD per million tokens) used to compute expectations by hand.
GPT_4O_MINI = {"input": Decimal("0.15"), "cached": Decimal("0.075"), "output": Decimal("0.60")}


def mini_cost(input_tokens: int, output_tokens: int, cached: int = 0) -> float:
    rates = GPT_4O_MINI
    dollars = (
        (input_tokens - cached) * rates["input"] + cached * rates["cached"] + output_tokens * rates["output"]
    )
    return float(dollars / M)


def chat_body(
    prompt: int = 19,
    completion: int = 10,
    *,
    cached: int = 0,
    reasoning: int = 0,
    model: str = "gpt-4o-mini-2024-07-18",
    tier: str = "default",
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test123",
        "object": "chat.completion",
        "created": 1741569952,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello!", "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": usage(prompt, completion, cached=cached, reasoning=reasoning),
        "service_tier": tier,
    }


def usage(prompt: int, completion: int, *, cached: int = 0, reasoning: int = 0) -> dict[str, Any]:
    return synth.chat_usage(prompt, completion, reasoning, cached)


def chat_sse(prompt: int = 19, completion: int = 10, *, with_usage: bool = True, cached: int = 0) -> str:
    base = {
        "id": "chatcmpl-stream1",
        "object": "chat.completion.chunk",
        "created": 1694268190,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_44709d6fcb",
        "service_tier": "default",
    }
    deltas = [{"role": "assistant", "content": ""}, {"content": "Hello"}, {"content": "!"}]
    chunks = [
        {
            **base,
            "choices": [{"index": 0, "delta": d, "logprobs": None, "finish_reason": None}],
            "usage": None,
        }
        for d in deltas
    ]
    chunks.append(
        {
            **base,
            "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}],
            "usage": None,
        }
    )
    if with_usage:
        chunks.append({**base, "choices": [], "usage": usage(prompt, completion, cached=cached)})
    return "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
