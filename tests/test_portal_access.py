"""Access to the collector's reports API and portal: admin and tenant tokens from the store (hashed),
the collector's own token, the cookie of a browser that signed in once, revocation; and a
tenant token trying to reach another tenant through every route and parameter. A real collector on a
real store (chdb), over HTTP."""

from __future__ import annotations

import csv
import io
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from spendscope.collector import Collector, CollectorConfig
from spendscope.store import Store
from spendscope.store import tokens as t
from tests.store_fixtures import fresh_store, llm_record, priced_at

NOW = datetime.now(UTC).replace(microsecond=0)
COLLECTOR_TOKEN = "the-collectors-own-token"
# Everything that is beta's and only beta's: no answer to acme's token may hold any of it.
BETA = {"tenant": "beta", "users": ["b-user-1", "b-user-2"], "endpoint": "beta-screening", "job": "J-BETA"}
BETA_VALUES = ["beta", *BETA["users"], BETA["endpoint"], BETA["job"]]


class Answer:
    def __init__(self, status: int, body: bytes, headers: Any) -> None:
        self.status, self.body, self.headers = status, body, headers

    @property
    def text(self) -> str:
        return self.body.decode()

    def json(self) -> Any:
        return json.loads(self.body)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(NoRedirect)


def get(
    url: str, token: str | None = None, *, cookie: str | None = None, data: bytes | None = None
) -> Answer:
    headers = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if cookie is not None:
        headers["Cookie"] = cookie
    request = urllib.request.Request(
        url, data=data, headers=headers, method="POST" if data is not None else "GET"
    )
    try:
        with _opener.open(request, timeout=60) as response:
            return Answer(response.status, response.read(), response.headers)
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, exc.read(), exc.headers)


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory, server_dsn: str, _store_admin: Store
) -> Iterator[dict[str, Any]]:
    """A collector with two tenants' calls, an admin token, a token for acme and one for beta."""
    at = NOW - timedelta(minutes=30)
    records = [
        llm_record(
            at,
            user="a-user-1",
            endpoint="cv-parsing",
            tenant="acme",
            extra={"job_id": "J-ACME"},
            **priced_at("0.25"),
        ),
        llm_record(
            at,
            user="a-user-2",
            endpoint="cv-parsing",
            tenant="acme",
            extra={"job_id": "J-ACME"},
            **priced_at("0.5"),
        ),
    ]
    records += [
        llm_record(
            at,
            user=user,
            endpoint=BETA["endpoint"],
            tenant="beta",
            extra={"job_id": BETA["job"]},
            **priced_at("1.5"),
        )
        for user in BETA["users"]
    ]
    with fresh_store(server_dsn, _store_admin) as store:
        store.insert_spans(records)
        _, admin = t.create(store, kind=t.ADMIN)
        _, acme = t.create(store, kind=t.TENANT, tenant="acme")
        _, beta = t.create(store, kind=t.TENANT, tenant="beta")
        config = CollectorConfig.resolve(
            listen="127.0.0.1:0",
            store=f"{server_dsn}/{store.database}",
            spool=str(tmp_path_factory.mktemp("spool")),
            token=COLLECTOR_TOKEN,
        )
        with Collector(config, store=store) as collector:
            yield {"url": collector.url, "admin": admin, "acme": acme, "beta": beta, "store": store}


def _q(path: str, **params: Any) -> str:
    pairs = [
        (k, v) for k, values in params.items() for v in (values if isinstance(values, list) else [values])
    ]
    return f"{path}?{urllib.parse.urlencode(pairs)}" if pairs else path


