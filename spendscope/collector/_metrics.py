"""OTLP metrics in, Prometheus metrics out, named exactly as each app would expose them itself.

Every data point is kept as a cumulative value per (job, instance, scope, metric, attributes):
cumulative points replace the value (an older point is ignored), delta points are added (a point not
newer than the last one is a retried export and ignored). `job` is `service.namespace/service.name`
(or `service.name`) and `instance` is `service.instance.id`, as Prometheus' own OTLP receiver makes
them, so several processes of one app each keep their own series.

What a request may hold is checked as it arrives (_metric_rules.py, _limits.py): a metric or point
that breaks a rule is refused with `partial_success` and leaves the state as it was, so no request can
make a scrape fail or change another metric's series.

Naming is not re-implemented: on each scrape the points become the OpenTelemetry SDK's metric data
and go through opentelemetry-exporter-prometheus' translation (the same code a
`PrometheusMetricReader` in the app runs), with `job`, `instance` and the scope labels added as
point attributes. Its translation is private API (`_CustomCollector`, `_mapping.sanitize_attribute`):
pyproject.toml allows one minor of the exporter (and says why), tests/test_sdk_internals.py names what
moved when a release changes it, and a test compares what an app exposes itself with what the collector
exposes for it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from opentelemetry.exporter.prometheus import _CustomCollector
from opentelemetry.exporter.prometheus._mapping import sanitize_attribute
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from prometheus_client.core import InfoMetricFamily
from prometheus_client.metrics_core import Metric as PrometheusMetric

from spendscope.collector._limits import Limits, Refused, check_attributes, check_string
from spendscope.collector._metric_rules import (
    check_histogram,
    check_job,
    check_label_keys,
    check_metric,
    check_number,
    exposed_names,
)

_DELTA: Final = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
_CUMULATIVE: Final = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
_NO_VALUE: Final = metrics_pb2.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK
_RESOURCE_LABELS: Final = ("service.name", "service.namespace", "service.instance.id")

MAX_SERIES: Final = 100_000
STALE_AFTER_S: Final = 15 * 60.0  # a series not reported for this long is dropped (its app is gone)


def any_value(value: AnyValue) -> Any:
    """An attribute value as the SDK holds it in the app (so labels render the same)."""
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which == "int_value":
        return value.int_value
    if which == "double_value":
        return value.double_value
    if which == "bool_value":
        return value.bool_value
    if which == "array_value":
        return tuple(any_value(v) for v in value.array_value.values)
    if which == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    if which == "bytes_value":
        return value.bytes_value.hex()
    return ""


def _attributes(kvs: Iterable[KeyValue]) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in kvs}


def _hashable(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_hashable(v) for v in value)
    return value


def job_and_instance(resource: dict[str, Any]) -> tuple[str, str]:
    name = str(resource.get("service.name", ""))
    namespace = str(resource.get("service.namespace", ""))
    return (f"{namespace}/{name}" if namespace else name), str(resource.get("service.instance.id", ""))


@dataclass
class _Series:
    attributes: dict[str, Any]
    start: int
    time: int
    value: float | int = 0
    count: int = 0
    sum: float = 0.0
    buckets: list[int] = field(default_factory=list)
    bounds: tuple[float | int, ...] = ()
    min: float = float("inf")
    max: float = float("-inf")
    seen: float = 0.0


@dataclass
class _Family:
    name: str
    kind: str  # "sum", "gauge" or "histogram"
    monotonic: bool
    unit: str
    description: str
    series: dict[Any, _Series] = field(default_factory=dict)
    exposed: tuple[str, ...] = ()  # its Prometheus names (_metric_rules.exposed_names)


class MetricsState:
    """Cumulative state of every re-exposed series; `collect()` is a prometheus-client collector."""

    def __init__(self, max_series: int = MAX_SERIES, limits: Limits | None = None) -> None:
        self._families: dict[str, _Family] = {}
        self._owners: dict[str, str] = {}  # an exposed Prometheus name -> the metric exposing it
        self._targets: dict[tuple[str, str], tuple[dict[str, Any], float]] = {}
        self._lock = threading.Lock()
        self._max_series = max_series
        self._limits = limits or Limits()
        self._series = 0
        self._scope_labels = _CustomCollector()._build_scope_attrs  # otel_scope_* labels, as the app has

    def add(self, request: ExportMetricsServiceRequest) -> tuple[int, int, str]:
        """Merge a request. Returns (points accepted, points refused, why the last were refused)."""
        accepted = rejected = 0
        reason = ""
        now = time.monotonic()
        limits = self._limits
        with self._lock:
            for rm in request.resource_metrics:
                try:
                    check_attributes(rm.resource.attributes, limits, "resource")
                    resource = _attributes(rm.resource.attributes)
                    job, instance = job_and_instance(resource)
                    check_job(job)
                    if (job, instance) not in self._targets and len(self._targets) >= self._max_series:
                        raise Refused(f"too many targets (limit {self._max_series})")
                except Refused as exc:
                    rejected += sum(_points(m) for sm in rm.scope_metrics for m in sm.metrics)
                    reason = str(exc)
                    continue
                self._targets[(job, instance)] = (resource, now)
                for sm in rm.scope_metrics:
                    try:
                        check_string(sm.scope.name, "scope name", limits)
                        check_string(sm.scope.version, "scope version", limits)
                        check_string(sm.schema_url, "schema URL", limits)
                        check_attributes(sm.scope.attributes, limits, "scope")
                    except Refused as exc:
                        rejected += sum(_points(m) for m in sm.metrics)
                        reason = str(exc)
                        continue
                    scope = InstrumentationScope(
                        sm.scope.name,
                        sm.scope.version or None,
                        sm.schema_url or None,
                        _attributes(sm.scope.attributes) or None,
                    )
                    labels = {**self._scope_labels(scope), "job": job, "instance": instance}
                    for metric in sm.metrics:
                        ok, bad, why = self._add_metric(metric, labels, now)
                        accepted += ok
                        rejected += bad
                        reason = why or reason
        return accepted, rejected, reason

    def _add_metric(
        self, metric: metrics_pb2.Metric, labels: dict[str, Any], now: float
    ) -> tuple[int, int, str]:
        which = metric.WhichOneof("data")
        points: Any
        if which == "sum":
            temporality, monotonic, points = (
                metric.sum.aggregation_temporality,
                metric.sum.is_monotonic,
                metric.sum.data_points,
            )
        elif which == "gauge":
            temporality, monotonic, points = _CUMULATIVE, False, metric.gauge.data_points
        elif which == "histogram":
            temporality, monotonic, points = (
                metric.histogram.aggregation_temporality,
                True,
                metric.histogram.data_points,
            )
        elif which == "exponential_histogram":
            n = len(metric.exponential_histogram.data_points)
            return 0, n, "exponential histograms are not re-exposed (use explicit buckets)"
        elif which == "summary":
            return 0, len(metric.summary.data_points), "summaries are not re-exposed"
        else:
            return 0, 0, ""
        if temporality not in (_DELTA, _CUMULATIVE):
            return 0, len(points), "aggregation temporality must be delta or cumulative"
        try:
            check_metric(metric, which, monotonic)
            check_string(metric.description, "metric description", self._limits)
            family = self._family(metric, which, monotonic)
        except Refused as exc:
            return 0, len(points), str(exc)
        accepted = rejected = 0
        reason = ""
        for point in points:
            if point.flags & _NO_VALUE:
                continue
            try:
                if which == "histogram":
                    check_histogram(point)
                    self._add_histogram(family, point, temporality, labels, now)
                else:
                    self._add_number(family, point, temporality, labels, now)
            except Refused as exc:
                rejected += 1
                reason = str(exc)
                continue
            accepted += 1
        return accepted, rejected, reason

    def _series_for(
        self, family: _Family, point: Any, labels: dict[str, Any]
    ) -> tuple[Any, _Series | None, dict[str, Any]]:
        """The point's key, its series if there is one, and its labels; refuses bad attributes."""
        check_attributes(point.attributes, self._limits, "data point")
        own = _attributes(point.attributes)
        check_label_keys(list(own), family.kind)
        attributes = {**own, **labels}
        key = _hashable(attributes)
        return key, family.series.get(key), attributes

    def _new_series(self, family: _Family, key: Any, attributes: dict[str, Any], start: int) -> _Series:
        if self._series >= self._max_series:
            raise Refused(f"too many series (limit {self._max_series})")
        self._series += 1
        series = family.series[key] = _Series(attributes, start, 0)
        return series

    def _add_number(
        self,
        family: _Family,
        point: metrics_pb2.NumberDataPoint,
        temporality: int,
        labels: dict[str, Any],
        now: float,
    ) -> None:
        key, series, attributes = self._series_for(family, point, labels)
        value = point.as_int if point.WhichOneof("value") == "as_int" else point.as_double
        newer = series is None or not point.time_unix_nano or point.time_unix_nano > series.time
        same_start = (
            series is not None
            and temporality == _CUMULATIVE
            and point.start_time_unix_nano != 0
            and point.start_time_unix_nano == series.start
        )
        check_number(value, family.monotonic, series.value if same_start and newer and series else None)
        if not newer:
            return  # a point we already have (a retried export) or an older one
        if series is None:
            series = self._new_series(family, key, attributes, point.start_time_unix_nano)
        if temporality == _DELTA and family.kind == "sum":
            series.value += value
        else:
            series.value = value
            series.start = point.start_time_unix_nano
        series.time = point.time_unix_nano
        series.seen = now

    def _add_histogram(
        self,
        family: _Family,
        point: metrics_pb2.HistogramDataPoint,
        temporality: int,
        labels: dict[str, Any],
        now: float,
    ) -> None:
        key, series, attributes = self._series_for(family, point, labels)
        if series is not None and point.time_unix_nano and point.time_unix_nano <= series.time:
            return
        if series is None:
            series = self._new_series(family, key, attributes, point.start_time_unix_nano)
        # OTLP carries bounds as doubles; an app's SDK has integral ones as ints (the SDK's
        # defaults, SpendScope's token buckets) and renders le="16", not le="16.0".
        bounds = tuple(int(b) if b.is_integer() else b for b in point.explicit_bounds)
        counts = list(point.bucket_counts)
        if temporality == _DELTA and bounds == series.bounds and len(counts) == len(series.buckets):
            series.buckets = [a + b for a, b in zip(series.buckets, counts, strict=True)]
            series.count += point.count
            series.sum += point.sum
            series.min = min(series.min, point.min) if point.HasField("min") else series.min
            series.max = max(series.max, point.max) if point.HasField("max") else series.max
        else:
            series.buckets, series.bounds = counts, bounds
            series.count, series.sum = point.count, point.sum
            series.min = point.min if point.HasField("min") else float("inf")
            series.max = point.max if point.HasField("max") else float("-inf")
            series.start = point.start_time_unix_nano
        series.time = point.time_unix_nano
        series.seen = now

    def _family(self, metric: metrics_pb2.Metric, kind: str, monotonic: bool) -> _Family:
        """The metric's family; refuses a metric that would change one other series still have, or
        share an exposed name with another metric that has series."""
        family = self._families.get(metric.name)
        shape = (kind, monotonic, metric.unit)
        if family is not None and (family.kind, family.monotonic, family.unit) != shape:
            if family.series:
                raise Refused(
                    f"metric {metric.name!r} is exposed as a {_shape(family.kind, family.monotonic)} "
                    f"with unit {family.unit!r} for other series: it keeps that kind and unit until they "
                    "have stopped for 15 minutes"
                )
            self._drop(family)
            family = None
        if family is None:
            exposed = exposed_names(metric, kind, monotonic)
            for name in exposed:
                owner = self._families.get(self._owners.get(name, ""))
                if owner is not None and owner.name != metric.name:
                    if owner.series:
                        raise Refused(
                            f"metric {metric.name!r} would be exposed as {name!r}, as {owner.name!r} is"
                        )
                    self._drop(owner)
            family = self._families[metric.name] = _Family(
                metric.name, kind, monotonic, metric.unit, metric.description, exposed=exposed
            )
            for name in exposed:
                self._owners[name] = metric.name
        if metric.description:
            family.description = metric.description
        return family

    def _drop(self, family: _Family) -> None:
        del self._families[family.name]
        self._series -= len(family.series)
        for name in family.exposed:
            if self._owners.get(name) == family.name:
                del self._owners[name]

    # --- exposition ---------------------------------------------------------------------------------

    def collect(self) -> Iterator[PrometheusMetric]:
        with self._lock:
            self._expire(time.monotonic())
            metrics = [m for f in self._families.values() if f.series for m in [_sdk_metric(f)]]
            targets = [(job, inst, attrs) for (job, inst), (attrs, _) in self._targets.items()]
        if targets:
            yield _target_info(targets)
        if not metrics:
            return
        data = MetricsData(
            [
                ResourceMetrics(
                    Resource.get_empty(),
                    [ScopeMetrics(InstrumentationScope(""), metrics, "")],
                    "",
                )
            ]
        )
        translator = _CustomCollector(disable_target_info=True, scope_info_enabled=False)
        translator.add_metrics_data(data)
        yield from translator.collect()

    def _expire(self, now: float) -> None:
        for family in self._families.values():
            stale = [k for k, s in family.series.items() if now - s.seen > STALE_AFTER_S]
            for key in stale:
                del family.series[key]
            self._series -= len(stale)
        for target, (_, seen) in list(self._targets.items()):
            if now - seen > STALE_AFTER_S:
                del self._targets[target]


