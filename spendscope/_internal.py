"""One place where SpendScope's own failures go: logged once, counted, never raised into the app.

With the instrumentation's `raise_internal_errors` setting (SPENDSCOPE_RAISE_INTERNAL_ERRORS=1, set by
tests/conftest.py) they are raised instead, so a bug in SpendScope fails a test rather than hiding in a
log. The setting is read with the others when instrumenting (spendscope/settings/app.py), so an
error costs no reading of the environment.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Protocol

_log = logging.getLogger("spendscope")
_logged: set[str] = set()


class ErrorSink(Protocol):
    """Where an internal error is counted (a `Telemetry`), and whether it is raised instead."""

    raise_internal_errors: bool

    def count_error(self, where: str) -> None: ...


def internal_error(where: str, sink: ErrorSink | None = None) -> None:
    """Handle the exception being handled now (call from an `except` block)."""
    if sink is not None and sink.raise_internal_errors:
        raise
    if where not in _logged:
        _logged.add(where)
        _log.exception("spendscope: internal error in %s; the call itself is unaffected", where)
    if sink is not None:
        with contextlib.suppress(Exception):  # the counter is telemetry too
            sink.count_error(where)
