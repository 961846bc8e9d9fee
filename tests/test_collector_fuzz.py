"""Fuzzing the OTLP endpoints (hypothesis): garbage, OTLP-shaped requests with hostile values, and
metrics of any shape, as protobuf and as OTLP/JSON, against the real collector on the real store. The
collector stays up, answers 4xx to what it cannot read, stores exactly the spans it acknowledged (none
refused later), never a bogus figure, and /metrics always parses.

The default run is short and derandomized; `python -m pytest -m slow tests/test_collector_fuzz.py` runs
the long ones (random, many more examples)."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format  # type: ignore[import-untyped]
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from prometheus_client.parser import text_string_to_metric_families

from spendscope import names as n
from spendscope.collector import Collector
from spendscope.collector._spans import request_spans
from spendscope.collector._spool import decode, encode
from spendscope.store import Store
from tests.test_collector import PROTOBUF, config, metric, request, rows, wait_for
from tests.test_collector_metrics_rules import scrape

JSON = "application/json"
SHORT = settings(
    max_examples=40,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
LONG = settings(
    max_examples=1500,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# small limits, so that short examples reach them
LIMITS = {
    "attribute_count_limit": 6,
    "attribute_value_length_limit": 64,
    "attribute_depth_limit": 3,
    "span_event_count_limit": 3,
    "span_link_count_limit": 3,
}
COUNTS = [n.USAGE_INPUT_TOKENS, n.USAGE_OUTPUT_TOKENS, n.USAGE_CACHE_READ_INPUT_TOKENS]
GENAI_KEYS = [n.OPERATION_NAME, n.REQUEST_MODEL, n.RESPONSE_MODEL, n.COST_USD, n.TENANT, *COUNTS]


# --- strategies ------------------------------------------------------------------------------------------
texts = st.text(max_size=70) | st.sampled_from(["", "gpt-4o-mini", "chat", '=HYPERLINK("x")', "1e400"])
int64 = st.integers(-(2**63), 2**63 - 1)
doubles = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([-0.0, 1e21, 5e-324, 2.5e-7])


def any_values(max_leaves: int = 5) -> st.SearchStrategy[AnyValue]:
    scalars = st.one_of(
        st.builds(lambda v: AnyValue(string_value=v), texts),
        st.builds(lambda v: AnyValue(int_value=v), int64 | st.integers(-5, 200_000_000)),
        st.builds(lambda v: AnyValue(double_value=v), doubles),
        st.builds(lambda v: AnyValue(bool_value=v), st.booleans()),
        st.builds(lambda v: AnyValue(bytes_value=v), st.binary(max_size=80)),
        st.just(AnyValue()),
    )

    def composite(children: st.SearchStrategy[AnyValue]) -> st.SearchStrategy[AnyValue]:
        def array(items: list[AnyValue]) -> AnyValue:
            value = AnyValue()
            value.array_value.values.extend(items)
            return value

        def kvlist(items: list[tuple[str, AnyValue]]) -> AnyValue:
            value = AnyValue()
            value.kvlist_value.values.extend(KeyValue(key=k, value=v) for k, v in items)
            return value

        return st.builds(array, st.lists(children, max_size=3)) | st.builds(
            kvlist, st.lists(st.tuples(texts, children), max_size=3)
        )

    return st.recursive(scalars, composite, max_leaves=max_leaves)


def key_values(max_size: int) -> st.SearchStrategy[list[KeyValue]]:
    keys = st.sampled_from(GENAI_KEYS) | texts
    values = any_values()
    return st.lists(st.builds(lambda k, v: KeyValue(key=k, value=v), keys, values), max_size=max_size)


KEY_VALUES = {size: key_values(size) for size in (2, 3, 4, 7)}
valid_ids16 = st.binary(min_size=16, max_size=16).filter(any)
valid_ids8 = st.binary(min_size=8, max_size=8).filter(any)
ids16 = st.binary(min_size=16, max_size=16) | st.binary(max_size=20)
ids8 = st.binary(min_size=8, max_size=8) | st.binary(max_size=10)
times = st.integers(0, 2**64 - 1) | st.integers(1_700_000_000_000_000_000, 1_900_000_000_000_000_000)


@st.composite
def spans(draw: st.DrawFn) -> Span:
    span = Span(
        trace_id=draw(ids16),
        span_id=draw(ids8),
        parent_span_id=draw(st.just(b"") | ids8),
        name=draw(texts),
        kind=draw(st.integers(0, 7)),
        start_time_unix_nano=draw(times),
        end_time_unix_nano=draw(times),
    )
    if draw(st.booleans()):  # a GenAI call the store can hold, with figures of any size
        span.trace_id, span.span_id = draw(valid_ids16), draw(valid_ids8)
        span.start_time_unix_nano = draw(st.integers(1_700_000_000_000_000_000, 1_900_000_000_000_000_000))
        span.attributes.append(KeyValue(key=n.OPERATION_NAME, value=AnyValue(string_value=n.OP_CHAT)))
        span.attributes.append(KeyValue(key=n.RESPONSE_MODEL, value=AnyValue(string_value="gpt-4o-mini")))
        for key in COUNTS[:2]:
            count = draw(st.integers(-5, 200_000_000) | st.integers(0, 5000))
            span.attributes.append(KeyValue(key=key, value=AnyValue(int_value=count)))
        span.attributes.extend(draw(KEY_VALUES[4]))
        return span
    span.attributes.extend(draw(KEY_VALUES[7]))
    for _ in range(draw(st.integers(0, 4))):
        span.events.append(
            Span.Event(time_unix_nano=draw(times), name=draw(texts), attributes=draw(KEY_VALUES[3]))
        )
    for _ in range(draw(st.integers(0, 4))):
        span.links.append(Span.Link(trace_id=draw(ids16), span_id=draw(ids8), attributes=draw(KEY_VALUES[3])))
    span.status.code = draw(st.integers(0, 3))
    span.status.message = draw(texts)
    return span


SPAN_LISTS = st.lists(spans(), max_size=3)


def hostile_call() -> ExportTraceServiceRequest:
    """Two GenAI calls in every run (the drawn examples need not hold one that survives their other
    attributes): figures no bill can hold, and figures at the edge of what one can."""
    message = ExportTraceServiceRequest()
    spans = message.resource_spans.add().scope_spans.add().spans
    for k, (tokens, output, cost) in enumerate(((200_000_000, -5, -1e9), (100_000_000, 0, 99_999.0))):
        span = spans.add(
            trace_id=bytes(range(1, 17)),
            span_id=bytes([k + 1] * 8),
            start_time_unix_nano=1_800_000_000_000_000_000,
            end_time_unix_nano=1_800_000_001_000_000_000,
        )
        for key, value in (
            (n.OPERATION_NAME, AnyValue(string_value=n.OP_CHAT)),
            (n.RESPONSE_MODEL, AnyValue(string_value="gpt-4o-mini")),
            (COUNTS[0], AnyValue(int_value=tokens)),
            (COUNTS[1], AnyValue(int_value=output)),
            (n.COST_USD, AnyValue(double_value=cost)),
        ):
            span.attributes.append(KeyValue(key=key, value=value))
    return message


@st.composite
def trace_requests(draw: st.DrawFn) -> ExportTraceServiceRequest:
    message = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(0, 2))):
        rs = message.resource_spans.add()
        rs.resource.attributes.extend(draw(KEY_VALUES[4]))
        for _ in range(draw(st.integers(0, 2))):
            ss = rs.scope_spans.add()
            ss.scope.name = draw(texts)
            ss.scope.attributes.extend(draw(KEY_VALUES[2]))
            ss.spans.extend(draw(SPAN_LISTS))
    return message


metric_names = st.sampled_from(
    [
        n.METRIC_COST,
        n.METRIC_TOKENS,
        "spendscope.collector.written_spans",
        "spendscope_budget_spend_usd",
        "target_info",
        "jobs",
        "jobs_total",
        "jobs.total",
        "latency",
        "latency.count",
        "",
    ]
) | st.text(max_size=20)


@st.composite
def metrics(draw: st.DrawFn) -> metrics_pb2.Metric:
    metric = metrics_pb2.Metric(name=draw(metric_names), unit=draw(st.sampled_from(["", "s", "{USD}", "µ"])))
    kind = draw(st.sampled_from(["sum", "gauge", "histogram", "summary"]))
    for _ in range(draw(st.integers(0, 3))):
        attributes = draw(KEY_VALUES[3])
        at = draw(times)
        if kind == "histogram":
            metric.histogram.aggregation_temporality = draw(st.integers(0, 3))
            bounds = draw(st.lists(doubles, max_size=3))
            counts = draw(st.lists(st.integers(0, 2**64 - 1), max_size=4))
            count = draw(st.just(sum(counts) % 2**64) | st.integers(0, 2**64 - 1))
            point = metric.histogram.data_points.add(
                time_unix_nano=at,
                count=count,
                sum=draw(doubles),
                explicit_bounds=bounds,
                bucket_counts=counts,
            )
        elif kind == "summary":
            point = metric.summary.data_points.add(time_unix_nano=at)
        else:
            target = metric.sum if kind == "sum" else metric.gauge
            if kind == "sum":
                metric.sum.aggregation_temporality = draw(st.integers(0, 3))
                metric.sum.is_monotonic = draw(st.booleans())
            point = target.data_points.add(time_unix_nano=at, start_time_unix_nano=draw(times))
            if draw(st.booleans()):
                point.as_int = draw(int64)
            else:
                point.as_double = draw(doubles)
        point.attributes.extend(attributes)
    return metric


METRIC_LISTS = st.lists(metrics(), max_size=4)


@st.composite
def metric_requests(draw: st.DrawFn) -> ExportMetricsServiceRequest:
    message = ExportMetricsServiceRequest()
    for _ in range(draw(st.integers(0, 2))):
        rm = message.resource_metrics.add()
        rm.resource.attributes.extend(draw(KEY_VALUES[3]))
        if draw(st.booleans()):
            name = draw(st.sampled_from(["app", n.JOB_BUDGETS, ""]))
            rm.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value=name)))
        rm.scope_metrics.add().metrics.extend(draw(METRIC_LISTS))
    return message


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


def as_json(message: Any) -> bytes:
    """OTLP/JSON: protobuf's JSON mapping with hex ids."""
    document = json_format.MessageToDict(message)

    def hexify(obj: Any) -> None:
        if isinstance(obj, dict):
            for key, value in obj.items():
                if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str):
                    obj[key] = base64.b64decode(value).hex()
                else:
                    hexify(value)
        elif isinstance(obj, list):
            for item in obj:
                hexify(item)

    hexify(document)
    return json.dumps(document).encode()