# Every route, and every parameter that names a tenant, a user, a job or an endpoint, pointed at beta.
ATTEMPTS = [
    _q("/api/usage/summary", by="tenant"),
    _q("/api/usage/summary", by="user", where="tenant=beta"),
    _q("/api/usage/summary", by="attr:job_id", where=f"attr:job_id={BETA['job']}"),
    _q("/api/usage/summary", by="endpoint", where=f"endpoint={BETA['endpoint']}"),
    _q("/api/usage/stats"),
    _q("/api/usage/stats", where="tenant=beta"),
    _q("/api/usage/users"),
    _q("/api/usage/users", where="tenant=beta", limit=100),
    _q("/api/usage/users", search="b-user"),
    _q(f"/api/usage/users/{BETA['users'][0]}"),
    _q("/api/usage/endpoints"),
    _q("/api/usage/endpoints", where="tenant=beta"),
    _q("/api/usage/daily", by="tenant"),
    _q("/api/usage/daily", by="user", where="tenant=beta"),
    _q("/api/usage/monthly", by="tenant"),
    _q("/api/usage/monthly", where="tenant=beta"),
    _q("/api/usage/breakdown", by="tenant", by2="user"),
    _q("/api/usage/breakdown", by="endpoint", by2="model", where="tenant=beta"),
    _q("/api/usage/billing", by="tenant"),
    _q("/api/usage/billing", by="attr:job_id", by2="endpoint", where="tenant=beta"),
    _q("/api/usage/billing", by="user", format="csv"),
    _q("/api/usage/billing", by="tenant", month=NOW.strftime("%Y-%m"), format="csv"),
    _q("/api/usage/export.csv"),
    _q("/api/usage/export.csv", where="tenant=beta"),
    _q("/api/usage/export.csv", where=f"user={BETA['users'][0]}"),
    _q("/api/usage/report", by="tenant"),
    _q("/api/usage/report", by="user", where="tenant=beta", format="csv"),
    _q("/api/usage/report", by="attr:job_id", format="csv"),
    _q("/"),
    _q("/", tenant="beta"),
    _q("/users"),
    _q("/users", tenant="beta", search="b-user"),
    _q(f"/users/{BETA['users'][0]}"),
    _q("/tenants"),
    _q("/tenants", tenant="beta"),
    _q("/billing"),
    _q("/billing", tenant="beta"),
]


@pytest.mark.parametrize("path", ATTEMPTS)
def test_a_tenant_token_never_sees_another_tenant(site: dict[str, Any], path: str) -> None:
    answer = get(site["url"] + path, site["acme"])
    assert answer.status in (200, 403), (answer.status, answer.text[:300])
    asked = urllib.parse.unquote(path)
    leaked = [value for value in BETA_VALUES if value not in asked and value in answer.text]
    assert leaked == [], f"{path}: {leaked} in {answer.text[:500]}"
    # not in any data row, even where the request named it
    if answer.status == 200 and answer.headers.get_content_type() == "application/json":
        body = answer.json()
        rows = (
            body.get("rows", [])
            if "rows" in body
            else [list(w.values()) for w in body.values() if isinstance(w, dict)]
        )
        assert not any(value in json.dumps(rows) for value in BETA_VALUES), rows
    for user in BETA["users"]:
        assert f'data-user="{user}"' not in answer.text
    if answer.status == 200 and path.startswith("/api/usage/export.csv"):
        tenants = {row["tenant"] for row in csv.DictReader(io.StringIO(answer.text))}
        assert tenants <= {"acme"}


def test_what_acme_sees_is_acme(site: dict[str, Any]) -> None:
    """The positive side: the same routes give acme's own figures."""
    stats = get(site["url"] + "/api/usage/stats", site["acme"]).json()
    assert stats["window"]["calls"] == 2 and stats["window"]["cost_usd"] == "0.75"
    admin = get(site["url"] + "/api/usage/stats", site["admin"]).json()
    assert admin["window"]["calls"] == 4 and admin["window"]["cost_usd"] == "3.75"
    rows = get(site["url"] + "/api/usage/summary?by=tenant", site["acme"]).json()["rows"]
    assert [row[0] for row in rows] == ["acme"]
    export = get(site["url"] + "/api/usage/export.csv", site["acme"]).text
    assert len(list(csv.DictReader(io.StringIO(export)))) == 2
    beta = get(site["url"] + "/api/usage/summary?by=user", site["beta"]).json()["rows"]
    assert sorted(row[0] for row in beta) == BETA["users"]


@pytest.mark.parametrize("path", ["/v1/traces", "/v1/metrics", "/metrics", "/healthz"])
def test_ingest_metrics_and_health_are_an_admins(site: dict[str, Any], path: str) -> None:
    data = b"" if path.startswith("/v1/") else None
    assert get(site["url"] + path, site["acme"], data=data).status == 403
    assert get(site["url"] + path, site["admin"], data=data).status != 403
    assert get(site["url"] + path, COLLECTOR_TOKEN, data=data).status != 403


def test_a_tenant_is_refused_an_admins_reports(site: dict[str, Any]) -> None:
    invoice_of_beta = get(site["url"] + "/api/usage/billing?by=tenant&where=tenant=beta", site["acme"])
    assert invoice_of_beta.status == 200 and invoice_of_beta.json()["rows"] == []


