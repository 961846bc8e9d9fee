"""ClickHouse fixtures (owned by the store work; see spendscope/store). A pytest plugin (conftest.py).

One local store server (spendscope/store/server.py) for the whole test process, on a temporary
directory, started and stopped here; every store test reaches it over HTTP, as it would a ClickHouse
server. Tests are isolated by database:

    store_dir       (session) the server's data directory
    store_server    (session) the server (its `ServerState`)
    server_dsn      (session) "http://127.0.0.1:<port>" (no database)
    store           a fresh, migrated database on it, as an open `Store`; dropped after the test
    fresh_store(server_dsn, _store_admin)  the same as a context manager, for module-scoped fixtures
    store_database  a fresh, migrated database's name, for code that opens its own Store
                    (open_store(server_dsn, database=store_database)); dropped after the test
    store_dsn       the same database as a DSN: "http://127.0.0.1:<port>/<name>"

A test that starts store servers of its own (a collector or a command on a directory under
`tmp_path`) has them stopped after it. `llm_record(at, ...)` builds a GenAI SpanRecord as our
instrumentation's spans look once stored; `serve_reports(store, token)` serves the collector's reports
API from a store. `span_record(span)` turns an OpenTelemetry SDK span into the SpanRecord the
collector would build for it, converting values as the contrib `clickhouse` exporter does (see
spendscope/store/records.py).
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan

from spendscope import names as n
from spendscope.collector._app import reports_app
from spendscope.collector._server import HttpServer
from spendscope.store import SpanEvent, SpanLink, SpanRecord, Store, open_store, server


@pytest.fixture(scope="session")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("store")


@pytest.fixture(scope="session")
def store_server(store_dir: Path) -> Iterator[server.ServerState]:
    state = server.start(store_dir).state
    yield state
    server.stop(store_dir)


@pytest.fixture(scope="session")
def server_dsn(store_server: server.ServerState) -> str:
    return store_server.url


@pytest.fixture(scope="session")
def _store_admin(server_dsn: str) -> Iterator[Store]:
    """Drops the per-test databases."""
    admin = open_store(server_dsn, database="default")
    yield admin
    admin.close()


@contextmanager
def fresh_store(server_dsn: str, admin: Store) -> Iterator[Store]:
    """A new, migrated database on the shared server, dropped on exit (for wider-scoped fixtures)."""
    store = open_store(server_dsn, database=f"t_{uuid.uuid4().hex[:16]}", migrate=True)
    try:
        yield store
    finally:
        store.close()
        admin.command(f"DROP DATABASE IF EXISTS `{store.database}` SYNC")


@pytest.fixture
def _fresh_store(server_dsn: str, _store_admin: Store) -> Iterator[Store]:
    with fresh_store(server_dsn, _store_admin) as opened:
        yield opened


@pytest.fixture
def store(_fresh_store: Store) -> Store:
    return _fresh_store


@pytest.fixture
def store_database(_fresh_store: Store) -> str:
    """The database of `store` (the same one when a test asks for both)."""
    return _fresh_store.database


@pytest.fixture
def store_dsn(server_dsn: str, store_database: str) -> str:
    return f"{server_dsn}/{store_database}"


@pytest.fixture(autouse=True)
def _store_servers_stopped(request: pytest.FixtureRequest) -> Iterator[None]:
    """Stops the store servers a test started under its `tmp_path` (a collector or a command on a
    directory there starts one, and it keeps running)."""
    tmp = request.getfixturevalue("tmp_path") if "tmp_path" in request.fixturenames else None
    yield
    for lock in tmp.rglob(server.LOCK_FILE) if tmp is not None else ():
        server.stop(lock.parent)


# --- the collector's report API, as the collector serves it ---------------------------------------------
@contextmanager
def serve_reports(
    store: Store, token: str | None = None, *, session_secret: str | None = None, budgets: Path | None = None
) -> Iterator[str]:
    """The collector's reports API (`/api/usage/...`, the collector's own app over `store`, without
    the rest of the collector) on 127.0.0.1; yields the base URL."""
    app = reports_app(lambda: nullcontext(store), token, session_secret=session_secret, budgets=budgets)
    server = HttpServer(app, "127.0.0.1", 0)
    server.start()
    try:
        yield f"http://127.0.0.1:{server.address[1]}"
    finally:
        server.stop()


# --- spans as the collector would store them -----------------------------------------------------------
_ids = itertools.count(1)


def llm_record(
    at: datetime,
    *,
    model: str = "gpt-4o-mini-2024-07-18",
    user: str = "u-1",
    endpoint: str = "chat",
    tenant: str = "acme",
    service: str = "app",
    input_tokens: int = 100,
    output_tokens: int = 20,
    cached: int = 0,
    cost: str | None = "0.000027",
    state: str = n.USAGE_STATE_REPORTED,
    error: str | None = None,
    tier: str = "default",
    extra: Mapping[str, str] | None = None,
) -> SpanRecord:
    """A GenAI span as our instrumentation writes it (attribute names from spendscope.names)."""
    attrs = {
        n.OPERATION_NAME: n.OP_CHAT,
        n.PROVIDER_NAME: n.PROVIDER_OPENAI,
        n.REQUEST_MODEL: model.split("-20")[0],
        n.RESPONSE_MODEL: model,
        n.OPENAI_API_TYPE: "chat_completions",
        n.OPENAI_RESPONSE_SERVICE_TIER: tier,
        n.USER_ID: user,
        n.ENDPOINT: endpoint,
        n.TENANT: tenant,
        n.USAGE_STATE: state,
        **{n.EXTRA_PREFIX + k: v for k, v in (extra or {}).items()},
    }
    if state == n.USAGE_STATE_REPORTED:
        attrs |= {
            n.USAGE_INPUT_TOKENS: str(input_tokens),
            n.USAGE_OUTPUT_TOKENS: str(output_tokens),
            n.USAGE_CACHE_READ_INPUT_TOKENS: str(cached),
            n.USAGE_REASONING_OUTPUT_TOKENS: "0",
        }
        if cost is not None:
            attrs |= {n.COST_USD: cost, n.PRICE_VERSION: "test"}
    if error is not None:
        attrs[n.ERROR_TYPE] = error
    number = next(_ids)
    return SpanRecord(
        # up to 1,000 calls a second keep distinct times, below a microsecond: read back, the time is `at`
        timestamp_ns=int(at.timestamp()) * 1_000_000_000 + number % 1000,
        trace_id=f"{number:032x}",
        span_id=f"{number:016x}",
        parent_span_id="",
        trace_state="",
        span_name=f"chat {model}",
        span_kind="Client",
        service_name=service,
        resource_attributes={"service.name": service},
        scope_name="spendscope",
        scope_version="test",
        span_attributes=attrs,
        duration_ns=1_000_000,
        status_code="Error" if error else "Unset",
        status_message=error or "",
    )


# The model `priced_at` uses: $2 per million input tokens, $8 per million output tokens.
PRICED_MODEL = "gpt-4.1-2025-04-14"


def priced_at(cost: str) -> dict[str, Any]:
    """llm_record arguments for a call the store prices at exactly `cost` dollars (at most $1,000,
    in units of $0.000002), whose client sent that cost too."""
    units = int(Decimal(cost) * 500_000)  # of $0.000002: an input token; an output token is 4
    assert units == Decimal(cost) * 500_000, cost
    output = min(100_000_000, units // 4)
    return {"model": PRICED_MODEL, "input_tokens": units - 4 * output, "output_tokens": output, "cost": cost}


# --- SDK spans as the collector would store them --------------------------------------------------------
def exporter_string(value: Any) -> str:
    """`pcommon.Value.AsString()` of an attribute value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value == 0 or 1e-6 <= abs(value) < 1e21:
            return format(Decimal(repr(value)).normalize(), "f")
        mantissa, _, exponent = repr(value).partition("e")
        return f"{mantissa}e{exponent[0]}{exponent[1:].lstrip('0') or '0'}"
    if isinstance(value, str):
        return value
    return json.dumps(list(value), separators=(",", ":"))


