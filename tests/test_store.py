"""The store on a real ClickHouse server (the local store server, over HTTP): migrations, the exporter's DDL, llm_usage from instrumented calls, a
replayed block counted once, and the rollups."""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import openai
import pytest

import spendscope
from spendscope import names as n
from spendscope.demo.fake_openai import FakeOpenAI, Reply
from spendscope.pricing import Pricer
from spendscope.settings import ConfigurationError
from spendscope.settings.store import StoreSettings
from spendscope.store import Store, StoreError, open_store
from spendscope.store import migrations as mig
from spendscope.store.dsn import parse_dsn
from spendscope.store.rollups import build_rollups
from spendscope.store.sqlfiles import clickhouse_dir, render, split_statements
from spendscope.usage import TokenUsage
from tests.conftest import Capture
from tests.helpers import chat_body
from tests.store_fixtures import llm_record, span_record

CHAT = "/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "Parse this CV"}]
NOW = datetime(2026, 11, 3, 10, 30, tzinfo=UTC)

# The exporter's template, verbatim (collector-contrib exporter/clickhouseexporter/internal/sqltemplates/
# traces_table.sql @ 2bf6b9e1 and traces_id_ts_lookup_*.sql; /work/shared/reference/anchors.md §4.1).
EXPORTER_TRACES_TABLE = """\
CREATE TABLE IF NOT EXISTS {{ident .Database}}.{{ident .TableName}} {{.ClusterString}} (
    Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    TraceState String CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    SpanAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    Duration UInt64 CODEC(T64, ZSTD(1)),
    StatusCode LowCardinality(String) CODEC(ZSTD(1)),
    StatusMessage String CODEC(ZSTD(1)),
    Events Nested (
        Timestamp DateTime64(9),
        Name LowCardinality(String),
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    Links Nested (
        TraceId String,
        SpanId String,
        TraceState String,
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    ResourceAttributeItems Array(String) ALIAS arrayMap(kv -> concat(kv.1, '=', kv.2), CAST(ResourceAttributes, 'Array(Tuple(String, String))')),
    SpanAttributeItems Array(String) ALIAS arrayMap(kv -> concat(kv.1, '=', kv.2), CAST(SpanAttributes, 'Array(Tuple(String, String))')),
{{- if .HasFullTextSearch}}
    INDEX idx_trace_id TraceId TYPE text(tokenizer = 'array'),
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE text(tokenizer = 'array'),
    INDEX idx_res_attr_items ResourceAttributeItems TYPE text(tokenizer = 'array'),
    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE text(tokenizer = 'array'),
    INDEX idx_span_attr_items SpanAttributeItems TYPE text(tokenizer = 'array'),
{{- else}}
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_value mapValues(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
{{- end}}
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1,
    INDEX idx_lower_span_name lower(SpanName) TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 8
) ENGINE = {{.Engine}}
PARTITION BY toDate(Timestamp)
PRIMARY KEY (ServiceName, SpanName, toDateTime(Timestamp))
ORDER BY (ServiceName, SpanName, toDateTime(Timestamp), Timestamp)
{{.TTL}}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1
"""
EXPORTER_TRACE_ID_TS_TABLE = """\
CREATE TABLE IF NOT EXISTS {{ident .Database}}.{{ident .TableName}} {{.ClusterString}} (
    TraceId String CODEC(ZSTD(1)),
    Start SimpleAggregateFunction(min, DateTime) CODEC(ZSTD(1)),
    End SimpleAggregateFunction(max, DateTime) CODEC(ZSTD(1))
) ENGINE = {{.Engine}}
PARTITION BY toStartOfWeek(Start)
ORDER BY (TraceId)
{{.TTL}}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1
"""
EXPORTER_TRACE_ID_TS_VIEW = """\
CREATE MATERIALIZED VIEW IF NOT EXISTS {{ident .Database}}.{{ident .ViewName}} {{.ClusterString}}
TO {{ident .Database}}.{{ident .TableName}}
AS SELECT
    TraceId,
    min(toDateTime(Timestamp)) AS Start,
    max(toDateTime(Timestamp)) AS End
FROM {{ident .Database}}.{{ident .SourceTableName}}
WHERE TraceId != ''
GROUP BY TraceId
"""


