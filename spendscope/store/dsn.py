"""Where the store lives: a DSN, parsed without I/O.

    ./spendscope-data                           a directory: the local store server for it
                                                (spendscope/store/server.py; made absolute)
    chdb:///abs/path/to/dir[?database=NAME]     the same
    http(s)://user:pass@host:8123/DATABASE      a ClickHouse server

Explicit value > SPENDSCOPE_STORE > ./spendscope-data. The database defaults to `spendscope`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from spendscope.settings import DEFAULT_STORE, STORE_ENV
from spendscope.store.errors import StoreError

DEFAULT_DATABASE = "spendscope"
_CHDB = "chdb://"
_DATABASE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_EXAMPLES = "a directory, chdb:///path/to/dir, or http(s)://user:pass@host:8123/database"


@dataclass(frozen=True, slots=True)
class Target:
    """A parsed store DSN: the ClickHouse server to connect to (or the data directory whose local
    server to connect to), and the database to use there."""

    dsn: str  # a server's URL for clickhouse_connect.get_client(dsn=...), without the database; "" if local
    database: str
    directory: Path | None = None  # a local store: its data directory

    @property
    def local(self) -> bool:
        return self.directory is not None

    def describe(self) -> str:
        """The target for messages, password hidden."""
        if self.directory is not None:
            return f"{self.directory} (database {self.database})"
        parts = urlsplit(self.dsn)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        user = f"{parts.username}@" if parts.username else ""
        return f"{parts.scheme}://{user}{host}{port}/{self.database}"


def _database(name: str | None, source: str) -> str:
    if not name:
        return DEFAULT_DATABASE
    if not _DATABASE_NAME.match(name):
        raise StoreError(f"bad database name {name!r} in {source}: use letters, digits and _")
    return name


def parse_dsn(
    dsn: str | None = None,
    *,
    database: str | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Target:
    """Parse `dsn` (or SPENDSCOPE_STORE, or the default); `database` overrides the DSN's."""
    env = os.environ if environ is None else environ
    text = (dsn if dsn is not None else env.get(STORE_ENV) or DEFAULT_STORE).strip()
    if not text:
        raise StoreError(f"empty store DSN: use {_EXAMPLES}")
    base = cwd or Path.cwd()
    if text.startswith(_CHDB) or "://" not in text:
        location, _, query = text.removeprefix(_CHDB).partition("?")
        params = dict(parse_qsl(query))
        unknown = sorted(set(params) - {"database"})
        if unknown:
            raise StoreError(f"bad store DSN {text!r}: unknown option(s) {', '.join(unknown)}")
        location = unquote(location)
        if location in ("", "memory", ":memory:"):
            raise StoreError(f"bad store DSN {text!r}: give the data directory, e.g. {_CHDB}/var/lib/x")
        path = Path(location).expanduser()
        path = Path(os.path.normpath(path if path.is_absolute() else base / path))
        if path.exists() and not path.is_dir():
            raise StoreError(f"bad store DSN {text!r}: {path} is a file, not a data directory")
        return Target("", _database(database or params.get("database"), text), path)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise StoreError(f"bad store DSN {_hide_password(text)!r}: use {_EXAMPLES}")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise StoreError(f"bad store DSN {_hide_password(text)!r}: bad port") from None
    path_db = unquote(parts.path.strip("/"))
    options = dict(parse_qsl(parts.query))
    query_db = options.pop("database", None)
    stripped = urlunsplit((parts.scheme, parts.netloc, "", urlencode(options), ""))
    return Target(stripped, _database(database or path_db or query_db, _hide_password(text)))


def _hide_password(text: str) -> str:
    return re.sub(r"(//[^:/@]*):[^@/]*@", r"\1:***@", text)
