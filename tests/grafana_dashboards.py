"""The Grafana dashboards and provisioning as the tests read them: dashboards, their panels and queries,
the provisioned data sources, and template variables interpolated the way Grafana's Prometheus data
source does it (Grafana itself cannot run here)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final

import yaml

REPO = Path(__file__).resolve().parents[1]
GRAFANA_DIR = REPO / "grafana"
DASHBOARD_DIR = GRAFANA_DIR / "dashboards"
PROVISIONING_DIR = GRAFANA_DIR / "provisioning"
RULES_DIR = REPO / "prometheus" / "rules"
PROMETHEUS_DASHBOARDS: Final = ("cost-overview", "pipeline-health")
ALL: Final = "$__all"  # a variable's value when "All" is selected

# Grafana's global variables and the ClickHouse plugin's macros (grafana/clickhouse-datasource
# pkg/macros and sqlds' defaults): a `$__name` outside this list is a typo.
BUILTINS: Final = frozenset(
    {
        "__interval", "__interval_ms", "__rate_interval", "__rate_interval_ms", "__range", "__range_s",
        "__range_ms", "__from", "__to", "__dashboard", "__user", "__org", "__name", "__timezone",
        "__auto", "__all_variables", "__url_time_range", "__field", "__series", "__value", "__data",
        "__cell", "__timeFilter", "__timeFilter_ms", "__fromTime", "__toTime", "__fromTime_ms",
        "__toTime_ms", "__dateFilter", "__dateTimeFilter", "__dt", "__timeInterval", "__timeInterval_ms",
        "__interval_s", "__conditionalAll", "__table", "__column", "__timeGroup", "__timeGroupAlias",
        "timeFilter",
    }
)  # fmt: skip
# $var, ${var}, ${var:format}, [[var]], [[var:format]]
VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)(?::[^\]]*)?\]\]")


@dataclass(frozen=True)
class Target:
    ref: str
    datasource_uid: str
    query: str  # PromQL `expr` or SQL `rawSql`
    instant: bool
    raw: Mapping[str, Any]


@dataclass(frozen=True)
class Panel:
    dashboard: str  # file stem
    id: int
    type: str
    title: str
    row: str | None  # the row it is in
    raw: Mapping[str, Any]

    @property
    def key(self) -> str:
        return f"{self.dashboard}/{self.title}"

    @property
    def datasource_uid(self) -> str | None:
        ds = self.raw.get("datasource")
        return ds.get("uid") if isinstance(ds, dict) else ds

    @property
    def unit(self) -> str | None:
        unit: str | None = self.raw.get("fieldConfig", {}).get("defaults", {}).get("unit")
        return unit

    @property
    def time_from(self) -> str | None:
        """The panel's relative time override (`now/d`: today so far), if any."""
        value: str | None = self.raw.get("timeFrom")
        return value

    def targets(self) -> list[Target]:
        out = []
        for t in self.raw.get("targets", []):
            ds = t.get("datasource") or self.raw.get("datasource") or {}
            uid = ds.get("uid") if isinstance(ds, dict) else ds
            query = t.get("expr") if "expr" in t else t.get("rawSql", "")
            instant = bool(t.get("instant")) and not t.get("range", False)
            out.append(Target(t.get("refId", ""), uid, query, instant, t))
        return out


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARD_DIR.glob("*.json"))


@cache
def load(path: Path) -> dict[str, Any]:
    board: dict[str, Any] = json.loads(path.read_text())
    return board


def panels(path: Path) -> list[Panel]:
    """Every panel except rows, in order, with the row each sits in (panels of collapsed rows too)."""

    def walk(items: Sequence[Mapping[str, Any]], row: str | None) -> Iterator[Panel]:
        for item in items:
            if item.get("type") == "row":
                row = item.get("title", "")
                yield from walk(item.get("panels", []), row)
            else:
                yield Panel(path.stem, item["id"], item["type"], item.get("title", ""), row, item)

    return list(walk(load(path).get("panels", []), None))


def rows(path: Path) -> list[Mapping[str, Any]]:
    return [p for p in load(path).get("panels", []) if p.get("type") == "row"]


def variables(path: Path) -> list[Mapping[str, Any]]:
    listed: list[Mapping[str, Any]] = load(path).get("templating", {}).get("list", [])
    return listed


def variable_query(variable: Mapping[str, Any]) -> str:
    """A query variable's query: a string, or the object form (Prometheus `query`, ClickHouse `rawSql`)."""
    query = variable.get("query", "")
    if isinstance(query, dict):
        return str(query.get("rawSql") or query.get("query", ""))
    return str(query)


def used_variables(text: str) -> set[str]:
    return {next(g for g in m.groups() if g) for m in VARIABLE.finditer(text)}


