"""grafana/: provisioning that points at the compose services, and every dashboard well formed — unique uids and
panel ids, data sources that are provisioned, template variables that exist, a unit on every panel, and
PromQL that reads only series SpendScope emits or the recording rules define. The queries themselves
run against real data in tests/test_grafana_prometheus.py (Prometheus) and
tests/test_grafana_clickhouse.py (ClickHouse); the compose mounts are checked in tests/test_deploy.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.grafana_dashboards import (
    BUILTINS,
    DASHBOARD_DIR,
    PROMETHEUS_DASHBOARDS,
    PROVISIONING_DIR,
    REPO,
    Panel,
    dashboard_files,
    load,
    panels,
    promql_series,
    provisioned_datasources,
    recording_rules,
    rows,
    used_variables,
    variable_query,
    variables,
)
from tests.monitoring import known_metrics

FILES = dashboard_files()
PROMETHEUS_UID = "spendscope-prometheus"
CLICKHOUSE_UID = "spendscope-clickhouse"


def test_the_prometheus_dashboards_exist() -> None:
    assert {f.stem for f in FILES} >= set(PROMETHEUS_DASHBOARDS)


def test_datasources_are_the_compose_services() -> None:
    sources = provisioned_datasources()
    assert set(sources) >= {PROMETHEUS_UID, CLICKHOUSE_UID}
    prometheus = sources[PROMETHEUS_UID]
    assert (prometheus["type"], prometheus["url"], prometheus["isDefault"]) == (
        "prometheus",
        "http://prometheus:9090",
        True,
    )
    # $__rate_interval is built from it: it must be prometheus/prometheus.yml's scrape interval
    scrape = yaml.safe_load((REPO / "prometheus" / "prometheus.yml").read_text())["global"]["scrape_interval"]
    assert prometheus["jsonData"]["timeInterval"] == scrape
    clickhouse = sources[CLICKHOUSE_UID]
    assert clickhouse["type"] == "grafana-clickhouse-datasource"
    assert clickhouse["jsonData"] == {
        "host": "clickhouse",
        "port": 8123,
        "protocol": "http",
        "secure": False,
        "username": "${CLICKHOUSE_USER}",
        "defaultDatabase": "spendscope",
    }
    # the password only from the environment, through Grafana's interpolation, never in the file
    assert clickhouse["secureJsonData"] == {"password": "${CLICKHOUSE_PASSWORD}"}
    assert sum(bool(ds.get("isDefault")) for ds in sources.values()) == 1


def test_dashboard_provider_loads_the_mounted_folder() -> None:
    [provider] = yaml.safe_load((PROVISIONING_DIR / "dashboards" / "spendscope.yaml").read_text())[
        "providers"
    ]
    assert provider["type"] == "file" and provider["folder"] == "SpendScope"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_dashboard_uids_are_unique_and_stable() -> None:
    uids = [load(f)["uid"] for f in FILES]
    assert len(uids) == len(set(uids)), uids
    for f in FILES:
        assert re.fullmatch(r"spendscope-[a-z0-9-]+", load(f)["uid"]), f.name
        assert load(f).get("id") is None, f"{f.name}: a provisioned dashboard has no numeric id"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_dashboard_is_well_formed(path: Path) -> None:
    board = load(path)
    assert board["schemaVersion"] >= 39
    assert board["title"] and board.get("timezone") == "utc"  # days and months are UTC everywhere
    every = panels(path) + [{"id": r["id"]} for r in rows(path)]  # type: ignore[list-item]
    ids = [p.id if isinstance(p, Panel) else p["id"] for p in every]
    assert len(ids) == len(set(ids)), f"duplicate panel ids in {path.name}"
    assert panels(path), f"{path.name} has no panels"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_every_datasource_is_provisioned(path: Path) -> None:
    sources = provisioned_datasources()
    uses = [
        (f"variable {v['name']}", v.get("datasource")) for v in variables(path) if v.get("type") == "query"
    ]
    for panel in panels(path):
        uses.append((f"panel {panel.title!r}", panel.raw.get("datasource")))
        for target in panel.raw.get("targets", []):
            uses.append((f"panel {panel.title!r} target {target.get('refId')}", target.get("datasource")))
    for where, ds in uses:
        assert isinstance(ds, dict) and ds.get("uid") in sources, f"{path.name} {where}: {ds}"
        assert ds.get("type") == sources[ds["uid"]]["type"], f"{path.name} {where}: {ds}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_every_variable_used_is_defined(path: Path) -> None:
    defined = {v["name"] for v in variables(path)}
    texts = [(f"variable {v['name']}", variable_query(v)) for v in variables(path)]
    texts.append(("title", load(path)["title"]))
    for panel in panels(path):
        texts.append((f"panel {panel.id} title", panel.title))
        texts += [(f"panel {panel.title!r} {t.ref}", t.query) for t in panel.targets()]
    checked = 0
    for where, text in texts:
        for name in used_variables(text):
            assert name in defined or name in BUILTINS, f"{path.name} {where}: ${name} is not defined"
            checked += 1
    if defined:
        assert checked, f"{path.name} defines variables and uses none"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_every_panel_has_a_unit_and_a_query(path: Path) -> None:
    for panel in panels(path):
        assert panel.unit, f"{path.name}: panel {panel.title!r} has no unit"
        assert panel.targets() and all(t.query.strip() for t in panel.targets()), panel.title


@pytest.mark.parametrize("stem", PROMETHEUS_DASHBOARDS)
def test_prometheus_dashboards_read_only_series_spendscope_emits(stem: str) -> None:
    known, recorded = known_metrics(), recording_rules()
    path = DASHBOARD_DIR / f"{stem}.json"
    exprs = [(p.title, t.query) for p in panels(path) for t in p.targets()]
    exprs += [(v["name"], variable_query(v)) for v in variables(path)]
    seen: set[str] = set()
    for where, expr in exprs:
        if m := re.fullmatch(r"label_values\((.*),\s*\w+\)", expr.strip(), re.DOTALL):
            expr = m.group(1)  # label_values(series, label): the series
        for name in promql_series(expr):
            if ":" in name:
                assert name in recorded, f"{where}: {name} is not a recording rule in prometheus/rules"
            else:
                assert name in known, f"{where}: {name} is not a series SpendScope emits"
            seen.add(name)
    assert len(seen) >= 10


@pytest.mark.parametrize("stem", PROMETHEUS_DASHBOARDS)
def test_prometheus_dashboards_ask_one_question_per_row(stem: str) -> None:
    path = DASHBOARD_DIR / f"{stem}.json"
    assert all(p.datasource_uid == PROMETHEUS_UID for p in panels(path))
    assert all(p.row for p in panels(path)), "every panel sits in a row"
    titles = [r["title"] for r in rows(path)]
    assert titles and all(t.endswith("?") for t in titles), titles
    assert len(titles) == len(set(titles))


def test_cost_overview_filters_by_the_four_dimensions() -> None:
    path = DASHBOARD_DIR / "cost-overview.json"
    by_name = {v["name"]: v for v in variables(path)}
    assert set(by_name) == {"tenant", "endpoint", "user", "model"}
    for name, variable in by_name.items():
        assert variable["multi"] and variable["includeAll"] and variable["allValue"] == ".*"
        assert re.fullmatch(
            rf"label_values\(spendscope_cost_usd_total(\{{.*\}})?, {name}\)", variable_query(variable)
        )
    cost_queries = [
        t.query for p in panels(path) for t in p.targets() if "spendscope_cost_usd_total" in t.query
    ]
    assert cost_queries and all(all(f'{dim}=~"${dim}"' in q for dim in by_name) for q in cost_queries), (
        "every cost query honours every variable"
    )
