"""Which OTLP metrics the collector re-exposes (pure): each is checked when it arrives, so that nothing
a client sends can break /metrics for the others or pass for SpendScope's own series.

- **Names** are OpenTelemetry instrument names (a letter, then letters, digits, `_ . - /`, at most 255
  characters) or Prometheus names (`[a-zA-Z_:][a-zA-Z0-9_:]*`); units printable ASCII, at most 63.
- **Namespaces**: a metric whose Prometheus name starts with `spendscope_collector_`,
  `spendscope_budget_` or `spendscope_reconciliation_` (the collector's, the budget evaluator's and the
  reconciler's own), or that would expose `target_info`, is refused; so is a resource whose job is one
  of SpendScope's scrape jobs (the collector job keeps the labels it exposes).
- **SpendScope's instruments** (`spendscope.cost.usd`, `spendscope.tokens`, ...; spendscope/names.py) are
  counters: accepted as monotonic sums only. The instrumentation sends them so; anything else under
  their names is not theirs.
- **Counters** (monotonic sums) count up: a value that is negative, NaN or infinite, or a cumulative value
  below the last one of the same series and start time, is refused. A negative
  `spendscope_cost_usd_total` is a refund nobody made, and a drop without a reset is not a count.
- **Histograms**: one more bucket count than bounds, bounds finite and increasing, counts adding up
  to the point's count, a finite sum.
- **Labels**: point attributes as any span's (`_limits.py`: no empty key, ...); on a histogram none may
  render as `le`, the buckets' label. (The exporter's renaming never makes a `__` label, and `job`,
  `instance` and `otel_scope_*` are the collector's.)
- **One Prometheus name, one metric**: a metric whose exposed names (`x`, `x_total`, `x_bucket`, ...)
  meet another metric's, or that changes the kind or unit of a metric other series still have, is
  refused until those series are gone (15 minutes after their last point).
"""

from __future__ import annotations

import itertools
import math
import re
from typing import Final

from opentelemetry.exporter.prometheus._mapping import map_unit, sanitize_attribute, sanitize_full_name
from opentelemetry.proto.metrics.v1 import metrics_pb2

from spendscope import names as n
from spendscope.collector._limits import Refused

_NAME: Final = re.compile(r"[A-Za-z_:][A-Za-z0-9_.:/-]*\Z")
_UNIT: Final = re.compile(r"[\x20-\x7e]*\Z")
MAX_NAME: Final = 255
MAX_UNIT: Final = 63

RESERVED_PREFIXES: Final = ("spendscope_collector_", "spendscope_budget_", "spendscope_reconciliation_")
RESERVED_NAMES: Final = frozenset({"target", "target_info"})
RESERVED_JOBS: Final = frozenset({n.JOB_COLLECTOR, n.JOB_APPS, n.JOB_BUDGETS, n.JOB_RECONCILER})
SPENDSCOPE_COUNTERS: Final = frozenset(
    {
        n.METRIC_COST,
        n.METRIC_TOKENS,
        n.METRIC_UNPRICED_TOKENS,
        n.METRIC_USAGE_UNAVAILABLE,
        n.METRIC_INSTRUMENTATION_ERRORS,
        n.METRIC_USER_LABEL_OVERFLOW,
    }
)
_SUFFIXES: Final = {
    "sum": ("", "_total", "_created"),
    "counter": ("", "_total", "_created"),
    "gauge": ("",),
    "histogram": ("", "_bucket", "_count", "_sum", "_created"),
}


def check_job(job: str) -> None:
    if job in RESERVED_JOBS:
        raise Refused(f"job {job!r} (service.name) is one of SpendScope's own scrape jobs")


def check_metric(metric: metrics_pb2.Metric, kind: str, monotonic: bool) -> None:
    """Refuse a metric by its name, unit and kind (`kind`: sum, gauge or histogram)."""
    name, unit = metric.name, metric.unit
    if not name:
        raise Refused("a metric has no name")
    if len(name) > MAX_NAME or not _NAME.match(name):
        raise Refused(
            f"metric name {name[:80]!r} is not an OpenTelemetry instrument name or a Prometheus metric name"
        )
    if len(unit) > MAX_UNIT or not _UNIT.match(unit):
        raise Refused(f"metric {name!r}: unit {unit[:80]!r} is not printable ASCII of at most {MAX_UNIT}")
    if name in SPENDSCOPE_COUNTERS and not (kind == "sum" and monotonic):
        raise Refused(f"metric {name!r} is SpendScope's counter: send it as a monotonic sum")
    for exposed in exposed_names(metric, kind, monotonic):
        if exposed.startswith(RESERVED_PREFIXES) or exposed in RESERVED_NAMES:
            raise Refused(f"metric {name!r} would be exposed as {exposed!r}, a name SpendScope keeps")


def family_name(metric: metrics_pb2.Metric, kind: str, monotonic: bool) -> str:
    """The Prometheus family name the exporter gives the metric (as prometheus-client builds it)."""
    name = sanitize_full_name(metric.name)
    unit = map_unit(metric.unit)
    counter = kind == "sum" and monotonic
    if counter and name.endswith("_total"):
        name = name[: -len("_total")]
    if unit and not name.endswith("_" + unit):
        name += "_" + unit
    return name


def exposed_names(metric: metrics_pb2.Metric, kind: str, monotonic: bool) -> tuple[str, ...]:
    """Every sample and family name the metric can be exposed under (text format and OpenMetrics)."""
    family = family_name(metric, kind, monotonic)
    shape = "counter" if kind == "sum" and monotonic else "gauge" if kind == "sum" else kind
    return tuple(family + suffix for suffix in _SUFFIXES[shape])


def check_label_keys(keys: list[str], kind: str) -> None:
    if kind == "histogram":
        for key in keys:
            if sanitize_attribute(key) == "le":
                raise Refused(f"attribute {key!r} would be the histogram's bucket label 'le'")


def check_number(value: float, monotonic: bool, previous: float | None) -> None:
    """A sum's or gauge's value; `previous`: the series' last cumulative value at the same start."""
    if not monotonic:
        return
    if math.isnan(value) or math.isinf(value) or value < 0:
        raise Refused(f"a counter's value must be a finite number of at least 0, not {value}")
    if previous is not None and value < previous:
        raise Refused(f"a counter went down ({previous} to {value}) without a new start time")


def check_histogram(point: metrics_pb2.HistogramDataPoint) -> None:
    bounds, counts = point.explicit_bounds, point.bucket_counts
    if len(counts) != len(bounds) + 1:
        raise Refused(f"a histogram point has {len(counts)} bucket counts for {len(bounds)} bounds")
    if any(not math.isfinite(b) for b in bounds) or any(a >= b for a, b in itertools.pairwise(bounds)):
        raise Refused("a histogram's bounds must be finite and increasing")
    if sum(counts) != point.count:
        raise Refused(f"a histogram point's bucket counts add up to {sum(counts)}, not to {point.count}")
    if not math.isfinite(point.sum):
        raise Refused("a histogram point's sum must be finite")