# --- the collector under fuzz ----------------------------------------------------------------------------
@dataclass
class Sent:
    spans: int = 0  # spans acknowledged (200, less the refused ones)
    answers: int = 0


@pytest.fixture
def collector(tmp_path: Path, store_dsn: str, store: Store) -> Iterator[Collector]:
    with Collector(config(tmp_path, store_dsn, **LIMITS), store=store) as running:
        yield running


def post(collector: Collector, path: str, body: bytes, kind: str) -> tuple[int, bytes]:
    status, _, answer = request(collector.url, "POST", path, body, {"Content-Type": kind})
    assert status in (200, 400, 413), (status, answer)
    return status, answer


def send_traces(collector: Collector, sent: Sent, body: bytes, kind: str, spans_in: int | None) -> None:
    status, answer = post(collector, "/v1/traces", body, kind)
    sent.answers += 1
    if status != 200:
        return
    response = ExportTraceServiceResponse()
    if kind == PROTOBUF:
        response.ParseFromString(answer)
    else:
        json_format.Parse(answer, response)
    assert spans_in is not None, "garbage acknowledged"
    assert 0 <= response.partial_success.rejected_spans <= spans_in
    sent.spans += spans_in - response.partial_success.rejected_spans


def count_spans(message: ExportTraceServiceRequest) -> int:
    return sum(len(ss.spans) for rs in message.resource_spans for ss in rs.scope_spans)


