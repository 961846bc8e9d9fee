"""The private parts of openai and opentelemetry-exporter-prometheus that SpendScope relies on, each
checked on its own, so that a release that moves one fails here with a message naming it (the
behaviour tests fail too, but say less). pyproject.toml keeps both packages in a tested range."""

from __future__ import annotations

import importlib
from importlib.metadata import version
from typing import Any

import openai
import pytest
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from spendscope.demo.fake_openai import FakeOpenAI
from spendscope.instrumentation import background, batches, realtime
from spendscope.instrumentation.endpoints import METHODS
from tests.conftest import API_KEY, make_client

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}


def moved(internal: str, used_by: str) -> str:
    return (
        f"openai {version('openai')}: {internal} moved or changed; {used_by} relies on it "
        "(adapt it, or keep openai in the range pyproject.toml's openai extra declares)"
    )


PATCHED = [
    *((module, cls, attribute) for module, cls, attribute, _ in METHODS),
    *((module, cls, attribute) for module, cls, attribute, _ in realtime.PATCHES),
    *((module, cls, attribute) for module, cls, attribute, _ in batches.PATCHES),
    *((module, cls, attribute) for module, cls, attribute, _ in background.PATCHES),
]


@pytest.mark.parametrize(("module", "cls", "attribute"), PATCHED, ids=lambda part: str(part))
def test_the_wrapped_methods_are_where_the_instrumentation_patches_them(
    module: str, cls: str, attribute: str
) -> None:
    owner = getattr(importlib.import_module(module), cls, None)
    assert callable(getattr(owner, attribute, None)), moved(
        f"{module}.{cls}.{attribute}",
        "spendscope/instrumentation/instrumentation.py (Instrumentation._patches)",
    )


def test_raw_responses_are_legacy_api_responses_with_a_cached_parse(server: FakeOpenAI) -> None:
    from openai._legacy_response import LegacyAPIResponse

    with make_client(server) as client:
        raw = client.chat.completions.with_raw_response.create(**CHAT)
        used_by = "spendscope/instrumentation/calls.py (with_raw_response)"
        assert isinstance(raw, LegacyAPIResponse), moved("openai._legacy_response.LegacyAPIResponse", used_by)
        assert raw.parse() is raw.parse(), moved("LegacyAPIResponse.parse() caching", used_by)


def test_streaming_responses_are_api_responses_whose_parse_can_be_wrapped(server: FakeOpenAI) -> None:
    from openai._response import APIResponse

    used_by = "spendscope/instrumentation/calls.py (with_streaming_response)"
    with (
        make_client(server) as client,
        client.chat.completions.with_streaming_response.create(**CHAT) as response,
    ):
        assert isinstance(response, APIResponse), moved("openai._response.APIResponse", used_by)
        parse = response.parse
        response.parse = lambda **kwargs: ("wrapped", parse(**kwargs))
        assert response.parse()[0] == "wrapped", moved("APIResponse.parse as an instance attribute", used_by)


@pytest.mark.anyio
async def test_async_streaming_responses_are_async_api_responses(aclient: openai.AsyncOpenAI) -> None:
    from openai._response import AsyncAPIResponse

    used_by = "spendscope/instrumentation/calls.py (with_streaming_response)"
    async with aclient.chat.completions.with_streaming_response.create(**CHAT) as response:
        assert isinstance(response, AsyncAPIResponse), moved("openai._response.AsyncAPIResponse", used_by)
        await response.parse()


def test_a_stream_iterates_its_iterator_and_reads_events_through_iter_events(server: FakeOpenAI) -> None:
    used_by = "spendscope/instrumentation/streams.py and background.py"
    with make_client(server) as client:
        stream: Any = client.chat.completions.create(**CHAT, stream=True)
        assert isinstance(stream, openai.Stream), moved("openai.Stream", used_by)
        assert hasattr(stream, "_iterator"), moved("openai.Stream._iterator", used_by)
        assert callable(getattr(openai.Stream, "_iter_events", None)), moved(
            "openai.Stream._iter_events", used_by
        )
        # The events are looked up on the instance when iteration starts, and items come from _iterator.
        events = stream._iter_events
        seen: list[Any] = []
        stream._iter_events = lambda: (seen.append(event) or event for event in events())
        chunks = list(stream)
        assert chunks and len(seen) >= len(chunks), moved(
            "openai.Stream reading self._iter_events()", used_by
        )
        stream = client.chat.completions.create(**CHAT, stream=True)
        stream._iterator = iter(["replaced"])
        assert list(stream) == ["replaced"], moved("openai.Stream iterating self._iterator", used_by)
        stream.close()


