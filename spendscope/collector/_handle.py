"""The collector's access to the store: opened lazily, and anew after a failure (a local store's
server may have been started again, on another port), one operation at a time per handle. Each writer
thread has its own handle (its own connection), so batches are inserted side by side; the reports and
the rollup builder have theirs."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any, BinaryIO, Protocol

from spendscope.store.errors import StoreError
from spendscope.store.records import SpanRecord


class Store(Protocol):
    """What the collector uses of `spendscope.store.Store`."""

    def insert_spans(self, records: Sequence[SpanRecord]) -> None: ...

    def run(self, name: str, params: Mapping[str, Any]) -> Any: ...

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> Any: ...

    def write_csv(self, name: str, params: Mapping[str, Any], out: BinaryIO) -> None: ...

    def close(self) -> None: ...


class StoreUnavailable(Exception):
    """The store could not be opened or used; details in the message."""


class StoreHandle:
    """Opens the store lazily (and again after failures) and serializes access to it."""

    def __init__(self, opener: Callable[[], Store], *, owned: bool = True) -> None:
        self._opener = opener
        self._owned = owned
        self._store: Store | None = None
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
        return self._store

    def insert(self, records: Sequence[SpanRecord]) -> None:
        with self.lock:
            store = self.get()
            try:
                store.insert_spans(records)
            except Exception as exc:
                self.last_error = _one_line(exc)
                raise StoreUnavailable(self.last_error) from exc

    def answers(self) -> bool:
        """Whether the store opens and answers a trivial query (this tells a down store from a
        refused batch). A connection that fails is dropped and the store opened anew, once."""
        with self.lock:
            for _ in range(2):
                reopened = self._store is None
                try:
                    self.get().query("SELECT 1")
                    return True
                except StoreUnavailable:
                    return False
                except Exception as exc:
                    self.last_error = _one_line(exc)
                    self._drop()
                if reopened:
                    break
        return False

    @contextmanager
    def lent(self) -> Iterator[Store]:
        """The store for one operation that may run beside others on it (a report): opened under the
        lock, used without it. If the operation fails on the store, the next one opens it anew."""
        with self.lock:
            store = self.get()
        try:
            yield store
        except StoreError:
            with self.lock:
                if self._store is store:
                    self._store = None  # not closed: another operation may be using it
            raise

    def _drop(self) -> None:
        if self._store is not None and self._owned:
            with suppress(Exception):  # closing a broken connection: nothing to keep
                self._store.close()
        self._store = None

    def close(self) -> None:
        with self.lock:
            self._drop()


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
