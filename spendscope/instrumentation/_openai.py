"""The openai releases the instrumentation is tested with, and a warning when another one is installed.

The instrumentation wraps openai's resource methods and reads a few of its internals (`Stream._iterator`
and `Stream._iter_events`, `openai._response`, `openai._legacy_response`, a client's `_custom_headers`),
which openai may change in a minor release. Outside `SUPPORTED` it still runs, but may miss or misread
usage, so `instrument_openai` says so once. pyproject.toml's `openai` extra declares the same range (a
test checks that they agree).
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Final

_log = logging.getLogger("spendscope")

SUPPORTED: Final = ">=3.63,<3.64"

_VERSION = re.compile(r"(\d+(?:\.\d+)*)(.*)")
_FINAL_SUFFIX = re.compile(r"(\.?post\d*)?(\+.*)?")


def _key(text: str) -> tuple[tuple[int, ...], int] | None:
    """A version as (release padded to 3 parts, 0 for a pre-/dev release else 1); None if unreadable.
    Enough to order releases against `SUPPORTED`'s bounds the way PEP 440 does."""
    match = _VERSION.fullmatch(text.strip().lower())
    if match is None:
        return None
    release = tuple(int(part) for part in match.group(1).split("."))
    release += (0,) * (3 - len(release))
    final = 1 if _FINAL_SUFFIX.fullmatch(match.group(2)) else 0
    return release, final


def _bounds(spec: str) -> tuple[tuple[tuple[int, ...], int], tuple[tuple[int, ...], int]]:
    lower, upper = (part.strip() for part in spec.split(","))
    low, high = _key(lower.removeprefix(">=")), _key(upper.removeprefix("<"))
    assert low is not None and high is not None
    # `<X` excludes X's pre-releases too: compare against X's pre-release key.
    return low, (high[0], 0)


def supported(installed: str, spec: str = SUPPORTED) -> bool:
    """Whether `installed` satisfies `spec` (">=A,<B"); an unreadable version counts as unsupported."""
    key = _key(installed)
    if key is None:
        return False
    low, high = _bounds(spec)
    return low <= key < high


def installed_version() -> str | None:
    # Here, not at the top: importlib.metadata is slow to import, and `import spendscope` need not pay it.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("openai")
    except PackageNotFoundError:  # imported from a source tree, without metadata
        return None


class _Once:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.checked = False


_once = _Once()


def check_version() -> None:
    """Log one warning per process when the installed openai is outside `SUPPORTED`."""
    with _once.lock:
        if _once.checked:
            return
        _once.checked = True
    installed = installed_version()
    if installed is not None and not supported(installed):
        _log.warning(
            "spendscope: openai %s is installed; this spendscope is tested with openai%s, and with "
            "another release it may miss or misread usage (pip install 'spendscope[openai]' installs "
            "a tested one)",
            installed,
            SUPPORTED,
        )
