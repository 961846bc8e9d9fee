"""`spendscope.attributes(...)`: who and what an LLM call is for, carried in a context variable.

A context variable follows the code that runs in it: nested blocks (inner values win), asyncio tasks
(they copy the context when created) and threads started with `contextvars.copy_context().run`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import MappingProxyType

AttributeValue = str | bool | int | float

_EMPTY: Mapping[str, AttributeValue] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Attribution:
    user: str | None = None
    endpoint: str | None = None
    tenant: str | None = None
    extra: Mapping[str, AttributeValue] = field(default_factory=lambda: _EMPTY)


_NONE = Attribution()
_current: ContextVar[Attribution] = ContextVar("spendscope_attribution", default=_NONE)


def current() -> Attribution:
    """The attribution in force here (empty outside any `attributes` block)."""
    return _current.get()


def _value(value: object) -> AttributeValue:
    # Telemetry must never fail the app: anything that is not a span attribute type becomes its str().
    return value if isinstance(value, str | bool | int | float) else str(value)


@contextmanager
def attributes(
    user: str | None = None,
    endpoint: str | None = None,
    tenant: str | None = None,
    **extra: object,
) -> Iterator[Attribution]:
    """Attach attribution to every LLM call made inside the block.

    `user` is the end user, `endpoint` the app's feature (for example ``"cv-parsing"``), `tenant` the
    customer; `extra` are free-form billing dimensions (``job_id="J-42"``). Values given here replace
    those of an enclosing block; values left out are inherited.
    """
    outer = _current.get()
    merged_extra: Mapping[str, AttributeValue] = outer.extra
    if extra:
        merged_extra = MappingProxyType({**outer.extra, **{k: _value(v) for k, v in extra.items()}})
    inner = Attribution(
        user=str(user) if user is not None else outer.user,
        endpoint=str(endpoint) if endpoint is not None else outer.endpoint,
        tenant=str(tenant) if tenant is not None else outer.tenant,
        extra=merged_extra,
    )
    token = _current.set(inner)
    try:
        yield inner
    finally:
        _current.reset(token)
