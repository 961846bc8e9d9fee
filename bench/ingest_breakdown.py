"""Where the collector's CPU goes per span, part by part: `python bench/ingest_breakdown.py
[--batch 30000] [--rounds 8] [--spans 2000] [--no-schema]`.

Complements `python bench/ingest.py` (the whole collector, end to end) by measuring each part in this
one process, in CPU time (all threads, ClickHouse included: chdb runs in this process here, unlike the
store's server the collector uses), with the variants of each
section interleaved round by round, so the machine's other load weighs on all of them alike; compare
within a section, as ratios. Background merges are stopped while measuring.

1. Python: parsing a request with opentelemetry-proto's generated classes, and the whole decode to
   SpanRecords, per span.
2. How decoded spans reach ClickHouse: the store's insert (`Store.insert_spans`: clickhouse-connect's
   row-oriented insert, Native format), the same rows pivoted to columns (`column_oriented=True`), and
   an Arrow table (`insert_arrow`); rows built from SpanRecords included, so each is the whole step.
3. The insert of ready-made rows into `otel_traces` (one database per variant, the migrations as
   shipped): all views; each materialized view removed in turn (and what it feeds); no views; no
   views and no skip indexes; the exporter's bloom-filter indexes instead of text indexes; the
   collector's insert settings against `optimize_on_insert = 1` (ClickHouse's default); and the
   schema before the baseline (tests/store_old_schema/: its views and insert-fed rollups, inserted
   with its deduplication settings and a token per block), for the cost of the baseline's views
   against the ones they replaced.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import resource
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from ingest import llm_request  # noqa: E402

from spendscope.collector._otlp import PROTOBUF, traces_request  # noqa: E402
from spendscope.collector._spans import decode_spans  # noqa: E402
from spendscope.pricing import Pricer  # noqa: E402
from spendscope.store import migrations as mig  # noqa: E402
from spendscope.store.dsn import Target  # noqa: E402
from spendscope.store.prices import load_prices  # noqa: E402
from spendscope.store.records import SpanRecord  # noqa: E402
from spendscope.store.rows import OTEL_TRACES, OTEL_TRACES_COLUMNS, span_rows  # noqa: E402
from spendscope.store.store import SPAN_INSERT_SETTINGS, Store, _literal  # noqa: E402


def in_process_store(directory: Path, database: str) -> Store:
    """A migrated store through chdb in this process (clickhouse-connect's chdb backend), so that this
    process's CPU time includes ClickHouse's work."""
    import clickhouse_connect

    client = clickhouse_connect.get_client(dsn=f"chdb://{directory}")
    client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    client.database = database
    store = Store(Target("", database, directory), client)
    store.migrate()
    return store


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def interleaved(variants: dict[str, Callable[[], int]], rounds: int) -> dict[str, list[float]]:
    """µs of CPU per span of each variant (each call returns the spans it handled), in shuffled order
    round by round."""
    out: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        order = list(variants)
        random.shuffle(order)
        for name in order:
            start = cpu()
            spans = variants[name]()
            out[name].append((cpu() - start) / spans * 1e6)
    return out


def table(
    title: str, results: dict[str, list[float]], extra: dict[str, str] | None = None, extra_name: str = ""
) -> None:
    base = statistics.median(next(iter(results.values())))
    head = f" {extra_name} |" if extra else ""
    print(f"\n{title}\n\n| variant | µs CPU per span (median) | x first | min |{head}")
    print(f"|---|---:|---:|---:|{'---|' if extra else ''}")
    for name, xs in results.items():
        median = statistics.median(xs)
        note = f" {extra.get(name, '')} |" if extra else ""
        print(f"| {name} | {median:.1f} | {median / base:.2f} | {min(xs):.1f} |{note}")


def python_parts(requests: list[bytes], rounds: int) -> None:
    spans = sum(len(decode_spans(r).keys) for r in requests)

    def parse() -> int:
        for request in requests:
            traces_request(request, PROTOBUF)
        return spans

    def decode() -> int:
        for request in requests:
            decode_spans(request)
        return spans

    table(
        "Python, per span",
        interleaved({"parse (upb)": parse, "parse and decode to SpanRecords": decode}, rounds),
    )


def _arrow_table(records: list[SpanRecord]) -> Any:
    import pyarrow as pa  # type: ignore[import-untyped]

    text = pa.string()
    attributes = pa.map_(text, text)
    types = [pa.int64(), text, text, text, text, text, text, text, attributes, text, text, attributes]
    types += [pa.uint64(), text, text, pa.list_(pa.int64()), pa.list_(text), pa.list_(attributes)]
    types += [pa.list_(text), pa.list_(text), pa.list_(text), pa.list_(attributes)]
    columns: list[list[Any]] = [list(c) for c in zip(*span_rows(records), strict=True)]
    for i in (8, 11):  # maps as lists of pairs
        columns[i] = [list(m.items()) for m in columns[i]]
    for i in (17, 21):
        columns[i] = [[list(m.items()) for m in maps] for maps in columns[i]]
    arrays = [pa.array(c, type=t) for c, t in zip(columns, types, strict=True)]
    return pa.Table.from_arrays(arrays, names=list(OTEL_TRACES_COLUMNS))


def insert_paths(store: Store, rounds: int, records: list[SpanRecord]) -> None:
    """The store's insert against the other public clickhouse-connect paths, each from SpanRecords."""
    store.command("SYSTEM STOP MERGES")
    types = store.client.create_insert_context(OTEL_TRACES, list(OTEL_TRACES_COLUMNS)).column_types
    made = iter(range(1, 1 << 30))

    def fresh() -> list[SpanRecord]:  # new span keys each time, made before the clock starts
        k = next(made)
        return [dataclasses.replace(r, trace_id=f"{k:08x}{i:024x}") for i, r in enumerate(records)]

    def settings(name: str) -> dict[str, Any]:
        return dict(SPAN_INSERT_SETTINGS)

    def timed(insert: Callable[[list[SpanRecord]], None]) -> Callable[[], float]:
        def go() -> float:
            batch = fresh()
            start = cpu()
            insert(batch)
            return (cpu() - start) / len(batch) * 1e6

        return go

    def rows(batch: list[SpanRecord]) -> None:
        store.insert_spans(batch)

    def columns(batch: list[SpanRecord]) -> None:
        pivoted = [list(c) for c in zip(*span_rows(batch), strict=True)]
        store.client.insert(
            OTEL_TRACES,
            pivoted,
            column_names=list(OTEL_TRACES_COLUMNS),
            column_types=types,
            column_oriented=True,
            settings=settings("columns"),
        )

    def arrow(batch: list[SpanRecord]) -> None:
        store.client.insert_arrow(OTEL_TRACES, _arrow_table(batch), settings=settings("arrow"))

    variants = {
        "Store.insert_spans (row-oriented, Native)": timed(rows),
        "column-oriented insert": timed(columns),
        "Arrow (insert_arrow)": timed(arrow),
    }
    results: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        order = list(variants)
        random.shuffle(order)
        for name in order:
            results[name].append(variants[name]())
    store.command("SYSTEM START MERGES")
    table(f"From SpanRecords into otel_traces ({len(records)} spans per insert), µs of CPU per span", results)


def _views(store: Store, database: str) -> list[str]:
    rows = store.query(
        "SELECT name FROM system.tables WHERE database = {db:String} "
        "AND engine = 'MaterializedView' ORDER BY name",
        {"db": database},
    ).rows
    return [str(r[0]) for r in rows]


OLD_SCHEMA = ROOT / "tests" / "store_old_schema"
PRE_BASELINE = "the pre-baseline schema's views (as shipped before)"
# how the pre-baseline collector inserted (a token per block, deduplicated in every view below)
_OLD_SETTINGS = {"insert_deduplicate": 1, "deduplicate_blocks_in_dependent_materialized_views": 1}


def _migrate(store: Store, database: str, full_text_search: bool, directory: Path | None = None) -> None:
    store.command(f"CREATE DATABASE {database}")
    store.client.database = database
    for migration in mig.load_migrations(directory):
        for statement in migration.statements(full_text_search=full_text_search):
            store.client.command(statement)
    if directory is None:  # the store prices calls from its price rows, as a migrated store has them
        load_prices(store, Pricer())
    store.client.database = "seed"


def insert_parts(store: Store, rounds: int, batch: int, records: list[SpanRecord]) -> None:
    fts = mig.full_text_search(store.server_version)
    _migrate(store, "v_all", fts)
    views = _views(store, "v_all")
    python_records = "all views, from SpanRecords (the collector's insert)"
    variants: dict[str, tuple[bool, list[str], dict[str, Any]]] = {
        "all views, the collector's settings": (fts, [], {}),
        python_records: (fts, [], {}),
        "all views, optimize_on_insert = 1": (fts, [], {"optimize_on_insert": 1}),
        f"{'bloom-filter' if fts else 'text'} indexes instead": (not fts, [], {}),
        "no views": (fts, [f"DROP VIEW {v}" for v in views], {}),  # (a view gone stops what it feeds)
        "no views, no skip indexes": (fts, [f"DROP VIEW {v}" for v in views], {}),
    }
    for view in views:
        variants[f"without {view}"] = (fts, [f"DROP VIEW {view}"], {})
    variants[PRE_BASELINE] = (fts, [], _OLD_SETTINGS)
    databases = {}
    for n, (name, (full_text, edits, _)) in enumerate(variants.items()):
        database = "v_all" if n == 0 else f"v_{n}"
        if n:
            _migrate(store, database, full_text, OLD_SCHEMA if name == PRE_BASELINE else None)
        for edit in edits:
            store.command(edit.replace("DROP VIEW ", f"DROP VIEW {database}."))
        if name == "no views, no skip indexes":
            for index in store.query(
                "SELECT name FROM system.data_skipping_indices "
                "WHERE database = {db:String} AND table = 'otel_traces'",
                {"db": database},
            ).rows:
                store.command(f"ALTER TABLE {database}.otel_traces DROP INDEX {index[0]}")
        databases[name] = database
    store.command("SYSTEM STOP MERGES")
    # a batch of new span keys per round, made before anything is timed
    copies = [
        [dataclasses.replace(r, trace_id=f"{k:08x}{i:024x}") for i, r in enumerate(records)]
        for k in range(1, rounds + 1)
    ]

    def from_python() -> int:
        batch_records = copies.pop()
        store.client.database = databases[python_records]
        try:
            store.insert_spans(batch_records)
        finally:
            store.client.database = "seed"
        return len(batch_records)

    def insert(name: str) -> Callable[[], int]:
        if name == python_records:
            return from_python

        batches = iter(range(1, rounds + 1))  # a new batch each time

        def go() -> int:
            k = next(batches)
            settings = {**SPAN_INSERT_SETTINGS, **variants[name][2]}
            if name == PRE_BASELINE:
                settings["insert_deduplication_token"] = f"t{k}"
            clause = ", ".join(f"{a} = {_literal(b)}" for a, b in settings.items())
            store.client.command(
                f"INSERT INTO {databases[name]}.otel_traces SELECT * EXCEPT batch FROM seed.stage "
                f"WHERE batch = {k} SETTINGS {clause}"
            )
            return batch

        return go

    results = interleaved({name: insert(name) for name in variants}, rounds)
    table(f"Insert of ready rows into otel_traces ({batch} spans per insert)", results)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=30_000, help="spans per insert")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--spans", type=int, default=2000, help="spans per OTLP request")
    parser.add_argument("--no-schema", action="store_true", help="sections 1 and 2 only")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="spendscope-breakdown-"))
    try:
        store = in_process_store(workdir, "seed")
        data, _ = llm_request(args.spans)
        request = bytes(data)
        print(
            f"{args.spans} spans per request, {len(request) / args.spans:.0f} bytes per span, "
            f"ClickHouse {store.server_version}"
        )
        python_parts([request] * max(20_000 // args.spans, 1), args.rounds)
        copies = -(-args.batch // args.spans)
        insert_paths(store, args.rounds, decode_spans(request).records * copies)
        if args.no_schema:
            store.close()
            return
        store.insert_spans(decode_spans(request).records)
        store.command("CREATE TABLE stage0 ENGINE = Memory AS SELECT * FROM otel_traces")
        store.command(
            f"CREATE TABLE stage ENGINE = Memory AS SELECT toUInt32(intDiv(n, {copies}) + 1) AS batch, "
            "stage0.* REPLACE (lower(hex(MD5(concat(TraceId, toString(n))))) AS TraceId) FROM stage0, "
            f"(SELECT number AS n FROM numbers({copies * args.rounds})) AS copies"
        )
        insert_parts(store, args.rounds, copies * args.spans, decode_spans(request).records * copies)
        store.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