def _strings(attributes: Mapping[str, Any] | None) -> dict[str, str]:
    return {k: exporter_string(v) for k, v in (attributes or {}).items()}


def span_record(span: ReadableSpan) -> SpanRecord:
    context = span.get_span_context()
    assert context is not None and span.start_time is not None and span.end_time is not None
    resource = _strings(span.resource.attributes)
    scope = span.instrumentation_scope
    return SpanRecord(
        timestamp_ns=span.start_time,
        trace_id=format(context.trace_id, "032x"),
        span_id=format(context.span_id, "016x"),
        parent_span_id=format(span.parent.span_id, "016x") if span.parent else "",
        trace_state=context.trace_state.to_header(),
        span_name=span.name,
        span_kind=span.kind.name.capitalize(),
        service_name=resource.get("service.name", ""),
        resource_attributes=resource,
        scope_name=scope.name if scope else "",
        scope_version=(scope.version or "") if scope else "",
        span_attributes=_strings(span.attributes),
        duration_ns=span.end_time - span.start_time,
        status_code=span.status.status_code.name.capitalize(),
        status_message=span.status.description or "",
        events=[SpanEvent(e.timestamp, e.name, _strings(e.attributes)) for e in span.events],
        links=[
            SpanLink(
                format(link.context.trace_id, "032x"),
                format(link.context.span_id, "016x"),
                link.context.trace_state.to_header(),
                _strings(link.attributes),
            )
            for link in span.links
        ],
    )