def no_bogus_figure(store: Store) -> None:
    """Every call the store kept has figures a bill can hold: tokens within 0..10^8, a cost within
    0..$10^7 or unknown, a client cost within 0..$100,000 or dropped."""
    [[bad]] = store.query(
        "SELECT count() FROM llm_usage FINAL WHERE input_tokens > 100000000 OR output_tokens > 100000000"
        " OR cached_input_tokens > input_tokens OR cost_usd < 0 OR cost_usd > 10000000"
        " OR client_cost_usd < 0 OR client_cost_usd > 100000"
    ).rows
    assert bad == 0


def settled(collector: Collector, store: Store, sent: Sent) -> None:
    """Every acknowledged span stored, none refused, /metrics and /healthz answering."""
    wait_for(lambda: rows(store) == sent.spans, timeout=60)
    assert metric(collector, "spendscope_collector_refused_batches_total") == 0
    assert metric(collector, "spendscope_collector_store_errors_total") == 0
    status, _, body = request(collector.url, "GET", "/healthz")
    assert status == 200 and json.loads(body)["store"] == "up"
    no_bogus_figure(store)
    scrape(collector)


def fuzz_traces(collector: Collector, store: Store, profile: settings) -> None:
    sent = Sent()

    @profile
    @given(message=trace_requests(), garbage=st.binary(max_size=400), document=json_values)
    @example(message=hostile_call(), garbage=b"", document=None)
    def run(message: ExportTraceServiceRequest, garbage: bytes, document: Any) -> None:
        send_traces(collector, sent, message.SerializeToString(), PROTOBUF, count_spans(message))
        send_traces(collector, sent, as_json(message), JSON, count_spans(message))
        # garbage: acknowledged only if it happens to be an OTLP request, with its spans counted
        for body, kind in ((garbage, PROTOBUF), (json.dumps(document).encode(), JSON)):
            try:
                parsed = ExportTraceServiceRequest()
                if kind == PROTOBUF:
                    parsed.ParseFromString(body)
                else:
                    json_format.Parse(body, parsed, ignore_unknown_fields=True)
                spans_in: int | None = count_spans(parsed)
            except Exception:  # not OTLP: the collector must not acknowledge it
                spans_in = None
            send_traces(collector, sent, body, kind, spans_in)

    run()
    assert sent.answers >= 40
    settled(collector, store, sent)
    [[kept]] = store.query("SELECT count() FROM llm_usage FINAL").rows
    assert kept > 0  # GenAI calls reached the store's figures: no_bogus_figure checked something