@pytest.mark.parametrize("token", [None, "wrong", "sst_00000000_" + "A" * 43, "Basic abc"])
def test_without_a_valid_token_the_api_says_401_and_a_page_sends_to_sign_in(
    site: dict[str, Any], token: str | None
) -> None:
    api = get(site["url"] + "/api/usage/stats", token)
    assert api.status == 401 and "error" in api.json()
    page = get(site["url"] + "/users?sort=user", token)
    if token is None:  # a browser that has not signed in: to the sign-in page, and back
        assert page.status == 303 and page.headers["Location"] == "/login?next=%2Fusers%3Fsort%3Duser"
    else:  # a wrong credential is refused, page or not
        assert page.status == 401
    assert get(site["url"] + "/nowhere", token).status == 401
    assert get(site["url"] + "/login").status == 200
    assert get(site["url"] + "/static/portal.css").status == 200


def _sign_in(url: str, token: str, next_path: str = "/") -> tuple[Answer, str]:
    body = urllib.parse.urlencode({"token": token, "next": next_path}).encode()
    answer = get(url + "/login", data=body)
    cookie = answer.headers.get("Set-Cookie", "")
    return answer, cookie.split(";")[0]


def test_signing_in_sets_a_secure_http_only_cookie_that_revocation_ends(site: dict[str, Any]) -> None:
    url = site["url"]
    refused, cookie = _sign_in(url, "not-a-token")
    assert refused.status == 401 and cookie == ""
    row, acme = t.create(site["store"], kind=t.TENANT, tenant="acme")
    time.sleep(2.5)  # the collector reads the store's tokens at most every 2 s
    answer, cookie = _sign_in(url, acme)
    assert answer.status == 303 and answer.headers["Location"] == "/billing"
    attributes = answer.headers["Set-Cookie"].lower()
    assert "httponly" in attributes and "secure" in attributes and "samesite=lax" in attributes
    assert acme not in answer.headers["Set-Cookie"]  # the cookie holds the token's id, not the token
    page = get(url + "/billing", cookie=cookie)
    assert page.status == 200 and 'id="billing-tenant">acme<' in page.text
    assert get(url + "/api/usage/summary?by=tenant", cookie=cookie).json()["rows"][0][0] == "acme"
    t.revoke(site["store"], row.token_id)
    time.sleep(2.5)
    assert get(url + "/billing", cookie=cookie).status == 303
    assert get(url + "/api/usage/stats", acme).status == 401
    assert get(url + "/api/usage/stats", site["acme"]).status == 200  # acme's other token still works


def test_sign_in_goes_back_to_this_site_only(site: dict[str, Any]) -> None:
    for target, expected in [
        ("/users?page=2", "/users?page=2"),
        ("//evil.example/", "/"),
        ("https://evil.example", "/"),
    ]:
        answer, _ = _sign_in(site["url"], site["admin"], target)
        assert answer.headers["Location"] == expected


def test_the_collector_token_still_works_and_sessions_too(site: dict[str, Any]) -> None:
    assert get(site["url"] + "/api/usage/stats", COLLECTOR_TOKEN).status == 200
    answer, cookie = _sign_in(site["url"], COLLECTOR_TOKEN)
    assert answer.status == 303 and get(site["url"] + "/tenants", cookie=cookie).status == 200


def test_tokens_are_stored_hashed(site: dict[str, Any]) -> None:
    stored = site["store"].query("SELECT * FROM access_tokens").rows
    text = json.dumps(stored, default=str)
    assert site["acme"] not in text and site["admin"] not in text
    assert t.digest(site["acme"]) in text


def test_without_any_token_everything_is_open(tmp_path: Path, store_dsn: str, store: Store) -> None:
    config = CollectorConfig.resolve(listen="127.0.0.1:0", store=store_dsn, spool=str(tmp_path / "spool"))
    with Collector(config, store=store) as collector:
        assert get(collector.url + "/").status == 200
        assert get(collector.url + "/api/usage/stats").status == 200
        _, token = t.create(store, kind=t.TENANT, tenant="acme")
        time.sleep(2.5)
        assert get(collector.url + "/api/usage/stats").status == 401  # one token: every route needs one
        assert get(collector.url + "/api/usage/stats", token).status == 200
