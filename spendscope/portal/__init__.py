"""The usage portal: the admin pages and each tenant's billing page, served by the collector itself
(server-rendered, every asset local: nothing from elsewhere, works offline).

    mount(app)         the pages, the sign-in and /static on the collector's app (_pages.py)
    add_session(app, secret)   the signed cookie the browser keeps after signing in once

The sign-in cookie is signed (itsdangerous, through Starlette's SessionMiddleware) with the collector's
`session_secret` setting (SPENDSCOPE_SESSION_SECRET), else a random key per process (a restart then
signs everyone out, and each collector behind a load balancer needs the same secret). It is HttpOnly,
Secure (browsers keep it on https and on http://localhost and 127.0.0.1 only) and SameSite=Lax, and
lasts SESSION_MAX_AGE_S.
"""

from __future__ import annotations

import secrets

from fastapi import FastAPI
from starlette.middleware.sessions import SessionMiddleware

from spendscope.portal._pages import mount

SESSION_COOKIE = "spendscope_session"
SESSION_MAX_AGE_S = 12 * 3600


def add_session(app: FastAPI, secret: str | None = None) -> None:
    """The signed sign-in cookie, signed with `secret`, else with a random key."""
    app.add_middleware(
        SessionMiddleware,
        secret_key=secret or secrets.token_urlsafe(32),
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_MAX_AGE_S,
        same_site="lax",
        https_only=True,
    )


__all__ = ["SESSION_COOKIE", "add_session", "mount"]
