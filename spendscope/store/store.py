"""The store: a ClickHouse database reached through clickhouse-connect over HTTP.

One way in, whatever the store: a ClickHouse server (`http(s)://...`), or a local store (a data
directory), which is served by a ClickHouse server process of its own on 127.0.0.1
(spendscope/store/server.py) that any number of processes use at once. Connecting never starts that
server: the commands and the collector do (`server.prepare`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, BinaryIO

from spendscope.store import csv_render
from spendscope.store import migrations as mig
from spendscope.store.dsn import Target, parse_dsn
from spendscope.store.errors import StoreError
from spendscope.store.records import SpanRecord
from spendscope.store.rows import OTEL_TRACES, OTEL_TRACES_COLUMNS, span_rows
from spendscope.store.sqlfiles import named_query

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

# Span blocks (otel_traces and every view below it) skip optimize_on_insert: it re-sorts and collapses
# each new part of the Replacing/AggregatingMergeTree targets (llm_usage, otel_traces_trace_id_ts) as a
# merge would, which merges do anyway; the reads (FINAL) do not depend on it. It was 10-17% of an
# insert's CPU. Nothing depends on insert deduplication either: a span written again, in any block,
# collapses in llm_usage (FINAL keeps one row per span), and nothing is counted from inserted rows.
SPAN_INSERT_SETTINGS: Mapping[str, Any] = {"async_insert": 0, "optimize_on_insert": 0}
_HTTP_OPTIONS: Mapping[str, Any] = {
    "autogenerate_session_id": False,  # one client serves several threads
    "connect_timeout": 5,
    "send_receive_timeout": 60,
}


@dataclass(frozen=True, slots=True)
class Rows:
    columns: list[str]
    rows: list[list[Any]]


def _value(value: Any) -> Any:
    # the server returns DateTime64('UTC') values without their zone: they are UTC.
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return re.sub(r"\s*\(version [^)]*\)", "", text)[:500]


def _server_url(target: Target) -> str:
    """The URL to connect to: the server's, or the local store server's for the directory."""
    directory = target.directory
    if directory is None:
        return target.dsn
    from spendscope.store import server

    if not directory.is_dir():
        raise StoreError(f"no store at {directory}: the directory does not exist")
    state = server.running(directory)
    if state is None:
        raise StoreError(
            f"no store server runs for {directory}: `spendscope store start --store {directory}` starts it"
        )
    return state.url


def _connect(target: Target) -> Client:
    import clickhouse_connect
    from clickhouse_connect.driver.exceptions import ClickHouseError

    url = _server_url(target)
    try:
        return clickhouse_connect.get_client(dsn=url, **_HTTP_OPTIONS)
    except ClickHouseError as exc:
        raise StoreError(f"cannot reach ClickHouse at {target.describe()}: {_reason(exc)}") from exc


def _reason(exc: BaseException) -> str:
    """clickhouse-connect's message, without the request's details when the connection failed."""
    text = _first_line(exc)
    refused = re.search(r"Failed to establish a new connection: \[Errno \d+\] ([^\")]+)", text)
    return refused.group(1) if refused else text


class Store:
    """A migrated-or-not SpendScope database; also the collector's `SpanSink`."""

    def __init__(self, target: Target, client: Client) -> None:
        """`client`: a clickhouse-connect client for `target`, its database chosen. Its methods may be
        called from several threads at once (each request has a connection of its own)."""
        self.target = target
        self.client = client
        self._span_types: Any = None
        self._export_settings_text: str | None = None
        self.server_version = str(client.server_version)

    @classmethod
    def connect(cls, target: Target, *, create: bool = True) -> Store:
        """Connect to `target`, creating its database if need be; without `create`, a database that
        does not exist is a `StoreError` and nothing is created. A local store's server must run."""
        client = _connect(target)
        store = cls(target, client)
        try:
            # a server's user may lack CREATE DATABASE for a database that exists (docker compose)
            exists = store.query(
                "SELECT count() FROM system.databases WHERE name = {db:String}", {"db": target.database}
            )
            if not exists.rows[0][0]:
                if not create:
                    raise StoreError(f"no store at {target.describe()}: the database does not exist")
                store.command(f"CREATE DATABASE IF NOT EXISTS `{target.database}`")
            client.database = target.database
        except BaseException:
            client.close()
            raise
        return store

    @property
    def database(self) -> str:
        return self.target.database

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.client.close()

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        from clickhouse_connect.driver.exceptions import ClickHouseError

        try:
            yield
        except ClickHouseError as exc:
            raise StoreError(f"{what} failed on {self.target.describe()}: {_reason(exc)}") from exc

    # --- generic I/O ----------------------------------------------------------------------------------
    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        with self._errors("command"):
            self.client.command(sql, parameters=dict(params) if params else None)

    def query(
        self, sql: str, params: Mapping[str, Any] | None = None, *, settings: Mapping[str, Any] | None = None
    ) -> Rows:
        with self._errors("query"):
            bound = dict(params) if params else None
            result = self.client.query(sql, parameters=bound, settings=dict(settings or {}))
            columns = list(result.column_names)
            if not columns:  # an empty result comes without a block, so without names: ask for them
                columns = [name for name, _ in self._describe(sql, bound)]
            # read by column: only DateTime columns need a look at each value, and the rows are built
            # in one pass (20,000 rows x 10 columns: 25 ms row by row -> 5 ms)
            data = [
                [_value(v) for v in values] if "DateTime" in type_.name else values
                for values, type_ in zip(result.result_columns, result.column_types, strict=True)
            ]
            return Rows(columns, list(map(list, zip(*data, strict=True))))

    def run(self, name: str, params: Mapping[str, Any]) -> Rows:
        """Run the named query `clickhouse/queries/<name>.sql` with exactly its bound parameters."""
        query = named_query(name)
        return self.query(query.sql, query.bind(dict(params)))

    def _export_settings(self) -> str:
        """Settings for a whole-table export, as a SETTINGS list: lazy materialization for any LIMIT
        where the server has the setting, so an ORDER BY sorts keys, not whole rows
        (see calls.sql)."""
        if self._export_settings_text is None:
            name = "query_plan_max_limit_for_lazy_materialization"
            known = self.client.query(
                "SELECT count() FROM system.settings WHERE name = {name:String}", parameters={"name": name}
            ).result_rows[0][0]
            self._export_settings_text = f"{name} = 0" if known else ""
        return self._export_settings_text

    def _describe(self, sql: str, bound: dict[str, Any] | None) -> list[tuple[str, str]]:
        """The (name, ClickHouse type) of each column of `sql`'s result."""
        described = self.client.query(f"DESCRIBE TABLE ({sql})", parameters=bound)
        return [(str(row[0]), str(row[1])) for row in described.result_rows]

    def run_blocks(self, name: str, params: Mapping[str, Any]) -> tuple[list[str], Iterator[list[list[Any]]]]:
        """The named query's column names, and its rows block by block as ClickHouse sends them (about
        65,000 rows each): Python holds a block at a time, whatever the size of the result. Read the
        blocks to their end, or close them (which closes the query's connection)."""
        query = named_query(name)
        bound = query.bind(dict(params))
        with self._errors("query"):
            columns = self._describe(query.sql, bound)
            settings = self._export_settings()
        dates = [i for i, (_, type_) in enumerate(columns) if "DateTime" in type_]
        sql = f"SELECT * FROM (\n{query.sql}\n) SETTINGS {settings}" if settings else query.sql

        def blocks() -> Iterator[list[list[Any]]]:
            with self._errors("query"):
                stream = self.client.query_row_block_stream(sql, parameters=bound)
            with self._errors("query"), stream:
                for block in stream:
                    rows = [list(row) for row in block]
                    for row in rows:
                        for i in dates:
                            row[i] = _value(row[i])
                    yield rows

        return [name for name, _ in columns], blocks()

    def write_csv(self, name: str, params: Mapping[str, Any], out: BinaryIO) -> None:
        """The named query's result as CSV with a header, rendered by ClickHouse as the Python
        formatting renders it (see csv_render.py), written to `out` block by block as ClickHouse
        sends it: Python holds a block at a time, whatever the size of the result. A failure part way
        raises StoreError after what came before it was written."""
        query = named_query(name)
        bound = query.bind(dict(params))
        with self._errors("export"):
            columns = self._describe(query.sql, bound)
            select = csv_render.csv_select(query.sql, columns, self._export_settings())
            out.write(csv_render.header(columns))
            stream: Any = self.client.raw_stream(select, parameters=bound, fmt=csv_render.FORMAT)
            with stream:
                while chunk := stream.read(1 << 20):
                    out.write(chunk)

    def insert(
        self,
        table: str,
        rows: Sequence[Sequence[Any]],
        columns: Sequence[str],
        *,
        settings: Mapping[str, Any] | None = None,
        column_types: Any = None,
        column_type_names: Sequence[str] | None = None,
    ) -> None:
        if not rows:
            return
        with self._errors(f"insert into {table}"):
            self.client.insert(
                table,
                rows,
                column_names=list(columns),
                column_types=column_types,
                column_type_names=list(column_type_names) if column_type_names else None,
                settings=dict(settings or {}),
            )

    # --- schema ---------------------------------------------------------------------------------------
    def applied_migrations(self) -> list[mig.Applied]:
        self.command(mig.migrations_table_sql())
        rows = self.query("SELECT version, name, checksum FROM spendscope_migrations FINAL ORDER BY version")
        return [mig.Applied(int(v), str(n), str(c)) for v, n, c in rows.rows]

    def pending_migrations(self) -> list[str]:
        """The migrations this database lacks (read-only: creates nothing)."""
        [[exists]] = self.query("EXISTS TABLE spendscope_migrations").rows
        if not exists:
            return [m.label for m in mig.load_migrations()]
        rows = self.query("SELECT version, name, checksum FROM spendscope_migrations FINAL ORDER BY version")
        applied = [mig.Applied(int(v), str(n), str(c)) for v, n, c in rows.rows]
        return [m.label for m in mig.pending(mig.load_migrations(), applied, database=self.database)]

    def migrate(self, *, prices: bool = True) -> list[str]:
        """Apply the pending migrations in order, recording each, then the store settings set in the
        environment (retention, trust in client costs) and, with `prices`, the price data if it changed
        (spendscope/store/prices.py); returns the migrations' labels. Idempotent."""
        labels = self.migrate_schema()
        from spendscope.store import setup

        setup.apply_settings(self)
        if prices:
            setup.load_prices(self)
        return labels

    def migrate_schema(self) -> list[str]:
        """Apply the pending migrations in order, recording each; returns their labels. Idempotent."""
        from spendscope.settings.store import StoreSettings

        todo = mig.pending(mig.load_migrations(), self.applied_migrations(), database=self.database)
        fts = mig.full_text_search(self.server_version, StoreSettings.resolve().store_trace_indexes)
        for migration in todo:
            for statement in migration.statements(full_text_search=fts):
                with self._errors(f"migration {migration.label}"):
                    self.client.command(statement)
            self.insert(
                "spendscope_migrations",
                [[migration.version, migration.name, migration.checksum, datetime.now(UTC)]],
                ["version", "name", "checksum", "applied_at"],
                column_type_names=["UInt32", "String", "String", "DateTime64(3, 'UTC')"],
            )
        return [m.label for m in todo]

    # --- the collector's SpanSink ---------------------------------------------------------------------
    def insert_spans(self, records: Sequence[SpanRecord]) -> None:
        """Insert `records` into otel_traces (and, through the views, their calls into llm_usage). A
        span inserted again, in any block, is counted once (see clickhouse/migrations/0001_baseline.sql)."""
        if not records:
            return
        if self._span_types is None:
            with self._errors("insert into otel_traces"):
                context = self.client.create_insert_context(OTEL_TRACES, list(OTEL_TRACES_COLUMNS))
            self._span_types = context.column_types
        self.insert(
            OTEL_TRACES,
            span_rows(records),
            OTEL_TRACES_COLUMNS,
            settings=SPAN_INSERT_SETTINGS,
            column_types=self._span_types,
        )


def _literal(value: Any) -> str:
    """A setting value or string as a ClickHouse literal."""
    if isinstance(value, bool | int):
        return str(int(value))
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def open_store(
    dsn: str | None = None, *, database: str | None = None, migrate: bool = False, create: bool = True
) -> Store:
    """Open the store at `dsn` (default: SPENDSCOPE_STORE, else ./spendscope-data), creating its
    database if needed (without `create`: a `StoreError` if it does not exist); with `migrate`, bring
    its schema up to date. A local store's server must be running (`server.prepare` starts it)."""
    store = Store.connect(parse_dsn(dsn, database=database), create=create)
    if migrate:
        try:
            store.migrate()
        except BaseException:
            store.close()
            raise
    return store