def exporter_ddl(template: str, database: str, fts: bool, **names: str) -> str:
    """Render a template as the exporter does with its defaults (no cluster, no TTL)."""
    sql = render(template, full_text_search=fts)
    values = {"Database": database, "ClusterString": "", "TTL": "", **names}
    sql = re.sub(r"\{\{ident \.(\w+)\}\}", lambda m: f"`{values[m.group(1)]}`", sql)
    return re.sub(r"\{\{\.(\w+)\}\}", lambda m: values[m.group(1)], sql)


@pytest.fixture
def scratch(store: Store) -> Iterator[list[str]]:
    names = [f"x_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    for name in names:
        store.command(f"CREATE DATABASE `{name}`")
    yield names
    for name in names:
        store.command(f"DROP DATABASE `{name}` SYNC")


def show_create(store: Store, database: str, table: str) -> str:
    [[ddl]] = store.query(f"SHOW CREATE TABLE `{database}`.`{table}`").rows
    return str(ddl).replace(f"{database}.", "DB.")


# --- migrations ----------------------------------------------------------------------------------------
def test_migrations_are_recorded_and_idempotent(store: Store) -> None:
    files = mig.load_migrations()
    labels = [m.label for m in files]
    assert labels == ["0001_baseline", "0002_reconciliation", "0003_access_tokens", "0004_job_rollup"]
    recorded = store.query(
        "SELECT version, name, checksum, applied_at FROM spendscope_migrations ORDER BY version"
    )
    assert [row[:3] for row in recorded.rows] == [[m.version, m.name, m.checksum] for m in files]
    assert all(isinstance(row[3], datetime) for row in recorded.rows)
    assert store.migrate() == []  # nothing left to do
    assert store.migrate() == []
    assert len(store.query("SELECT * FROM spendscope_migrations FINAL").rows) == len(files)


def test_a_changed_or_unknown_migration_is_refused() -> None:
    files = mig.load_migrations()
    applied = [mig.Applied(m.version, m.name, m.checksum) for m in files]
    assert mig.pending(files, applied[:1]) == files[1:]
    edited = [*applied[:1], mig.Applied(2, "reconciliation", "0" * 64)]
    with pytest.raises(StoreError, match="0002_reconciliation was changed after it was applied"):
        mig.pending(files, edited)
    old = [mig.Applied(1, "otel_traces", "x"), mig.Applied(2, "insert_deduplication", "y")]
    with pytest.raises(mig.PreBaselineStore, match=r"pre-release schema .* `spendscope migrate --upgrade`"):
        mig.pending(files, old, database="prod")
    with pytest.raises(StoreError, match="0099_future, which this SpendScope does not know"):
        mig.pending(files, [*applied, mig.Applied(99, "future", "x")])


def test_statements_split_outside_strings_and_comments() -> None:
    sql = "-- a; comment\nSELECT 'a;b', `c;d` /* e; */; SELECT 2;\n-- trailing; comment\n"
    assert split_statements(sql) == ["-- a; comment\nSELECT 'a;b', `c;d` /* e; */", "SELECT 2"]


def test_server_version_picks_the_otel_traces_index_variant() -> None:
    assert mig.full_text_search("26.9.2.1") and mig.full_text_search("26.2")
    assert not mig.full_text_search("25.8.3.1") and not mig.full_text_search("weird")


def test_trace_indexes_setting_overrides_the_version_and_refuses_unknown_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert mig.full_text_search("26.9.2.1", "auto") and not mig.full_text_search("25.8.3.1", "auto")
    assert not mig.full_text_search("26.9.2.1", "bloom_filter") and mig.full_text_search("25.8.3.1", "text")
    assert StoreSettings.resolve().store_trace_indexes == "auto"
    monkeypatch.setenv("SPENDSCOPE_STORE_TRACE_INDEXES", "bloom_filter")
    assert StoreSettings.resolve().store_trace_indexes == "bloom_filter"
    monkeypatch.setenv("SPENDSCOPE_STORE_TRACE_INDEXES", "bogus")
    with pytest.raises(
        ConfigurationError, match=r"TRACE_INDEXES='bogus'\): must be 'auto', 'text' or 'bloom_filter'"
    ):
        StoreSettings.resolve()


def test_a_store_migrated_with_bloom_filter_trace_indexes_gets_the_exporters_other_branch(
    server_dsn: str, scratch: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPENDSCOPE_STORE_TRACE_INDEXES", "bloom_filter")
    with open_store(f"{server_dsn}/{scratch[0]}", migrate=True) as chosen:
        ddl = show_create(chosen, scratch[0], "otel_traces")
    assert "TYPE bloom_filter(0.001)" in ddl and "TYPE text(" not in ddl


@pytest.mark.parametrize("fts", [True, False], ids=["text-index (>= 26.2)", "bloom-filter (older)"])
def test_otel_traces_ddl_is_the_exporters(store: Store, scratch: list[str], fts: bool) -> None:
    ours, theirs = scratch
    [baseline] = [m for m in mig.load_migrations() if m.name == "baseline"]
    for statement in baseline.statements(full_text_search=fts)[:3]:  # the exporter's three statements
        store.client.command(statement.replace("otel_traces", f"`{ours}`.otel_traces"))
    store.command(
        exporter_ddl(EXPORTER_TRACES_TABLE, theirs, fts, TableName="otel_traces", Engine="MergeTree()")
    )
    store.command(
        exporter_ddl(
            EXPORTER_TRACE_ID_TS_TABLE,
            theirs,
            fts,
            TableName="otel_traces_trace_id_ts",
            Engine="AggregatingMergeTree()",
        )
    )
    store.command(
        exporter_ddl(
            EXPORTER_TRACE_ID_TS_VIEW,
            theirs,
            fts,
            ViewName="otel_traces_trace_id_ts_mv",
            TableName="otel_traces_trace_id_ts",
            SourceTableName="otel_traces",
        )
    )
    for table in ("otel_traces", "otel_traces_trace_id_ts", "otel_traces_trace_id_ts_mv"):
        assert show_create(store, ours, table) == show_create(store, theirs, table)
    index = "TYPE text(tokenizer = 'array')" if fts else "TYPE bloom_filter(0.001)"
    assert index in show_create(store, ours, "otel_traces")


def test_migrated_otel_traces_is_the_exporters(store: Store, scratch: list[str]) -> None:
    theirs = scratch[0]
    fts = mig.full_text_search(store.server_version)
    store.command(
        exporter_ddl(EXPORTER_TRACES_TABLE, theirs, fts, TableName="otel_traces", Engine="MergeTree()")
    )
    assert show_create(store, store.database, "otel_traces") == show_create(store, theirs, "otel_traces")


def test_sql_uses_only_attribute_names_from_names_py() -> None:
    known = {v for k, v in vars(n).items() if k.isupper() and isinstance(v, str)}
    used: set[str] = set()
    for path in (clickhouse_dir() / "migrations").glob("*.sql"):
        text = path.read_text()
        used |= set(re.findall(r"(?:SpanAttributes|\ba)\['([^']+)'\]", text))
        used |= set(re.findall(r"'((?:spendscope|gen_ai|openai)\.[a-z_.]+)'", text))
    assert used - known == set()
    prefix_free = {n.EXTRA_PREFIX}  # used as a prefix, not a key
    assert used >= {n.COST_USD, n.USER_ID, n.TENANT, n.ENDPOINT, n.OPERATION_NAME} | prefix_free


# --- llm_usage from real instrumented calls ----------------------------------------------------------
def test_llm_usage_rows_from_instrumented_calls(
    store: Store, capture: Capture, server: FakeOpenAI, client: openai.OpenAI
) -> None:
    server.enqueue(CHAT, Reply(json=chat_body(1149, 353, cached=1024, reasoning=100)))
    server.enqueue(CHAT, Reply(json=chat_body(400, 50, model="acme-llm-1")))
    server.enqueue(CHAT, Reply(status=500, json={"error": {"message": "boom", "type": "server_error"}}))
    tracer = capture.tracer_provider.get_tracer("app")
    with (
        tracer.start_as_current_span("POST /jobs/J-42/cv"),
        spendscope.attributes(user="u-42", endpoint="cv-parsing", tenant="acme", job_id="J-42"),
    ):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        client.chat.completions.create(model="acme-llm-1", messages=MESSAGES)
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        client.embeddings.create(model="text-embedding-3-small", input="a CV")
    spans = capture.spans()
    assert len(spans) == 5
    store.insert_spans([span_record(s) for s in spans])

    assert store.query("SELECT count() FROM otel_traces").rows == [[5]]
    rows = store.query(
        "SELECT operation, model, input_tokens, output_tokens, cached_input_tokens, reasoning_tokens, cost_usd, "
        "usage_state, status, error_type, user_id, endpoint, tenant, attributes, service, service_tier, "
        "openai_project, api_key_redacted FROM llm_usage FINAL ORDER BY time"
    ).rows
    pricer = Pricer()
    at = datetime.fromtimestamp(spans[0].start_time / 1e9, UTC)  # type: ignore[operator]
    mini = pricer.price(
        "gpt-4o-mini-2024-07-18", TokenUsage(1149, 353, cached_input=1024, reasoning=100), at=at
    )
    assert mini is not None and mini.cost_usd == Decimal("0.000307350")
    common = ["u-42", "cv-parsing", "acme", {"job_id": "J-42"}, "test-app"]
    key = ["proj_test", "sk-proj-...wxyz"]
    embedding_tokens = rows[3][2]
    embedding = pricer.price("text-embedding-3-small", TokenUsage(embedding_tokens), at=at)
    assert embedding is not None
    assert rows == [
        [
            "chat",
            "gpt-4o-mini-2024-07-18",
            1149,
            353,
            1024,
            100,
            mini.cost_usd,
            "reported",
            "ok",
            "",
            *common,
            "default",
            *key,
        ],
        ["chat", "acme-llm-1", 400, 50, 0, 0, None, "reported", "ok", "", *common, "default", *key],
        [
            "chat",
            "gpt-4o-mini",
            0,
            0,
            0,
            0,
            None,
            "unavailable",
            "error",
            "InternalServerError",
            *common,
            "",
            *key,
        ],
        [
            "embeddings",
            "text-embedding-3-small",
            embedding_tokens,
            0,
            0,
            0,
            embedding.cost_usd,
            "reported",
            "ok",
            "",
            *common,
            "",
            *key,
        ],
    ]
    # The span's own cost attribute (a decimal string) is the exact Decimal the Pricer computed.
    [first] = [s for s in spans if s.name == "chat gpt-4o-mini" and (s.attributes or {}).get(n.COST_USD)]
    assert Decimal(str((first.attributes or {})[n.COST_USD])) == mini.cost_usd
    # The HTTP span without GenAI attributes stays in otel_traces only.
    assert store.query(
        "SELECT SpanName, SpanKind FROM otel_traces WHERE NOT mapContains(SpanAttributes, 'gen_ai.operation.name')"
    ).rows == [["POST /jobs/J-42/cv", "Internal"]]
    assert store.query("SELECT count() FROM llm_usage WHERE trace_id = '' OR span_id = ''").rows == [[0]]


def test_cost_in_exponent_form_and_status_strings_of_older_exporters(store: Store) -> None:
    tiny = llm_record(NOW, cost="5e-7")
    old = llm_record(NOW, cost=None, error="RateLimitError", state=n.USAGE_STATE_UNAVAILABLE)
    old = dataclasses.replace(old, status_code="STATUS_CODE_ERROR")
    store.insert_spans([tiny, old])
    assert store.query(
        "SELECT client_cost_usd, cost_usd, cost_mismatch, status FROM llm_usage ORDER BY span_id"
    ).rows == [
        [Decimal("0.0000005"), Decimal("0.000027"), 1, "ok"],  # the store's price: 100 in, 20 out
        [None, None, 0, "error"],
    ]


# --- nothing counted twice ---------------------------------------------------------------------------
def totals(store: Store) -> dict[str, list[object]]:
    usage = "count(), sum(input_tokens), sum(ifNull(cost_usd, 0))"
    window = "since = '2026-11-01 00:00:00', until = '2026-12-01 00:00:00'"
    return {
        "llm_usage FINAL": store.query(f"SELECT {usage} FROM llm_usage FINAL").rows[0],
        **{
            f"usage {grain}": store.query(
                f"SELECT sum(calls), sum(input_tokens), sum(cost_usd) FROM usage(grain = '{grain}', {window})"
            ).rows[0]
            for grain in ("hour", "day")
        },
    }


def test_a_replayed_block_is_counted_once(store: Store) -> None:
    block = [llm_record(NOW + timedelta(minutes=i), input_tokens=100 + i, cost=None) for i in range(3)]
    store.insert_spans(block)
    once = totals(store)
    assert once["llm_usage FINAL"] == [3, 303, Decimal("0.00008145")]  # 303 x $0.15/M + 60 x $0.60/M
    store.insert_spans(block)  # a retry after a timeout
    store.insert_spans(block[1:])  # part of it, in another block
    assert totals(store) == once
    assert all(v[0] == 3 for v in once.values())
    build_rollups(store, lag=timedelta(0))
    store.insert_spans(block)  # after the build: its buckets are stale, read from llm_usage
    assert totals(store) == once
    # the raw spans keep every copy (nothing is billed from them)
    assert store.query("SELECT count() FROM otel_traces").rows == [[3 + 3 + 2 + 3]]


def test_an_empty_block_is_nothing(store: Store) -> None:
    store.insert_spans([])
    assert store.query("SELECT count() FROM otel_traces").rows == [[0]]


# --- rollups --------------------------------------------------------------------------------------------
def test_rollups_equal_llm_usage_and_shrink_it(store: Store) -> None:
    records = []
    for i in range(240):
        at = NOW - timedelta(minutes=i * 7)
        kind = i % 8
        records.append(
            llm_record(
                at,
                user=f"u-{i % 7}",
                tenant=("acme", "globex")[i % 2],
                endpoint=("cv-parsing", "questions", "interview")[i % 3],
                model=("gpt-4o-mini-2024-07-18", "gpt-4.1-2025-04-14", "acme-llm-1")[i % 3],
                input_tokens=100 + i,
                output_tokens=10 + i % 5,
                cost=None if kind == 0 else f"0.0000{i:03d}",
                state=n.USAGE_STATE_UNAVAILABLE if kind in (1, 2) else n.USAGE_STATE_REPORTED,
                error="APITimeoutError" if kind == 2 else None,
                extra={"job_id": f"J-{i % 5}"} if i % 9 else None,  # and calls without a job
            )
        )
    for start in range(0, len(records), 50):
        store.insert_spans(records[start : start + 50])
    result = build_rollups(store, lag=timedelta(0))
    assert result.buckets == {"hour": 29, "day": 2, "user_day": 2, "job_day": 2} and result.superseded == 0
    columns = (
        "count() AS calls, sum(input_tokens), sum(output_tokens), sum(ifNull(cost_usd, 0)), "
        "sum(priced), sum(unpriced), sum(usage_unavailable), sum(error), sum(cost_mismatch)"
    )
    summed = (
        "sum(calls), sum(input_tokens), sum(output_tokens), sum(cost_usd), sum(priced_calls), "
        "sum(unpriced_calls), sum(usage_unavailable_calls), sum(error_calls), sum(cost_mismatch_calls)"
    )
    for grain, group in (
        ("hour", "tenant, endpoint, model, service"),
        ("day", "tenant, endpoint, model, service"),
        ("user_day", "tenant, user_id, endpoint, model, service"),
        ("job_day", "tenant, job_id, endpoint, model, service"),
    ):
        raw = store.query(
            f"SELECT {group}, {columns} FROM (SELECT *, priced, unpriced, usage_unavailable, error, attributes['job_id'] AS job_id "
            "FROM llm_usage FINAL) "
            f"GROUP BY {group} ORDER BY {group}"
        ).rows
        rollup = store.query(
            f"SELECT {group}, {summed} FROM llm_usage_rollup WHERE grain = '{grain}' GROUP BY {group} ORDER BY {group}"
        ).rows
        assert rollup == raw and len(raw) > 5, grain
    # every call is exactly one of priced, unpriced, usage unavailable, error
    [[calls, priced, unpriced, unavailable, errors]] = store.query(
        "SELECT count(), sum(priced), sum(unpriced), sum(usage_unavailable), sum(error) FROM llm_usage FINAL"
    ).rows
    assert (calls, priced + unpriced + unavailable + errors) == (240, 240)
    assert (unpriced, unavailable, errors) == (80 - 20, 30, 30)  # acme-llm-1 has no price
    [[rows]] = store.query("SELECT count() FROM llm_usage_rollup WHERE grain = 'user_day'").rows
    assert rows < len(records) / 2


# --- opening stores ----------------------------------------------------------------------------------
def test_a_local_store_without_its_server_is_one_line(tmp_path: Path) -> None:
    """Connecting never starts a server (the commands and the collector do)."""
    with pytest.raises(StoreError) as info:
        open_store(str(tmp_path))
    assert str(info.value) == (
        f"no store server runs for {tmp_path}: `spendscope store start --store {tmp_path}` starts it"
    )
    with pytest.raises(StoreError, match=f"^no store at {tmp_path / 'nope'}: the directory does not exist$"):
        open_store(str(tmp_path / "nope"))
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_unreachable_server_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(StoreError) as info:
        open_store("http://spendscope:secret@127.0.0.1:9/spendscope")
    message = str(info.value)
    assert message.startswith("cannot reach ClickHouse at http://spendscope@127.0.0.1:9/spendscope")
    assert "secret" not in message and "\n" not in message


# --- DSNs and files (pure) ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        ("chdb:///var/lib/ss", ("", "spendscope", "/var/lib/ss")),
        ("chdb:///var/lib/ss/?database=acme", ("", "acme", "/var/lib/ss")),
        ("chdb://data", ("", "spendscope", "/work/app/data")),
        ("./spendscope-data", ("", "spendscope", "/work/app/spendscope-data")),
        ("/var/lib/ss?database=acme", ("", "acme", "/var/lib/ss")),
        ("http://u:p@ch:8123/prod", ("http://u:p@ch:8123", "prod", None)),
        (
            "https://u:p@ch.example:8443/?database=x&secure=true",
            ("https://u:p@ch.example:8443?secure=true", "x", None),
        ),
        ("http://ch:8123", ("http://ch:8123", "spendscope", None)),
    ],
)
def test_store_dsns(dsn: str, expected: tuple[str, str, str | None]) -> None:
    target = parse_dsn(dsn, cwd=Path("/work/app"))
    path = str(target.directory) if target.directory else None
    assert (target.dsn, target.database, path) == expected


