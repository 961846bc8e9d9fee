"""One place where SpendScope's own failures go: logged once, counted, never raised into the app.

Under the test suite (`SPENDSCOPE_RAISE_INTERNAL_ERRORS=1`, set by tests/conftest.py) they are raised
instead, so a bug in SpendScope fails a test rather than hiding in a log.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable

_log = logging.getLogger("spendscope")
_logged: set[str] = set()

# Called with the place of each internal error; Telemetry points it at its counter.
ErrorCounter = Callable[[str], None]


def raise_internal_errors() -> bool:
    return os.environ.get("SPENDSCOPE_RAISE_INTERNAL_ERRORS", "").lower() in ("1", "true", "yes")


def internal_error(where: str, count: ErrorCounter | None = None) -> None:
    """Handle the exception being handled now (call from an `except` block)."""
    if raise_internal_errors():
        raise
    if where not in _logged:
        _logged.add(where)
        _log.exception("spendscope: internal error in %s; the call itself is unaffected", where)
    if count is not None:
        with contextlib.suppress(Exception):  # the counter is telemetry too
            count(where)
