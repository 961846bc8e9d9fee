"""The README's first command: the demo runs end to end and its numbers are right."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from typing import Any

import pytest

from spendscope import names as n
from spendscope.demo.report import summarize
from spendscope.demo.runner import run_demo

# Published OpenAI prices per 1M tokens: (uncached text in, cached in, text out, audio in, audio out).
RATES = {
    "gpt-4o-mini-2024-07-18": ("0.15", "0.075", "0.60", None, None),
    "gpt-4.1-2025-04-14": ("2", "0.50", "8", None, None),
    "gpt-5-mini": ("0.25", "0.025", "2", None, None),
    "text-embedding-3-small": ("0.02", None, "0", None, None),
    "gpt-realtime": ("4", "0.40", "16", "32", "64"),
}


def hand_cost(attrs: dict[str, Any]) -> Decimal:
    text_in, cached, out, audio_in, audio_out = (
        Decimal(r) if r else Decimal(0) for r in RATES[attrs[n.RESPONSE_MODEL]]
    )
    cached_tokens = attrs.get(n.USAGE_CACHE_READ_INPUT_TOKENS, 0)
    a_in, a_out = attrs.get(n.USAGE_AUDIO_INPUT_TOKENS, 0), attrs.get(n.USAGE_AUDIO_OUTPUT_TOKENS, 0)
    dollars = (
        (attrs[n.USAGE_INPUT_TOKENS] - cached_tokens - a_in) * text_in
        + cached_tokens * cached
        + a_in * audio_in
        + (attrs[n.USAGE_OUTPUT_TOKENS] - a_out) * out
        + a_out * audio_out
    )
    return dollars / 1_000_000


def test_demo_workload_is_fully_captured_and_correctly_priced() -> None:
    result = run_demo(seed=7)
    spans = [dict(s) for s in result.spans]
    assert len(spans) == result.outcome.calls == 55
    total = summarize(spans, None)[0]
    assert (total.errors, total.usage_unavailable, total.unpriced_calls) == (2, 1, 1)
    assert float(total.cost_usd) == pytest.approx(result.metric_cost_usd, rel=1e-9)  # spans == metrics
    priced = [a for a in spans if n.COST_USD in a]
    assert len(priced) == 51
    for attrs in priced:
        assert attrs[n.COST_USD] == pytest.approx(float(hand_cost(attrs)), rel=1e-12), attrs
    assert {a[n.ENDPOINT] for a in spans} == {
        "cv-parsing",
        "cv-search",
        "question-generation",
        "video-interview",
        "analyze_homework",
        "generate_hint",
    }
    assert all(a.get(n.TENANT) in ("talentco", "brightschool") and a.get(n.USER_ID) for a in spans)
    assert {a[n.OPERATION_NAME] for a in spans} == {"chat", "embeddings", "realtime"}
    by_endpoint = summarize(spans, n.ENDPOINT)
    assert sum(r.cost_usd for r in by_endpoint) == total.cost_usd
    jobs = {a.get("spendscope.attr.job_id") for a in spans if a[n.TENANT] == "talentco"}
    assert {"job-1001", "job-1002", "job-1003"} <= jobs


def test_demo_command_runs_as_the_readme_says() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "spendscope", "demo", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["calls"] == report["spans"] == 55
    assert Decimal(report["total"]["cost_usd"]) > 0 and report["total"]["cost_complete"] is False
    assert [row["key"] for row in report["tenant"]] == ["talentco", "brightschool"]
