"""The reconciler's errors: one readable line each, never carrying the admin key."""

from __future__ import annotations

import re

ADMIN_KEY_ENV = "OPENAI_ADMIN_KEY"
_SECRET = re.compile(r"\b(sk-[A-Za-z0-9_\-]{2})[A-Za-z0-9_\-*.]*")


class ReconcileError(Exception):
    """The reconciliation could not run or complete; nothing was written as a complete result."""


class AdminKeyError(ReconcileError):
    """No admin key, or OpenAI refused it (401/403)."""


class FetchError(ReconcileError):
    """The Usage or Costs API could not be read to the end (the fetch is partial)."""


def scrub(text: str) -> str:
    """`text` with anything that looks like an OpenAI key cut to its first characters."""
    return _SECRET.sub(r"\1…", text)


def admin_key_message(status: int | None = None, detail: str = "") -> str:
    refused = f"OpenAI refused the admin key (HTTP {status}): " if status else ""
    why = f" ({scrub(detail)})" if detail else ""
    return (
        f"{refused}the organization Usage and Costs APIs need an OpenAI *admin* key: set {ADMIN_KEY_ENV} to "
        "an admin key (sk-admin-..., created by an organization owner under Settings > Organization > "
        f"Admin keys); project and user keys (sk-proj-..., sk-...) are not accepted{why}"
    )
