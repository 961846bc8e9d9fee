"""The collector's access to the store: opened lazily, and anew after a failure (a local store's
server may have been started again, on another port), one operation at a time per handle. Each writer
thread has its own handle (its own connection), so batches are inserted side by side; the reports and
the rollup builder have theirs."""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any, BinaryIO, Protocol

from clickhouse_connect.driver.exceptions import DataError

from spendscope.store.errors import StoreError
from spendscope.store.records import SpanRecord


class Store(Protocol):
    """What the collector uses of `spendscope.store.Store`."""

    def insert_spans(self, records: Sequence[SpanRecord]) -> None: ...

    def run(self, name: str, params: Mapping[str, Any]) -> Any: ...

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> Any: ...

    def write_csv(self, name: str, params: Mapping[str, Any], out: BinaryIO) -> None: ...

    def close(self) -> None: ...


# ClickHouse errors that say the store cannot take a batch now, whatever the batch holds: the batch is
# kept and written again once they pass. (Codes from ClickHouse's src/Common/ErrorCodes.cpp.)
RESOURCE_ERRORS = frozenset(
    {
        3,  # UNEXPECTED_END_OF_FILE (a connection cut)
        74, 75, 76, 77,  # CANNOT_{READ_FROM,WRITE_TO}_FILE_DESCRIPTOR, CANNOT_{OPEN,CLOSE}_FILE
        159, 160,  # TIMEOUT_EXCEEDED, TOO_SLOW
        164,  # READONLY
        202, 203,  # TOO_MANY_SIMULTANEOUS_QUERIES, NO_FREE_CONNECTION
        209, 210,  # SOCKET_TIMEOUT, NETWORK_ERROR
        236,  # ABORTED
        241,  # MEMORY_LIMIT_EXCEEDED
        242,  # TABLE_IS_READ_ONLY
        243,  # NOT_ENOUGH_SPACE
        252,  # TOO_MANY_PARTS
        319,  # UNKNOWN_STATUS_OF_INSERT
        394,  # QUERY_WAS_CANCELLED
        425,  # SYSTEM_ERROR
        439,  # CANNOT_SCHEDULE_TASK
        473,  # DEADLOCK_AVOIDED
    }
)  # fmt: skip
# Raised while encoding a batch's values for the insert (by clickhouse-connect: DataError, the
# struct.error under it): the batch's content.
_CONTENT_TYPES: tuple[type[BaseException], ...] = (
    ValueError,
    TypeError,
    OverflowError,
    ArithmeticError,
    struct.error,
    DataError,
)


class StoreUnavailable(Exception):
    """The store could not be opened or used; details in the message. `content`: the store refused
    the batch for what it holds (a value it cannot take), so sending it again cannot succeed; otherwise
    the failure is the store's (down, full, overloaded) and the batch waits for it. `reason`: a short
    name for the failure (ClickHouse's error name, or the exception's type)."""

    def __init__(self, message: str, *, content: bool = False, reason: str = "unavailable") -> None:
        super().__init__(message)
        self.content = content
        self.reason = reason


def classify(exc: BaseException) -> StoreUnavailable:
    """`exc` from an insert, as a StoreUnavailable that says whose fault it was."""
    for cause in _chain(exc):
        code = getattr(cause, "code", None)
        if isinstance(code, int) and code > 0:  # a ClickHouse error (clickhouse-connect's Error.code)
            name = str(getattr(cause, "name", None) or f"code {code}")
            return StoreUnavailable(_one_line(exc), content=code not in RESOURCE_ERRORS, reason=name)
    for cause in _chain(exc):
        if isinstance(cause, OSError):
            return StoreUnavailable(_one_line(exc), reason=type(cause).__name__)
        if isinstance(cause, _CONTENT_TYPES):
            return StoreUnavailable(_one_line(exc), content=True, reason=type(cause).__name__)
    return StoreUnavailable(_one_line(exc), reason=type(_chain(exc)[-1]).__name__)  # the root cause


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


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
                failure = classify(exc)
                self.last_error = str(failure)
                raise failure from exc

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
