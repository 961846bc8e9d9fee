"""Every component at once on the default local store: `spendscope collector` on ./spendscope-data
with the demo's workload sending to it, and meanwhile `report`, `invoice`, `margin`, `reprice`,
`export --format json`, `budgets --once` and `reconcile` (against the fake admin API), each a process of
its own, all started together. Each succeeds, each one's figures are checked against the store and
against each other, and the collector keeps ingesting while they run.

The commands read a window that ends at `until`, a moment before they start, once every call made
before it has been written: what they report is fixed while the collector goes on writing later
calls, so it must equal what the store holds for that window once everything has stopped. Calls of
tenant `acme`, two days back, sent to the collector by the test as an app's exporter would, give the
invoice and the reconciliation (OpenAI's side: the same calls, through the fake admin API) figures
known in advance."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families

from spendscope import names as n
from spendscope.demo.fake_openai.admin import ADMIN_KEY, FakeAdminAPI
from spendscope.store import open_store, server
from spendscope.store.billing import margins
from tests.monitoring import free_port
from tests.reconcile_helpers import KEY_A, MINI, MINI_CACHED, MINI_IN, MINI_OUT, bill, use
from tests.test_readme import clean_env

ROOT = Path(__file__).resolve().parents[1]
ACME_CALLS = 24
BUDGETS = """\
warning_percent: 80
per_user: {daily_usd: 0.000001, monthly_usd: null}   # every user who spent today is listed
tenants:
  talentco: {total: {daily_usd: 1000}}
"""


def metrics(url: str) -> dict[str, float]:
    """The collector's own unlabelled samples."""
    try:
        text = urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode()
    except OSError:
        return {}
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples if not s.labels}


def written(url: str) -> float:
    return metrics(url).get("spendscope_collector_written_spans_total", 0.0)


def wait_for(what: str, check: Callable[[], bool], timeout: float, *logs: Path) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not in {timeout} s\n" + "\n".join(
            log.read_text()[-2000:] for log in logs
        )
        time.sleep(0.1)


def rounds(demo_log: Path) -> int:
    """The demo's rounds sent (each line is printed once the round's spans are exported)."""
    return len(re.findall(r"^round \d+: ", demo_log.read_text(), re.M))


def acme_calls(day: datetime) -> list[Any]:
    """ACME_CALLS calls of one hour of `day` by tenant acme on project proj_a and key KEY_A, as the
    instrumentation's spans are (the store prices them itself)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "acme-billing"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("spendscope", "0.1.0")
    at = day + timedelta(hours=10, minutes=5)
    for i in range(ACME_CALLS):
        start = int((at + timedelta(seconds=30 * i)).timestamp() * 1e9)
        span = tracer.start_span(
            "chat gpt-4o-mini",
            kind=SpanKind.CLIENT,
            start_time=start,
            attributes={
                n.OPERATION_NAME: n.OP_CHAT,
                n.PROVIDER_NAME: n.PROVIDER_OPENAI,
                n.REQUEST_MODEL: "gpt-4o-mini",
                n.RESPONSE_MODEL: MINI,
                n.OPENAI_API_TYPE: "chat_completions",
                n.OPENAI_RESPONSE_SERVICE_TIER: "default",
                n.USAGE_INPUT_TOKENS: 1000 + 10 * i,
                n.USAGE_OUTPUT_TOKENS: 100 + i,
                n.USAGE_STATE: n.USAGE_STATE_REPORTED,
                n.USER_ID: f"acme-u{i % 3}",
                n.ENDPOINT: "billing",
                n.TENANT: "acme",
                n.OPENAI_PROJECT: "proj_a",
                n.OPENAI_API_KEY_REDACTED: KEY_A,
            },
        )
        span.end(end_time=start + 400_000_000)
    provider.shutdown()
    return list(exporter.get_finished_spans())


def table(output: str) -> list[dict[str, Any]]:
    """A command's JSON output ({"columns", "rows"}) as dicts."""
    body = json.loads(output)
    return [dict(zip(body["columns"], row, strict=True)) for row in body["rows"]]


def money(value: Any) -> Decimal:
    return Decimal(0) if value is None else Decimal(str(value))


