"""The organization Usage and Costs APIs and the key listing, through the official `openai` SDK.

Usage pages are fetched as raw bytes (`with_raw_response`) and handed on as received: ClickHouse
parses them into the staging table far faster than Python builds objects, and they are never all held
at once. Their envelope (`has_more`, `next_page`) is read with the json module (about 5 ms per MB)
and the cursor followed as the Usage and Costs APIs document it (the SDK returns these envelopes as
plain responses, not as pages it can iterate); the key listings are iterated with the SDK's own
pagination. Retries are the SDK's (`max_retries`: 429 after its `Retry-After`, 5xx and connection
errors with exponential backoff); 401/403 become an error naming the admin key that is needed. The
admin key lives only inside the SDK client.
"""

from __future__ import annotations

import email.utils
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, Final, TypeVar

from spendscope.reconciler._errors import AdminKeyError, FetchError, admin_key_message, scrub
from spendscope.reconciler._keys import ProjectKey

if TYPE_CHECKING:
    import httpx2
    import openai

_log = logging.getLogger("spendscope.reconciler")
T = TypeVar("T")

# What each usage endpoint is grouped by, so its rows meet llm_usage at the comparison grain.
USAGE_GROUP_BY: Final[dict[str, tuple[str, ...]]] = {
    "completions": ("project_id", "api_key_id", "model", "batch", "service_tier"),
    "embeddings": ("project_id", "api_key_id", "model"),
    "audio_transcriptions": ("project_id", "api_key_id", "model"),
}
# api_key_id: the dollars of each key (the key figures); line items are compared summed over keys.
COSTS_GROUP_BY: Final = ("project_id", "line_item", "api_key_id")
MAX_PAGE_BUCKETS: Final[dict[str, int]] = {"1m": 1440, "1h": 168, "1d": 31}
COSTS_PAGE_DAYS: Final = 30
LIST_LIMIT: Final = 100
# The longest Retry-After the openai SDK waits for (a longer one it does not retry).
MAX_RETRY_WAIT: Final = 120.0
_RETRIED: Final = (408, 409, 429)  # and 5xx: the statuses the SDK retries


@dataclass(frozen=True)
class RetryPolicy:
    """At most `retries` retries per call, made by the SDK (after Retry-After on 429, else with
    exponential backoff); a Retry-After longer than `max_wait` seconds (at most MAX_RETRY_WAIT) is
    not waited for: the fetch fails instead."""

    retries: int = 5
    max_wait: float = MAX_RETRY_WAIT


@dataclass(frozen=True)
class UsagePage:
    """One Usage API page: its bytes as received, and its envelope."""

    content: bytes
    has_more: bool
    next_page: str | None
    buckets: int


class _TooLongWait(Exception):
    def __init__(self, status: int, wait: float) -> None:
        super().__init__(status, wait)
        self.status = status
        self.wait = wait


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


def read_page(
    content: bytes, what: str, *, parse_float: Callable[[str], Any] | None = None
) -> dict[str, Any]:
    """A Usage or Costs API page (`{object: "page", data: [...], has_more, next_page}`), parsed."""
    try:
        body = json.loads(content, parse_float=parse_float)
    except ValueError as exc:
        raise FetchError(f"{what} is not JSON: {exc}") from None
    if not isinstance(body, dict) or body.get("object") != "page" or not isinstance(body.get("data"), list):
        raise FetchError(f"{what} is not a Usage or Costs API page")
    if not isinstance(body.get("has_more"), bool):
        raise FetchError(f"{what} has no has_more")
    return body


def resolve_admin_key(explicit: str | None = None) -> str:
    """The admin key: `explicit`, else the `admin_key` setting (OPENAI_ADMIN_KEY)."""
    from spendscope.settings.reconcile import AdminKeySettings

    key = AdminKeySettings.resolve(admin_key=explicit).admin_key
    if key is None:
        raise AdminKeyError(f"no admin key: {admin_key_message()}")
    return key.get_secret_value()


