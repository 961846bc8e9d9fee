"""`spendscope reconcile`: formats, exit status against the coverage threshold, metrics, --watch."""

from __future__ import annotations

import csv
import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from rich.console import Console
from typer.testing import CliRunner, Result

from spendscope import names as n
from spendscope.cli import app
from spendscope.demo.fake_openai.admin import ADMIN_KEY, FakeAdminAPI
from spendscope.reconciler._command import Command, watch
from spendscope.store import Store
from tests.reconcile_helpers import DAY, MINI, MINI_CACHED, MINI_IN, MINI_OUT, NOW, bill, call, track, use

WINDOW = ["--since", "2026-11-10", "--until", "2026-11-11"]


@pytest.fixture
def admin(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAdminAPI]:
    monkeypatch.setenv("OPENAI_ADMIN_KEY", ADMIN_KEY)
    for name in ("SPENDSCOPE_STORE", "OPENAI_BASE_URL", "SPENDSCOPE_RECONCILE_MIN_COVERAGE"):
        monkeypatch.delenv(name, raising=False)
    with FakeAdminAPI(now=NOW) as api:
        api.add_project("proj_a")
        api.add_key("proj_a", "key_a", "sk-proj-...9f2c")
        yield api


@pytest.fixture
def day(store: Store, admin: FakeAdminAPI) -> Store:
    """One tracked call, and OpenAI reporting it plus 1000/100 tokens from another key."""
    track(store, call())
    use(admin, requests=1, input_tokens=100, output_tokens=20)
    use(admin, api_key_id="key_b", requests=1, input_tokens=1000, output_tokens=100)
    bill(admin, MINI, input_tokens=1100, output_tokens=120, prices=(MINI_IN, MINI_CACHED, MINI_OUT))
    return store


def cli(admin: FakeAdminAPI, store_dsn: str, *args: str) -> Result:
    return CliRunner().invoke(
        app, ["reconcile", *WINDOW, "--store", store_dsn, "--base-url", admin.base_url, *args]
    )


def test_json_summary_and_exit_3_below_the_threshold(day: Store, admin: FakeAdminAPI, store_dsn: str) -> None:
    done = cli(admin, store_dsn, "--format", "json")
    assert done.exit_code == 3, done.output
    body = json.loads(done.stdout)
    assert body["passed"] is False and body["coverage"] == 0.113924
    assert body["tokens"] == {
        "tracked": 120,
        "reported": 1220,
        "residual": 1100,
        "coverage_ratio": 0.098361,
        "tracked_requests": 1,
        "reported_requests": 2,
    }
    assert body["usd"] == {
        "tracked": "0.000027",
        "reported": "0.000237",
        "residual": "0.00021",
        "coverage_ratio": 0.113924,
    }
    assert body["causes"]["untracked"] == {"tokens": 1100, "usd": "0.00021", "calls": 1}
    assert body["causes"]["unexplained"] == {"tokens": 0, "usd": "0", "calls": 0}
    assert ADMIN_KEY not in done.output
    # a lower threshold passes
    assert cli(admin, store_dsn, "--format", "json", "--min-coverage", "10%").exit_code == 0


def test_csv_is_the_diffs_and_the_table_is_for_people(
    day: Store, admin: FakeAdminAPI, store_dsn: str
) -> None:
    done = cli(admin, store_dsn, "--min-coverage", "0")  # piped: csv
    assert done.exit_code == 0, done.output
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [
        (r["kind"], r["cause"], r["api_key_id"], r["tokens"], r["usd"]) for r in rows if r["kind"] == "cause"
    ] == [("cause", "untracked", "key_b", "1100", "0.00021")]
    assert {r["line_item"] for r in rows if r["kind"] == "line_item"} == {
        "gpt-4o-mini, input",
        "gpt-4o-mini, output",
    }
    table = cli(admin, store_dsn, "--format", "table", "--min-coverage", "0")
    assert table.exit_code == 0, table.output
    for text in (
        "SpendScope vs OpenAI",
        "Residual (reported - tracked) by cause",
        "untracked",
        "$0.000210",
        "11.39%",
    ):
        assert text in table.stdout, text


