"""The collector's HTTP app (FastAPI on Starlette): OTLP/HTTP, /metrics, /healthz, the reports API
with its OpenAPI description (/openapi.json) and a docs page (/docs, server-rendered: no asset comes
from anywhere else).

    POST /v1/traces, /v1/metrics   OTLP/HTTP (plain Starlette routes, left out of the OpenAPI document)
    GET  /metrics                  Prometheus text: the apps' re-exposed metrics and the collector's own
    GET  /healthz                  {"status": "ok" | "degraded", "store": "up" | "down", ...}
    GET  /api/usage/...            the reports API (_api.py)
    GET  /, /users, /tenants, /billing, ...   the portal's pages (spendscope/portal/), /login

Middleware, outermost first: the request counter (`spendscope_collector_requests_total` by route and
status), the portal's signed cookie (Starlette's SessionMiddleware), then access control (_access.py:
the collector's token and the store's tokens, on every route, known or not, once one is configured; a
tenant token reads its tenant only). Bodies: the OTLP routes take one of at most `max_body_bytes` (413
on its Content-Length before it is read, and once decompressed; 411 without a length: _receive.py);
POST /login one of at most 4 KiB (the portal's _pages.py); every other route is a GET and reads none.
Errors under /api/ and /healthz are {"error": "one line"}; elsewhere google.rpc.Status, as OTLP/HTTP
wants.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spendscope import portal
from spendscope.collector import _access, _api, _docs, _otlp
from spendscope.collector._receive import Admitted, Receiver, Reply, error
from spendscope.store.reports import ReportStore

if TYPE_CHECKING:
    from spendscope.collector._collector import Collector

TITLE = "SpendScope collector"
_JSON_ERRORS = (_api.PREFIX + "/", "/healthz")


def error_answer(scope: Scope, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """An error in the form of the path's API: {"error": ...} for reports and health, else
    google.rpc.Status, in protobuf for a protobuf request and in JSON otherwise."""
    if scope["path"].startswith(_JSON_ERRORS):
        return _api.error_response(status, message, headers)
    content_type = next((v for k, v in scope["headers"] if k == b"content-type"), b"").decode("latin-1")
    kind = _otlp.PROTOBUF if content_type.split(";")[0].strip().lower() == _otlp.PROTOBUF else _otlp.JSON
    reply = error(status, message, kind)
    return Response(reply.body, status, headers, media_type=reply.content_type)


# --- middleware -------------------------------------------------------------------------------------------
class RequestCounter:
    """Counts answers by route (its path template, so user ids stay out) and status code; a request
    no route took (an unknown path, or refused before routing) counts under its path if that is one
    of `paths`, else as "other"."""

    def __init__(self, app: ASGIApp, collector: Collector, paths: frozenset[str]) -> None:
        self.app = app
        self._counter = collector.health.requests
        self._paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def counting(message: Message) -> None:
            if message["type"] == "http.response.start":
                self._counter.labels(self._label(scope), str(message["status"])).inc()
            await send(message)

        await self.app(scope, receive, counting)

    def _label(self, scope: Scope) -> str:
        route = scope.get("route")
        template = getattr(route, "path_format", None) or getattr(route, "path", None)
        if template:
            return str(template)
        return scope["path"] if scope["path"] in self._paths else "other"


# --- the app ----------------------------------------------------------------------------------------------
def reports_app(
    reports: _api.ReportSource,
    token: str | None = None,
    *,
    store_tokens: bool = True,
    session_secret: str | None = None,
    budgets: Path | None = None,
) -> FastAPI:
    """The reports API, its description (/openapi.json, /docs) and the portal's pages over `reports`,
    behind `token` and the store's access tokens (unless not `store_tokens`); the portal's cookie is
    signed with `session_secret` (None: a random key), and its overview lists the budgets of the
    `budgets` file at or over their warning."""
    app = FastAPI(
        telemetry={"tracing": False, "metrics": False, "logs": False},  # not of the collector's own requests
        title=TITLE,
        summary="Usage and cost reports of the calls SpendScope has collected.",
        version=_version(),
        docs_url=None,
        redoc_url=None,
    )
    app.state.reports = reports
    app.state.budgets = budgets
    app.include_router(_api.router)

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(_docs.page(app.openapi()))

    tokens = _access.Tokens(reports if store_tokens else None, token)
    app.state.tokens = tokens
    portal.mount(app)
    app.openapi = _with_security(app, token is not None)  # type: ignore[method-assign]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _bad_parameter)  # type: ignore[arg-type]
    app.add_middleware(_access.AccessControl, tokens=tokens, deny=error_answer)
    portal.add_session(app, session_secret)
    return app


def make_app(collector: Collector, registry: CollectorRegistry) -> FastAPI:
    """The collector's app: `reports_app` over its store, with OTLP, /metrics and /healthz."""
    config = collector.config
    receiver = Receiver(
        collector.pipeline,
        collector.metrics,
        collector.health,
        config.max_body_bytes,
        config.limits,
        decoders=config.decoders,
    )
    secret = config.session_secret.get_secret_value() if config.session_secret is not None else None
    app = reports_app(_lender(collector), config.token, session_secret=secret, budgets=collector.budgets)
    for path, handle in (("/v1/traces", receiver.traces), ("/v1/metrics", receiver.metrics_points)):
        app.add_route(path, _otlp_endpoint(receiver, handle), methods=["POST"], include_in_schema=False)

    @app.get("/metrics", include_in_schema=False)
    def scrape(request: Request) -> Response:
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encoder(registry), headers={"Content-Type": content_type})

    @app.get("/healthz", include_in_schema=False)
    def health() -> Response:
        up = collector.pipeline.store_up
        refused = collector.spool.refused()
        waiting = collector.spool.files
        log_error = collector.wal.last_error
        body = {
            "status": "ok" if up and not waiting and not refused and not log_error else "degraded",
            "store": "up" if up else "down",
            "store_error": "" if up else collector.store.last_error,
            "queue_spans": collector.pipeline.queued_spans,
            "spool_batches": waiting,
            "spool_bytes": collector.spool.bytes,
            "refused_spans": refused,
            "write_ahead_log": log_error or "ok",
        }
        return Response(json.dumps(body), media_type="application/json")

    paths = frozenset(str(getattr(route, "path", "")) for route in app.router.routes)
    app.add_middleware(RequestCounter, collector=collector, paths=paths)
    return app