def test_store_dsn_defaults_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPENDSCOPE_STORE", raising=False)
    default = parse_dsn(None, cwd=Path("/srv"))
    assert (default.directory, default.describe()) == (
        Path("/srv/spendscope-data"),
        "/srv/spendscope-data (database spendscope)",
    )
    monkeypatch.setenv("SPENDSCOPE_STORE", "http://a:b@h:8123/db")
    from_env = parse_dsn(None, cwd=Path("/srv"))
    assert (from_env.database, from_env.describe()) == ("db", "http://a@h:8123/db")
    assert parse_dsn("chdb:///x?database=a", database="t_1").database == "t_1"
    monkeypatch.setenv("SPENDSCOPE_STORE", "http://u:hunter2@/db")
    with pytest.raises(ConfigurationError) as info:
        parse_dsn(None)
    assert str(info.value) == (
        "SpendScope setting store (environment variable SPENDSCOPE_STORE='http://u:***@/db'): "
        "bad store DSN 'http://u:***@/db': use a directory, chdb:///path/to/dir, or "
        "http(s)://user:pass@host:8123/database"
    )


@pytest.mark.parametrize(
    ("dsn", "message"),
    [
        ("ftp://h/x", "bad store DSN 'ftp://h/x': use a directory, chdb:///path/to/dir, or http(s)://"),
        ("http://u:hunter2@/db", "bad store DSN 'http://u:***@/db'"),
        ("http://h:99999/db", "bad port"),
        ("chdb://memory", "give the data directory"),
        ("chdb:///x?path=y", "unknown option(s) path"),
        ("http://h:8123/no-such;db", "bad database name 'no-such;db'"),
        ("  ", "empty store DSN"),
    ],
)
def test_bad_store_dsns_are_clear(dsn: str, message: str) -> None:
    with pytest.raises(StoreError) as info:
        parse_dsn(dsn)
    assert message in str(info.value) and "hunter2" not in str(info.value)


def test_sql_files_are_found_in_a_wheel_and_in_a_checkout(tmp_path: Path) -> None:
    wheel = tmp_path / "site" / "spendscope"
    (wheel / "_clickhouse" / "migrations").mkdir(parents=True)
    assert clickhouse_dir(wheel) == wheel / "_clickhouse"
    checkout = tmp_path / "repo"
    (checkout / "clickhouse" / "migrations").mkdir(parents=True)
    assert clickhouse_dir(checkout / "spendscope") == checkout / "clickhouse"
    with pytest.raises(FileNotFoundError):
        clickhouse_dir(tmp_path / "nowhere" / "spendscope")
