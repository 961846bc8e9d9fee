"""The portal's routes: server-rendered pages (Jinja2 through Starlette's templates), the sign-in, and
the pages' own files (StaticFiles). Every page reads the store through `report_source` (a tenant
token's pages see its tenant only) and answers with its server time in `Server-Timing`.

    GET  /                 overview: the UTC day, the month, a window; daily and monthly cost; endpoint x
                           model; calls of unknown cost; reconciliation and budgets (an admin's)
    GET  /users            every user, sorted, filtered and paged on the server
    GET  /users/{user}     one user's month, by model and by day
    GET  /tenants          provider and billed cost per tenant; per job (a billing dimension), a column
                           per endpoint
    GET  /billing          one tenant's month: per category, per job, billed cost, its CSV
    GET  /login, POST /login, POST /logout
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from spendscope.collector._access import SESSION_KEY, principal_of, report_source
from spendscope.collector._api import DEFAULT_SINCE, StoreUnavailable
from spendscope.portal import _format, _views
from spendscope.store import breakdowns
from spendscope.store.errors import ReportError, StoreError
from spendscope.store.reports import ReportStore, check_dimension, parse_where
from spendscope.store.scope import OutsideScope
from spendscope.store.times import parse_month, parse_range

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.filters.update(
    money=_format.money,
    number=_format.number,
    quantity_label=_format.quantity_label,
    usd_text=_format.usd_text,
)
templates.env.globals.update(cost_of=_format.cost_of, quantity_value=_format.quantity_value)
router = APIRouter(include_in_schema=False)
FILTERS = ("tenant", "endpoint", "model")
_TICK = timedelta(microseconds=1)
DEFAULT_DIMENSION = breakdowns.JOB_ROLLUP.removeprefix("attr:")  # the one the rollups hold per job
LOGIN_BODY_MAX = 4096


def mount(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")


def _page(
    request: Request, template: str, build: Callable[[ReportStore, datetime], dict[str, Any]]
) -> Response:
    """Render `template` with what `build` reads from the store this request may see; a bad parameter
    is the page with its error (400), an unavailable store a 503, a tenant's reach past itself a 403."""
    started = time.perf_counter()
    principal = principal_of(request)
    context: dict[str, Any] = {"principal": principal, "query": dict(request.query_params), "error": None}
    status = 200
    try:
        with report_source(request)() as store:
            context |= build(store, datetime.now(UTC))
    except ReportError as exc:
        context["error"], status = str(exc), 400
    except OutsideScope as exc:
        context["error"], status = str(exc), 403
    except (StoreUnavailable, StoreError) as exc:
        context["error"], status = f"store unavailable: {exc}", 503
    if context["error"] is not None:
        template = "error.html"
    response = templates.TemplateResponse(request, template, context, status_code=status)
    response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
    return response


def _window(params: Mapping[str, str], now: datetime, *, month: bool = False) -> tuple[datetime, datetime]:
    """The page's window: since and until, else the month so far (`month`), else the last 30 days."""
    if month and not params.get("since") and not params.get("until"):
        return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0), now
    return parse_range(params.get("since") or DEFAULT_SINCE, params.get("until") or None, now=now)


def _filters(params: Mapping[str, str]) -> dict[str, str]:
    return parse_where([f"{k}={params[k]}" for k in FILTERS if params.get(k)])


def _api_query(**values: Any) -> str:
    """A query string for an API link: lists repeat their key, empty values are left out."""
    pairs: list[tuple[str, str]] = []
    for key, value in values.items():
        for item in value if isinstance(value, list) else [value]:
            if item not in (None, ""):
                pairs.append((key, str(item)))
    return urlencode(pairs)


def _where_list(filters: Mapping[str, str]) -> list[str]:
    return [f"{k}={v}" for k, v in filters.items()]


