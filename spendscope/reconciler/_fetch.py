"""The organization Usage and Costs APIs and the key listing, through the official `openai` SDK.

Usage pages are fetched as raw bytes (`with_raw_response`) and handed on unparsed: at 1-hour buckets a
page holds tens of thousands of results, which ClickHouse parses far faster than Python and which are
never all held at once. Every call is retried a bounded number of times on 429 (after the server's
`Retry-After`) and on 5xx or connection errors (exponential backoff); 401/403 become an error naming the
admin key that is needed. The admin key lives only inside the SDK client.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, Final, TypeVar

from spendscope.reconciler._errors import ADMIN_KEY_ENV, AdminKeyError, FetchError, admin_key_message, scrub
from spendscope.reconciler._keys import ProjectKey

if TYPE_CHECKING:
    import openai

_log = logging.getLogger("spendscope.reconciler")
T = TypeVar("T")

# What each usage endpoint is grouped by, so its rows meet llm_usage at the comparison grain.
USAGE_GROUP_BY: Final[dict[str, tuple[str, ...]]] = {
    "completions": ("project_id", "api_key_id", "model", "batch", "service_tier"),
    "embeddings": ("project_id", "api_key_id", "model"),
    "audio_transcriptions": ("project_id", "api_key_id", "model"),
}
COSTS_GROUP_BY: Final = ("project_id", "line_item")
MAX_PAGE_BUCKETS: Final[dict[str, int]] = {"1m": 1440, "1h": 168, "1d": 31}
COSTS_PAGE_DAYS: Final = 30
LIST_LIMIT: Final = 100


@dataclass(frozen=True)
class RetryPolicy:
    """At most `retries` retries per call; waits follow Retry-After (429) or double from `backoff`
    seconds, and a wait longer than `max_wait` seconds is not made: the fetch fails instead."""

    retries: int = 5
    backoff: float = 1.0
    max_wait: float = 120.0


def retry_after(headers: Any) -> float | None:
    """Seconds from `retry-after-ms`, or `Retry-After` as seconds or an HTTP date."""
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return max(0.0, float(ms) / 1000)
        value = headers.get("retry-after")
    except (AttributeError, ValueError):
        return None
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def resolve_admin_key(explicit: str | None = None) -> str:
    key = (explicit if explicit is not None else os.environ.get(ADMIN_KEY_ENV, "")).strip()
    if not key:
        raise AdminKeyError(f"no admin key: {admin_key_message()}")
    return key


class AdminAPI:
    """The admin endpoints SpendScope reads, with bounded retries. `requests` counts HTTP calls made."""

    def __init__(
        self,
        *,
        admin_key: str | None = None,
        base_url: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
        client: openai.OpenAI | None = None,
    ) -> None:
        import openai

        self.retry = retry or RetryPolicy()
        self.sleep = sleep
        self.requests = 0
        self.waited = 0.0
        if client is None:
            client = openai.OpenAI(
                admin_api_key=resolve_admin_key(admin_key), base_url=base_url, max_retries=0, timeout=timeout
            )
        self._client = client
        self._client.admin.organization.usage  # noqa: B018 (the SDK imports its admin types lazily: ~1 s, once)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> AdminAPI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- one call, retried ---------------------------------------------------------------------------
    def call(self, what: str, fn: Callable[[], T]) -> T:
        import openai

        attempt = 0
        while True:
            self.requests += 1
            try:
                return fn()
            except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
                raise AdminKeyError(admin_key_message(exc.status_code, _message(exc))) from None
            except openai.RateLimitError as exc:
                wait = retry_after(exc.response.headers)
                reason = "HTTP 429"
            except openai.InternalServerError as exc:
                wait = retry_after(exc.response.headers)
                reason = f"HTTP {exc.status_code}"
            except (openai.APITimeoutError, openai.APIConnectionError) as exc:
                wait, reason = None, f"{type(exc).__name__}: {scrub(str(exc))}"
            except openai.APIStatusError as exc:
                raise FetchError(f"{what}: HTTP {exc.status_code}: {_message(exc)}") from None
            if wait is None:
                wait = self.retry.backoff * 2**attempt
            attempt += 1
            if attempt > self.retry.retries:
                raise FetchError(
                    f"{what}: still failing after {attempt} attempts ({reason}); "
                    "nothing was written as complete"
                )
            if wait > self.retry.max_wait:
                raise FetchError(
                    f"{what}: {reason} asks to retry in {wait:.0f} s, more than the "
                    f"{self.retry.max_wait:.0f} s allowed; nothing was written as complete"
                )
            _log.warning("%s: %s, retry %d/%d in %.1f s", what, reason, attempt, self.retry.retries, wait)
            self.waited += wait
            self.sleep(wait)

    # --- endpoints -----------------------------------------------------------------------------------
    def usage_page(
        self,
        source: str,
        *,
        start: int,
        end: int,
        bucket_width: str,
        limit: int,
        page: str | None,
        number: int,
    ) -> bytes:
        """One raw page of `/organization/usage/<source>` (the JSON envelope, unparsed)."""
        method = getattr(self._client.admin.organization.usage.with_raw_response, source)
        params: dict[str, Any] = {
            "start_time": start,
            "end_time": end,
            "bucket_width": bucket_width,
            "group_by": list(USAGE_GROUP_BY[source]),
            "limit": limit,
        }
        if page:
            params["page"] = page
        raw = self.call(f"usage/{source} page {number}", partial(method, **params))
        content: bytes = raw.content
        return content

    def costs_pages(self, *, start: int, end: int) -> Iterator[dict[str, Any]]:
        """Every page of `/organization/costs` over [start, end) (whole UTC days), parsed with amounts
        as Decimal."""
        from decimal import Decimal

        usage = self._client.admin.organization.usage.with_raw_response
        page: str | None = None
        seen: set[str] = set()
        number = 0
        while True:
            number += 1
            params: dict[str, Any] = {
                "start_time": start,
                "end_time": end,
                "bucket_width": "1d",
                "group_by": list(COSTS_GROUP_BY),
                "limit": COSTS_PAGE_DAYS,
            }
            if page:
                params["page"] = page
            raw = self.call(f"costs page {number}", partial(usage.costs, **params))
            try:
                body = json.loads(raw.content, parse_float=Decimal)
                if not isinstance(body, dict) or not isinstance(body.get("data"), list):
                    raise ValueError("no data array")
            except ValueError as exc:
                raise FetchError(f"costs page {number} is not a Costs API page: {exc}") from None
            yield body
            page = _next_page(body.get("has_more"), body.get("next_page"), seen, f"costs page {number}")
            if page is None:
                return

    def project_keys(self) -> list[ProjectKey]:
        """Every key of every project (archived included), with `owner_project_access=any` so keys
        whose owner lost access are listed too."""
        admin = self._client.admin.organization
        keys: list[ProjectKey] = []
        for project in self._list("projects", partial(admin.projects.list, include_archived=True)):
            project_id = str(project.id)
            listing = partial(admin.projects.api_keys.list, project_id, owner_project_access="any")
            for key in self._list(f"api keys of {project_id}", listing):
                keys.append(ProjectKey(str(key.id), project_id, str(key.redacted_value), str(key.name or "")))
        return keys

    def _list(self, what: str, fetch: Callable[..., Any]) -> Iterator[Any]:
        after: dict[str, Any] = {"limit": LIST_LIMIT}
        seen: set[str] = set()
        number = 0
        while True:
            number += 1
            page = self.call(f"{what} page {number}", partial(fetch, **after))
            items = list(page.data or [])
            yield from items
            last = page.last_id or (items[-1].id if items else None)
            if not page.has_more or not items or not last:
                return
            if last in seen:
                raise FetchError(f"{what}: the listing repeated the cursor {last}")
            seen.add(last)
            after = {"limit": LIST_LIMIT, "after": last}


_HAS_MORE = re.compile(rb'"has_more"\s*:\s*(true|false)')
_NEXT_PAGE = re.compile(rb'"next_page"\s*:\s*(null|"(?:[^"\\]|\\.)*")')
_ENVELOPE_SPAN = 4096


def envelope(body: bytes, what: str) -> tuple[bool, str | None]:
    """`has_more` and `next_page` of a raw usage page, read without parsing its data: they are
    top-level keys no result carries, found at the page's end (or start). ClickHouse parses the whole
    page afterwards and the two readings must agree."""
    found: list[tuple[bool, str | None]] = []
    for part in (body[-_ENVELOPE_SPAN:], body[:_ENVELOPE_SPAN], body):
        more = _HAS_MORE.findall(part)
        following = _NEXT_PAGE.findall(part)
        if len(more) == 1 and len(following) == 1:
            cursor = json.loads(following[0])
            found.append((more[0] == b"true", cursor if isinstance(cursor, str) else None))
            break
    if not found:
        raise FetchError(f"{what} is not a Usage API page: no has_more and next_page")
    return found[0]


def _message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    message = body.get("message") if isinstance(body, dict) else None
    return scrub(str(message or exc.message or "")).strip()[:300]


def _next_page(has_more: Any, next_page: Any, seen: set[str], what: str) -> str | None:
    """The cursor to fetch next, None at the end; a page that says there is more but gives no new
    cursor is an error, not an end."""
    if not has_more:
        return None
    if not isinstance(next_page, str) or not next_page:
        raise FetchError(f"{what} says has_more but gives no next_page")
    if next_page in seen:
        raise FetchError(f"{what} repeats the cursor {next_page}")
    seen.add(next_page)
    return next_page


next_page = _next_page