def _points(metric: metrics_pb2.Metric) -> int:
    which = metric.WhichOneof("data")
    return 0 if which is None else len(getattr(metric, which).data_points)


def _shape(kind: str, monotonic: bool) -> str:
    return "counter" if kind == "sum" and monotonic else "gauge" if kind != "histogram" else "histogram"


def _sdk_metric(family: _Family) -> Metric:
    if family.kind == "histogram":
        points = [
            HistogramDataPoint(
                attributes=s.attributes,
                start_time_unix_nano=s.start,
                time_unix_nano=s.time,
                count=s.count,
                sum=s.sum,
                bucket_counts=s.buckets,
                explicit_bounds=s.bounds,
                min=s.min,
                max=s.max,
            )
            for s in family.series.values()
        ]
        data: Sum | Gauge | Histogram = Histogram(points, AggregationTemporality.CUMULATIVE)
    else:
        numbers = [NumberDataPoint(s.attributes, s.start, s.time, s.value) for s in family.series.values()]
        if family.kind == "gauge":
            data = Gauge(numbers)
        else:
            data = Sum(numbers, AggregationTemporality.CUMULATIVE, family.monotonic)
    return Metric(family.name, family.description, family.unit, data)


def _target_info(targets: list[tuple[str, str, dict[str, Any]]]) -> InfoMetricFamily:
    """target_info per (job, instance) with the other resource attributes, as Prometheus makes it."""
    rows: list[dict[str, str]] = []
    for job, instance, resource in targets:
        labels = {
            sanitize_attribute(k): v if isinstance(v, str) else str(v)
            for k, v in resource.items()
            if k not in _RESOURCE_LABELS
        }
        rows.append({**labels, "job": job, "instance": instance})
    names = sorted({k for row in rows for k in row})
    family = InfoMetricFamily("target", "Target metadata", labels=names)
    for row in rows:
        family.add_metric([row.get(k, "") for k in names], {})
    return family