def _otlp_endpoint(
    receiver: Receiver, handle: Callable[[bytes, str, str | None], Reply]
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        admitted = receiver.admit(request.headers)
        if not isinstance(admitted, Admitted):
            return _response(admitted)
        try:
            chunks = [chunk async for chunk in request.stream()]
            body = b"".join(chunks)
            del chunks  # one copy of the body while it is decoded
            if len(body) < admitted.length:  # the client went away mid-body
                return Response(status_code=400, headers={"Connection": "close"})
            encoding = request.headers.get("content-encoding")
            # decoding is CPU work: off the event loop, which keeps serving other connections. The
            # body is handed over in a parcel the call empties: a worker thread keeps the arguments
            # of its last call until its next one, and an idle one would keep the body.
            parcel = [body]
            del body
            reply = await run_in_threadpool(_unpack, handle, parcel, admitted.kind, encoding)
        except ClientDisconnect:
            return Response(status_code=400, headers={"Connection": "close"})
        finally:
            receiver.release(admitted)
        return _response(reply)

    return endpoint


def _unpack(
    handle: Callable[[bytes, str, str | None], Reply], parcel: list[bytes], kind: str, encoding: str | None
) -> Reply:
    return handle(parcel.pop(), kind, encoding)


def _response(reply: Reply) -> Response:
    headers = dict(reply.headers)
    if reply.close:
        headers["Connection"] = "close"
    return Response(reply.body, reply.status, headers, media_type=reply.content_type)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    path = request.url.path
    if exc.status_code == 404:
        message = f"no such endpoint {path!r}"
    elif exc.status_code == 405:
        message = f"{path} takes {(exc.headers or {}).get('Allow', 'another method')}"
    else:
        message = str(exc.detail)
    return error_answer(
        request.scope, exc.status_code, message, {**(exc.headers or {}), "Connection": "close"}
    )


async def _bad_parameter(request: Request, exc: RequestValidationError) -> Response:
    """FastAPI's 422 as the API's 400: one line naming the parameter."""
    first = exc.errors()[0]
    name = str(first["loc"][-1])
    if first.get("type") == "missing":
        return _api.error_response(400, f"parameter {name} is required")
    return _api.error_response(400, f"bad {name} {first.get('input')!r}: {first.get('msg', 'invalid')}")


def _lender(collector: Collector) -> _api.ReportSource:
    """The reports' store: a connection of their own (not the writers'), shared by the reports that
    run at once."""
    from spendscope.collector._handle import StoreUnavailable

    @contextmanager
    def lend() -> Iterator[ReportStore]:
        try:
            with collector.reports.lent() as store:
                yield store
        except StoreUnavailable as exc:
            raise _api.StoreUnavailable(str(exc)) from exc

    return lend


def _with_security(app: FastAPI, token: bool) -> Callable[[], dict[str, Any]]:
    """The OpenAPI document, with the bearer scheme (required when the collector has a token)."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = plain()
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer"}
            }
            schema["security"] = [{"bearer": []}] if token else [{}, {"bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    return openapi


def _version() -> str:
    from spendscope._version import __version__

    return str(__version__)