def test_every_cause_counts_its_calls_wherever_it_is_read(
    store: Store, admin: FakeAdminAPI, store_dsn: str, tmp_path: Path
) -> None:
    """An interrupted stream (answered without usage) and a call on a key with no spans: each cause
    says how many calls it concerns, in JSON, CSV, the table, the result tables and the metrics."""
    track(store, call(), call(state=n.USAGE_STATE_UNAVAILABLE))
    use(admin, requests=2, input_tokens=200, output_tokens=40)
    use(admin, api_key_id="key_b", requests=1, input_tokens=1000, output_tokens=100)
    bill(admin, MINI, input_tokens=1200, output_tokens=140, prices=(MINI_IN, MINI_CACHED, MINI_OUT))
    expected = {"untracked": 1, "usage_unavailable": 1}

    metrics = tmp_path / "reconcile.prom"
    done = cli(admin, store_dsn, "--format", "json", "--min-coverage", "0", "--metrics-file", str(metrics))
    assert done.exit_code == 0, done.output
    body = json.loads(done.stdout)
    assert {cause: v["calls"] for cause, v in body["causes"].items() if v["calls"]} == expected
    assert {d["cause"]: d["calls"] for d in body["diffs"] if d["kind"] == "cause"} == expected
    for cause, count in expected.items():
        assert f'spendscope_reconciliation_cause_calls{{cause="{cause}"}} {count:.1f}' in metrics.read_text()
    assert 'spendscope_reconciliation_cause_calls{cause="failed_billed"} 0.0' in metrics.read_text()
    [run] = store.query("SELECT cause_calls FROM reconciliation_runs_latest").rows
    assert {cause: count for cause, count in run[0].items() if count} == expected
    diffs = store.query("SELECT cause, calls FROM reconciliation_diffs WHERE kind = 'cause'").rows
    assert dict(diffs) == expected
    by_day = store.run("reconciliation_residual_by_cause", {"since": "2026-11-10", "until": "2026-11-11"})
    assert {r[1]: r[4] for r in by_day.rows if r[4]} == expected

    done = cli(admin, store_dsn, "--format", "csv", "--min-coverage", "0")
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert {r["cause"]: r["calls"] for r in rows if r["kind"] == "cause"} == {
        "untracked": "1",
        "usage_unavailable": "1",
    }
    table = cli(admin, store_dsn, "--format", "table", "--min-coverage", "0").stdout
    cells = {
        line.split()[1]: line.split()[1:6:2] for line in table.splitlines() if line.startswith(("┃", "│"))
    }
    assert cells["cause"] == ["cause", "calls", "tokens"]
    assert cells["usage_unavailable"] == ["usage_unavailable", "1", "120"]


def test_the_figures_of_every_key_on_both_sides(store: Store, admin: FakeAdminAPI, store_dsn: str) -> None:
    """sk-proj-...9f2c matches key_a and key_c (ambiguous); sk-proj-...0000 matches no listed key
    (unmapped: its usage is reported under key_old, no longer listed). Each key's requests, tokens and
    dollars on both sides show what part of the residual is theirs."""
    prices = (MINI_IN, MINI_CACHED, MINI_OUT)
    admin.add_key("proj_a", "key_c", "sk-proj-abc...9f2c")
    track(store, call(), call(), call(key="sk-proj-...0000", input_tokens=1000, output_tokens=100))
    use(admin, requests=2, input_tokens=200, output_tokens=40)
    bill(admin, MINI, input_tokens=200, output_tokens=40, prices=prices, api_key_id="key_a")
    use(admin, api_key_id="key_c", requests=1, input_tokens=500, output_tokens=100)
    bill(admin, MINI, input_tokens=500, output_tokens=100, prices=prices, api_key_id="key_c")
    use(admin, api_key_id="key_old", requests=1, input_tokens=1000, output_tokens=100)
    bill(admin, MINI, input_tokens=1000, output_tokens=100, prices=prices, api_key_id="key_old")
    admin.add_cost(DAY, project_id="proj_a", line_item="web search tool calls", amount="0.01")

    done = cli(admin, store_dsn, "--format", "json", "--min-coverage", "0")
    assert done.exit_code == 0, done.output
    keys = json.loads(done.stdout)["keys"]
    assert keys["tracked"] == [
        {"project": "proj_a", "redacted": "sk-proj-...0000", "mapping": "unmapped", "api_key_id": "",
         "requests": 1, "tokens": 1100, "usd": "0.00021"},
        {"project": "proj_a", "redacted": "sk-proj-...9f2c", "mapping": "ambiguous", "api_key_id": "key_a|key_c",
         "requests": 2, "tokens": 240, "usd": "0.000054"},
    ]  # fmt: skip
    assert keys["reported"] == [
        {"project_id": "proj_a", "api_key_id": "", "requests": 0, "tokens": 0, "usd": "0.01", "fingerprints": []},
        {"project_id": "proj_a", "api_key_id": "key_a", "requests": 2, "tokens": 240, "usd": "0.000054",
         "fingerprints": ["sk-proj-...9f2c"]},
        {"project_id": "proj_a", "api_key_id": "key_c", "requests": 1, "tokens": 600, "usd": "0.000135",
         "fingerprints": ["sk-proj-...9f2c"]},
        {"project_id": "proj_a", "api_key_id": "key_old", "requests": 1, "tokens": 1100, "usd": "0.00021",
         "fingerprints": []},
    ]  # fmt: skip

    table = cli(admin, store_dsn, "--format", "table", "--min-coverage", "0").stdout
    rows = [line.split("│")[1:-1] for line in table.splitlines() if line.startswith("│")]
    cells = {tuple(c.strip() for c in row[:2]): [c.strip() for c in row] for row in rows}
    assert "API keys in spans (of 2)" in table and "API keys OpenAI reports (of 4)" in table
    assert cells[("sk-proj-...0000", "proj_a")] == [
        "sk-proj-...0000",
        "proj_a",
        "",
        "unmapped",
        "1",
        "1,100",
        "$0.000210",
    ]
    assert cells[("sk-proj-...9f2c", "proj_a")][2:] == ["key_a|key_c", "ambiguous", "2", "240", "$0.000054"]
    assert cells[("key_c", "proj_a")] == ["key_c", "proj_a", "1", "600", "$0.000135", "sk-proj-...9f2c"]
    assert cells[("key_old", "proj_a")] == ["key_old", "proj_a", "1", "1,100", "$0.000210", ""]


