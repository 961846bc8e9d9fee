"""The reconciler's pure parts: names, line items, key matching, windows, pages, Retry-After."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from spendscope.pricing import Pricer
from spendscope.reconciler import ReconcileError, ReconcileOptions, plan_windows
from spendscope.reconciler._errors import scrub
from spendscope.reconciler._explain import Explainer, Seen
from spendscope.reconciler._fetch import read_page, retry_after
from spendscope.reconciler._keys import AMBIGUOUS, MAPPED, UNMAPPED, ProjectKey, fingerprint, map_keys
from spendscope.reconciler._model import Group, GroupKey, Tokens, Windows
from spendscope.reconciler._normalize import (
    input_audio_total,
    normalize_model,
    normalize_tier,
    parse_line_item,
)
from spendscope.reconciler._value import Valuer
from spendscope.settings import ConfigurationError
from spendscope.settings.reconcile import ReconcileSettings


@pytest.mark.parametrize(
    ("reported", "normalised"),
    [
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("GPT-4.1-2025-04-14", "gpt-4.1"),
        ("gpt-3.5-turbo-0125", "gpt-3.5-turbo"),
        ("text-embedding-ada-002-v2", "text-embedding-ada-002"),
        ("ft:gpt-4o-mini-2024-07-18:acme::abc123", "ft:gpt-4o-mini-2024-07-18:acme::abc123"),
        ("gpt-5.6-sol", "gpt-5.6-sol"),
        (None, ""),
    ],
)
def test_model_names_are_normalised(reported: str | None, normalised: str) -> None:
    assert normalize_model(reported) == normalised


@pytest.mark.parametrize(
    ("tier", "normalised"),
    [(None, "default"), ("auto", "default"), ("flex-tier", "flex"), ("incentivized-tier", "incentivized"),
     ("priority", "priority"), ("fast", "priority"), ("Default", "default")],
)  # fmt: skip
def test_service_tiers_are_normalised(tier: str | None, normalised: str) -> None:
    assert normalize_tier(tier) == normalised


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("gpt-4o-mini-2024-07-18, cached input", ("gpt-4o-mini", "default", False, "text", "cached input", "", "gpt-4o-mini, cached input")),
        ("gpt-5.5-2026-04-23, input", ("gpt-5.5", "default", False, "text", "input", "", "gpt-5.5, input")),
        ("priority | gpt-5.6-sol, output, long context", ("gpt-5.6-sol", "priority", False, "text", "output", "long context", "priority | gpt-5.6-sol, output")),
        ("gpt-audio-mini-2025-12-15 audio, input", ("gpt-audio-mini", "default", False, "audio", "input", "", "gpt-audio-mini audio, input")),
        ("whisper-1, audio", ("whisper-1", "default", False, "text", "audio", "", "whisper-1, audio")),
        ("gpt-6-astra, input_tokens", ("gpt-6-astra", "default", False, "text", "input", "", "gpt-6-astra, input")),
        ("flex | gpt-5-mini-2025-08-07, output", ("gpt-5-mini", "flex", False, "text", "output", "", "flex | gpt-5-mini, output")),
        ("batch | gpt-4o-mini-2024-07-18, input", ("gpt-4o-mini", "default", True, "text", "input", "", "batch | gpt-4o-mini, input")),
    ],
)  # fmt: skip
def test_cost_line_items_are_parsed(raw: str, expected: tuple[object, ...]) -> None:
    item = parse_line_item(raw)
    assert (
        item.model,
        item.tier,
        item.batch,
        item.modality,
        item.direction,
        item.qualifier,
        item.key,
    ) == expected


@pytest.mark.parametrize("raw", ["web search tool calls", "Vector storage", "", None, "some thing, sideways"])
def test_line_items_that_are_not_model_tokens_stay_unparsed(raw: str | None) -> None:
    item = parse_line_item(raw)
    assert not item.parsed
    assert item.key == (raw or "unknown")


def test_audio_input_counts_cached_audio_from_the_2026_07_15_change() -> None:
    before = datetime(2026, 7, 14, 23, tzinfo=UTC)
    after = datetime(2026, 7, 15, tzinfo=UTC)
    assert input_audio_total(before, 300, None) == 300  # included cached audio already
    assert input_audio_total(before, 300, 100) == 300
    assert input_audio_total(after, 200, 100) == 300  # uncached only; add the cached part
    assert input_audio_total(after, 200, None) == 200


# --- keys ---------------------------------------------------------------------------------------------
KEYS = [
    ProjectKey("key_a", "proj_a", "sk-proj-****...****9f2c"),
    ProjectKey("key_b", "proj_a", "sk-proj-...7a1e"),
    ProjectKey("key_c", "proj_b", "sk-proj-abc...9f2c"),
    ProjectKey("key_d", "proj_b", "sk-svcacct-...7a1e"),
    ProjectKey("key_e", "proj_b", "sk-abc...def"),
]


@pytest.mark.parametrize(
    ("redacted", "prefix", "tail"),
    [
        ("sk-proj-...9f2c", "sk-proj-", "9f2c"),
        ("sk-proj-****...****excA", "sk-proj-", "excA"),
        ("sk-abc...def", "sk-", "def"),
        ("sk-svcacct-…Zz19", "sk-svcacct-", "Zz19"),
    ],
)
def test_redacted_keys_are_fingerprinted(redacted: str, prefix: str, tail: str) -> None:
    found = fingerprint(redacted)
    assert found is not None and (found.prefix, found.tail) == (prefix, tail)


def test_keys_map_within_the_recorded_project_and_ambiguity_is_reported() -> None:
    mapping = map_keys(
        [
            ("proj_a", "sk-proj-...9f2c"),  # key_a only: proj_b's key_c is another project
            ("", "sk-proj-...9f2c"),  # no project recorded: key_a and key_c both match
            ("proj_a", "sk-proj-...7a1e"),  # key_b (key_d is a service-account key in proj_b)
            ("proj_b", "sk-svcacct-...7a1e"),
            ("proj_b", "sk-...xdef"),  # the listing shows 3 characters: def
            ("proj_a", "sk-proj-...0000"),
            ("proj_a", "sk-svcacct-...7a1e"),  # a proj_b key sent with proj_a's header: the key decides
        ],
        KEYS,
    )
    got = {(m.project, m.redacted): (m.status, m.label, m.project_id) for m in mapping.matches}
    assert got == {
        ("proj_a", "sk-proj-...9f2c"): (MAPPED, "key_a|key_c", "proj_a"),
        ("", "sk-proj-...9f2c"): (AMBIGUOUS, "key_a|key_c", ""),
        ("proj_a", "sk-proj-...7a1e"): (MAPPED, "key_b", "proj_a"),
        ("proj_b", "sk-svcacct-...7a1e"): (MAPPED, "key_d", "proj_b"),
        ("proj_b", "sk-...xdef"): (MAPPED, "key_e", "proj_b"),
        ("proj_a", "sk-proj-...0000"): (UNMAPPED, "unmapped:sk-proj-...0000", "proj_a"),
        ("proj_a", "sk-svcacct-...7a1e"): (MAPPED, "key_d", "proj_b"),
    }
    # the keys of an ambiguous match are compared under one label on both sides
    assert mapping.merged == {"key_a": "key_a|key_c", "key_c": "key_a|key_c"}


# --- windows --------------------------------------------------------------------------------------------
NOW = datetime(2026, 11, 21, 15, 20, tzinfo=UTC)


def test_only_closed_buckets_and_days_are_compared() -> None:
    windows = plan_windows(ReconcileOptions(since=NOW - timedelta(days=3), until=NOW), NOW)
    assert windows.start == datetime(2026, 11, 18, 15, 20, tzinfo=UTC)
    assert windows.usage_end == datetime(2026, 11, 21, 14, tzinfo=UTC)  # the 14:00 bucket ends 15:00, +1 h
    assert (windows.costs_start, windows.costs_end) == (  # whole days that ended a day ago
        datetime(2026, 11, 19, tzinfo=UTC),
        datetime(2026, 11, 20, tzinfo=UTC),
    )
    daily = plan_windows(ReconcileOptions(since=NOW - timedelta(days=3), until=NOW, bucket_width="1d"), NOW)
    assert daily.usage_end == datetime(2026, 11, 21, tzinfo=UTC)


def test_a_window_with_nothing_closed_is_refused() -> None:
    with pytest.raises(ReconcileError, match="nothing to reconcile yet"):
        plan_windows(ReconcileOptions(since=NOW - timedelta(minutes=30), until=NOW), NOW)
    with pytest.raises(ReconcileError, match="bucket width must be one of 1h, 1d"):
        ReconcileOptions(since=NOW, until=NOW, bucket_width="1m")


# --- wire details ---------------------------------------------------------------------------------------
def test_a_page_is_read_whole() -> None:
    body = (
        b'{"object":"page","data":[{"object":"bucket","results":[]}],"has_more":true,"next_page":"page_AAA"}'
    )
    page = read_page(body, "p")
    assert (page["has_more"], page["next_page"], len(page["data"])) == (True, "page_AAA", 1)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b'{"error": {"message": "nope"}}', "p is not a Usage or Costs API page"),
        (b'{"object":"page","data":[],"has_more":true', "p is not JSON"),
        (b'{"object":"page","data":[],"next_page":null}', "p has no has_more"),
    ],
)
def test_a_body_that_is_not_a_whole_page_is_refused(body: bytes, error: str) -> None:
    with pytest.raises(ReconcileError, match=error):
        read_page(body, "p")


def test_retry_after_in_seconds_milliseconds_or_a_date() -> None:
    assert retry_after({"retry-after": "2"}) == 2.0
    assert retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after({}) is None
    assert retry_after({"retry-after": "soon"}) is None
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # in the past


def test_keys_are_scrubbed_from_messages() -> None:
    assert (
        scrub("Incorrect API key provided: sk-admin-abcdef123456789") == "Incorrect API key provided: sk-ad…"
    )
    assert "secret" not in scrub("key sk-proj-secretsecret")


def test_token_vectors() -> None:
    a = Tokens(requests=2, input=300, cached_input=100, output=60)
    b = Tokens(requests=3, input=200, output=90)
    assert (a - b).positive() == Tokens(input=100, cached_input=100)
    assert (a - b).negative() == Tokens(requests=-1, output=-30)
    assert (a + b).total == 650


GPT5_MINI = "gpt-5-mini-2025-08-07"


def test_a_partial_move_prices_exactly_the_moved_tokens_at_both_tiers() -> None:
    """The default group tracked A (right), B (served as flex) and D (not counted by OpenAI); the
    flex group lacks only B. B moves and is priced at both tiers; D stays, unexplained, at its own
    price; the pieces add up to the reported minus the tracked, each priced at its recorded tier."""
    day = datetime(2026, 11, 10, tzinfo=UTC)
    bucket = day + timedelta(hours=10)
    windows = Windows(
        day, day + timedelta(days=1), day + timedelta(days=1), day, day + timedelta(days=1), "1h"
    )
    a, b, d = Tokens(1, 10_000, 0, 100), Tokens(1, 2000, 1500, 800), Tokens(1, 400, 0, 40)

    def group(tier: str, reported: Tokens, tracked: Tokens) -> Group:
        key = GroupKey("completions", bucket, "proj_a", "key_a", "gpt-5-mini", False, tier)
        return Group(key, bucket + timedelta(hours=1), "mapped", GPT5_MINI, GPT5_MINI, reported, tracked)

    explainer = Explainer(Valuer(Pricer()), windows)
    pieces = explainer.explain_groups(
        [group("default", a, a + b + d), group("flex", b, Tokens())],
        Seen.of([("proj_a", "key_a", "gpt-5-mini")]),
    )
    assert [(p.cause, p.key.service_tier, p.tokens, p.usd, p.calls) for p in pieces] == [
        ("tier_batch_mispricing", "flex", b, Decimal("0.00088125") - Decimal("0.0017625"), 1),
        ("unexplained", "default", -d, -(400 * Decimal("0.25") + 40 * Decimal(2)) / 1_000_000, 1),
    ]

    def price(tier: str, tokens: Tokens) -> Decimal:
        value = explainer.valuer.value(GPT5_MINI, tokens, at=bucket, tier=tier)
        assert value is not None
        return value

    reported, tracked = price("default", a) + price("flex", b), price("default", a + b + d)
    assert sum(p.usd for p in pieces if p.usd is not None) == reported - tracked


def test_settings_from_arguments_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    resolve = ReconcileSettings.resolve
    assert resolve(min_coverage="95%").min_coverage == 0.95
    monkeypatch.setenv("SPENDSCOPE_RECONCILE_MIN_COVERAGE", "0.9")
    assert resolve().min_coverage == 0.9
    assert resolve(min_coverage=0.5).min_coverage == 0.5
    assert resolve(usage_settle="90m").usage_settle == timedelta(minutes=90)
    assert resolve().costs_settle == timedelta(days=1)
    assert resolve(metrics_listen=":9465").metrics_listen == ("127.0.0.1", 9465)
    monkeypatch.setenv("SPENDSCOPE_RECONCILE_COSTS_SETTLE", "tomorrow")
    with pytest.raises(
        ConfigurationError,
        match=r"^reconcile setting costs_settle \(environment variable SPENDSCOPE_RECONCILE_COSTS_SETTLE='tomorrow'\): "
        r"must be a duration such as",
    ):
        resolve()
    monkeypatch.delenv("SPENDSCOPE_RECONCILE_COSTS_SETTLE")
    assert resolve(max_retry_wait="2m").max_retry_wait == 120.0
    with pytest.raises(ConfigurationError, match=r"max_retry_wait='5m'\): must be between 0 and 120$"):
        resolve(max_retry_wait="5m")  # the SDK, which retries, waits 120 s at most
    with pytest.raises(ConfigurationError, match=r"bucket_width='2h'\): must be '1h' or '1d'$"):
        resolve(bucket_width="2h")


def test_exported_names() -> None:
    import spendscope.reconciler

    assert sorted(spendscope.reconciler.__all__) == [
        "AdminAPI",
        "AdminKeyError",
        "CAUSES",
        "FetchError",
        "ReconcileError",
        "ReconcileMetrics",
        "ReconcileOptions",
        "Reconciler",
        "ReconciliationResult",
        "RetryPolicy",
        "plan_windows",
    ]
    assert spendscope.reconciler.CAUSES == (
        "untracked",
        "usage_unavailable",
        "failed_billed",
        "tier_batch_mispricing",
        "missing_price",
        "stale_price",
        "unexplained",
    )
