"""Who a request is, and what it may see: the collector's access control (an ASGI middleware) and the
report source every route reads through.

A request is **open** while no token is configured (no `--token`, no token in the store): it sees
everything, as before tokens existed. Once one is, every route needs one of:

- `Authorization: Bearer <token>`: the collector's `--token`, or a token from the store
  (`spendscope tokens create`: admin, or tenant);
- the portal's sign-in cookie, set by signing in once at /login with such a token (signed with
  itsdangerous by Starlette's SessionMiddleware; it holds the token's id, never the token, and is
  checked against the tokens in force on every request, so the sign-ins of a revoked token end with it).

An admin token sees everything. A tenant token sees its tenant only: the reports API, the exports and
the pages read the store through `report_source`, which wraps it in `TenantScope` (spendscope/store/
scope.py), the one place the tenant filter is forced into every query; OTLP ingest, /metrics and
/healthz are an admin's (403). A page asked for without any credential answers with a redirect to
/login; every other refusal is a 401. While the store's tokens cannot be read (never read yet: the store
down since the collector started), OTLP ingest and /healthz answer as the collector's own token says
(open without one: spans are spooled), and what reads the store answers 503. The store's tokens are
read again at most every TOKENS_TTL_S seconds.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from spendscope.collector._api import ReportSource, StoreUnavailable
from spendscope.store.errors import StoreError
from spendscope.store.reports import ReportStore
from spendscope.store.scope import TenantScope
from spendscope.store.tokens import ADMIN, TENANT, TokenTable, list_tokens

PRINCIPAL = "spendscope.principal"
SESSION_KEY = "token"
COLLECTOR_TOKEN_ID = "collector"  # the cookie of someone who signed in with the collector's --token
TOKENS_TTL_S = 2.0
OPEN = "open"
# paths anyone may load: the sign-in page and the pages' own files
PUBLIC = ("/login", "/logout", "/static/", "/favicon.ico")
# the portal's pages: without any credential, a redirect to /login (every other path: a 401)
_PAGES = ("/", "/users", "/tenants", "/billing")
# what needs no store: OTLP ingest (spooled while the store is down) and health
_STORE_FREE = ("/v1/", "/healthz")
# paths a tenant token may not use at all
_ADMIN_ONLY = ("/v1/", "/metrics", "/healthz")

Deny = Callable[[Scope, int, str, dict[str, str] | None], Response]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: `kind` admin, tenant or open (no token configured); a tenant's `tenant`."""

    kind: str
    tenant: str = ""
    token_id: str = ""

    @property
    def admin(self) -> bool:
        return self.kind in (ADMIN, OPEN)


OPEN_PRINCIPAL = Principal(OPEN)


def principal_of(request: Request) -> Principal:
    found = request.scope.get(PRINCIPAL)
    return found if isinstance(found, Principal) else OPEN_PRINCIPAL


def report_source(request: Request) -> ReportSource:
    """The store this request may read: the whole store for an admin, its tenant's part for a tenant
    token (every named query scoped by TenantScope)."""
    base: ReportSource = request.app.state.reports
    principal = principal_of(request)
    if principal.admin:
        return base

    @contextmanager
    def lend() -> Iterator[ReportStore]:
        with base() as store:
            yield TenantScope(store, principal.tenant)

    return lend


def _fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:32]