def test_errors_are_one_line_naming_the_admin_key(
    store: Store, admin: FakeAdminAPI, store_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_ADMIN_KEY", "sk-proj-projectkeynotadmin00000000abcd")
    done = cli(admin, store_dsn)
    assert done.exit_code == 1
    assert done.stderr.startswith("error: OpenAI refused the admin key (HTTP 403): ")
    assert "OPENAI_ADMIN_KEY" in done.stderr and "projectkey" not in done.stderr and "abcd" not in done.stderr
    monkeypatch.delenv("OPENAI_ADMIN_KEY")
    assert cli(admin, store_dsn).stderr.startswith(
        "error: no admin key: the organization Usage and Costs APIs"
    )
    bad = cli(admin, store_dsn, "--min-coverage", "most")
    assert (
        bad.exit_code == 1 and "reconcile setting min_coverage (option --min-coverage='most')" in bad.stderr
    )


def test_metrics_file_for_cron(day: Store, admin: FakeAdminAPI, store_dsn: str, tmp_path: Path) -> None:
    target = tmp_path / "textfile" / "spendscope_reconcile.prom"
    done = cli(admin, store_dsn, "--format", "json", "--metrics-file", str(target))
    assert done.exit_code == 3
    text = target.read_text()
    assert 'spendscope_reconciliation_residual_usd{cause="untracked"} 0.00021' in text
    assert "spendscope_reconciliation_coverage_ratio 0.11392405063291139" in text


def test_metrics_file_has_no_dollars_when_none_were_compared(
    day: Store, admin: FakeAdminAPI, store_dsn: str, tmp_path: Path
) -> None:
    """Without the Costs API (--no-costs, or no cost day closed yet) there is no dollar sample at all:
    an absent series, not tracked_usd 0.0 beside real token figures."""
    target = tmp_path / "spendscope_reconcile.prom"
    dollars = (
        n.PROM_RECONCILIATION_TRACKED_USD,
        n.PROM_RECONCILIATION_REPORTED_USD,
        n.PROM_RECONCILIATION_COVERAGE + " ",
        n.PROM_RECONCILIATION_RESIDUAL_USD + "{",
    )
    done = cli(admin, store_dsn, "--format", "json", "--no-costs", "--metrics-file", str(target))
    assert done.exit_code == 3, done.output  # token coverage 12%
    samples = [line for line in target.read_text().splitlines() if not line.startswith("#")]
    assert f'{n.PROM_RECONCILIATION_TRACKED_TOKENS}{{type="input"}} 100.0' in samples
    assert [line for line in samples if line.startswith(dollars)] == []
    assert json.loads(done.stdout)["usd"]["tracked"] is None
    compared = cli(admin, store_dsn, "--format", "json", "--metrics-file", str(target))
    assert compared.exit_code == 3, compared.output
    text = target.read_text()
    assert f"{n.PROM_RECONCILIATION_TRACKED_USD} 2.7e-05" in text
    assert f"{n.PROM_RECONCILIATION_REPORTED_USD} 0.000237" in text


def test_watch_runs_until_stopped_and_serves_metrics(day: Store, admin: FakeAdminAPI) -> None:
    stop = threading.Event()
    outputs: list[str] = []
    ports: list[int] = []

    def echo(text: str) -> None:
        outputs.append(text)
        scraped = httpx2.get(f"http://127.0.0.1:{ports[0]}/metrics").text
        assert 'spendscope_reconciliation_residual_tokens{cause="untracked"} 1100.0' in scraped
        stop.set()  # after the first run

    command = Command.resolve(
        since="2026-11-10", until="2026-11-11", output="json", base_url=admin.base_url, costs=True,
        min_coverage=None, usage_settle=None, costs_settle=None, bucket_width=None, interval="1s",
        max_retries=None, max_retry_wait=None, page_bytes=None, metrics_file=None, metrics_listen="127.0.0.1:0",
    )  # fmt: skip
    assert watch(command, day, echo=echo, console=Console(), stop=stop, on_listen=ports.append) == 0
    [output] = outputs
    assert json.loads(output)["causes"]["untracked"]["tokens"] == 1100
