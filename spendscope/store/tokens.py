"""Access tokens: an admin token sees everything, a tenant token its tenant only (the collector's
reports API and portal; `spendscope tokens create | list | revoke`).

    token = create(store, kind="tenant", tenant="acme")     # shown once: sst_3f9a1c2b_<secret>
    table = TokenTable.of(list_tokens(store))
    table.verify(token)                                      # -> the token's Token, or None

A token is `sst_<id>_<secret>`, the secret 32 random bytes (256 bits) from `secrets`. The store keeps
its id and the sha256 of the whole token, never the token: with that much entropy a plain hash cannot
be reversed, and checking it costs a microsecond on every request (a slow hash such as scrypt protects
guessable passwords, which these are not). The row is found by its id and the hashes compared with
`hmac.compare_digest`. Stored in the store (clickhouse/migrations/0003_access_tokens.sql), so that every
collector of a deployment sees the same tokens and a revocation reaches them all.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from spendscope.store.errors import ReportError

PREFIX = "sst_"
ADMIN, TENANT = "admin", "tenant"
_TOKEN = re.compile(r"^sst_([0-9a-f]{8})_([A-Za-z0-9_\-]{43})$")
_COLUMNS = ["token_id", "kind", "tenant", "sha256", "note", "created_at", "revoked_at", "updated_at"]


class TokenStore(Protocol):
    def run(self, name: str, params: Any) -> Any: ...

    def insert(self, table: str, rows: Sequence[Sequence[Any]], columns: Sequence[str]) -> None: ...


@dataclass(frozen=True, slots=True)
class Token:
    token_id: str
    kind: str  # admin | tenant
    tenant: str  # '' for an admin token
    sha256: str
    note: str
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def describe(self) -> dict[str, Any]:
        """What `tokens list` shows (never the hash)."""
        return {
            "id": self.token_id,
            "kind": self.kind,
            "tenant": self.tenant,
            "note": self.note,
            "created_at": self.created_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> tuple[str, str]:
    """(id, token): a fresh token and its id."""
    token_id = secrets.token_hex(4)
    return token_id, f"{PREFIX}{token_id}_{secrets.token_urlsafe(32)}"


@dataclass(frozen=True, slots=True)
class TokenTable:
    """The tokens in force, by id: what a collector checks requests against."""

    by_id: dict[str, Token]

    @classmethod
    def of(cls, tokens: Iterable[Token]) -> TokenTable:
        return cls({t.token_id: t for t in tokens if t.active})

    @property
    def empty(self) -> bool:
        return not self.by_id

    def verify(self, token: str) -> Token | None:
        """The active token `token` is, or None (a malformed, unknown, revoked or wrong one)."""
        match = _TOKEN.match(token)
        found = self.by_id.get(match.group(1)) if match else None
        expected = found.sha256 if found else "0" * 64
        # the hashes are compared whatever was found, in constant time
        same = hmac.compare_digest(digest(token).encode(), expected.encode())
        return found if found is not None and same else None

    def get(self, token_id: str) -> Token | None:
        return self.by_id.get(token_id)


def _now() -> datetime:
    """The time as the store keeps it (milliseconds)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def list_tokens(store: TokenStore) -> list[Token]:
    rows = store.run("access_tokens", {})
    return [Token(str(i), str(k), str(t), str(h), str(n), c, r) for i, k, t, h, n, c, r in rows.rows]


def create(store: TokenStore, *, kind: str, tenant: str = "", note: str = "") -> tuple[Token, str]:
    """A new token of `kind` (admin, or tenant for `tenant`): its row, and the token (shown once)."""
    if kind not in (ADMIN, TENANT):
        raise ReportError(f"unknown token kind {kind!r}: admin or tenant")
    if kind == TENANT and not tenant:
        raise ReportError("a tenant token needs a tenant")
    if kind == ADMIN and tenant:
        raise ReportError("an admin token sees every tenant: give no tenant")
    token_id, token = new_token()
    now = _now()
    row = Token(token_id, kind, tenant, digest(token), note, now, None)
    store.insert(
        "access_tokens",
        [[token_id, kind, tenant, row.sha256, note, now, None, now]],
        _COLUMNS,
    )
    return row, token


def revoke(store: TokenStore, token_id: str) -> Token:
    """Revoke the token `token_id` (its id, or the whole token): it stops working on the next check."""
    match = _TOKEN.match(token_id)
    wanted = match.group(1) if match else token_id
    found = next((t for t in list_tokens(store) if t.token_id == wanted), None)
    if found is None:
        raise ReportError(f"no token {wanted!r} (spendscope tokens list shows them)")
    if not found.active:
        return found
    now = _now()
    store.insert(
        "access_tokens",
        [[found.token_id, found.kind, found.tenant, found.sha256, found.note, found.created_at, now, now]],
        _COLUMNS,
    )
    return Token(found.token_id, found.kind, found.tenant, found.sha256, found.note, found.created_at, now)