class Tokens:
    """The tokens a collector accepts: its own `--token` and the store's, read again at most every
    `ttl` seconds. `table()` raises StoreUnavailable when the store's tokens were never read."""

    def __init__(self, source: ReportSource | None, collector_token: str | None, ttl: float = TOKENS_TTL_S):
        self._source = source
        self._collector = collector_token
        self._ttl = ttl
        self._table: TokenTable | None = None if source is not None else TokenTable({})
        self._read_at = float("-inf")
        self._lock = threading.Lock()

    def table(self) -> TokenTable:
        if self._source is not None and time.monotonic() - self._read_at >= self._ttl:
            with self._lock:
                if time.monotonic() - self._read_at >= self._ttl:
                    try:
                        with self._source() as store:
                            self._table = TokenTable.of(list_tokens(store))  # type: ignore[arg-type]
                        self._read_at = time.monotonic()
                    except (StoreUnavailable, StoreError):
                        if self._table is None:
                            raise
        assert self._table is not None
        return self._table

    def refresh(self) -> None:
        """Read the store's tokens on the next check (after a sign-in, a revocation)."""
        self._read_at = float("-inf")

    @property
    def own_token(self) -> bool:
        """Whether the collector has a token of its own (`--token`)."""
        return self._collector is not None

    def required(self, table: TokenTable) -> bool:
        return self._collector is not None or not table.empty

    def bearer(self, token: str, table: TokenTable) -> Principal | None:
        if self._collector is not None and hmac.compare_digest(token.encode(), self._collector.encode()):
            return Principal(ADMIN, token_id=COLLECTOR_TOKEN_ID)
        found = table.verify(token)
        if found is None:
            return None
        return Principal(found.kind, found.tenant if found.kind == TENANT else "", found.token_id)

    def session_value(self, principal: Principal) -> dict[str, str]:
        """What the sign-in cookie holds for `principal` (signed, not secret: never the token)."""
        if principal.token_id == COLLECTOR_TOKEN_ID and self._collector is not None:
            return {"id": COLLECTOR_TOKEN_ID, "fp": _fingerprint(self._collector)}
        return {"id": principal.token_id}

    def session(self, value: Any, table: TokenTable) -> Principal | None:
        """The principal of a sign-in cookie's value, if its token is still in force."""
        if not isinstance(value, dict) or not isinstance(value.get("id"), str):
            return None
        token_id = value["id"]
        if token_id == COLLECTOR_TOKEN_ID:
            same = self._collector is not None and hmac.compare_digest(
                str(value.get("fp", "")).encode(), _fingerprint(self._collector).encode()
            )
            return Principal(ADMIN, token_id=COLLECTOR_TOKEN_ID) if same else None
        found = table.get(token_id)
        if found is None:
            return None
        return Principal(found.kind, found.tenant if found.kind == TENANT else "", found.token_id)


class AccessControl:
    """Sets the request's Principal, or answers for it (401, 403, a redirect to /login, 503 when the
    store's tokens cannot be read). Runs inside Starlette's SessionMiddleware (scope["session"])."""

    def __init__(self, app: ASGIApp, tokens: Tokens, deny: Deny) -> None:
        self.app = app
        self.tokens = tokens
        self.deny = deny

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path: str = scope["path"]
        try:
            table = await run_in_threadpool(self.tokens.table)
        except (StoreUnavailable, StoreError) as exc:
            # The store's tokens were never read (the store is down since the start): OTLP ingest and
            # /healthz work as without tokens (unless the collector has a token of its own), so that
            # spans are spooled and health is told; what reads the store waits for it.
            if path.startswith(_STORE_FREE) and not self.tokens.own_token:
                scope[PRINCIPAL] = OPEN_PRINCIPAL
                return await self.app(scope, receive, send)
            if not path.startswith(_STORE_FREE):
                answer = self.deny(scope, 503, f"cannot check access tokens: {exc}", {"Retry-After": "5"})
                return await answer(scope, receive, send)
            table = TokenTable({})
        if not self.tokens.required(table):
            scope[PRINCIPAL] = OPEN_PRINCIPAL
            return await self.app(scope, receive, send)
        principal = self._principal(scope, table)
        if principal is None:
            if path.startswith(PUBLIC):
                return await self.app(scope, receive, send)
            tried = any(k == b"authorization" for k, _ in scope["headers"])
            page = path in _PAGES or path.startswith("/users/")
            if tried or not page or scope.get("method") not in ("GET", "HEAD"):
                answer = self.deny(
                    scope,
                    401,
                    "missing or wrong token (Authorization: Bearer ..., or sign in at /login)",
                    {"WWW-Authenticate": 'Bearer realm="spendscope"', "Connection": "close"},
                )
            else:
                target = path + (
                    f"?{scope['query_string'].decode('latin-1')}" if scope.get("query_string") else ""
                )
                answer = RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
            return await answer(scope, receive, send)
        if not principal.admin and path.startswith(_ADMIN_ONLY):
            answer = self.deny(scope, 403, "a tenant token reads its tenant's reports only", None)
            return await answer(scope, receive, send)
        scope[PRINCIPAL] = principal
        await self.app(scope, receive, send)

    def _principal(self, scope: Scope, table: TokenTable) -> Principal | None:
        header = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        if header is not None:
            scheme, _, token = header.decode("latin-1").partition(" ")
            if scheme.lower() != "bearer":
                return None
            return self.tokens.bearer(token.strip(), table)
        session = scope.get("session")
        return self.tokens.session(session.get(SESSION_KEY), table) if session else None
