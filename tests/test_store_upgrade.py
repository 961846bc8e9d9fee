"""A store made by the migrations before the baseline (tests/store_old_schema/, applied as the old
`migrate` applied them): every command says how to move it in one line, and `spendscope migrate
--upgrade` moves it onto the baseline schema, the calls derived and priced again from its spans."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from spendscope.cli import app
from spendscope.pricing import Pricer
from spendscope.store import Store, open_store
from spendscope.store import migrations as mig
from spendscope.store import reports as r
from spendscope.store.billing import margins, set_margin
from spendscope.store.upgrade import upgrade
from spendscope.usage import TokenUsage
from tests.store_fixtures import llm_record

OLD = Path(__file__).resolve().parent / "store_old_schema"
NOV, DEC = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture
def old_store(server_dsn: str, _store_admin: Store) -> Iterator[Store]:
    """A database migrated by the pre-baseline chain, as the old `Store.migrate` did it."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    store = open_store(server_dsn, database=name)
    store.command(mig.migrations_table_sql())  # the same table then and now
    fts = mig.full_text_search(store.server_version)
    for migration in mig.load_migrations(OLD):
        for statement in migration.statements(full_text_search=fts):
            store.client.command(statement)
        store.insert(
            "spendscope_migrations",
            [[migration.version, migration.name, migration.checksum, datetime.now(UTC)]],
            ["version", "name", "checksum", "applied_at"],
            column_type_names=["UInt32", "String", "String", "DateTime64(3, 'UTC')"],
        )
    try:
        yield store
    finally:
        store.close()
        for database in (name, f"{name}_pre_baseline"):
            _store_admin.command(f"DROP DATABASE IF EXISTS `{database}` SYNC")


def test_the_old_chain_is_the_pre_baseline_schema(old_store: Store) -> None:
    assert [m.label for m in mig.load_migrations(OLD)] == [f"{v:04d}_{name}" for v, name in mig.PRE_BASELINE]
    with pytest.raises(mig.PreBaselineStore) as info:
        old_store.migrate()
    message = str(info.value)
    assert "\n" not in message and "`spendscope migrate --upgrade`" in message
    assert f"{old_store.database}_pre_baseline" in message


def test_every_command_says_how_to_move_and_the_upgrade_moves_the_data(
    old_store: Store, server_dsn: str
) -> None:
    at = datetime(2026, 11, 3, 10, tzinfo=UTC)
    calls = [
        llm_record(
            at + timedelta(minutes=i), user=f"u-{i % 2}", tenant="acme", input_tokens=1000 + i, cost="0.5"
        )
        for i in range(4)
    ]
    calls.append(llm_record(at, model="acme-llm-1", tenant="globex", cost="0.25"))
    old_store.insert_spans(calls)
    old_store.insert_spans(calls[:2] + calls[3:])  # a retry in another block: the old rollups count it twice
    set_margin(old_store, "acme", Decimal(20), effective_from=date(2026, 11, 1))
    [[old_hourly]] = old_store.query("SELECT sum(calls) FROM llm_usage_hourly").rows
    assert old_hourly == 9  # what the old schema got wrong

    dsn = f"{server_dsn}/{old_store.database}"
    for command in (["migrate"], ["report", *("--since", "2026-11-01", "--until", "2026-12-01")]):
        done = CliRunner().invoke(app, [*command, "--store", dsn])
        assert done.exit_code == 1
        assert done.stderr.count("\n") == 1 and "spendscope migrate --upgrade" in done.stderr, command

    done = CliRunner().invoke(app, ["migrate", "--upgrade", "--store", dsn])
    assert done.exit_code == 0, done.output
    assert "9 spans copied, 5 calls (the old store held 5)" in done.stdout
    with open_store(dsn) as moved:
        assert moved.pending_migrations() == []
        by_tenant = r.report(moved, by="tenant", since=NOV, until=DEC).as_dicts()
        pricer = Pricer()
        acme = sum(
            (pricer.price("gpt-4o-mini-2024-07-18", TokenUsage(1000 + i, 20), at=at, service_tier="default").cost_usd  # type: ignore[union-attr]
             for i in range(4)),
            Decimal(0),
        )  # fmt: skip
        assert {x["tenant"]: (x["calls"], x["cost_usd"], x["unpriced_calls"]) for x in by_tenant} == {
            "acme": (4, acme, 0),  # priced by the store, not at the client's $0.50
            "globex": (1, None, 1),  # no price: unknown, whatever its client said
        }
        assert margins(moved, "acme") == [("acme", date(2026, 11, 1), Decimal(20))]
        assert moved.query("SELECT count() FROM rollup_builds WHERE grain = 'day'").rows == [[1]]
        [[old_kept]] = moved.query(f"SELECT count() FROM `{moved.database}_pre_baseline`.otel_traces").rows
        assert old_kept == 9
    done = CliRunner().invoke(app, ["migrate", "--upgrade", "--store", dsn])
    assert done.exit_code == 1 and "does not have the pre-baseline schema" in done.stderr