@pytest.mark.anyio
async def test_an_async_stream_iterates_its_iterator_and_reads_events_through_iter_events(
    aclient: openai.AsyncOpenAI,
) -> None:
    used_by = "spendscope/instrumentation/streams.py and background.py"
    stream: Any = await aclient.chat.completions.create(**CHAT, stream=True)
    assert isinstance(stream, openai.AsyncStream), moved("openai.AsyncStream", used_by)
    assert hasattr(stream, "_iterator"), moved("openai.AsyncStream._iterator", used_by)
    assert callable(getattr(openai.AsyncStream, "_iter_events", None)), moved(
        "openai.AsyncStream._iter_events", used_by
    )
    events = stream._iter_events
    seen: list[Any] = []

    async def counted() -> Any:
        async for event in events():
            seen.append(event)
            yield event

    stream._iter_events = counted
    chunks = [chunk async for chunk in stream]
    assert chunks and len(seen) >= len(chunks), moved(
        "openai.AsyncStream reading self._iter_events()", used_by
    )

    async def replaced() -> Any:
        yield "replaced"

    stream = await aclient.chat.completions.create(**CHAT, stream=True)
    stream._iterator = replaced()
    assert [item async for item in stream] == ["replaced"], moved(
        "openai.AsyncStream iterating self._iterator", used_by
    )
    await stream.close()


def test_a_client_keeps_its_default_headers_in_custom_headers() -> None:
    client = openai.OpenAI(
        api_key=API_KEY, base_url="http://127.0.0.1:9/v1", default_headers={"OpenAI-Project": "p"}
    )
    with client:
        headers = getattr(client, "_custom_headers", None)
        assert headers == {"OpenAI-Project": "p"}, moved(
            "OpenAI._custom_headers", "spendscope/instrumentation/client_info.py (the project header)"
        )


# --- opentelemetry-exporter-prometheus ------------------------------------------------------------------
def exporter_moved(internal: str) -> str:
    return (
        f"opentelemetry-exporter-prometheus {version('opentelemetry-exporter-prometheus')}: {internal} moved or "
        "changed; spendscope/collector/_metrics.py translates the collector's metrics with it (adapt it, or "
        "keep the exporter in the minor pyproject.toml allows)"
    )


def test_the_prometheus_exporter_translation_is_where_the_collector_uses_it() -> None:
    prometheus = importlib.import_module("opentelemetry.exporter.prometheus")
    mapping = importlib.import_module("opentelemetry.exporter.prometheus._mapping")
    collector_class = getattr(prometheus, "_CustomCollector", None)
    assert collector_class is not None, exporter_moved("opentelemetry.exporter.prometheus._CustomCollector")
    sanitize = getattr(mapping, "sanitize_attribute", None)
    assert callable(sanitize), exporter_moved("opentelemetry.exporter.prometheus._mapping.sanitize_attribute")
    assert sanitize("service.version") == "service_version", exporter_moved("_mapping.sanitize_attribute")

    scope = InstrumentationScope("spendscope", "1.0", None, {"team": "a"})
    assert collector_class()._build_scope_attrs(scope) == {
        "otel_scope_team": "a",
        "otel_scope_name": "spendscope",
        "otel_scope_version": "1.0",
        "otel_scope_schema_url": "",
    }, exporter_moved("_CustomCollector._build_scope_attrs")

    try:
        translator = collector_class(disable_target_info=True, scope_info_enabled=False)
    except TypeError as exc:
        pytest.fail(exporter_moved(f"_CustomCollector(disable_target_info=, scope_info_enabled=): {exc}"))
    point = NumberDataPoint({"model": "m"}, 0, 1, 3)
    metric = Metric(
        "spendscope.calls", "Calls", "{call}", Sum([point], AggregationTemporality.CUMULATIVE, True)
    )
    translator.add_metrics_data(
        MetricsData(
            [
                ResourceMetrics(
                    Resource.get_empty(), [ScopeMetrics(InstrumentationScope(""), [metric], "")], ""
                )
            ]
        )
    )
    families = [(f.name, [(s.name, s.labels, s.value) for s in f.samples]) for f in translator.collect()]
    assert families == [("spendscope_calls", [("spendscope_calls_total", {"model": "m"}, 3.0)])], (
        exporter_moved("_CustomCollector.add_metrics_data/collect")
    )
