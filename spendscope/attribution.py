"""`spendscope.attributes(...)`: who and what an LLM call is for, carried in a context variable.

A context variable follows the code that runs in it: nested blocks (inner values win), asyncio tasks
(they copy the context when created) and threads started with `contextvars.copy_context().run`.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import MappingProxyType

AttributeValue = str | bool | int | float

_EMPTY: Mapping[str, AttributeValue] = MappingProxyType({})
_NO_QUANTITIES: Mapping[str, float] = MappingProxyType({})
# What the store accepts (clickhouse/migrations/0001_baseline.sql rejects a call with any other value,
# so an invalid quantity is left out here rather than lose its call).
QUANTITY_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")
QUANTITY_MAX = 1e15
_log = logging.getLogger("spendscope")


@dataclass(frozen=True, slots=True)
class Attribution:
    user: str | None = None
    endpoint: str | None = None
    tenant: str | None = None
    extra: Mapping[str, AttributeValue] = field(default_factory=lambda: _EMPTY)
    quantities: Mapping[str, float] = field(default_factory=lambda: _NO_QUANTITIES)


_NONE = Attribution()
_current: ContextVar[Attribution] = ContextVar("spendscope_attribution", default=_NONE)


def current() -> Attribution:
    """The attribution in force here (empty outside any `attributes` block)."""
    return _current.get()


def _value(value: object) -> AttributeValue:
    # Telemetry must never fail the app: anything that is not a span attribute type becomes its str().
    return value if isinstance(value, str | bool | int | float) else str(value)


def valid_quantities(quantities: Mapping[str, object]) -> dict[str, float]:
    """The quantities the store accepts: a name of letters, digits, `_ . -` (at most 128) and a number
    from 0 to 10^15; any other is left out with a warning (telemetry never fails the app)."""
    valid: dict[str, float] = {}
    for name, value in quantities.items():
        number = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
        if (
            not isinstance(name, str)
            or not QUANTITY_NAME.match(name)
            or number is None
            or not math.isfinite(number)
            or not 0 <= number <= QUANTITY_MAX
        ):
            _log.warning(
                "spendscope: quantity %r=%r left out: a name of letters, digits, _ . - and a number "
                "from 0 to 1e15",
                name,
                value,
            )
            continue
        valid[name] = number
    return valid


@contextmanager
def attributes(
    user: str | None = None,
    endpoint: str | None = None,
    tenant: str | None = None,
    *,
    quantities: Mapping[str, float] | None = None,
    **extra: object,
) -> Iterator[Attribution]:
    """Attach attribution to every LLM call made inside the block.

    `user` is the end user, `endpoint` the app's feature (for example ``"cv-parsing"``), `tenant` the
    customer; `extra` are free-form billing dimensions (``job_id="J-42"``). `quantities` are numbers
    that are not tokens, recorded on **each** call inside the block (``{"questions": 5}`` around the
    one call that writes five questions), summed by the store per tenant, job, endpoint and user.
    Values given here replace those of an enclosing block (per name for `extra` and `quantities`);
    values left out are inherited.
    """
    outer = _current.get()
    merged_extra: Mapping[str, AttributeValue] = outer.extra
    if extra:
        merged_extra = MappingProxyType({**outer.extra, **{k: _value(v) for k, v in extra.items()}})
    merged_quantities: Mapping[str, float] = outer.quantities
    if quantities:
        merged_quantities = MappingProxyType({**outer.quantities, **valid_quantities(quantities)})
    inner = Attribution(
        user=str(user) if user is not None else outer.user,
        endpoint=str(endpoint) if endpoint is not None else outer.endpoint,
        tenant=str(tenant) if tenant is not None else outer.tenant,
        extra=merged_extra,
        quantities=merged_quantities,
    )
    token = _current.set(inner)
    try:
        yield inner
    finally:
        _current.reset(token)
