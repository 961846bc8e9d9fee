"""The fake admin API speaks the documented envelopes; the reconciler pages, retries, refuses non-admin
keys clearly, never writes a partial fetch as complete, and replaces a window's results on a re-run."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal as D

import httpx2
import openai
import pytest
from prometheus_client import generate_latest
from prometheus_client.utils import floatToGoString

from spendscope import names as n
from spendscope.demo.fake_openai.admin import ADMIN_KEY, FakeAdminAPI
from spendscope.reconciler import AdminAPI, AdminKeyError, FetchError, ReconcileMetrics, RetryPolicy
from spendscope.store import Store
from tests.reconcile_helpers import (
    DAY,
    KEY_A,
    MINI,
    MINI_CACHED,
    MINI_IN,
    MINI_OUT,
    NOW,
    bill,
    call,
    reconcile,
    track,
    use,
)

COMPLETIONS = "/v1/organization/usage/completions"
START = int(DAY.timestamp())


@pytest.fixture
def admin() -> Iterator[FakeAdminAPI]:
    with FakeAdminAPI(now=NOW) as api:
        api.add_project("proj_a")
        api.add_key("proj_a", "key_a", "sk-proj-****...****9f2c")
        yield api


@pytest.fixture
def sdk(admin: FakeAdminAPI) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(admin_api_key=ADMIN_KEY, base_url=admin.base_url, max_retries=0)
    yield client
    client.close()


# --- the fake speaks the documented envelopes ------------------------------------------------------------
def test_usage_pages_partial_first_bucket_empty_buckets_and_paging(
    admin: FakeAdminAPI, sdk: openai.OpenAI
) -> None:
    use(admin, DAY + timedelta(hours=10, minutes=40), requests=2, input_tokens=200, output_tokens=20)
    use(admin, DAY + timedelta(hours=13), requests=1, input_tokens=50, output_tokens=5, service_tier="flex")
    start = START + 10 * 3600 + 30 * 60  # 10:30: not on a bucket boundary
    usage = sdk.admin.organization.usage.with_raw_response
    first = json.loads(
        usage.completions(
            start_time=start, end_time=START + 14 * 3600, bucket_width="1h", limit=2, group_by=["model"]
        ).content
    )
    assert [(b["start_time"] - START, b["end_time"] - START) for b in first["data"]] == [
        (10 * 3600 + 1800, 11 * 3600),  # the first bucket starts at start_time
        (11 * 3600, 12 * 3600),
    ]
    assert first["has_more"] is True and first["next_page"].startswith("page_")
    [result] = first["data"][0]["results"]
    assert (result["model"], result["num_model_requests"], result["input_tokens"]) == (MINI, 2, 200)
    # every field not grouped by is null
    assert [result[f] for f in ("project_id", "user_id", "api_key_id", "batch", "service_tier")] == [None] * 5
    assert first["data"][1]["results"] == []  # an empty bucket
    second = json.loads(
        usage.completions(
            start_time=start, end_time=START + 14 * 3600, bucket_width="1h", limit=2, group_by=["model"],
            page=first["next_page"],
        ).content
    )  # fmt: skip
    assert [b["start_time"] - START for b in second["data"]] == [12 * 3600, 13 * 3600]
    assert (second["has_more"], second["next_page"]) == (False, None)
    # the cookbook's encoding (group_by=model&group_by=service_tier) is accepted too
    plain = httpx2.get(
        f"{admin.base_url}/organization/usage/completions",
        params={
            "start_time": START,
            "bucket_width": "1d",
            "group_by": ["model", "service_tier"],
            "end_time": START + 86400,
        },
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    ).json()
    assert sorted((r["service_tier"], r["input_tokens"]) for r in plain["data"][0]["results"]) == [
        ("default", 200),
        ("flex", 50),
    ]


def test_completions_fields_follow_the_2026_07_15_semantics(admin: FakeAdminAPI, sdk: openai.OpenAI) -> None:
    for day in (DAY.replace(month=7, day=1), DAY.replace(month=7, day=20)):
        use(admin, day, input_tokens=500, cached_tokens=100, input_audio_tokens=300, cached_audio_tokens=100)
    usage = sdk.admin.organization.usage.with_raw_response
    results = []
    for day in (DAY.replace(month=7, day=1), DAY.replace(month=7, day=20)):
        start = int(day.timestamp())
        page = json.loads(
            usage.completions(start_time=start, end_time=start + 86400, bucket_width="1d").content
        )
        results.append(page["data"][0]["results"][0])
    old, new = results
    assert (old["input_audio_tokens"], "input_cached_audio_tokens" in old) == (300, False)  # cached included
    assert (new["input_audio_tokens"], new["input_cached_audio_tokens"]) == (200, 100)  # uncached only
    # the documented identities hold
    assert (
        new["input_tokens"]
        == new["input_cached_tokens"] + new["input_cache_write_tokens"] + new["input_uncached_tokens"]
    )
    assert (
        new["input_uncached_tokens"]
        == new["input_text_tokens"] + new["input_audio_tokens"] + new["input_image_tokens"]
    )


def test_costs_amounts_are_exact_decimals(admin: FakeAdminAPI) -> None:
    admin.add_cost(
        DAY,
        project_id="proj_a",
        line_item="gpt-4o-mini-2024-07-18, cached input",
        amount="0.8958740000000000",
    )
    with AdminAPI(admin_key=ADMIN_KEY, base_url=admin.base_url) as api:
        [page] = api.costs_pages(start=START, end=START + 86400)
    [result] = page["data"][0]["results"]
    assert result["amount"] == {"value": D("0.8958740000000000"), "currency": "usd"}


def test_the_key_listing_pages_and_asks_for_every_key(admin: FakeAdminAPI) -> None:
    admin.add_project("proj_old", archived=True)
    for i in range(130):
        admin.add_key("proj_old", f"key_{i:03d}", f"sk-proj-...{i:04d}", owner_project_access="inactive")
    with AdminAPI(admin_key=ADMIN_KEY, base_url=admin.base_url) as api:
        keys = api.project_keys()
    assert len(keys) == 131 and keys[-1].id == "key_129" and keys[-1].project_id == "proj_old"
    listing = [r for r in admin.requests if r.path.endswith("/api_keys")]
    assert all(r.query["owner_project_access"] == ["any"] for r in listing)
    assert [r.query.get("after") for r in listing if "proj_old" in r.path] == [None, ["key_099"]]
    assert all(
        r.query["include_archived"] == ["true"] for r in admin.requests if r.path.endswith("/projects")
    )


# --- retries and errors -----------------------------------------------------------------------------------
def gaps(admin: FakeAdminAPI, path: str) -> list[float]:
    """Seconds between the requests made to `path`."""
    times = [r.at for r in admin.requests if r.path == path]
    return [b - a for a, b in itertools.pairwise(times)]


def test_429_is_retried_after_its_retry_after(store: Store, admin: FakeAdminAPI) -> None:
    admin.fail(COMPLETIONS, 429, retry_after="0.3")
    result = reconcile(store, admin)
    assert result.totals.reported_buckets == 72  # 24 hourly buckets for each of the three endpoints
    [gap] = gaps(admin, COMPLETIONS)
    assert gap >= 0.3
    # projects, keys, completions twice, embeddings, transcriptions, costs: retries are counted
    assert result.requests_made == len(admin.requests) == 7


def test_5xx_is_retried_with_backoff(store: Store, admin: FakeAdminAPI) -> None:
    admin.fail("/v1/organization/costs", 503, times=2)
    result = reconcile(store, admin)
    first, second = gaps(admin, "/v1/organization/costs")
    assert 0 < first < second  # the SDK's exponential backoff
    assert result.requests_made == len(admin.requests) == 8


def test_a_partial_fetch_is_never_written_as_complete(store: Store, admin: FakeAdminAPI) -> None:
    track(store, call())
    use(admin, requests=1, input_tokens=100, output_tokens=20)
    use(admin, api_key_id="key_b", requests=1, input_tokens=10, output_tokens=1)
    first = reconcile(store, admin)  # no Costs API lines: the day's dollars are unexplained
    assert sorted(p.cause for p in first.pieces) == ["unexplained", "untracked"]

    # page 2 of the completions fails on every attempt
    admin.fail(COMPLETIONS, 500, after=1, times=10, retry_after="0.01")
    admin.requests.clear()
    with pytest.raises(
        FetchError, match=r"usage/completions page 2: still failing after 3 attempts \(HTTP 500\)"
    ):
        reconcile(store, admin, retry=RetryPolicy(retries=2), page_buckets=6, page_bytes=1)
    assert len([r for r in admin.requests if r.path == COMPLETIONS]) == 1 + 3
    runs = store.query("SELECT run_id, status, error FROM reconciliation_runs ORDER BY status").rows
    assert [(r[0] == first.run_id, r[1], r[2][:39]) for r in runs] == [
        (True, "complete", ""),
        (False, "failed", "usage/completions page 2: still failing"),
    ]
    # the earlier complete result stands; nothing of the failed run was kept
    assert store.query("SELECT DISTINCT run_id FROM reconciliation_diffs").rows == [[first.run_id]]
    for table in ("reconciliation_pages", "reconciliation_tracked"):
        assert store.query(f"SELECT count() FROM {table}").rows == [[0]], table


@pytest.mark.parametrize(("retry_after", "max_wait"), [("3600", None), ("2", 1.0)])
def test_a_retry_after_longer_than_allowed_fails(
    store: Store, admin: FakeAdminAPI, retry_after: str, max_wait: float | None
) -> None:
    admin.fail(COMPLETIONS, 429, retry_after=retry_after)
    retry = RetryPolicy() if max_wait is None else RetryPolicy(max_wait=max_wait)
    allowed = f"{retry.max_wait:.0f}"
    with pytest.raises(
        FetchError,
        match=f"usage/completions page 1: HTTP 429 asks to retry in {retry_after} s, more than the {allowed} s allowed",
    ):
        reconcile(store, admin, retry=retry)
    assert len([r for r in admin.requests if r.path == COMPLETIONS]) == 1  # not retried


@pytest.mark.parametrize(
    ("key", "status"),
    [("sk-proj-notanadminkey0000000000001234", 403), ("sk-admin-wrongwrongwrongwrong5678", 401)],
)
def test_a_non_admin_key_is_refused_clearly(admin: FakeAdminAPI, key: str, status: int) -> None:
    with AdminAPI(admin_key=key, base_url=admin.base_url) as api, pytest.raises(AdminKeyError) as refused:
        api.project_keys()
    message = str(refused.value)
    assert message.startswith(
        f"OpenAI refused the admin key (HTTP {status}): the organization Usage and Costs"
    )
    assert "set OPENAI_ADMIN_KEY to an admin key (sk-admin-..." in message
    assert key[12:] not in message and key[-4:] not in message


def test_no_admin_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_ADMIN_KEY", raising=False)
    with pytest.raises(AdminKeyError, match="no admin key: the organization Usage and Costs APIs need"):
        AdminAPI()


# --- the reconciler over several pages, partial buckets, null fields, re-runs -----------------------------
def test_many_pages_and_a_partial_first_bucket(store: Store, admin: FakeAdminAPI) -> None:
    at = DAY + timedelta(hours=10, minutes=40)
    track(store, call(at), call(DAY + timedelta(hours=10, minutes=5)))  # the second is before the window
    use(admin, at, requests=1, input_tokens=100, output_tokens=20)
    use(admin, DAY + timedelta(hours=10, minutes=5), requests=1, input_tokens=100, output_tokens=20)
    result = reconcile(
        store, admin, since=DAY + timedelta(hours=10, minutes=30), page_buckets=2, page_bytes=1
    )
    assert result.pieces == []
    assert (result.totals.tracked_requests, result.totals.reported_requests) == (1, 1)
    pages = [r for r in admin.requests if r.path == COMPLETIONS]
    # [10:30, 11:00) and the 13 hours after it: 2 buckets on the first page, then one a page
    assert len(pages) == 13
    assert pages[0].query["start_time"] == [str(START + 10 * 3600 + 1800)]
    assert [p.query["limit"] for p in pages[:2]] == [["2"], ["1"]]  # later pages sized to the budget
    assert result.windows.costs_start == DAY + timedelta(days=1)  # no whole day: dollars not compared
    assert result.totals.reported_usd is None
    [tracked] = result.tracked_keys
    [reported] = result.reported_keys
    assert (tracked.match.redacted, tracked.requests, tracked.tokens, tracked.usd) == (KEY_A, 1, 120, None)
    assert (reported.api_key_id, reported.requests, reported.tokens, reported.usd) == ("key_a", 1, 120, None)


def test_usage_with_null_group_fields_is_untracked(store: Store, admin: FakeAdminAPI) -> None:
    use(admin, project_id=None, api_key_id=None, requests=1, input_tokens=100, output_tokens=20)
    bill(
        admin, MINI, input_tokens=100, output_tokens=20, prices=(MINI_IN, MINI_CACHED, MINI_OUT), project=None
    )
    result = reconcile(store, admin)
    [piece, *_] = result.pieces
    assert (piece.cause, piece.key.project_id, piece.key.api_key_id, piece.detail) == (
        "untracked",
        "",
        "",
        "no spans in the window for project (none)",
    )
    assert result.cause_usd()["untracked"] == D("0.000027")
    assert result.cause_usd()["unexplained"] == 0


def test_rerunning_a_window_replaces_its_results(store: Store, admin: FakeAdminAPI) -> None:
    use(admin, requests=1, input_tokens=100, output_tokens=20)
    bill(admin, MINI, input_tokens=100, output_tokens=20, prices=(MINI_IN, MINI_CACHED, MINI_OUT))
    first = reconcile(store, admin)
    assert [p.cause for p in first.pieces] == ["untracked"]
    track(store, call(key=KEY_A))  # the span arrives late
    second = reconcile(store, admin)
    assert second.pieces == []
    rows = store.query("SELECT run_id, status FROM reconciliation_runs").rows
    assert rows == [[second.run_id, "complete"]]
    assert store.query("SELECT count() FROM reconciliation_diffs WHERE kind = 'cause'").rows == [[0]]
    latest = store.run(
        "reconciliation_runs", {"since": "2026-11-01 00:00:00", "until": "2026-12-01 00:00:00"}
    )
    assert [row[0] for row in latest.rows] == [second.run_id]


def test_metrics_of_a_run(store: Store, admin: FakeAdminAPI) -> None:
    track(store, call())
    use(admin, requests=1, input_tokens=100, output_tokens=20)
    use(admin, api_key_id="key_b", requests=1, input_tokens=1000, output_tokens=100)
    bill(admin, MINI, input_tokens=1100, output_tokens=120, prices=(MINI_IN, MINI_CACHED, MINI_OUT))
    metrics = ReconcileMetrics()
    metrics.observe(reconcile(store, admin))
    metrics.failed(NOW)
    text = generate_latest(metrics.registry).decode()
    for line in (
        f"{n.PROM_RECONCILIATION_COVERAGE} 0.11392405063291139",
        f'{n.PROM_RECONCILIATION_RESIDUAL_USD}{{cause="untracked"}} 0.00021',
        f'{n.PROM_RECONCILIATION_RESIDUAL_TOKENS}{{cause="untracked"}} 1100.0',
        f'{n.PROM_RECONCILIATION_TRACKED_TOKENS}{{type="input"}} 100.0',
        f'{n.PROM_RECONCILIATION_REPORTED_TOKENS}{{type="input"}} 1100.0',
        f"{n.PROM_RECONCILIATION_REPORTED_USD} 0.000237",
        f'{n.PROM_RECONCILIATION_RUNS}_total{{status="complete"}} 1.0',
        f'{n.PROM_RECONCILIATION_RUNS}_total{{status="failed"}} 1.0',
        f"{n.PROM_RECONCILIATION_LAST_SUCCESS} {floatToGoString(NOW.timestamp())}",
    ):
        assert line in text, line
    assert all(
        name.startswith("spendscope_reconciliation_") for name in (m.name for m in metrics.registry.collect())
    )