@cache
def provisioned_datasources() -> dict[str, dict[str, Any]]:
    """uid -> data source, from every file in provisioning/datasources."""
    out: dict[str, dict[str, Any]] = {}
    for f in sorted((PROVISIONING_DIR / "datasources").glob("*.y*ml")):
        for ds in yaml.safe_load(f.read_text()).get("datasources", []):
            out[ds["uid"]] = ds
    return out


def recording_rules() -> set[str]:
    return {
        rule["record"]
        for f in sorted(RULES_DIR.glob("*.yml"))
        for group in yaml.safe_load(f.read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }


# PromQL's functions, aggregations and keywords (everything else that looks like a name is a series)
PROMQL_WORDS: Final = frozenset(
    {
        "abs", "absent", "absent_over_time", "avg", "avg_over_time", "bottomk", "ceil", "changes", "clamp",
        "clamp_max", "clamp_min", "count", "count_over_time", "count_values", "day_of_month", "day_of_week",
        "day_of_year", "days_in_month", "delta", "deriv", "exp", "floor", "group", "histogram_quantile",
        "holt_winters", "hour", "idelta", "increase", "irate", "label_join", "label_replace", "last_over_time",
        "ln", "log10", "log2", "max", "max_over_time", "min", "min_over_time", "minute", "month",
        "predict_linear", "present_over_time", "quantile", "quantile_over_time", "rate", "resets", "round",
        "scalar", "sgn", "sort", "sort_desc", "sqrt", "stddev", "stddev_over_time", "stdvar",
        "stdvar_over_time", "sum", "sum_over_time", "time", "timestamp", "topk", "vector", "year", "acos",
        "acosh", "asin", "asinh", "atan", "atanh", "cos", "cosh", "sin", "sinh", "tan", "tanh", "deg", "rad",
        "pi", "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "offset",
        "bool", "inf", "nan", "start", "end", "atan2",
    }
)  # fmt: skip


def promql_series(expr: str) -> set[str]:
    """The series names a PromQL expression reads (after `$variables` are gone)."""
    text = VARIABLE.sub(" ", expr)
    text = re.sub(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'", " ", text)  # strings
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)  # matchers, ranges
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    tokens = re.findall(r"(?<![\w.:$])[a-zA-Z_:][\w:]*", text)
    return {t for t in tokens if t not in PROMQL_WORDS}


# --- interpolation, as Grafana's Prometheus data source does it -------------------------------------
def _regex_escape(value: str) -> str:
    """Grafana's prometheusSpecialRegexEscape: a regex-escaped value inside a PromQL string literal."""
    value = value.replace("\\", "\\\\\\\\")
    return re.sub(r"([$^*{}\[\]'+?.()|])", r"\\\\\1", value)


def format_variable(variable: Mapping[str, Any], value: str | Sequence[str]) -> str:
    """A variable's value as Grafana puts it into PromQL: All is the variable's allValue (or every
    option as a regex alternation), several values `(a|b)`, each regex-escaped."""
    if value == ALL or value == [ALL]:
        all_value: str | None = variable.get("allValue")
        if all_value:
            return all_value
        raise ValueError(f"{variable['name']}: All without allValue needs the option list")
    if not variable.get("multi") and not variable.get("includeAll"):
        single = value if isinstance(value, str) else value[0]
        return single.replace("\\", "\\\\").replace("'", "\\\\'")
    values = [value] if isinstance(value, str) else list(value)
    escaped = [_regex_escape(v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def duration(seconds: float) -> str:
    return f"{round(seconds)}s" if seconds == round(seconds) else f"{round(seconds * 1000)}ms"


def builtin_values(range_seconds: float, interval_seconds: float, scrape_interval: float) -> dict[str, str]:
    """Grafana's range and interval variables for a query: $__range is the range in whole seconds,
    $__rate_interval is max($__interval + scrape interval, 4 x scrape interval), the scrape interval
    being the data source's `timeInterval`."""
    rate_interval = max(interval_seconds + scrape_interval, 4 * scrape_interval)
    range_s = round(range_seconds)
    return {
        "__range": f"{range_s}s",
        "__range_s": str(range_s),
        "__range_ms": str(round(range_seconds * 1000)),
        "__interval": duration(interval_seconds),
        "__interval_ms": str(round(interval_seconds * 1000)),
        "__rate_interval": duration(rate_interval),
        "__rate_interval_ms": str(round(rate_interval * 1000)),
    }


def interpolate(
    text: str,
    variables: Sequence[Mapping[str, Any]],
    selected: Mapping[str, str | Sequence[str]],
    builtins: Mapping[str, str],
) -> str:
    """`text` with every `$variable` replaced; a variable not in `selected` is All."""
    by_name = {v["name"]: v for v in variables}

    def replace(match: re.Match[str]) -> str:
        name = next(g for g in match.groups() if g)
        if name in builtins:
            return builtins[name]
        if name not in by_name:
            raise KeyError(f"${name} is neither a template variable nor a known built-in")
        return format_variable(by_name[name], selected.get(name, ALL))

    return VARIABLE.sub(replace, text)
