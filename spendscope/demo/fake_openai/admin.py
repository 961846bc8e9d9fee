"""A fake OpenAI *admin* API on 127.0.0.1: the organization Usage and Costs APIs and the project key
listing, speaking the documented envelopes (shared/reference/openai-api.md §2), for the reconciler's
tests and benchmark.

    with FakeAdminAPI() as api:
        api.add_project("proj_a")
        api.add_key("proj_a", "key_a", "sk-proj-...9f2c")
        api.add_usage("completions", at, project_id="proj_a", api_key_id="key_a",
                      model="gpt-4o-mini-2024-07-18", requests=3, input_tokens=300, output_tokens=60)
        api.add_cost(day, project_id="proj_a", line_item="gpt-4o-mini-2024-07-18, input", amount="0.000045")
        client = OpenAI(admin_api_key=ADMIN_KEY, base_url=api.base_url)

What the real API does and this one does too:
- usage and costs pages `{object: "page", data: [bucket], has_more, next_page}`; `limit` counts
  buckets; `next_page` is an opaque cursor; the first bucket starts at `start_time` (partial when that
  is not on a boundary), later ones on UTC boundaries; a bucket without usage has `results: []`;
- results aggregated by `group_by` (both `group_by[]=x` as the SDK sends it and `group_by=x`), every
  field not grouped by is `null`;
- the 2026-07-15 field semantics: before that date a completions result has the old fields only, with
  `input_audio_tokens` counting cached audio; from then on the full set, `input_audio_tokens` uncached;
- Costs amounts as exact decimal numbers; only `bucket_width=1d`;
- project and key listings as cursor lists (`after`, `has_more`, `last_id`);
- 401 without a key or with a wrong admin key, 403 for a project or user key;
- injected failures (`fail`): 429 with `Retry-After`, 5xx, after a number of good answers.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final, Protocol
from urllib.parse import parse_qs, urlsplit

ADMIN_KEY: Final = "sk-admin-fakeadminkey0000000000000000a1b2"
AUDIO_SEMANTICS_CHANGED: Final = int(datetime(2026, 7, 15, tzinfo=UTC).timestamp())
WIDTHS: Final = {"1m": 60, "1h": 3600, "1d": 86400}
LIMITS: Final = {"1m": (60, 1440), "1h": (24, 168), "1d": (7, 31)}
COSTS_LIMITS: Final = (7, 180)
USAGE_GROUPS: Final[dict[str, tuple[str, ...]]] = {
    "completions": ("project_id", "user_id", "api_key_id", "model", "batch", "service_tier", "api_source"),
    "embeddings": ("project_id", "user_id", "api_key_id", "model"),
    "moderations": ("project_id", "user_id", "api_key_id", "model"),
    "audio_transcriptions": ("project_id", "user_id", "api_key_id", "model"),
    "audio_speeches": ("project_id", "user_id", "api_key_id", "model"),
}
COSTS_GROUPS: Final = ("project_id", "line_item", "api_key_id", "user_id", "api_source")
_RESULT_OBJECT = "organization.usage.{}.result"
_DECIMAL = re.compile(r'"__decimal__([-0-9.Ee+]+)"')
GZIP_ABOVE: Final = 1024


@dataclass(frozen=True)
class UsageEvent:
    """Usage at one moment. Token fields are totals in SpendScope's terms: `input_audio_tokens` and
    `cached_tokens` include their cached audio part (`cached_audio_tokens`)."""

    source: str
    at: int
    project_id: str | None = None
    api_key_id: str | None = None
    user_id: str | None = None
    model: str | None = None
    batch: bool = False
    service_tier: str | None = "default"
    requests: int = 1
    input_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    input_audio_tokens: int = 0
    cached_audio_tokens: int = 0
    output_audio_tokens: int = 0
    seconds: float = 0


@dataclass(frozen=True)
class CostEvent:
    at: int
    line_item: str | None
    amount: Decimal
    project_id: str | None = None
    api_key_id: str | None = None
    quantity: Decimal | None = None
    quantity_unit: str | None = None
    currency: str = "usd"


class UsageData(Protocol):
    """Where the fake's usage results come from (recorded events, or a benchmark's generator)."""

    def usage_results(
        self, source: str, start: int, end: int, group_by: Sequence[str]
    ) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class AdminRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    authorized: bool
    at: float = 0.0  # time.monotonic() when it arrived


@dataclass
class _Failure:
    status: int
    retry_after: str | None
    remaining: int
    after: int
    body: Any


def _seconds(moment: datetime | date | int) -> int:
    if isinstance(moment, int):
        return moment
    if isinstance(moment, datetime):
        return int(moment.timestamp())
    return int(datetime(moment.year, moment.month, moment.day, tzinfo=UTC).timestamp())


def completions_fields(event: UsageEvent, *, new_semantics: bool) -> dict[str, int]:
    """The documented metric fields of a completions result for these totals."""
    fields = {
        "input_tokens": event.input_tokens,
        "output_tokens": event.output_tokens,
        "num_model_requests": event.requests,
        "input_cached_tokens": event.cached_tokens,
    }
    if not new_semantics:  # before 2026-07-15: audio input includes its cached part
        return fields | {
            "input_audio_tokens": event.input_audio_tokens,
            "output_audio_tokens": event.output_audio_tokens,
        }
    uncached = event.input_tokens - event.cached_tokens - event.cache_write_tokens
    uncached_audio = event.input_audio_tokens - event.cached_audio_tokens
    return fields | {
        "input_cache_write_tokens": event.cache_write_tokens,
        "input_uncached_tokens": uncached,
        "input_text_tokens": uncached - uncached_audio,
        "input_audio_tokens": uncached_audio,
        "input_image_tokens": 0,
        "input_cached_text_tokens": event.cached_tokens - event.cached_audio_tokens,
        "input_cached_audio_tokens": event.cached_audio_tokens,
        "input_cached_image_tokens": 0,
        "output_text_tokens": event.output_tokens - event.output_audio_tokens,
        "output_audio_tokens": event.output_audio_tokens,
        "output_image_tokens": 0,
    }


class RecordedUsage:
    """Usage events, aggregated per bucket and `group_by` as the real API does."""

    def __init__(self) -> None:
        self.events: list[UsageEvent] = []

    def usage_results(
        self, source: str, start: int, end: int, group_by: Sequence[str]
    ) -> list[dict[str, Any]]:
        groups: dict[tuple[Any, ...], list[UsageEvent]] = defaultdict(list)
        for event in self.events:
            if event.source == source and start <= event.at < end:
                groups[tuple(getattr(event, g, None) for g in group_by)].append(event)
        results = []
        new = start >= AUDIO_SEMANTICS_CHANGED
        for key, events in groups.items():
            total = _sum_events(source, events)
            result: dict[str, Any] = {"object": _RESULT_OBJECT.format(source)}
            if source == "completions":
                result |= completions_fields(total, new_semantics=new)
            elif source in ("audio_transcriptions",):
                result |= {"seconds": total.seconds, "num_model_requests": total.requests}
            else:
                result |= {"input_tokens": total.input_tokens, "num_model_requests": total.requests}
            grouped = dict(zip(group_by, key, strict=True))
            for name in USAGE_GROUPS[source]:
                result[name] = grouped.get(name)
            results.append(result)
        return results


def _sum_events(source: str, events: Sequence[UsageEvent]) -> UsageEvent:
    numbers = (
        "requests", "input_tokens", "cached_tokens", "cache_write_tokens", "output_tokens",
        "input_audio_tokens", "cached_audio_tokens", "output_audio_tokens", "seconds",
    )  # fmt: skip
    sums = {name: sum(getattr(e, name) for e in events) for name in numbers}
    return UsageEvent(source, events[0].at, **sums)


def encode(body: Any) -> bytes:
    """JSON with Decimal values written as exact numbers."""

    def default(value: Any) -> Any:
        if isinstance(value, Decimal):
            return f"__decimal__{value}"
        raise TypeError(type(value).__name__)

    return _DECIMAL.sub(r"\1", json.dumps(body, default=default)).encode()


class FakeAdminAPI:
    """The fake admin API; serves on construction, `close()` stops it."""

    def __init__(
        self,
        *,
        admin_key: str = ADMIN_KEY,
        host: str = "127.0.0.1",
        port: int = 0,
        usage: UsageData | None = None,
        cache_pages: bool = False,
        now: datetime | None = None,
    ) -> None:
        self.admin_key = admin_key
        self.recorded = RecordedUsage()
        self.usage: UsageData = usage or self.recorded
        self.costs: list[CostEvent] = []
        self.projects: list[dict[str, Any]] = []
        self.keys: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.requests: list[AdminRequest] = []
        self.now = now
        self._failures: dict[str, deque[_Failure]] = defaultdict(deque)
        self._served: dict[str, int] = defaultdict(int)
        self._cache: dict[str, bytes] | None = {} if cache_pages else None
        self._gzip: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True, name="fake-admin"
        )
        self._thread.start()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def close(self) -> None:
        self._server.shutdown()
        self._thread.join()
        self._server.server_close()

    def __enter__(self) -> FakeAdminAPI:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- data ------------------------------------------------------------------------------------------
    def add_usage(self, source: str, at: datetime | int, **fields: Any) -> None:
        if source not in USAGE_GROUPS:
            raise ValueError(f"unknown usage endpoint {source!r}")
        self.recorded.events.append(UsageEvent(source, _seconds(at), **fields))

    def add_cost(
        self,
        day: datetime | date | int,
        *,
        line_item: str | None,
        amount: Decimal | str,
        project_id: str | None = None,
        api_key_id: str | None = None,
        quantity: Decimal | int | str | None = None,
        quantity_unit: str | None = None,
        currency: str = "usd",
    ) -> None:
        self.costs.append(
            CostEvent(
                _seconds(day),
                line_item,
                Decimal(amount),
                project_id,
                api_key_id,
                None if quantity is None else Decimal(quantity),
                quantity_unit,
                currency,
            )
        )

    def add_project(self, project_id: str, name: str = "", *, archived: bool = False) -> None:
        self.projects.append(
            {
                "id": project_id,
                "object": "organization.project",
                "name": name or project_id,
                "created_at": 1711471533,
                "archived_at": 1711471600 if archived else None,
                "status": "archived" if archived else "active",
            }
        )

    def add_key(
        self,
        project_id: str,
        key_id: str,
        redacted_value: str,
        *,
        name: str = "",
        owner_type: str = "user",
        owner_project_access: str = "active",
    ) -> None:
        owner: dict[str, Any] = {"type": owner_type}
        member = {
            "id": f"{owner_type}_{key_id}",
            "name": name or key_id,
            "created_at": 1711471533,
            "role": "owner",
        }
        owner[owner_type] = member | ({"email": f"{key_id}@example.com"} if owner_type == "user" else {})
        self.keys[project_id].append(
            {
                "object": "organization.project.api_key",
                "redacted_value": redacted_value,
                "name": name or key_id,
                "created_at": 1711471533,
                "last_used_at": 1711471534,
                "id": key_id,
                "owner_project_access": owner_project_access,
                "owner": owner,
            }
        )

    def fail(
        self,
        path: str,
        status: int,
        *,
        retry_after: str | None = None,
        times: int = 1,
        after: int = 0,
        body: Any = None,
    ) -> None:
        """Answer the next `times` requests on `path` (a prefix, e.g. `/v1/organization/costs`) that come
        after `after` more good answers with `status`."""
        with self._lock:
            self._failures[path].append(_Failure(status, retry_after, times, after, body))

    def compressed(self, target: str, status: int, body: bytes) -> bytes:
        """`body` gzipped (once per target when pages are cached)."""
        if self._cache is None or status != 200:
            return gzip.compress(body, compresslevel=1)
        with self._lock:
            found = self._gzip.get(target)
        if found is None:
            found = gzip.compress(body, compresslevel=1)
            with self._lock:
                self._gzip[target] = found
        return found

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    # --- serving ---------------------------------------------------------------------------------------
    def _failure(self, path: str) -> _Failure | None:
        with self._lock:
            for prefix, queue in self._failures.items():
                if not path.startswith(prefix) or not queue:
                    continue
                failure = queue[0]
                if failure.after > 0:
                    failure.after -= 1
                    return None
                failure.remaining -= 1
                if failure.remaining <= 0:
                    queue.popleft()
                return failure
        return None

    def respond(
        self, method: str, target: str, headers: Mapping[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        url = urlsplit(target)
        query = parse_qs(url.query, keep_blank_values=True)
        auth = headers.get("authorization", "").removeprefix("Bearer ").strip()
        with self._lock:
            self.requests.append(
                AdminRequest(method, url.path, query, auth == self.admin_key, time.monotonic())
            )
        if not auth:
            return _error(
                401, "You didn't provide an API key. Provide it as a Bearer token.", "invalid_request_error"
            )
        if auth != self.admin_key:
            if auth.startswith("sk-admin-"):
                masked = f"{auth[:9]}****{auth[-4:]}"
                return _error(
                    401, f"Incorrect API key provided: {masked}.", "invalid_request_error", "invalid_api_key"
                )
            return _error(
                403,
                "You have insufficient permissions for this operation. Missing scopes: api.usage.read. "
                "Check that you have the correct role in your organization, and if you're using a restricted "
                "API key, that it has the necessary scopes.",
                "invalid_request_error",
            )
        failure = self._failure(url.path)
        if failure is not None:
            extra = {"retry-after": failure.retry_after} if failure.retry_after is not None else {}
            status, head, body = _error(
                failure.status,
                "Rate limit reached for requests" if failure.status == 429 else "The server had an error.",
                "requests" if failure.status == 429 else "server_error",
            )
            if failure.body is not None:
                body = failure.body if isinstance(failure.body, bytes) else encode(failure.body)
            return status, head | extra, body
        if method != "GET":
            return _error(405, f"Invalid method ({method} {url.path})", "invalid_request_error")
        try:
            return 200, {"content-type": "application/json"}, self._route(url.path, target, query)
        except _BadRequest as exc:
            return _error(400, str(exc), "invalid_request_error")

    def _route(self, path: str, target: str, query: dict[str, list[str]]) -> bytes:
        if self._cache is not None and target in self._cache:
            return self._cache[target]
        if match := re.fullmatch(r"/v1/organization/usage/([a-z_]+)", path):
            if match.group(1) not in USAGE_GROUPS:
                raise _BadRequest(f"Invalid URL (GET {path})")
            body = encode(self._usage_page(match.group(1), query))
        elif path == "/v1/organization/costs":
            body = encode(self._costs_page(query))
        elif path == "/v1/organization/projects":
            body = encode(self._list(self._visible_projects(query), query))
        elif match := re.fullmatch(r"/v1/organization/projects/([^/]+)/api_keys", path):
            if match.group(1) not in {p["id"] for p in self.projects}:
                raise _BadRequest(f"No such project: {match.group(1)}")
            access = _one(query, "owner_project_access") or "active"
            keys = [
                k for k in self.keys[match.group(1)] if access == "any" or k["owner_project_access"] == access
            ]
            body = encode(self._list(keys, query))
        else:
            raise _BadRequest(f"Invalid URL (GET {path})")
        if self._cache is not None:
            self._cache[target] = body
        return body

    def _visible_projects(self, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        archived = (_one(query, "include_archived") or "false").lower() == "true"
        return [p for p in self.projects if archived or p["archived_at"] is None]

    def _list(self, items: list[dict[str, Any]], query: dict[str, list[str]]) -> dict[str, Any]:
        limit = _int(query, "limit", 20, 1, 100)
        after = _one(query, "after")
        start = 0
        if after:
            ids = [i["id"] for i in items]
            if after not in ids:
                raise _BadRequest(f"Invalid 'after': {after}")
            start = ids.index(after) + 1
        page = items[start : start + limit]
        return {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": start + limit < len(items),
        }

    def _window(
        self, query: dict[str, list[str]], width: str, limits: tuple[int, int]
    ) -> tuple[list[tuple[int, int]], str | None]:
        start = _int(query, "start_time", None, 0, None)
        end_text = _one(query, "end_time")
        now = self.now or datetime.now(UTC)
        end = int(end_text) if end_text else int(now.timestamp())
        limit = _int(query, "limit", limits[0], 1, limits[1])
        page = _one(query, "page")
        cursor = start
        if page:
            try:
                cursor = int(base64.urlsafe_b64decode(page.removeprefix("page_").encode()).decode())
            except ValueError:
                raise _BadRequest(f"Invalid page cursor: {page}") from None
        step = WIDTHS[width]
        buckets: list[tuple[int, int]] = []
        while cursor < end and len(buckets) < limit:
            stop = min((cursor // step + 1) * step, end)
            buckets.append((cursor, stop))
            cursor = stop
        following = None
        if cursor < end:
            following = "page_" + base64.urlsafe_b64encode(str(cursor).encode()).decode()
        return buckets, following

    def _usage_page(self, source: str, query: dict[str, list[str]]) -> dict[str, Any]:
        width = _one(query, "bucket_width") or "1d"
        if width not in WIDTHS:
            raise _BadRequest(f"Invalid bucket_width: {width}")
        group_by = _many(query, "group_by")
        unknown = [g for g in group_by if g not in USAGE_GROUPS[source]]
        if unknown:
            raise _BadRequest(f"Invalid group_by value(s) for {source}: {', '.join(unknown)}")
        buckets, following = self._window(query, width, LIMITS[width])
        data = [
            {
                "object": "bucket",
                "start_time": s,
                "end_time": e,
                "results": self.usage.usage_results(source, s, e, group_by),
            }
            for s, e in buckets
        ]
        return {"object": "page", "data": data, "has_more": following is not None, "next_page": following}

    def _costs_page(self, query: dict[str, list[str]]) -> dict[str, Any]:
        width = _one(query, "bucket_width") or "1d"
        if width != "1d":
            raise _BadRequest("The costs endpoint only supports bucket_width=1d")
        group_by = _many(query, "group_by")
        unknown = [g for g in group_by if g not in COSTS_GROUPS]
        if unknown:
            raise _BadRequest(f"Invalid group_by value(s) for costs: {', '.join(unknown)}")
        buckets, following = self._window(query, width, COSTS_LIMITS)
        data = []
        for s, e in buckets:
            groups: dict[tuple[Any, ...], list[CostEvent]] = defaultdict(list)
            for event in self.costs:
                if s <= event.at < e:
                    groups[tuple(getattr(event, g, None) for g in group_by)].append(event)
            results = []
            for key, events in groups.items():
                grouped = dict(zip(group_by, key, strict=True))
                quantities = [ev.quantity for ev in events]
                results.append(
                    {
                        "object": "organization.costs.result",
                        "amount": {
                            "value": sum((ev.amount for ev in events), Decimal(0)),
                            "currency": events[0].currency,
                        },
                        "line_item": grouped.get("line_item"),
                        "project_id": grouped.get("project_id"),
                        "api_key_id": grouped.get("api_key_id"),
                        "quantity": None
                        if None in quantities
                        else sum(q for q in quantities if q is not None),
                        "quantity_unit": events[0].quantity_unit,
                    }
                )
            data.append({"object": "bucket", "start_time": s, "end_time": e, "results": results})
        return {"object": "page", "data": data, "has_more": following is not None, "next_page": following}


class _BadRequest(Exception):
    pass


def _error(
    status: int, message: str, kind: str, code: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return status, {"content-type": "application/json"}, encode(body)


def _one(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name) or query.get(f"{name}[]")
    return values[-1] if values else None


def _many(query: dict[str, list[str]], name: str) -> list[str]:
    return [*query.get(f"{name}[]", []), *query.get(name, [])]


def _int(query: dict[str, list[str]], name: str, default: int | None, low: int, high: int | None) -> int:
    text = _one(query, name)
    if text is None:
        if default is None:
            raise _BadRequest(f"Missing required parameter: '{name}'.")
        return default
    try:
        value = int(text)
    except ValueError:
        raise _BadRequest(f"Invalid '{name}': {text}") from None
    if value < low or (high is not None and value > high):
        raise _BadRequest(f"Invalid '{name}': {value} (must be between {low} and {high})")
    return value


def _handler(api: FakeAdminAPI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length:
                self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, head, body = api.respond(self.command, self.path, headers)
            if len(body) > GZIP_ABOVE and "gzip" in headers.get("accept-encoding", ""):
                # as api.openai.com does for a client that accepts it
                body = api.compressed(self.path, status, body)
                head = head | {"content-encoding": "gzip"}
            self.send_response(status)
            for name, value in head.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(body)))
            self.send_header("x-request-id", f"req_{time.monotonic_ns():x}")
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_DELETE = do_GET

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def usage_events(events: Iterable[UsageEvent]) -> RecordedUsage:
    recorded = RecordedUsage()
    recorded.events.extend(events)
    return recorded
