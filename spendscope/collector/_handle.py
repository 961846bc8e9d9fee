"""The collector's access to the store: opened lazily (and again after failures), one operation at a
time per handle. Each writer thread has its own handle (its own connection), so batches are inserted
side by side."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, BinaryIO, Protocol

from spendscope.collector._rawwrite import RawWritten, write_requests
from spendscope.store.records import SpanRecord

# The settings the SQL decoder needs (ClickHouse 25.x on): without them batches take the Python one.
_SQL_SETTINGS = (
    "format_schema_source",
    "format_schema_message_name",
    "input_format_protobuf_oneof_presence",
    "input_format_max_block_size_bytes",
)


class Store(Protocol):
    """What the collector uses of `spendscope.store.Store` (and `insert_select`, where it has it)."""

    def insert_spans(self, records: Sequence[SpanRecord]) -> None: ...

    def run(self, name: str, params: Mapping[str, Any]) -> Any: ...

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> Any: ...

    def write_csv(self, name: str, params: Mapping[str, Any], out: BinaryIO) -> None: ...

    def close(self) -> None: ...


class StoreUnavailable(Exception):
    """The store could not be opened or used; details in the message."""


class StoreHandle:
    """Opens the store lazily (and again after failures) and serializes access to it."""

    def __init__(self, opener: Callable[[], Store], *, owned: bool = True, sql_min_spans: int = 0) -> None:
        """`sql_min_spans`: raw batches smaller than this are decoded in Python (see _rawwrite.py)."""
        self._opener = opener
        self._owned = owned
        self.sql_min_spans = sql_min_spans
        self._store: Store | None = None
        self._sql: bool | None = None  # whether the open store decodes OTLP in SQL
        self.lock = threading.RLock()
        self.last_error = ""

    def get(self) -> Store:
        """The open store; opens it if needed. Call with `lock` held."""
        if self._store is None:
            try:
                self._store = self._opener()
            except Exception as exc:
                self.last_error = _one_line(exc)
                raise StoreUnavailable(self.last_error) from exc
            self._sql = None
        return self._store

    def insert(self, records: Sequence[SpanRecord]) -> None:
        with self.lock:
            store = self.get()
            try:
                store.insert_spans(records)
            except Exception as exc:
                self.last_error = _one_line(exc)
                raise StoreUnavailable(self.last_error) from exc

    def insert_requests(self, requests: Sequence[bytes], spans: Sequence[int]) -> RawWritten:
        """Insert raw OTLP requests (see _rawwrite.py): by SQL where the store can, else in Python."""
        with self.lock:
            store = self.get()
            try:
                return write_requests(
                    store,  # type: ignore[arg-type]
                    requests,
                    spans,
                    use_sql=self._decodes_sql(store),
                    sql_min_spans=self.sql_min_spans,
                )
            except Exception as exc:
                self.last_error = _one_line(exc)
                raise StoreUnavailable(self.last_error) from exc

    def _decodes_sql(self, store: Store) -> bool:
        if self._sql is None:
            sql = False
            if hasattr(store, "insert_select"):
                names = ", ".join(f"'{name}'" for name in _SQL_SETTINGS)
                # (raises if the store fails: the batch is then spooled, never decided on a guess)
                rows = store.query(f"SELECT count() FROM system.settings WHERE name IN ({names})").rows
                sql = int(rows[0][0]) == len(_SQL_SETTINGS)
            self._sql = sql
        return self._sql

    def answers(self) -> bool:
        """Whether the store opens and answers a trivial query (this tells a down store from a
        refused batch)."""
        with self.lock:
            try:
                self.get().query("SELECT 1")
            except Exception as exc:
                if not isinstance(exc, StoreUnavailable):
                    self.last_error = _one_line(exc)
                return False
        return True

    def close(self) -> None:
        with self.lock:
            if self._store is not None and self._owned:
                self._store.close()
            self._store = None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
