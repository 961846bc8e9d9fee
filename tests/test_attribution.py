from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

from spendscope import attributes
from spendscope.attribution import Attribution, current


def test_nesting_inner_values_win_and_outer_ones_are_inherited() -> None:
    with attributes(user="u1", endpoint="cv-parsing", tenant="acme", job_id="J1"):
        with attributes(endpoint="question-generation", step=2):
            inner = current()
        outer = current()
    assert inner == Attribution("u1", "question-generation", "acme", {"job_id": "J1", "step": 2})
    assert outer == Attribution("u1", "cv-parsing", "acme", {"job_id": "J1"})
    assert current() == Attribution()


def test_non_primitive_extra_values_become_strings() -> None:
    with attributes(when=object.__new__(object).__class__):
        assert current().extra == {"when": "<class 'object'>"}


def test_threads_started_with_the_context_see_it_others_do_not() -> None:
    seen: dict[str, Attribution] = {}
    with attributes(user="u2", tenant="t2"):
        ctx = contextvars.copy_context()
        with_ctx = threading.Thread(target=lambda: ctx.run(lambda: seen.__setitem__("with", current())))
        without = threading.Thread(target=lambda: seen.__setitem__("without", current()))
        for t in (with_ctx, without):
            t.start()
            t.join()
    assert seen["with"] == Attribution(user="u2", tenant="t2")
    assert seen["without"] == Attribution()


@pytest.mark.anyio
async def test_asyncio_tasks_keep_their_own_attribution() -> None:
    async def job(user: str) -> Attribution:
        with attributes(user=user):
            await asyncio.sleep(0.01)  # interleave the tasks
            return current()

    with attributes(tenant="acme"):
        results = await asyncio.gather(job("a"), job("b"), job("c"))
    assert [(r.user, r.tenant) for r in results] == [("a", "acme"), ("b", "acme"), ("c", "acme")]