def test_upgrade_refuses_a_store_it_would_overwrite(old_store: Store) -> None:
    old_store.command(f"CREATE DATABASE `{old_store.database}_pre_baseline`")
    from spendscope.store.errors import StoreError

    with pytest.raises(StoreError, match="_pre_baseline exists already"):
        upgrade(old_store)


def test_a_store_of_the_earlier_migrations_takes_the_job_rollup(server_dsn: str, _store_admin: Store) -> None:
    """A store migrated to 0003, its rollups built by that schema's builder (rows without job_id),
    takes 0004: its rollup rows are read as before, the per-job answers equal llm_usage before the
    builder builds the per-job days and after."""
    from spendscope.store import breakdowns as b
    from spendscope.store import setup
    from spendscope.store.rollups import build_rollups

    name = f"t_{uuid.uuid4().hex[:16]}"
    store = open_store(server_dsn, database=name)
    try:
        store.command(mig.migrations_table_sql())
        fts = mig.full_text_search(store.server_version)
        for migration in [m for m in mig.load_migrations() if m.version <= 3]:
            for statement in migration.statements(full_text_search=fts):
                store.client.command(statement)
            store.insert(
                "spendscope_migrations",
                [[migration.version, migration.name, migration.checksum, datetime.now(UTC)]],
                ["version", "name", "checksum", "applied_at"],
                column_type_names=["UInt32", "String", "String", "DateTime64(3, 'UTC')"],
            )
        setup.load_prices(store)
        at = datetime(2026, 11, 3, 10, tzinfo=UTC)
        store.insert_spans([
            llm_record(at + timedelta(hours=i * 7), user=f"u-{i % 3}", tenant=("acme", "globex")[i % 2],
                       endpoint=("cv-parsing", "questions")[i // 2 % 2], extra={"job_id": f"J-{i % 4}"})
            for i in range(12)
        ])  # fmt: skip
        # what the 0003 builder wrote for each grain: the rows of `usage`, then the build's record
        for grain in ("hour", "day", "user_day"):
            store.command(
                "INSERT INTO llm_usage_rollup SELECT {g:String}, bucket, 1, * EXCEPT (bucket) FROM usage(grain = {g:String}, "
                "since = '2026-11-01 00:00:00', until = '2026-12-01 00:00:00')",
                {"g": grain},
            )
            store.command(
                "INSERT INTO rollup_builds SELECT DISTINCT grain, bucket, 1, now64(6), now64(6) "
                "FROM llm_usage_rollup WHERE grain = {g:String}",
                {"g": grain},
            )
        before = r.report(store, by="tenant", since=NOV, until=DEC)
        assert store.migrate() == ["0004_job_rollup"]
        [[old_rows, jobs]] = store.query("SELECT count(), countIf(job_id != '') FROM llm_usage_rollup").rows
        assert old_rows > 0 and jobs == 0
        assert r.report(store, by="tenant", since=NOV, until=DEC) == before
        assert before == r.run(store, r.usage_query("tenant", NOV, DEC, raw=True), key="tenant")

        def per_job() -> tuple[r.Report, r.Report]:
            fast = b.billing_query("attr:job_id", NOV, DEC, by2="endpoint", where={"tenant": "acme"})
            raw = r.Query("billing_pairs", {**{k: v for k, v in fast.params.items() if k != "column2"},
                                            "by": "attr:job_id"})  # fmt: skip
            return r.run(store, fast), r.run(store, raw)

        fast, raw = per_job()
        assert fast == raw and len(raw.rows) == 2  # acme's calls: J-0 and J-2
        assert build_rollups(store, lag=timedelta(0)).buckets == {
            "hour": 0,
            "day": 0,
            "user_day": 0,
            "job_day": 4,
        }
        fast, raw = per_job()
        assert fast == raw and len(raw.rows) == 2
        [[jobs]] = store.query(
            "SELECT countIf(job_id != '') FROM llm_usage_rollup WHERE grain = 'job_day'"
        ).rows
        assert jobs > 0
    finally:
        store.close()
        _store_admin.command(f"DROP DATABASE IF EXISTS `{name}` SYNC")