@router.get("/", response_class=HTMLResponse)
def overview(request: Request) -> Response:
    params = request.query_params

    def build(store: ReportStore, now: datetime) -> dict[str, Any]:
        since, until = _window(params, now, month=True)
        filters = _filters(params)
        view = _views.overview(
            store,
            now=now,
            since=since,
            until=until,
            where=filters,
            admin=principal_of(request).admin,
            budgets=request.app.state.budgets,
        )
        window = {"since": since.isoformat(), "until": until.isoformat(), "where": _where_list(filters)}
        return {
            "view": view,
            "since": since,
            "until": until,
            "daily_chart": _format.chart(
                view.daily.as_dicts(), "day", first=since.date(), last=(until - _TICK).date()
            ),
            "monthly_chart": _format.chart(
                view.monthly.as_dicts(), "month", first=_views.first_month(now), last=now.date()
            ),
            "detailed_csv": "/api/usage/export.csv?" + _api_query(**window),
            "summary_csv": "/api/usage/report?" + _api_query(by="user", format="csv", **window),
            "filters": filters,
        }

    return _page(request, "overview.html", build)


@router.get("/users", response_class=HTMLResponse)
def users(request: Request) -> Response:
    params = request.query_params

    def build(store: ReportStore, now: datetime) -> dict[str, Any]:
        since, until = _window(params, now, month=True)
        filters = _filters(params)
        sort = params.get("sort") or "cost_usd"
        order = params.get("order") or "desc"
        if order not in ("asc", "desc"):
            raise ReportError(f"bad order {order!r}: asc or desc")
        page = _int(params.get("page"), 1, "page")
        size = _int(params.get("size"), 50, "size")
        if size not in _views.PAGE_SIZES:
            raise ReportError(f"bad size {size}: one of {', '.join(map(str, _views.PAGE_SIZES))}")
        search = params.get("search") or ""
        view = _views.users(
            store,
            since=since,
            until=until,
            where=filters,
            search=search,
            sort=sort,
            descending=order == "desc",
            page=page,
            size=size,
        )
        window = {"since": since.isoformat(), "until": until.isoformat(), "where": _where_list(filters)}
        base = {k: v for k, v in params.items() if k not in ("page",)}
        return {
            "view": view,
            "since": since,
            "until": until,
            "sort": sort,
            "order": order,
            "page": page,
            "size": size,
            "pages": max(1, -(-view.total // size)),
            "search": search,
            "filters": filters,
            "sorts": breakdowns.USER_SORTS,
            "sizes": _views.PAGE_SIZES,
            "link": lambda **changes: "/users?" + urlencode({**base, **changes}),
            "month": now.strftime("%Y-%m"),
            "detailed_csv": "/api/usage/export.csv?" + _api_query(**window),
            "summary_csv": "/api/usage/report?" + _api_query(by="user", format="csv", **window),
        }

    return _page(request, "users.html", build)


def _int(text: str | None, default: int, name: str) -> int:
    if not text:
        return default
    if not text.isdigit() or int(text) < 1:
        raise ReportError(f"bad {name} {text!r}: a whole number from 1")
    return int(text)


@router.get("/users/{user:path}", response_class=HTMLResponse)
def user_month(request: Request, user: str) -> Response:
    params = request.query_params

    def build(store: ReportStore, now: datetime) -> dict[str, Any]:
        month_text = params.get("month") or now.strftime("%Y-%m")
        month = parse_month(month_text)[0]
        view = _views.user_month(store, user=user, month=month)
        return {"user": user, "month": month_text, "view": view, "months": _months(now)}

    return _page(request, "user.html", build)


def _months(now: datetime) -> list[str]:
    out, year, month = [], now.year, now.month
    for _ in range(_views.MONTHS_SHOWN):
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return out


@router.get("/tenants", response_class=HTMLResponse)
def tenants(request: Request) -> Response:
    params = request.query_params

    def build(store: ReportStore, now: datetime) -> dict[str, Any]:
        if params.get("month"):
            first = parse_month(params["month"])[0]
            since, until = _month_window(first)
        else:
            since, until = _window(params, now, month=True)
        dimension = params.get("dimension") or DEFAULT_DIMENSION
        check_dimension(f"attr:{dimension}", option="dimension")
        view = _views.tenants(
            store, since=since, until=until, dimension=dimension, tenant=params.get("tenant", "")
        )
        window = {"since": since.isoformat(), "until": until.isoformat()}
        jobs = {"by": f"attr:{dimension}", "by2": "endpoint", "where": [f"tenant={view.tenant}"], **window}
        return {
            "view": view,
            "since": since,
            "until": until,
            "summary_csv": "/api/usage/billing?" + _api_query(by="tenant", format="csv", **window),
            "jobs_csv": "/api/usage/billing?" + _api_query(format="csv", **jobs),
            "detailed_csv": "/api/usage/export.csv?" + _api_query(where=[f"tenant={view.tenant}"], **window),
        }

    return _page(request, "tenants.html", build)


def _month_window(first: date) -> tuple[datetime, datetime]:
    from spendscope.store.reports import month_range

    return month_range(first)


@router.get("/billing", response_class=HTMLResponse)
def billing(request: Request) -> Response:
    params = request.query_params
    principal = principal_of(request)

    def build(store: ReportStore, now: datetime) -> dict[str, Any]:
        tenant = principal.tenant if not principal.admin else params.get("tenant", "")
        if not principal.admin and params.get("tenant") not in (None, "", tenant):
            raise OutsideScope(f"a tenant token for {tenant!r} sees that tenant only")
        if not tenant:
            names = [
                str(row[0])
                for row in breakdowns.billing(
                    store,
                    by="tenant",
                    since=now.replace(day=1, hour=0, minute=0, second=0, microsecond=0),
                    until=now,
                ).rows
            ]
            tenant = names[0] if names else ""
        month_text = params.get("month") or now.strftime("%Y-%m")
        month = parse_month(month_text)[0]
        dimension = params.get("dimension") or DEFAULT_DIMENSION
        check_dimension(f"attr:{dimension}", option="dimension")
        view = _views.billing(store, tenant=tenant, month=month, dimension=dimension, now=now)
        scope = {"month": month_text, "where": [f"tenant={tenant}"]}
        since, until = _month_window(month)
        return {
            "view": view,
            "dimension": dimension,
            "month_text": month_text,
            "categories_csv": "/api/usage/billing?" + _api_query(by="endpoint", format="csv", **scope),
            "jobs_csv": "/api/usage/billing?"
            + _api_query(by=f"attr:{dimension}", by2="endpoint", format="csv", **scope),
            "detailed_csv": "/api/usage/export.csv?"
            + _api_query(since=since.isoformat(), until=until.isoformat(), where=[f"tenant={tenant}"]),
        }

    return _page(request, "billing.html", build)


@router.get("/favicon.ico")
def favicon() -> Response:
    """What browsers ask for on pages without an icon of their own (the API's JSON)."""
    from fastapi.responses import FileResponse

    return FileResponse(HERE / "static" / "favicon.svg", media_type="image/svg+xml")


# --- signing in ------------------------------------------------------------------------------------------
@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request) -> Response:
    return templates.TemplateResponse(
        request,
        "login.html",
        {"next": _next(request.query_params.get("next")), "error": None, "principal": None},
    )


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    from urllib.parse import parse_qs

    length = request.headers.get("content-length", "")
    if not length.isdigit() or int(length) > LOGIN_BODY_MAX:
        return Response("a token form of at most 4 KiB, with its Content-Length", status_code=413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > LOGIN_BODY_MAX:
            return Response("a token form of at most 4 KiB", status_code=413)
    text = body.decode("utf-8", "replace")
    try:
        form = {k: v[0] for k, v in parse_qs(text, max_num_fields=4).items()}
    except ValueError:
        return Response("a token form: token and next", status_code=400)
    tokens = request.app.state.tokens
    table = await run_in_threadpool(tokens.table)
    principal = tokens.bearer(form.get("token", "").strip(), table)
    target = _next(form.get("next"))
    if principal is None:
        context = {"next": target, "error": "That token is not valid.", "principal": None}
        return templates.TemplateResponse(request, "login.html", context, status_code=401)
    request.session.clear()
    request.session[SESSION_KEY] = tokens.session_value(principal)
    if not principal.admin and target == "/":
        target = "/billing"
    return RedirectResponse(target, status_code=303)


@router.post("/logout")
def logout(request: Request) -> Response:
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


def _next(target: str | None) -> str:
    """Where to go after signing in: a path on this site only (never //host or a scheme)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