def fuzz_metrics(collector: Collector, store: Store, profile: settings) -> None:
    @profile
    @given(message=metric_requests(), garbage=st.binary(max_size=300))
    def run(message: ExportMetricsServiceRequest, garbage: bytes) -> None:
        for body, kind in (
            (message.SerializeToString(), PROTOBUF),
            (as_json(message), JSON),
            (garbage, PROTOBUF),
        ):
            status, answer = post(collector, "/v1/metrics", body, kind)
            if status == 200:
                response = ExportMetricsServiceResponse()
                if kind == PROTOBUF:
                    response.ParseFromString(answer)
                else:
                    json_format.Parse(answer, response)
                assert response.partial_success.rejected_data_points >= 0
        text = scrape(collector)
        for family in text_string_to_metric_families(text):
            if family.type == "counter" and not family.name.startswith("spendscope_collector_"):
                assert all(s.value >= 0 and not math.isnan(s.value) for s in family.samples), family
            assert not family.name.startswith(("spendscope_budget_", "spendscope_reconciliation_"))

    run()
    settled(collector, store, Sent())


def test_fuzzed_traces_never_harm_the_collector(collector: Collector, store: Store) -> None:
    fuzz_traces(collector, store, SHORT)


def test_fuzzed_metrics_never_break_a_scrape(collector: Collector, store: Store) -> None:
    fuzz_metrics(collector, store, SHORT)


@SHORT
@given(message=trace_requests())
def test_what_arrival_takes_the_write_path_takes_unchanged(message: ExportTraceServiceRequest) -> None:
    """Rows are made once, on arrival; the spool (where batches wait while the store is down) gives
    back exactly those rows, with nothing left to decode."""
    from spendscope.collector._limits import Limits

    decoded = request_spans(message, Limits(6, 64, 3, 3, 3))
    assert decode(encode(decoded.records)) == decoded.records


@pytest.mark.slow
def test_long_fuzz_of_traces(collector: Collector, store: Store) -> None:
    fuzz_traces(collector, store, LONG)


@pytest.mark.slow
def test_long_fuzz_of_metrics(collector: Collector, store: Store) -> None:
    fuzz_metrics(collector, store, LONG)