def test_every_command_runs_beside_the_collector_on_the_default_store(tmp_path: Path) -> None:
    env = clean_env()
    url = f"http://127.0.0.1:{free_port()}"
    collector_log, demo_log = tmp_path / "collector.log", tmp_path / "demo.log"
    spendscope = [sys.executable, "-m", "spendscope"]
    started: list[subprocess.Popen[bytes]] = []
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text(BUDGETS)
    now = datetime.now(UTC)
    day = datetime.combine(now.date(), datetime.min.time(), UTC) - timedelta(days=2)
    since = day

    def start(args: list[str], log: Path, **extra: str) -> subprocess.Popen[bytes]:
        with log.open("w") as out:
            process = subprocess.Popen(
                [*spendscope, *args], cwd=tmp_path, env={**env, **extra}, stdout=out, stderr=out
            )
        started.append(process)
        return process

    try:
        # the collector on the default store (./spendscope-data): it starts the store's server
        start(["collector", "--listen", url.removeprefix("http://")], collector_log)
        wait_for("the collector answers", lambda: _up(url), 60, collector_log)
        acme = acme_calls(day)
        exporter = OTLPSpanExporter(endpoint=f"{url}/v1/traces")
        assert exporter.export(acme) is SpanExportResult.SUCCESS
        exporter.shutdown()
        start(["demo", "--collector", url, "--every", "1s"], demo_log, PYTHONUNBUFFERED="1")

        # `until`: once the round under way then has been sent, every call made before `until` has
        # been acknowledged; once the collector has written what it had received a round later, it
        # has been written (and the window holds still while the commands read it)
        wait_for("a round of the demo is sent", lambda: rounds(demo_log) >= 1, 120, demo_log, collector_log)
        sent = rounds(demo_log)
        until = datetime.now(UTC)
        wait_for("the next round", lambda: rounds(demo_log) >= sent + 1, 120, demo_log, collector_log)
        wait_for("one more round", lambda: rounds(demo_log) >= sent + 2, 120, demo_log, collector_log)
        received = 0.0
        while not received:  # (a scrape that fails reads as nothing)
            received = metrics(url).get("spendscope_collector_received_spans_total", 0.0)
        wait_for("the collector writes it", lambda: written(url) >= received, 120, collector_log)

        window = ["--since", since.isoformat(), "--until", until.isoformat()]
        next_day = (day + timedelta(days=1)).isoformat()
        commands = {
            "report": ["report", "--by", "tenant", *window, "--format", "json"],
            "invoice": ["invoice", "--tenant", "acme", "--month", day.strftime("%Y-%m"), "--format", "json"],
            "margin": ["margin", "--tenant", "brightschool", "--percent", "10"],
            "reprice": ["reprice", *window],
            "export": ["export", *window, "--format", "json"],
            "budgets": ["budgets", "--once", "--config", str(budgets)],
            "reconcile": ["reconcile", "--since", day.isoformat(), "--until", next_day, "--format", "json"],
        }
        with FakeAdminAPI() as admin:
            # OpenAI's side of acme's calls: the same requests, tokens and dollars
            admin.add_project("proj_a")
            admin.add_key("proj_a", "key_a", KEY_A)
            tokens_in = sum(1000 + 10 * i for i in range(ACME_CALLS))
            tokens_out = sum(100 + i for i in range(ACME_CALLS))
            hour = day + timedelta(hours=10)
            use(admin, hour, requests=ACME_CALLS, input_tokens=tokens_in, output_tokens=tokens_out)
            acme_usd = bill(
                admin,
                MINI,
                input_tokens=tokens_in,
                output_tokens=tokens_out,
                prices=(MINI_IN, MINI_CACHED, MINI_OUT),
                day=day,
            )
            admin_env = {**env, "OPENAI_ADMIN_KEY": ADMIN_KEY, "OPENAI_BASE_URL": admin.base_url}
            before = written(url)
            seen = [before]
            running = {
                name: subprocess.Popen(
                    [*spendscope, *args],
                    cwd=tmp_path,
                    env=admin_env if name == "reconcile" else env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for name, args in commands.items()
            }
            t0 = time.monotonic()
            watching = threading.Event()

            def watch() -> None:  # what the collector writes while the commands run
                while not watching.wait(0.2):
                    seen.append(written(url))

            watcher = threading.Thread(target=watch)
            watcher.start()
            try:
                results = {name: (p.communicate(timeout=180), p.returncode) for name, p in running.items()}
            finally:
                watching.set()
                watcher.join()
            took = time.monotonic() - t0
        codes = ", ".join(f"{name} {code}" for name, (_, code) in results.items())
        print(
            f"\ntogether: all seven done in {took:.1f} s ({codes}); spans written {before:.0f} -> "
            f"{max(seen):.0f} meanwhile"
        )
        for name, ((_, err), code) in results.items():
            assert code == 0, f"{name} exited {code}: {err}"
            assert "Traceback" not in err, (name, err)
            assert "started the store server" not in err, (name, err)  # they use the collector's
        assert max(seen) > before  # the collector wrote while they ran
        out = {name: stdout for name, ((stdout, _), _) in results.items()}

        # the collector goes on ingesting after them
        wait_for("ingest goes on", lambda: written(url) >= max(seen) + 55, 120, demo_log, collector_log)
    finally:
        # the demo first, then the collector it exports to (as docker compose stops them): the demo's
        # last spans are flushed to a collector that is still there
        for process in reversed(started):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    assert [p.returncode for p in started] == [0, 0], (collector_log.read_text(), demo_log.read_text())
    assert "started the store server" in collector_log.read_text()
    data = tmp_path / "spendscope-data"
    assert server.running(data) is not None  # it outlives the collector (the fixture stops it)

    # what the store holds for the window, now that nothing writes
    with open_store(str(data)) as store:
        bounds = {"since": since, "until": until}
        held = {
            tenant: (int(calls), money(cost))
            for tenant, calls, cost in store.query(
                "SELECT tenant, count(), sum(cost_usd) FROM llm_usage FINAL WHERE time >= {since:DateTime64(6, 'UTC')} "
                "AND time < {until:DateTime64(6, 'UTC')} GROUP BY tenant",
                bounds,
            ).rows
        }
        spans = {
            str(s)
            for [s] in store.query(
                "SELECT span_id FROM llm_usage FINAL WHERE time >= {since:DateTime64(6, 'UTC')} "
                "AND time < {until:DateTime64(6, 'UTC')}",
                bounds,
            ).rows
        }
        [[examined, unpriced]] = store.query(
            "SELECT count(), countIf(cost_usd IS NULL) FROM llm_usage FINAL WHERE time >= {since:DateTime64(6, 'UTC')} "
            "AND time < {until:DateTime64(6, 'UTC')} AND status = 'ok' AND usage_state != 'unavailable'",
            bounds,
        ).rows
        today = {
            (tenant, user): float(cost)
            for tenant, user, cost in store.query(
                "SELECT tenant, user_id, toFloat64(sum(cost_usd)) FROM llm_usage FINAL "
                "WHERE toDate(time) = {day:Date} GROUP BY tenant, user_id",
                {"day": datetime.now(UTC).date()},
            ).rows
        }
        brightschool = margins(store, "brightschool")
    assert set(held) == {"acme", "talentco", "brightschool"}, held
    assert held["acme"] == (ACME_CALLS, acme_usd)
    total_calls = sum(calls for calls, _ in held.values())

    # report and export: the window as the store holds it, the one equal to the other
    report = {row["tenant"]: (row["calls"], money(row["cost_usd"])) for row in table(out["report"])}
    assert report == held
    exported = table(out["export"])
    assert {row["span_id"] for row in exported} == spans and len(exported) == total_calls
    by_tenant: dict[str, tuple[int, Decimal]] = {}
    for row in exported:
        calls, cost = by_tenant.get(row["tenant"], (0, Decimal(0)))
        by_tenant[row["tenant"]] = (calls + 1, cost + money(row["cost_usd"]))
    assert by_tenant == held
    # reprice: every call of the window with usage examined, none re-costed (the prices did not change)
    assert out["reprice"] == (
        f"{examined} calls examined: 0 re-costed (0 newly priced, 0 without a price now), {unpriced} still "
        "without a price\n"
    )
    assert 0 < unpriced < examined < total_calls  # the demo's unknown model, and its errors
    # invoice: acme's month, exactly its calls, every one priced, billed at the default margin (0)
    invoice = json.loads(out["invoice"])
    assert [(row["model"], row["calls"], money(row["cost_usd"])) for row in table(out["invoice"])] == [
        (MINI, ACME_CALLS, acme_usd)
    ], out["invoice"]
    assert (invoice["tenant"], invoice["complete"], invoice["unknown_cost_calls"]) == ("acme", True, 0)
    total = invoice["total"]
    assert (total["calls"], money(total["cost_usd"]), money(total["billed_usd"])) == (
        ACME_CALLS,
        acme_usd,
        acme_usd,
    )
    # margin: recorded from today
    assert out["margin"] == "brightschool: 10% from today\n"
    assert [(t, d, p) for t, d, p in brightschool] == [("brightschool", now.date(), Decimal(10))]
    # budgets: one evaluation; every user listed spent today, at most what the store now holds
    samples = [s for f in text_string_to_metric_families(out["budgets"]) for s in f.samples]
    evaluations = "spendscope_budget_evaluations_total"
    assert {s.labels["status"]: s.value for s in samples if s.name == evaluations} == {"ok": 1, "failed": 0}
    listed = {
        (s.labels["tenant"], s.labels["user"]): s.value
        for s in samples
        if s.name == "spendscope_budget_spend_usd" and s.labels["window"] == "day"
    }
    assert listed and all(0.0000008 <= spend <= today[who] + 1e-9 for who, spend in listed.items()), listed
    assert set(listed) <= set(today)
    [talentco_today] = [
        s.value
        for s in samples
        if s.name == "spendscope_budget_tenant_spend_usd" and s.labels["window"] == "day"
    ]
    talentco_final = sum(cost for (tenant, _), cost in today.items() if tenant == "talentco")
    if until.date() == now.date():  # the window's talentco calls are all today's
        assert float(held["talentco"][1]) - 1e-9 <= talentco_today <= talentco_final + 1e-9
    # reconcile: acme's calls as OpenAI reports them, to the token and the dollar
    reconciled = json.loads(out["reconcile"])
    assert reconciled["status"] == "complete" and reconciled["passed"] is True, out["reconcile"]
    assert reconciled["tokens"]["tracked"] == reconciled["tokens"]["reported"] == tokens_in + tokens_out
    assert reconciled["tokens"]["tracked_requests"] == ACME_CALLS
    assert Decimal(reconciled["usd"]["tracked"]) == Decimal(reconciled["usd"]["reported"]) == acme_usd
    assert Decimal(reconciled["usd"]["residual"]) == 0


def _up(url: str) -> bool:
    try:
        return bool(json.loads(urllib.request.urlopen(f"{url}/healthz", timeout=5).read())["store"] == "up")
    except OSError:
        return False