class AdminAPI:
    """The admin endpoints SpendScope reads, with bounded retries. `requests` counts HTTP requests
    made, retries included (a `client` passed in is used as it is: its own retries, nothing counted)."""

    def __init__(
        self,
        *,
        admin_key: str | None = None,
        base_url: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 120.0,
        client: openai.OpenAI | None = None,
    ) -> None:
        import openai

        self.retry = retry or RetryPolicy()
        self.requests = 0
        if client is None:
            hooks: dict[str, list[Callable[..., Any]]] = {
                "request": [self._count],
                "response": [self._check_wait],
            }
            client = openai.OpenAI(
                admin_api_key=resolve_admin_key(admin_key),
                base_url=base_url,
                max_retries=self.retry.retries,
                timeout=timeout,
                http_client=openai.DefaultHttpxClient(event_hooks=hooks),
            )
        self._client = client
        self._client.admin.organization.usage  # noqa: B018 (the SDK imports its admin types lazily: ~1 s, once)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> AdminAPI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- HTTP hooks (every attempt, retries included) -------------------------------------------------
    def _count(self, request: httpx2.Request) -> None:
        self.requests += 1

    def _check_wait(self, response: httpx2.Response) -> None:
        """The SDK retries this response itself; what it cannot be told is the longest Retry-After to
        wait for (it waits up to MAX_RETRY_WAIT), so a longer one than `max_wait` ends the call here,
        before the SDK sleeps."""
        status = response.status_code
        if status not in _RETRIED and status < 500:
            return
        wait = retry_after(response.headers)
        after = f", Retry-After {wait:g} s" if wait is not None else ""
        _log.warning("%s: HTTP %d%s", response.request.url.path, status, after)
        if wait is not None and wait > self.retry.max_wait:
            raise _TooLongWait(status, wait)

    # --- one call ------------------------------------------------------------------------------------
    def call(self, what: str, fn: Callable[[], T]) -> T:
        """`fn()` (an SDK call, retried by the SDK), its errors as one line naming `what`."""
        import openai

        before = self.requests
        try:
            return fn()
        except _TooLongWait as exc:
            raise FetchError(
                f"{what}: HTTP {exc.status} asks to retry in {exc.wait:.0f} s, more than the "
                f"{self.retry.max_wait:.0f} s allowed; nothing was written as complete"
            ) from None
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise AdminKeyError(admin_key_message(exc.status_code, _message(exc))) from None
        except (openai.RateLimitError, openai.InternalServerError) as exc:
            reason = f"HTTP {exc.status_code}"
        except (openai.APITimeoutError, openai.APIConnectionError) as exc:
            reason = f"{type(exc).__name__}: {scrub(str(exc))}"
        except openai.APIStatusError as exc:
            raise FetchError(f"{what}: HTTP {exc.status_code}: {_message(exc)}") from None
        raise FetchError(
            f"{what}: still failing after {self.requests - before} attempts ({reason}); "
            "nothing was written as complete"
        )

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
    ) -> UsagePage:
        """One page of `/organization/usage/<source>`: its bytes as received, and its envelope."""
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
        what = f"usage/{source} page {number}"
        content: bytes = self.call(what, partial(method, **params)).content
        body = read_page(content, what)
        return UsagePage(content, body["has_more"], body.get("next_page"), len(body["data"]))

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
            what = f"costs page {number}"
            raw = self.call(what, partial(usage.costs, **params))
            body = read_page(raw.content, what, parse_float=Decimal)
            yield body
            page = next_page(body["has_more"], body.get("next_page"), seen, what)
            if page is None:
                return

    def project_keys(self) -> list[ProjectKey]:
        """Every key of every project (archived included), with `owner_project_access=any` so keys
        whose owner lost access are listed too."""
        admin = self._client.admin.organization
        keys: list[ProjectKey] = []
        projects = partial(admin.projects.list, include_archived=True, limit=LIST_LIMIT)
        for project in self._list("projects", projects):
            project_id = str(project.id)
            listing = partial(
                admin.projects.api_keys.list, project_id, owner_project_access="any", limit=LIST_LIMIT
            )
            for key in self._list(f"api keys of {project_id}", listing):
                keys.append(ProjectKey(str(key.id), project_id, str(key.redacted_value), str(key.name or "")))
        return keys

    def _list(self, what: str, first: Callable[[], Any]) -> Iterator[Any]:
        """Every item of an SDK cursor listing, page after page (`has_next_page`, `get_next_page`, each
        request retried by the SDK); a listing that repeats its cursor is an error, not an endless loop."""
        page = self.call(f"{what} page 1", first)
        yield from page.data or []
        seen: set[str] = set()
        while page.has_next_page():
            if page.last_id in seen:
                raise FetchError(f"{what}: the listing repeated the cursor {page.last_id}")
            seen.add(page.last_id)
            page = self.call(f"{what} page {len(seen) + 1}", page.get_next_page)
            yield from page.data or []


def _message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    message = body.get("message") if isinstance(body, dict) else None
    return scrub(str(message or exc.message or "")).strip()[:300]


def next_page(has_more: Any, cursor: Any, seen: set[str], what: str) -> str | None:
    """The cursor to fetch next, None at the end; a page that says there is more but gives no new
    cursor is an error, not an end."""
    if not has_more:
        return None
    if not isinstance(cursor, str) or not cursor:
        raise FetchError(f"{what} says has_more but gives no next_page")
    if cursor in seen:
        raise FetchError(f"{what} repeats the cursor {cursor}")
    seen.add(cursor)
    return cursor
