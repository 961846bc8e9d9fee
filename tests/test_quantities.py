"""Quantities: numbers that are not tokens (questions written, CVs parsed), recorded with calls through
`spendscope.attributes(quantities=...)`, stored and summed by the store."""

from __future__ import annotations

import logging
import math

import openai
import pytest

import spendscope
from spendscope import names as n
from spendscope.attribution import current
from spendscope.demo.fake_openai import FakeOpenAI
from tests.conftest import Capture


def test_quantities_go_on_each_call_of_the_block(
    capture: Capture, server: FakeOpenAI, client: openai.OpenAI
) -> None:
    with spendscope.attributes(tenant="acme", quantities={"cvs_parsed": 1}):
        with spendscope.attributes(endpoint="question-generation", quantities={"questions": 5}):
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "q"}])
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "cv"}])
    first, second = (dict(span.attributes or {}) for span in capture.spans())
    assert first[n.QUANTITY_PREFIX + "questions"] == 5.0
    assert first[n.QUANTITY_PREFIX + "cvs_parsed"] == 1.0  # inherited from the enclosing block
    assert second[n.QUANTITY_PREFIX + "cvs_parsed"] == 1.0
    assert n.QUANTITY_PREFIX + "questions" not in second


def test_inner_quantity_replaces_outer_by_name() -> None:
    with spendscope.attributes(quantities={"a": 1, "b": 2}), spendscope.attributes(quantities={"b": 3.5}):
        assert dict(current().quantities) == {"a": 1.0, "b": 3.5}
    assert dict(current().quantities) == {}


@pytest.mark.parametrize(
    "bad",
    [{"x": -1}, {"x": math.nan}, {"x": math.inf}, {"x": 2e15}, {"x": "5"}, {"x": True}, {"": 1}, {"a b": 1}],
)
def test_a_quantity_the_store_would_refuse_is_left_out(
    bad: dict[str, object], caplog: pytest.LogCaptureFixture
) -> None:
    """The store rejects a whole call with an invalid quantity: it is left out instead, with a warning."""
    with (
        caplog.at_level(logging.WARNING, logger="spendscope"),
        spendscope.attributes(quantities={**bad, "ok": 2}),
    ):  # type: ignore[dict-item]
        assert dict(current().quantities) == {"ok": 2.0}
    assert "left out" in caplog.text
